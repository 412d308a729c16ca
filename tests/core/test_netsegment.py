"""NetSegmenter: structure of the result with a tiny untrained checkpoint; the shipped model."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cellviewer.core import netsegment as NS  # noqa: E402
from cellviewer.core.datasets import synthetic_items  # noqa: E402
from cellviewer.core.jobs import CancelToken, run_job  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiny_checkpoint(tmp_path):
    from cellviewer.nets.checkpoint import save_checkpoint
    from cellviewer.nets.registry import create_net

    torch.manual_seed(0)
    net = create_net("do-unet", n_classes=4, base=4, depth=2, edge=True)
    card = {"name": "tiny", "classes": ["background", "rbc", "wbc", "platelet"], "working_scale": 16}
    save_checkpoint(net, tmp_path / "tiny", card, half=True)
    return tmp_path / "tiny"


def test_untrained_net_returns_a_well_formed_result(tiny_checkpoint):
    img = synthetic_items(1, 24, seed=0, size=90)[0]["image"]
    seg = NS.NetSegmenter(tiny_checkpoint, device="cpu", diameter_px=24)
    res = run_job(seg.segment(img))
    assert set(res.labels) == {"rbc", "wbc", "platelet"}
    for lab in res.labels.values():
        assert lab.shape == img.shape[:2] and lab.dtype == np.int32
    for m in res.markers:
        assert res.labels[m.cls][int(round(m.y)), int(round(m.x))] == m.cell
        assert 0.0 <= m.score <= 1.0
    assert res.model_name == "tiny" and res.params["scale"] == pytest.approx(16 / 24, abs=1e-3)
    # cancel is honoured
    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Exception):
        run_job(seg.segment(img, tok))


def test_instances_from_probs_separates_touching_cells():
    h, w = 40, 60
    probs = np.zeros((4, h, w), np.float32)
    probs[0] = 1
    yy, xx = np.mgrid[:h, :w]
    edge = np.zeros((h, w), np.float32)
    for cx in (18, 34):
        disc = (yy - 20) ** 2 + (xx - cx) ** 2 <= 81
        probs[1][disc], probs[0][disc] = 1, 0
    edge[:, 25:27] = 1  # the line where they touch
    ring = ((yy - 20) ** 2 + (xx - 18) ** 2 <= 81) & ((yy - 20) ** 2 + (xx - 18) ** 2 > 64)
    edge[ring] = 1
    labels, parts, scores = NS.instances_from_probs(probs, edge, ["background", "rbc", "wbc", "platelet"], 16)
    assert labels["rbc"].max() == 2 and parts is None and np.allclose(scores["rbc"], 1)


def _platelet_probs(centres, h=40, w=60, r=3):
    probs = np.zeros((4, h, w), np.float32)
    probs[0] = 1
    yy, xx = np.mgrid[:h, :w]
    for cy, cx in centres:
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        probs[3][disc], probs[0][disc] = 1, 0
    return probs


def test_border_fracs_set_the_smallest_cell_cut_by_the_border():
    classes = ["background", "rbc", "wbc", "platelet"]
    probs = _platelet_probs([(20, 30), (20, -1)])  # a whole platelet and one cut by the left border
    a0 = np.pi * 8 ** 2  # RBC area at diameter 16
    whole, cut = int((probs[3][:, 20:] > 0).sum()), int((probs[3][:, :10] > 0).sum())
    assert 0.02 * a0 <= cut < 0.1 * a0 <= whole
    default, _, _ = NS.instances_from_probs(probs, None, classes, 16)
    assert default["platelet"].max() == 2  # 0.02 of an RBC is enough anywhere by default
    strict, _, _ = NS.instances_from_probs(probs, None, classes, 16, border_fracs={"platelet": 0.1})
    assert strict["platelet"].max() == 1 and strict["platelet"][20, 30] == 1  # the whole one stays
    loose, _, _ = NS.instances_from_probs(probs, None, classes, 16, fracs={"platelet": (0.001, 0.1)},
                                          border_fracs={"platelet": 0.01})
    assert loose["platelet"].max() == 2  # the interior rule alone (0.1) would drop the cut one


@pytest.mark.parametrize("pad, tta", [(0.5, None), (3.0, "flips"), (0.0, "d4")])
def test_border_pad_and_tta_keep_the_result_well_formed(tiny_checkpoint, pad, tta):
    img = synthetic_items(1, 24, seed=0, size=70)[0]["image"]
    seg = NS.NetSegmenter(tiny_checkpoint, device="cpu", diameter_px=24, border_pad=pad, tta=tta)
    probs, edge = run_job(seg.predict(np.ascontiguousarray(img[:40, :50])))
    assert probs.shape == (4, 40, 50) and edge.shape == (40, 50)  # the mirrored margin is cropped off
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-4)
    res = run_job(seg.segment(img))
    assert res.labels["rbc"].shape == img.shape[:2] and res.params["tta"] == (tta or "none")


def test_card_inference_options_are_read(tmp_path, tiny_checkpoint):
    import json

    card = json.loads(tiny_checkpoint.with_suffix(".json").read_text())
    card.update(inference={"border_pad": 0.25, "tta": "flips"}, postprocess={"border_fracs": {"platelet": 0.05},
                                                                           "split_by_nuclei": {"min_gap": 1.2},
                                                                           "merge_fragments": {"rbc": [0.3, 0.5]}})
    tiny_checkpoint.with_suffix(".json").write_text(json.dumps(card))
    NS._CACHE.clear()
    seg = NS.NetSegmenter(tiny_checkpoint, device="cpu")
    assert (seg.border_pad, seg.tta, seg.border_fracs) == (0.25, "flips", {"platelet": 0.05})
    assert seg.nucleus_split == {"min_gap": 1.2} and seg.merge == {"rbc": (0.3, 0.5)}
    assert NS.NetSegmenter(tiny_checkpoint, device="cpu", border_pad=0.0, tta="none").border_pad == 0.0


def test_parts_model_gives_wbc_and_parts():
    probs = np.zeros((3, 30, 30), np.float32)
    probs[0] = 1
    probs[:, 5:25, 5:25] = [[[0]], [[0]], [[1]]]
    probs[:, 10:20, 10:20] = [[[0]], [[1]], [[0]]]
    labels, parts, _ = NS.instances_from_probs(probs, None, ["background", "nucleus", "cytoplasm"], 16)
    assert labels["wbc"].max() == 1 and parts[15, 15] == 1 and parts[7, 7] == 2 and parts[0, 0] == 0


def test_cards_are_registered(tmp_path, tiny_checkpoint, monkeypatch):
    from cellviewer.core import segment

    store = tmp_path / "home" / "models"
    store.mkdir(parents=True)
    for ext in (".json", ".safetensors"):
        (store / ("tiny" + ext)).write_bytes(tiny_checkpoint.with_suffix(ext).read_bytes())
    monkeypatch.setenv("CELLVIEWER_HOME", str(tmp_path / "home"))
    assert "tiny" in NS.register_models()
    seg = segment.create_segmenter("tiny", device="cpu", diameter_px=20)
    assert isinstance(seg, NS.NetSegmenter)


@pytest.mark.skipif(not (REPO / "models" / "blood-cells.json").exists(), reason="no shipped blood-cells model")
def test_shipped_model_counts_the_sample():
    from cellviewer.core.datasets import read_rgb
    from cellviewer.core.segment import create_segmenter

    img = read_rgb(REPO / "resources" / "sample" / "BloodImage_00095.jpg")
    seg = create_segmenter("blood-cells", device="cpu")
    res = run_job(seg.segment(img))  # speed is measured by `cellviewer bench`, not here
    counts = {c: sum(m.cls == c for m in res.markers) for c in ("rbc", "wbc", "platelet")}
    assert 10 <= counts["rbc"] <= 40 and 1 <= counts["wbc"] <= 2 and counts["platelet"] <= 5


def test_a_checkpoint_is_usable_by_its_path(tiny_checkpoint):
    from cellviewer.core.errors import ModelLoadError
    from cellviewer.core.segment import create_segmenter

    for given in (tiny_checkpoint, f"{tiny_checkpoint}.json", f"{tiny_checkpoint}.safetensors"):
        seg = create_segmenter(str(given), device="cpu", diameter_px=24)
        assert seg.name == "tiny"
    img = synthetic_items(1, 24, seed=0, size=90)[0]["image"]
    assert set(run_job(seg.segment(img)).labels) == {"rbc", "wbc", "platelet"}
    with pytest.raises(ModelLoadError, match="Unknown model") as e:
        create_segmenter(str(tiny_checkpoint) + "-missing")
    assert "path of a trained model" in e.value.hint
    card = tiny_checkpoint.with_suffix(".json")
    import json

    morph = tiny_checkpoint.parent / "morph"
    morph.with_suffix(".json").write_text(json.dumps(dict(json.loads(card.read_text()), task="rbc-morphology")))
    morph.with_suffix(".safetensors").write_bytes(tiny_checkpoint.with_suffix(".safetensors").read_bytes())
    with pytest.raises(ModelLoadError, match="not a segmentation model"):
        create_segmenter(str(morph))


def test_tiny_red_cells_get_a_note_when_the_work_starts(tiny_checkpoint):
    img = synthetic_items(1, 24, seed=0, size=40)[0]["image"]
    seg = NS.NetSegmenter(tiny_checkpoint, device="cpu", diameter_px=4, tta="d4")  # working scale 16: 4× enlarged
    job, seen = seg.segment(img), []
    res = run_job(job, seen.append)
    noted = [(i, p.note) for i, p in enumerate(seen) if p.note]
    assert len(noted) == 1 and noted[0][0] < 3  # once, before the net runs
    note = noted[0][1]
    assert "enlarged 4.0×" in note and "160×160 px" in note and "16× as long" in note and "8× faster" in note
    assert res.params["notes"] == [note]
    seen.clear()
    plain = run_job(NS.NetSegmenter(tiny_checkpoint, device="cpu", diameter_px=8).segment(img), seen.append)
    assert not any(p.note for p in seen) and "notes" not in plain.params  # 2× enlarged: no note
    assert "faster" not in NS.enlarge_note(4, 4.0, (160, 160), 16, 1)  # nothing to say about views without TTA


def test_progress_never_goes_back_when_a_second_pass_runs(tiny_checkpoint, monkeypatch):
    img = synthetic_items(1, 24, seed=0, size=90)[0]["image"]
    seg = NS.NetSegmenter(tiny_checkpoint, device="cpu", tta="flips")
    monkeypatch.setattr(NS, "estimate_rbc_diameter", lambda im: (20.0, "estimated"))
    monkeypatch.setattr(NS, "measured_rbc_diameter", lambda rbc, blank=None: 2.0 * seg.working_scale * seg.measured_to_box)
    seen = []
    res = run_job(seg.segment(img), seen.append)
    assert res.params["passes"] == 2 and res.params["diameter_source"] == "estimated+refined"
    fr = [p.fraction for p in seen]
    assert fr == sorted(fr) and fr[-1] == 1.0, fr  # before: 0.70 → 0.14 when the second pass began
    assert any("predict again" in p.message for p in seen)
