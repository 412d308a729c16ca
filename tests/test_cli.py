"""The command line: light --help, analyze outputs and exit codes, models, gui dispatch."""

import csv
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cellviewer.core as core_pkg
from cellviewer import cli

REPO = Path(__file__).resolve().parents[1]
CELLS = ["image", "cell_id", "cls", "x", "y", "area_px", "xmin", "ymin", "xmax", "ymax", "score",
         "morphology", "morphology_p"]
COUNTS = ["image", "rbc", "wbc", "platelets"]


def _smear(h=160, w=200, n_rbc=6, wbc=True, seed=0):
    """A light background, reddish discs (RBC) and one purple disc (WBC)."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (236, 228, 232)
    yy, xx = np.mgrid[:h, :w]
    for k in range(n_rbc):
        cy, cx = 25 + (k // 3) * 50 + rng.integers(-3, 4), 25 + (k % 3) * 50 + rng.integers(-3, 4)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 14 ** 2] = (205, 120, 135)
    if wbc:
        img[(yy - 130) ** 2 + (xx - 165) ** 2 <= 18 ** 2] = (90, 60, 160)
    return img


def _write_inputs(folder: Path) -> Path:
    folder.mkdir()
    Image.fromarray(_smear(seed=1)).save(folder / "one.png")
    Image.fromarray(_smear(seed=2, n_rbc=4)).save(folder / "two.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return folder


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _pdf_pages(path):
    data = Path(path).read_bytes()
    assert data.startswith(b"%PDF")
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", data))


# -- fakes for io / segmenter (independent of the real modules) -----------------------------
def _fake_io():
    from cellviewer.core.document import ImageData, ImageInfo
    from cellviewer.core.errors import ImageReadError

    m = types.ModuleType("cellviewer.core.io")
    m.SUPPORTED_SUFFIXES = (".png",)

    def read_image(path):
        try:
            with Image.open(path) as im:
                px = np.asarray(im.convert("RGB"))
        except Exception as e:  # noqa: BLE001
            raise ImageReadError(path, f"not a readable image ({type(e).__name__})") from None
        return ImageData(px, ImageInfo(str(path), px.shape[1], px.shape[0]))

    def list_images(paths):
        out = []
        for p in map(Path, paths):
            out += sorted(q for q in p.iterdir() if q.suffix in m.SUPPORTED_SUFFIXES) if p.is_dir() else [p]
        return out

    def write_png(path, arr):
        Image.fromarray(arr).save(path)

    m.read_image, m.list_images, m.write_png = read_image, list_images, write_png
    return m


class _FakeSegmenter:
    name, version = "fake", "0"

    def __init__(self, device="cpu"):
        self.device = device

    def segment(self, image, cancel=None):
        from scipy import ndimage

        from cellviewer.core.document import Marker
        from cellviewer.core.jobs import Progress
        from cellviewer.core.segment import SegmentationResult

        yield Progress(0.5, "thresholding")
        r, b = image[..., 0].astype(int), image[..., 2].astype(int)
        dark = image.mean(axis=2) < 200
        labels, markers = {}, []
        for cls, mask in (("rbc", dark & (r > b)), ("wbc", dark & (b > r))):
            lab, n = ndimage.label(mask)
            labels[cls] = lab.astype(np.int32)
            for i, (cy, cx) in enumerate(ndimage.center_of_mass(mask, lab, range(1, n + 1)), 1):
                markers.append(Marker(0, cls, float(cx), float(cy), cell=i, score=0.9))
        parts = (labels["wbc"] > 0).astype(np.uint8)
        return SegmentationResult(labels, markers, parts, model_name="fake", model_version="0", device=self.device)


@pytest.fixture
def fakes(monkeypatch):
    from cellviewer.core import segment

    fake = _fake_io()
    monkeypatch.setitem(sys.modules, "cellviewer.core.io", fake)
    monkeypatch.setattr(core_pkg, "io", fake, raising=False)
    monkeypatch.setattr(segment, "_load_builtin", lambda: None)
    monkeypatch.setattr(segment, "default_segmenter_name", lambda: "fake")
    monkeypatch.setitem(segment._FACTORIES, "fake", _FakeSegmenter)
    monkeypatch.setitem(segment._DESCRIPTIONS, "fake", "a test segmenter")
    return fake


# -- tests -------------------------------------------------------------------------------
def test_help_imports_neither_torch_nor_qt():
    code = ("import sys; from cellviewer.cli import main; rc = main(['--help']); rc2 = main(['analyze', '--help']);"
            "print('RESULT', rc, rc2, [m for m in ('torch', 'PySide6', 'pyqtgraph', 'numpy') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "RESULT 0 0 []" in r.stdout
    assert "analyze" in r.stdout and "exit codes" in r.stdout


def test_usage_errors_return_2(capsys):
    assert cli.main(["analyze"]) == 2  # missing inputs and --out
    assert cli.main(["no-such-command"]) == 2
    assert cli.main(["analyze", "x.png", "--out", "o", "--report-pages", "-1"]) == 2
    assert "usage" in capsys.readouterr().err


def test_analyze_batch_with_a_bad_file(fakes, tmp_path, capsys):
    inputs = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    rc = cli.main(["analyze", str(inputs), "--out", str(out), "--device", "cpu"])
    cap = capsys.readouterr()
    assert rc == 1
    skipped = [ln for ln in cap.err.splitlines() if ln.startswith("cellviewer: skipped")]
    assert len(skipped) == 1 and "broken.png" in skipped[0]
    assert "analyzed 2 of 3 images" in cap.out and "s/image" in cap.out

    counts = _read_csv(out / "counts.csv")
    assert counts[0] == COUNTS
    assert [r[0] for r in counts[1:]] == ["one.png", "two.png"]
    assert [r[1:] for r in counts[1:]] == [["6", "1", "0"], ["4", "1", "0"]]
    cells = _read_csv(out / "cells.csv")
    assert cells[0] == CELLS and len(cells) == 1 + 7 + 5
    assert {r[2] for r in cells[1:]} == {"rbc", "wbc"}
    assert all(int(r[5]) > 0 for r in cells[1:])

    mask = np.asarray(Image.open(out / "masks" / "one.png"))
    assert mask.dtype == np.uint8 and mask.shape == (160, 200)
    assert set(np.unique(mask)) == {0, 1, 4}  # background, RBC, WBC nucleus
    assert not (out / "masks" / "broken.png").exists()
    assert json.loads((out / "classes.json").read_text())["1"] == "rbc"
    assert _pdf_pages(out / "report.pdf") == 3  # summary + 2 images
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_analyze_all_ok_returns_0_and_caps_pdf_pages(fakes, tmp_path, capsys):
    inputs = _write_inputs(tmp_path / "in")
    (inputs / "broken.png").unlink()
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs / "one.png"), str(inputs / "two.png"), "-o", str(out), "-q",
                     "--report-pages", "1"]) == 0
    assert _pdf_pages(out / "report.pdf") == 2  # summary + first image only
    assert capsys.readouterr().err == ""  # quiet


def test_analyze_unknown_model(fakes, tmp_path, capsys):
    inputs = _write_inputs(tmp_path / "in")
    rc = cli.main(["analyze", str(inputs), "--out", str(tmp_path / "out"), "--model", "nope"])
    err = capsys.readouterr().err
    assert rc == 6
    assert err.startswith("cellviewer: error: Unknown model 'nope'") and "fake" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # failed before writing anything


def test_analyze_no_images_is_a_usage_error(fakes, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["analyze", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "No images found" in capsys.readouterr().err


def test_models_lists_segmenters(fakes, capsys):
    assert cli.main(["models"]) == 0
    assert "fake (default) — a test segmenter" in capsys.readouterr().out


def test_no_command_and_gui_launch_the_gui(monkeypatch):
    calls = []
    app = types.ModuleType("cellviewer.gui.app")
    app.run_gui = lambda image=None: calls.append(image) or 0
    monkeypatch.setitem(sys.modules, "cellviewer.gui.app", app)
    assert cli.main([]) == 0
    assert cli.main(["gui", "smear.png"]) == 0
    assert calls == [None, "smear.png"]


def test_an_image_where_the_command_goes_opens_it_in_the_gui(monkeypatch, tmp_path, capsys):
    """``cellviewer IMAGE`` (how a file manager's "Open with" calls it) is ``cellviewer gui IMAGE``; a name
    that is no file stays an unknown command, and a command of that name stays the command."""
    calls = []
    app = types.ModuleType("cellviewer.gui.app")
    app.run_gui = lambda image=None: calls.append(image) or 0
    monkeypatch.setitem(sys.modules, "cellviewer.gui.app", app)
    img = tmp_path / "smear 1.png"
    img.write_bytes(b"x")
    assert cli.main([str(img)]) == 0 and cli.main(["--debug", str(img)]) == 0
    assert calls == [str(img), str(img)]
    assert cli.main([str(tmp_path / "nosuch.png")]) == 2 and "invalid choice" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").write_text("a file named like a command")
    assert cli.main(["models"]) == 0 and len(calls) == 2


def test_gui_missing_is_one_line_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cellviewer.gui.app", None)  # import fails
    assert cli.main(["gui"]) == 1
    assert capsys.readouterr().err.startswith("cellviewer: error: The GUI cannot start")


# -- end to end with the real io + classical segmenter, in a subprocess ------------------------
def _real_modules_or_skip():
    pytest.importorskip("cellviewer.core.io", reason="cellviewer.core.io is not written yet")
    from cellviewer.core.segment import list_segmenters

    try:
        names = list_segmenters()
    except ImportError as e:
        pytest.skip(f"the classical segmenters cannot be imported yet: {e}")
    if "classical" not in names:
        pytest.skip("the 'classical' segmenter is not registered yet")


def test_real_analyze_end_to_end(tmp_path):
    _real_modules_or_skip()
    inputs = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "cellviewer", "analyze", str(inputs), "--out", str(out),
                        "--model", "classical", "--device", "cpu"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "cellviewer: skipped" in r.stderr and "broken.png" in r.stderr
    assert _read_csv(out / "counts.csv")[0] == COUNTS and len(_read_csv(out / "counts.csv")) == 3
    assert _read_csv(out / "cells.csv")[0] == CELLS
    assert (out / "masks" / "one.png").is_file() and (out / "masks" / "two.png").is_file()
    assert (out / "classes.json").is_file() and _pdf_pages(out / "report.pdf") == 3


def test_real_unknown_model_lists_names(tmp_path):
    _real_modules_or_skip()
    inputs = _write_inputs(tmp_path / "in")
    r = subprocess.run([sys.executable, "-m", "cellviewer", "analyze", str(inputs), "--out", str(tmp_path / "o"),
                        "--model", "nope"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "cellviewer: error:" in r.stderr and "classical" in r.stderr


def test_same_file_names_from_two_folders_stay_apart(fakes, tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.fromarray(_smear(seed=3)).save(tmp_path / sub / "one.png")
    out = tmp_path / "out"
    assert cli.main(["analyze", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(out), "-q"]) == 0
    assert [r[0] for r in _read_csv(out / "counts.csv")[1:]] == ["one.png", "one_2.png"]
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["one.png", "one_2.png"]


class _OomFallbackSegmenter(_FakeSegmenter):
    """As the net segmenter after a GPU out-of-memory: a result made on the CPU, with the notice."""

    def segment(self, image, cancel=None):
        res = yield from super().segment(image, cancel)
        res.params["fallback"] = ["CUDA out of memory with 1024 px tiles; retried on the CPU (slower)"]
        return res


def test_out_of_memory_fallback_is_a_note_not_a_failure(fakes, tmp_path, capsys, monkeypatch):
    from cellviewer.core import segment

    monkeypatch.setitem(segment._FACTORIES, "fake", _OomFallbackSegmenter)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(_smear(seed=1)).save(folder / "one.png")
    assert cli.main(["analyze", str(folder), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    notes = [ln for ln in err.splitlines() if ln.startswith("cellviewer: note:")]
    assert len(notes) == 1 and "one.png" in notes[0] and "out of memory" in notes[0] and "CPU" in notes[0]


def test_analyze_border_cells_rule_changes_counts_not_masks(fakes, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    img = np.full((80, 100, 3), 240, np.uint8)
    img[0:10, 10:30] = (200, 40, 40)  # an RBC cut by the top edge
    img[70:80, 50:70] = (200, 40, 40)  # ... by the bottom edge
    img[30:45, 40:55] = (200, 40, 40)  # ... inside
    Image.fromarray(img).save(folder / "f.png")
    counts = {}
    for rule in ("all", "frame", "inside"):
        out = tmp_path / rule
        assert cli.main(["analyze", str(folder), "--out", str(out), "-q", "--border-cells", rule]) == 0
        counts[rule] = int(_read_csv(out / "counts.csv")[1][1])
        assert len(_read_csv(out / "cells.csv")) == 1 + counts[rule]
    assert counts == {"all": 3, "frame": 2, "inside": 1}


def test_analyze_gives_red_cells_a_morphology_unless_told_not_to(tmp_path):
    """With the shipped models: cells.csv names each red cell's morphology; --no-morphology leaves it empty."""
    from cellviewer.core.morphology import CLASSES, find_card
    from cellviewer.core.resources import sample_image

    if find_card() is None or not (REPO / "models" / "blood-cells.json").is_file() or sample_image() is None:
        pytest.skip("the shipped blood-cells / rbc-morphology models or the sample are absent")
    for flag, out in (([], tmp_path / "on"), (["--no-morphology"], tmp_path / "off")):
        assert cli.main(["analyze", str(sample_image()), "-o", str(out), "-q", "--device", "cpu", *flag]) == 0
        rows = _read_csv(out / "cells.csv")
        col = rows[0].index("morphology")
        rbc = [r for r in rows[1:] if r[2] == "rbc"]
        assert rbc and all(r[col] == "" for r in rows[1:] if r[2] != "rbc")
        if flag:
            assert all(r[col] == "" for r in rbc)
        else:
            named = [r for r in rbc if r[col]]  # cells cut by the image edge have none
            assert len(named) >= len(rbc) // 2
            assert all(r[col] in CLASSES and 0 < float(r[col + 1]) <= 1 for r in named)


def interrupt_on_image(monkeypatch, n: int, interrupt) -> None:
    """Make the fake segmenter call ``interrupt()`` as it starts its ``n``-th image (a Ctrl-C, a SIGTERM ...)."""
    calls, real = [], _FakeSegmenter.segment

    def segment(self, image, cancel=None):
        calls.append(1)
        if len(calls) == n:
            interrupt()
        return (yield from real(self, image, cancel))

    monkeypatch.setattr(_FakeSegmenter, "segment", segment)


def ctrl_c():
    raise KeyboardInterrupt


def test_sigterm_ends_a_batch_like_ctrl_c(fakes, tmp_path, monkeypatch, capsys):
    """``kill`` (or a scheduler's time limit) mid-batch: exit 130, the CSVs hold the images done, no temp files."""
    import os
    import signal

    inputs = _write_inputs(tmp_path / "in")
    interrupt_on_image(monkeypatch, 2, lambda: os.kill(os.getpid(), signal.SIGTERM))
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs), "--out", str(out), "--device", "cpu"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the command's only
    counts = _read_csv(out / "counts.csv")
    assert [r[0] for r in counts[1:]] == ["one.png"]  # broken.png was skipped, two.png interrupted
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and [r["name"] for r in run["images"]] == ["one.png"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_run_json_traces_every_output_to_its_source_and_says_if_complete(fakes, tmp_path, capsys):
    import json as _json

    a, b = tmp_path / "a", tmp_path / "b"
    _write_inputs(a)
    b.mkdir()
    (b / "one.png").write_bytes((a / "one.png").read_bytes())  # the same name in two folders
    out = tmp_path / "out"
    assert cli.main(["analyze", str(a), str(b), "--out", str(out), "--device", "cpu", "--border-cells", "inside"]) == 1
    run = _json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["model"] == "fake" and run["options"]["border_cells"] == "inside"
    names = {r["name"]: r["file"] for r in run["images"]}
    assert names == {"one.png": str(a / "one.png"), "two.png": str(a / "two.png"), "one_2.png": str(b / "one.png")}
    assert [s["file"] for s in run["skipped"]] == [str(a / "broken.png")]
    assert all((out / r["mask"]).is_file() for r in run["images"])
    capsys.readouterr()
    # a second, smaller run into the same folder says so, and run.json lists only its own images
    assert cli.main(["analyze", str(b), "--out", str(out), "--device", "cpu"]) == 0
    assert "holds an earlier run" in capsys.readouterr().err
    assert [r["file"] for r in _json.loads((out / "run.json").read_text())["images"]] == [str(b / "one.png")]


def test_run_json_names_each_image_s_cautions(tmp_path, capsys):
    import json as _json

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(_smear(seed=1)).save(folder / "colour.png")
    Image.fromarray(_smear(seed=1)[..., 1]).save(folder / "grey.png")  # greyscale: a caution
    out = tmp_path / "out"
    assert cli.main(["analyze", str(folder), "--out", str(out), "--device", "cpu", "--model", "classical"]) == 0
    assert "grey.png: greyscale image" in capsys.readouterr().err
    run = {r["name"]: r for r in _json.loads((out / "run.json").read_text())["images"]}
    assert run["colour.png"]["cautions"] == []
    assert len(run["grey.png"]["cautions"]) == 1 and run["grey.png"]["cautions"][0].startswith("greyscale image")
