"""Two-stage WBC nucleus/cytoplasm segmentation: detector on the field, parts model on WBC crops."""

from pathlib import Path

import numpy as np
import pytest

from cellviewer.core import wbcparts as W
from cellviewer.core.document import Marker
from cellviewer.core.jobs import Progress, run_job
from cellviewer.core.segment import SegmentationResult

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "resources" / "sample" / "BloodImage_00095.jpg"


def _disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_crop_rule_and_context_window():
    assert W.is_wbc_crop((120, 120), 44.0)  # a wbc_seg d1 crop at its annotated scale (2.7 diameters)
    assert not W.is_wbc_crop((480, 640), 100.0)  # a BCCD field (6.4 diameters)
    wbc = np.zeros((480, 640), np.int32)
    wbc[_disc(wbc.shape, 240, 320, 140)] = 1  # 20 % of the field (BCCD: at most 0.2)
    assert not W.is_wbc_crop(wbc.shape, 100.0, wbc)
    wbc[_disc(wbc.shape, 240, 320, 170)] = 1  # 30 %: one dominant white cell
    assert W.is_wbc_crop(wbc.shape, 100.0, wbc)
    cell = _disc((400, 400), 200, 200, 20)
    y0, y1, x0, x1 = W.context_window(cell, 40.0)
    assert 120 <= y1 - y0 <= 122 and y1 - y0 == x1 - x0 and abs((y0 + y1) / 2 - 200.5) <= 1  # 3 red cells, centred
    big = _disc((400, 400), 200, 200, 60)
    y0, y1, x0, x1 = W.context_window(big, 40.0)
    assert y1 - y0 == x1 - x0 >= 1.4 * 121 - 1  # at least 1.4 × the cell's box
    y0, y1, x0, x1 = W.context_window(_disc((400, 400), 5, 390, 20), 40.0)
    assert y0 == 0 and x1 == 400 and y1 < 121 and x0 > 400 - 121  # clipped at the border


def test_cell_parts_keeps_the_overlapping_cell_inside_the_grown_detection():
    det = _disc((60, 60), 30, 30, 10)
    crop_wbc = np.zeros((60, 60), np.int32)
    crop_wbc[_disc((60, 60), 30, 30, 16)] = 2  # the cell, drawn larger than the detection
    crop_wbc[_disc((60, 60), 5, 5, 4)] = 1  # a neighbour
    parts = np.where(_disc((60, 60), 30, 30, 6), 1, 2).astype(np.uint8) * (crop_wbc > 0)
    cell, p = W.cell_parts(det, crop_wbc, parts, grow_px=3)
    assert abs(int(cell.sum()) - int(_disc((60, 60), 30, 30, 13).sum())) <= 0.1 * np.pi * 13 ** 2  # r 10 + 3
    assert not cell[5, 5] and cell[30, 30] and p[30, 30] == 1 and p[30, 41] == 2 and p[30, 46] == 0
    assert W.cell_parts(det, np.zeros_like(crop_wbc), parts, 3) is None  # the parts model saw no cell
    far = np.zeros_like(crop_wbc)
    far[_disc((60, 60), 30, 45, 6)] = 1  # covers < MIN_OVERLAP of the detection
    assert W.cell_parts(det, far, parts, 3) is None


class _Fake:
    """A segmenter returning a fixed result (records the images it was given)."""

    def __init__(self, make, classes=("background", "rbc", "wbc", "platelet"), diameter_px=None):
        self.make, self.classes, self.diameter_px = make, list(classes), diameter_px
        self.name, self.version, self.card, self.working_scale, self.device = "fake", "1", {}, 48.0, "cpu"
        self.seen = []

    def segment(self, image, cancel=None):
        self.seen.append(image.shape[:2])
        yield Progress(0.5, "half")
        return self.make(image)


def _field_result(img):
    h, w = img.shape[:2]
    rbc, wbc = np.zeros((h, w), np.int32), np.zeros((h, w), np.int32)
    for i, (cy, cx) in enumerate([(40, 40), (40, 200), (200, 60), (210, 260)], 1):
        rbc[_disc((h, w), cy, cx, 18)] = i
    wbc[_disc((h, w), 130, 150, 25)] = 1
    markers = [Marker(i, "rbc", cx, cy, cell=i) for i, (cy, cx) in enumerate([(40, 40), (40, 200), (200, 60),
                                                                             (210, 260)], 1)]
    markers.append(Marker(5, "wbc", 150, 130, cell=1, score=0.9))
    return SegmentationResult(labels={"rbc": rbc, "wbc": wbc, "platelet": np.zeros((h, w), np.int32)},
                              markers=markers, model_name="det", params={"diameter_px": 36.0})


