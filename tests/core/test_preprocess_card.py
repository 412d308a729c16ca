"""The card's ``preprocessing.steps`` drive NODE-UNet's CLAHE: training records and applies it,
NetSegmenter applies what the card says at inference."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from cellviewer.core.errors import CellviewerError, ModelLoadError  # noqa: E402
from cellviewer.core.jobs import run_job  # noqa: E402
from cellviewer.core.training import TrainConfig, preprocess_steps, train  # noqa: E402
from cellviewer.nets import preprocess as P  # noqa: E402

CLAHE = P.ARCHITECTURE_DEFAULTS["node-unet"]


def _cfg(tmp_path, **kw):
    base = dict(name="tiny-node", datasets=["synthetic"], architecture="node-unet",
                net_config={"widths": [4, 8], "rtol": 1e-2, "atol": 1e-2}, epochs=1, steps_per_epoch=1,
                batch_size=2, augment={"crop": 48}, working_scale=16, synthetic_n=4, out=str(tmp_path / "node"),
                threads=1)
    base.update(kw)
    return TrainConfig(**base)


def _spy(monkeypatch):
    """Count clahe_y calls (and the shapes it saw) through the ops table both paths use."""
    calls = []
    real = P.OPS["clahe_y"]

    def spy(rgb, **opts):
        calls.append((rgb.shape, opts))
        return real(rgb, **opts)

    monkeypatch.setitem(P.OPS, "clahe_y", spy)
    return calls


def test_steps_rules():
    assert P.steps_for("node-unet") == CLAHE and CLAHE[0]["op"] == "clahe_y"
    assert P.steps_for("do-unet") == [] and P.steps_for("node-unet", []) == []
    assert P.steps_for("do-unet", ["clahe_y"]) == [{"op": "clahe_y"}]
    # resuming / fine-tuning keeps what the resumed card recorded (none when the card predates steps)
    assert P.steps_for("node-unet", None, {"preprocessing": {"input": "RGB"}}) == []
    assert P.steps_for("do-unet", None, {"preprocessing": {"steps": CLAHE}}) == CLAHE
    with pytest.raises(ValueError, match="valid ops: clahe_y"):
        P.check_steps([{"op": "sharpen"}])
    img = np.random.default_rng(0).integers(60, 120, (32, 40, 3), dtype=np.uint8)
    assert P.apply_steps(img, []) is img
    assert not np.array_equal(P.apply_steps(img, CLAHE), img)


def test_node_unet_training_records_clahe_and_inference_applies_it(tmp_path, monkeypatch):
    from cellviewer.core.netsegment import NetSegmenter

    calls = _spy(monkeypatch)
    res = run_job(train(_cfg(tmp_path)))
    n_items = 4 + 2  # synthetic_n train items + max(2, n // 4) val items, each preprocessed once
    assert len(calls) == n_items and all(opts == {"clip_limit": 2.0, "tile_grid": 8} for _, opts in calls)
    card = json.loads((tmp_path / "node.json").read_text())
    assert card["architecture"] == "node-unet" and card["preprocessing"]["steps"] == CLAHE
    calls.clear()
    seg = NetSegmenter(res.checkpoint, device="cpu", diameter_px=16, refine_scale=False)
    assert seg.preprocess == CLAHE
    img = np.random.default_rng(1).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    run_job(seg.segment(img))
    assert [shape for shape, _ in calls] == [(40, 56, 3)]  # once, on the image at the working scale
    # the same weights with the steps removed from the card run without CLAHE
    card["preprocessing"]["steps"] = []
    (tmp_path / "plain.json").write_text(json.dumps(card))
    (tmp_path / "plain.safetensors").write_bytes((tmp_path / "node.safetensors").read_bytes())
    calls.clear()
    run_job(NetSegmenter(tmp_path / "plain", device="cpu", diameter_px=16, refine_scale=False).segment(img))
    assert calls == []


def test_other_architectures_record_no_steps_and_bad_steps_are_refused(tmp_path, monkeypatch):
    calls = _spy(monkeypatch)
    cfg = _cfg(tmp_path, architecture="do-unet", net_config={"base": 4, "depth": 2})
    assert preprocess_steps(cfg) == []
    run_job(train(cfg))
    assert calls == [] and json.loads((tmp_path / "node.json").read_text())["preprocessing"]["steps"] == []
    with pytest.raises(CellviewerError, match="Bad 'preprocess' option"):
        preprocess_steps(_cfg(tmp_path, preprocess=[{"op": "nope"}]))
    card = json.loads((tmp_path / "node.json").read_text())
    card["preprocessing"]["steps"] = [{"op": "nope"}]
    (tmp_path / "bad.json").write_text(json.dumps(card))
    (tmp_path / "bad.safetensors").write_bytes((tmp_path / "node.safetensors").read_bytes())
    from cellviewer.core.netsegment import _factory

    with pytest.raises(ModelLoadError, match="unknown preprocessing step"):
        _factory(tmp_path / "bad.json")(device="cpu")
