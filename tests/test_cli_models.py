"""The shipped models through the CLI: ``models`` shows each card's summary, and ``analyze --model
wbc-nucleus-cytoplasm`` writes nucleus / cytoplasm into the class maps and classes.json."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer import cli
from cellviewer.core.document import CLASS_MAP_VALUES

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "resources" / "sample" / "BloodImage_00095.jpg"


def _shipped(name: str) -> dict:
    path = REPO / "models" / f"{name}.json"
    if not path.is_file() or not path.with_suffix(".safetensors").is_file():
        pytest.skip(f"models/{name} is not shipped in this checkout")
    return json.loads(path.read_text())


def test_models_shows_each_cards_summary(capsys):
    cards = {n: _shipped(n) for n in ("blood-cells", "wbc-nucleus-cytoplasm")}
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    for name, card in cards.items():
        block = out.split(name, 1)[1].split("\n", 1)[1]
        info = block.splitlines()[0]
        assert info.strip().startswith(card["architecture"]) and f"version {card['version']}" in info
        assert f"working scale: {card['working_scale']:g} px per red cell" in info
        assert "classes: " + ", ".join(c for c in card["classes"] if c != "background") in info
    rbc_acc = cards["blood-cells"]["metrics"]["datasets"]["txl_pbc"]["rbc"]["count_accuracy"]
    assert f"txl_pbc (107 images) counting accuracy: RBC {100 * rbc_acc:.2f} %" in out
    d1 = cards["wbc-nucleus-cytoplasm"]["metrics"]["datasets"]["wbc_seg:d1"]["wbc"]["dice"]
    assert f"Dice: whole WBC {100 * d1:.2f} %" in out


def test_analyze_with_the_wbc_parts_model_writes_nucleus_and_cytoplasm(tmp_path):
    _shipped("wbc-nucleus-cytoplasm")
    pytest.importorskip("torch")
    out = tmp_path / "out"
    assert cli.main(["analyze", str(SAMPLE), "--out", str(out), "--model", "wbc-nucleus-cytoplasm", "-q",
                     "--device", "cpu"]) == 0
    classes = json.loads((out / "classes.json").read_text())
    nuc, cyto = CLASS_MAP_VALUES["nucleus"], CLASS_MAP_VALUES["cytoplasm"]
    assert classes[str(nuc)] == "nucleus" and classes[str(cyto)] == "cytoplasm"
    cmap = np.asarray(Image.open(out / "masks" / (SAMPLE.stem + ".png")))
    values = set(np.unique(cmap).tolist())
    # a whole field: every cell is counted (detector) and each white cell is split into its parts
    rbc, wbc = CLASS_MAP_VALUES["rbc"], CLASS_MAP_VALUES["wbc"]
    assert {rbc, nuc, cyto} <= values and wbc not in values  # every WBC pixel is a part
    assert np.count_nonzero(cmap == cyto) < 0.25 * cmap.size  # not the whole field called cytoplasm


def _rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_analyze_with_a_calibration_weighs_red_cell_size_but_keeps_the_counts(tmp_path):
    card = _shipped("rbc-morphology")
    _shipped("blood-cells")
    pytest.importorskip("torch")
    if not card.get("size_prior"):
        pytest.skip("the shipped morphology model has no size prior")
    base = ["analyze", str(SAMPLE), "-q", "--device", "cpu"]
    assert cli.main(base + ["--out", str(tmp_path / "plain")]) == 0
    # the sample's red cells are ~110 px: at 0.13 µm/px they would be 14 µm across, macrocytes
    assert cli.main(base + ["--out", str(tmp_path / "big"), "--um-per-px", "0.13"]) == 0
    assert _rows(tmp_path / "plain" / "counts.csv") == _rows(tmp_path / "big" / "counts.csv")  # same scale
    # classified red cells (those cut by the image edge get no class)
    plain = [r["morphology"] for r in _rows(tmp_path / "plain" / "cells.csv") if r["cls"] == "rbc" and r["morphology"]]
    big = [r["morphology"] for r in _rows(tmp_path / "big" / "cells.csv") if r["cls"] == "rbc" and r["morphology"]]
    assert len(big) == len(plain) > 5
    assert big.count("macrocyte") > plain.count("macrocyte") and big.count("macrocyte") >= len(big) // 2
    assert cli.main(base + ["--out", str(tmp_path / "bad"), "--um-per-px", "-1"]) == 2


def test_a_closed_pipe_ends_the_command_quietly():
    """``cellviewer models | head -1``: no error message, the shell's SIGPIPE status."""
    import subprocess
    import sys

    code = ("import sys; sys.argv = ['cellviewer', 'models']; from cellviewer.cli import main; "
            "raise SystemExit(main(['models']))")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**__import__("os").environ, "PYTHONUNBUFFERED": "1"})
    p.stdout.readline()
    p.stdout.close()  # the reader goes away after one line
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) in (0, 141) and "error" not in err