def _parts_result(img):
    """The parts model on a crop: the central disc as a cell (nucleus inside), everything else background."""
    h, w = img.shape[:2]
    cell = _disc((h, w), h / 2, w / 2, 40)  # larger than the detected cell (r 25)
    parts = np.where(_disc((h, w), h / 2, w / 2, 12), 1, 2).astype(np.uint8) * cell
    return SegmentationResult(labels={"wbc": cell.astype(np.int32)}, markers=[], parts=parts, model_name="parts")


def test_fields_mode_writes_parts_into_the_detected_white_cell():
    img = np.full((260, 340, 3), 200, np.uint8)  # longer than CROP_SIDE_PX: a field
    parts_seg = _Fake(_parts_result, ("background", "nucleus", "cytoplasm"))
    seg = W.WbcPartsSegmenter(lambda **o: parts_seg, {})
    seg._detector = _Fake(_field_result)
    seen = []
    res = run_job(seg.segment(img), seen.append)
    det = _field_result(img)
    assert res.params["wbc_parts"]["mode"] == "fields" and res.params["wbc_parts"]["missing"] == 0
    assert len(parts_seg.seen) == 1 and all(107 <= s <= 110 for s in parts_seg.seen[0])  # 3 red cells across
    assert np.array_equal(res.labels["rbc"], det.labels["rbc"])  # red cells are the detector's
    wbc = res.labels["wbc"] > 0
    assert wbc.sum() <= 3 * (det.labels["wbc"] > 0).sum() and (res.parts[~wbc] == 0).all()
    assert (res.parts[wbc] > 0).all() and res.parts[130, 150] == 1 and res.parts[130, 172] == 2
    assert wbc[130, 179] and not wbc[130, 183]  # r 25 grown by GROW_RBC × 36 ≈ 5 px, not to the parts' r 40
    assert [m.cls for m in res.markers].count("rbc") == 4
    wm = [m for m in res.markers if m.cls == "wbc"]
    assert len(wm) == 1 and wm[0].score == 0.9 and res.labels["wbc"][int(wm[0].y), int(wm[0].x)] == wm[0].cell
    assert [m.id for m in res.markers] == list(range(1, 6))
    assert all(0 <= p.fraction <= 1 for p in seen) and seen[-1].fraction == 1.0


def test_crops_go_to_the_parts_model_directly():
    crop = np.full((120, 120, 3), 200, np.uint8)
    parts_seg = _Fake(_parts_result, ("background", "nucleus", "cytoplasm"), diameter_px=44.0)
    made = []
    seg = W.WbcPartsSegmenter(lambda **o: made.append(o) or parts_seg, {})
    seg._detector = _Fake(_field_result)
    res = run_job(seg.segment(crop))  # the diameter is given and the crop is 2.7 diameters: no detector
    assert res.params["wbc_parts"]["mode"] == "crop" and seg._detector.seen == []
    parts_seg.diameter_px = None  # not given, and the image is small: a crop at its usual scale, no detector
    res = run_job(seg.segment(crop))
    assert res.params["wbc_parts"]["mode"] == "crop" and seg._detector.seen == []
    assert res.params["diameter_source"] == "crop size" and "single-cell crop" in res.params["wbc_parts"]["why"]
    assert made[-1]["diameter_px"] == round(120 / W.CROP_RBC_ACROSS, 3) and res.model_name == "parts"
    assert "notes" not in res.params  # it found its white cell
    empty = _Fake(lambda im: SegmentationResult(labels={"wbc": np.zeros(im.shape[:2], np.int32)}, markers=[],
                                                model_name="parts"), ("background", "nucleus", "cytoplasm"))
    seen = []
    res = run_job(W.WbcPartsSegmenter(lambda **o: empty, {}).segment(crop), seen.append)
    assert any("give the red-cell diameter" in n for n in res.params["notes"])  # a small field, not a crop?
    assert any(p.note and "No white cell found" in p.note for p in seen)  # the CLI's note:, the GUI's warning
    big = np.full((W.CROP_SIDE_PX + 40, 200, 3), 200, np.uint8)  # larger (e.g. a PBC crop): the detector decides
    res = run_job(seg.segment(big))
    assert seg._detector.seen == [big.shape[:2]] and res.params.get("diameter_source") != "crop size"


