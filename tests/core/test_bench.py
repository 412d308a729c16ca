"""cellviewer bench: the quick variant prints the table with every row and sane positive numbers.

No timing is asserted (CI machines differ); only that each measurement ran and is
positive and finite.
"""

import json
import math

import numpy as np
import pytest

from cellviewer.core import bench as B


def _ok(v) -> bool:
    return v is not None and math.isfinite(v) and v > 0


def test_flops_of_an_architecture_scale_with_its_width():
    from cellviewer.nets.registry import create_net

    small = B.measure_net(create_net("do-unet", base=4, depth=2), 64, 1, 100.0)
    wide = B.measure_net(create_net("do-unet", base=8, depth=2), 64, 1, 100.0)
    assert 3 < wide["gflop_per_mp"] / small["gflop_per_mp"] < 5  # convolutions: ~width²
    assert wide["params"] > small["params"] > 0 and _ok(small["ms_per_mp"])


def test_undo_memory_is_sparse():
    lab = np.zeros((300, 400), np.int32)
    lab[100:150, 100:150] = 1
    rows = B.undo_rows({"rbc": lab}, shape=(300, 400), strokes=3, radius=5)
    undo = rows[0]
    assert _ok(undo.value) and undo.value < 300 * 400 * 4 / 10  # far below a dense copy
    assert _ok(rows[1].value)


def test_big_field_is_tiled_from_real_fields():
    px = B.big_field((1000, 1500))
    assert px.shape == (1000, 1500, 3) and px.dtype == np.uint8 and px.std() > 5


def test_bench_command_quick_prints_the_table(tmp_path, capsys):
    from cellviewer.cli import main

    out = tmp_path / "bench.json"
    rc = main(["bench", "--quick", "--skip-gui", "--no-archs", "--batch-images", "3", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    rows = json.loads(out.read_text())
    names = {r["name"] for r in rows}
    for must in ("peak fp32 matmul", "peak 3×3 conv", "640×480 field: total", "2592×1944 field: total",
                 "2592×1944 field: inference", "2592×1944 field: post-processing", "undo memory per brush stroke",
                 "resident memory after 1 images", "resident memory after 3 images"):
        assert must in names, must
        assert must in text
    from cellviewer.core.netsegment import find_models

    for model in find_models():
        for what in ("ms per megapixel", "GFLOP per megapixel", "achieved ÷ peak", "parameters"):
            assert f"model {model}: {what}" in names
    for r in rows:
        if r["section"] in ("machine", "analyze", "models") or r["name"].startswith("resident"):
            assert _ok(r["value"]), r



def test_a_valid_convolution_net_is_measured_per_pixel_it_segments():
    """do-unet-valid answers for the centre of its tile: GFLOP/MP and ms/MP are per output (segmented) pixel."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cellviewer.nets.registry import create_net

    net = create_net("do-unet-valid", base=4, depth=2)
    m = B.measure_net(net, 96, 1, 100.0)
    x = torch.rand(1, 3, m["size"], m["size"])
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        out = net(x)["mask"]
    assert out.shape[-1] == m["out_size"] < m["size"]  # the valid net's output is smaller than its input
    assert m["gflop_per_mp"] == pytest.approx(fc.get_total_flops() / 1e9 / (out.shape[-2] * out.shape[-1] / 1e6))
    assert m["gflops"] == pytest.approx(m["gflop_per_mp"] / (m["ms_per_mp"] / 1e3))
    same = B.measure_net(create_net("do-unet", base=4, depth=2, n_classes=4), 96, 1, 100.0)
    assert same["out_size"] == same["size"] == 96  # a padded net: per output pixel = per input pixel


def test_a_users_model_is_not_labelled_as_the_shipped_one(tmp_path, monkeypatch):
    """A fine-tuned or installed model in the user's folder wins over the shipped one of its name; the bench
    table must not present its numbers as the shipped model's."""
    from cellviewer.core.modelfind import find_models, is_shipped, model_dirs

    shipped = {name: path for name, (path, _) in find_models().items()}
    monkeypatch.setenv("CELLVIEWER_HOME", str(tmp_path / "home"))
    user_dir = model_dirs()[-1]
    assert not is_shipped(user_dir / "blood-cells.json")
    assert B._model_label("blood-cells", user_dir / "blood-cells.json", {"version": 7}) == "user model blood-cells v7"
    assert B._model_label("mine", user_dir / "mine.json", {}) == "user model mine"
    for name, path in shipped.items():  # the repository's models/ (skipped where none is shipped)
        assert is_shipped(path) and B._model_label(name, path, {"version": 3}) == f"model {name}"