@pytest.mark.skipif(not (REPO / "models" / "wbc-nucleus-cytoplasm.json").exists()
                    or not (REPO / "models" / "blood-cells.json").exists(), reason="no shipped models")
def test_shipped_model_on_the_sample_field_splits_only_the_white_cell():
    pytest.importorskip("torch")
    from cellviewer.core.datasets import read_rgb
    from cellviewer.core.segment import create_segmenter

    img = read_rgb(SAMPLE)
    det = run_job(create_segmenter("blood-cells", device="cpu").segment(img))
    res = run_job(create_segmenter("wbc-nucleus-cytoplasm", device="cpu").segment(img))
    assert res.params["wbc_parts"]["mode"] == "fields"
    for cls in ("rbc", "platelet"):
        assert res.labels[cls].max() == det.labels[cls].max()
        assert sum(m.cls == cls for m in res.markers) == sum(m.cls == cls for m in det.markers)
    det_wbc, wbc = det.labels["wbc"] > 0, res.labels["wbc"] > 0
    nuc, cyt = res.parts == 1, res.parts == 2
    assert res.labels["wbc"].max() == det.labels["wbc"].max() >= 1
    assert nuc.any() and cyt.any() and not (res.parts.astype(bool) & ~wbc).any()
    assert (nuc | cyt).sum() <= 3 * det_wbc.sum()  # on the whole field the direct model calls ~80 % cytoplasm
    assert (wbc & det_wbc).sum() >= 0.8 * det_wbc.sum()


def test_the_parts_run_records_its_own_checkpoint_and_solver():
    img = np.full((260, 340, 3), 200, np.uint8)
    parts_seg = _Fake(_parts_result, ("background", "nucleus", "cytoplasm"))
    parts_seg.checkpoint, parts_seg.solver = "/m/node-wbc.json", {"rtol": 0.1}

    class _Net:
        solver = {"method": "dopri5", "rtol": 1e-3, "atol": 1e-4}

    parts_seg.net = _Net()
    seg = W.WbcPartsSegmenter(lambda **o: parts_seg, {})
    det = _Fake(lambda im: SegmentationResult(**{**_field_result(im).__dict__,
                                                   "params": {"diameter_px": 36.0, "checkpoint": "blood-cells"}}))
    seg._detector = det
    res = run_job(seg.segment(img))
    assert res.params["checkpoint"] == "node-wbc.json"  # before: the detector's
    assert res.params["solver"] == {"method": "dopri5", "rtol": 0.1, "atol": 1e-4}  # before: None
    assert res.params["wbc_parts"]["detector_checkpoint"] == "blood-cells"


def test_a_detector_that_cannot_load_is_an_error_not_a_silent_crop(monkeypatch):
    from cellviewer.core import segment
    from cellviewer.core.errors import ModelLoadError

    parts_seg = _Fake(_parts_result, ("background", "nucleus", "cytoplasm"))
    seg = W.WbcPartsSegmenter(lambda **o: parts_seg, {}, detector="no-such-detector")
    assert seg.detector() is None  # not installed: every image is a crop (as documented)

    def broken(**_o):
        raise ModelLoadError("'blood-cells.safetensors' is not a readable safetensors file")

    monkeypatch.setitem(segment._FACTORIES, "broken-det", broken)
    seg = W.WbcPartsSegmenter(lambda **o: parts_seg, {}, detector="broken-det")
    with pytest.raises(ModelLoadError, match="not a readable"):  # before: taken for "not installed"
        seg.detector()
    monkeypatch.setitem(segment._FACTORIES, "parts-det", lambda **o: W.WbcPartsSegmenter(lambda **p: parts_seg, {}))
    seg = W.WbcPartsSegmenter(lambda **o: parts_seg, {}, detector="parts-det")
    with pytest.raises(ModelLoadError, match="nucleus/cytoplasm model"):  # before: RecursionError
        seg.detector()
