"""The classical segmenter on a synthetic smear and on a few real BCCD images."""

import csv

import numpy as np
import pytest

from cellviewer.core import segment as segment_mod
from cellviewer.core.classical import ClassicalSegmenter, estimate_diameter, fill_small_holes
from cellviewer.core.document import Marker
from cellviewer.core.errors import Cancelled, OptionError, SegmentationError, SegmentationOptionError
from cellviewer.core.jobs import CancelToken, Progress, run_job
from cellviewer.core.segment import SegmentationResult

R = 20  # RBC radius (px) of the synthetic smear
BG, PINK = (236, 226, 214), (214, 150, 162)
NUCLEUS, CYTO, PLATELET = (92, 40, 150), (196, 186, 222), (120, 66, 166)


def _disc(img, cy, cx, r, colour):
    yy, xx = np.ogrid[: img.shape[0], : img.shape[1]]
    img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = colour


def make_smear(seed=0):
    """8 separate RBCs + 1 touching pair (10 RBCs), 1 WBC, 3 platelets; plus noise."""
    img = np.zeros((300, 400, 3), np.float64)
    img[:] = BG
    for cy, cx in [(30, 30), (30, 100), (30, 170), (100, 30), (170, 30), (250, 40), (250, 120), (260, 330)]:
        _disc(img, cy, cx, R, PINK)
    _disc(img, 170, 150, R, PINK)
    _disc(img, 170, 182, R, PINK)  # overlapping its neighbour
    _disc(img, 90, 290, 36, CYTO)  # WBC: cytoplasm ring ...
    _disc(img, 90, 290, 24, NUCLEUS)  # ... around a big nucleus
    for cy, cx in [(240, 220), (30, 250), (180, 360)]:
        _disc(img, cy, cx, 6, PLATELET)
    img += np.random.default_rng(seed).normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def smear():
    return make_smear()


def counts(res):
    out = {"rbc": 0, "wbc": 0, "platelet": 0}
    for m in res.markers:
        out[m.cls] += 1
    return out


@pytest.mark.parametrize("method,n_rbc", [("watershed", 10), ("distance_peaks", 10), ("hough", 10), ("components", 9)])
def test_synthetic_smear_counts(smear, method, n_rbc):
    res = run_job(ClassicalSegmenter(method).segment(smear))
    assert isinstance(res, SegmentationResult)
    assert counts(res) == {"rbc": n_rbc, "wbc": 1, "platelet": 3}
    for cls, lab in res.labels.items():
        assert lab.dtype == np.int32 and lab.shape == smear.shape[:2]
        assert int(lab.max()) == counts(res)[cls]  # one marker per cell
    assert res.model_name == f"classical-{method}" and res.model_version == "1"
    assert res.params["method"] == method
    assert res.params["diameter_source"].startswith("estimated")
    assert res.params["diameter_px"] == pytest.approx(2 * R, rel=0.15)


@pytest.mark.parametrize("margin", ["white", "black"])
def test_a_blank_margin_changes_neither_the_size_nor_the_cells(smear, margin):
    framed = np.full((smear.shape[0] + 120, smear.shape[1] + 120, 3), 255 if margin == "white" else 0, np.uint8)
    framed[60:-60, 60:-60] = smear  # a frame (or the dark ring outside a round field of view) around the smear
    res = run_job(ClassicalSegmenter("watershed").segment(framed))
    assert counts(res) == {"rbc": 10, "wbc": 1, "platelet": 3}  # before: the margin was read as one huge cell
    assert res.params["diameter_px"] == pytest.approx(2 * R, rel=0.15)


def test_markers_inside_cells_and_scores(smear):
    res = run_job(ClassicalSegmenter("watershed", diameter_px=2 * R).segment(smear))
    assert res.params["diameter_source"] == "given" and res.params["diameter_px"] == 2 * R
    seen = set()
    for m in res.markers:
        assert isinstance(m, Marker) and m.origin == "auto"
        assert res.labels[m.cls][int(round(m.y)), int(round(m.x))] == m.cell
        assert 0.0 <= m.score <= 1.0
        seen.add((m.cls, m.cell))
    assert len(seen) == len(res.markers)
    assert min(m.score for m in res.markers if m.cls == "rbc") > 0.6  # round cells of the expected size
    # the WBC has its nucleus and cytoplasm parts
    assert res.parts is not None and res.parts.dtype == np.uint8
    wbc = res.labels["wbc"] > 0
    assert (res.parts[90, 290] == 1) and (res.parts[90, 290 + 31] == 2)
    assert not res.parts[~wbc].any()
    # the WBC covers nucleus and ring, not its neighbours
    assert wbc[90, 290 - 30] and wbc[90 + 30, 290] and not wbc[30, 170]


def test_progress_and_cancel(smear):
    seg = ClassicalSegmenter("watershed", diameter_px=2 * R)
    job = seg.segment(smear)
    fractions = []
    with pytest.raises(StopIteration):
        while True:
            p = next(job)
            assert isinstance(p, Progress)
            fractions.append(p.fraction)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 4

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(seg.segment(smear, token))

    token = CancelToken()  # cancelled while running
    job = seg.segment(smear, token)
    next(job)
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(job)


def test_bad_parameters():
    # options the user gives are option errors (exit code 2, saying what to give instead) -- and still
    # SegmentationErrors for the callers that catch those
    with pytest.raises(SegmentationOptionError) as e:
        ClassicalSegmenter("nope")
    assert "watershed" in str(e.value) and e.value.exit_code == 2
    with pytest.raises(SegmentationOptionError) as e:
        ClassicalSegmenter(diameter_px=-3)
    assert e.value.exit_code == 2 and "between 4 and 2000 px" in str(e.value) and "--diameter-px" in str(e.value)
    assert isinstance(e.value, SegmentationError) and isinstance(e.value, OptionError)
    with pytest.raises(SegmentationOptionError):
        ClassicalSegmenter(diameter_px=5000)
    with pytest.raises(SegmentationOptionError):
        ClassicalSegmenter(um_per_px=0)
    with pytest.raises(SegmentationOptionError):
        ClassicalSegmenter(min_area_frac="x" and 5.0)
    seg = ClassicalSegmenter(diameter_px=40)
    for bad in (np.zeros((50, 50), np.uint8), np.zeros((4, 4, 3), np.uint8), np.zeros((50, 50, 3), np.float32)):
        with pytest.raises(SegmentationError):
            run_job(seg.segment(bad))
    with pytest.raises(SegmentationError, match="too small to segment: 4×1 px"):  # says what is wrong
        run_job(seg.segment(np.zeros((1, 4, 3), np.uint8)))


def test_blank_image_gives_no_cells():
    res = run_job(ClassicalSegmenter().segment(np.full((120, 160, 3), 230, np.uint8)))
    assert res.markers == [] and all(int(v.max()) == 0 for v in res.labels.values())
    assert res.params["diameter_source"] == "fallback"


def test_registry_factories():
    for name, method in [("classical", "watershed"), ("classical-components", "components"),
                         ("classical-hough", "hough"), ("classical-distance", "distance_peaks")]:
        seg = segment_mod._FACTORIES[name](diameter_px=50, device="cuda")
        assert isinstance(seg, ClassicalSegmenter) and seg.method == method and seg.name == name
        assert seg.diameter_px == 50
    seg = segment_mod._FACTORIES["classical"](um_per_px=0.1)
    assert seg.diameter_px == pytest.approx(75.0)


def test_helpers():
    m = np.zeros((60, 60), bool)
    m[10:30, 10:30] = True
    m[15:20, 15:20] = False  # a pallor-like hole
    m[40:60, 20:40] = True
    m[50:60, 28:32] = False  # a pocket open to the bottom border
    out = fill_small_holes(m, 50)
    assert out[17, 17] and out[55, 30]
    assert not fill_small_holes(m, 10)[17, 17]  # bigger than allowed
    img = np.zeros((200, 300), bool)
    yy, xx = np.ogrid[:200, :300]
    for cy, cx in [(50, 50), (50, 150), (140, 100), (140, 220)]:
        img |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 18**2
    d, how = estimate_diameter(img)
    assert how == "isolated" and d == pytest.approx(36, rel=0.05)


BCCD_PICK = ["BloodImage_00000.jpg", "BloodImage_00177.jpg", "BloodImage_00292.jpg"]


@pytest.mark.data
def test_real_bccd_images_plausible(data_dir):
    from PIL import Image

    folder = data_dir / "bccd"
    with open(folder / "images.csv", newline="") as f:
        rows = {r["image"]: r for r in csv.DictReader(f)}
    seg = ClassicalSegmenter("watershed")
    for name in BCCD_PICK:
        if name not in rows or not (folder / "images" / name).is_file():
            pytest.skip(f"{name} not in this data set")
        img = np.asarray(Image.open(folder / "images" / name).convert("RGB"))
        res = run_job(seg.segment(img))
        c = counts(res)
        assert 5 <= c["rbc"] <= 60, (name, c)
        assert c["wbc"] == int(rows[name]["n_wbc"]) == 1, (name, c)
        assert c["platelet"] <= 5, (name, c)
        assert 60 <= res.params["diameter_px"] <= 130  # BCCD red cells are ~70-110 px wide
        assert res.timings["total"] < 2.0


def test_the_classical_outlines_stay_out_of_a_field_stop(smear):
    """Cells cut by the edge of a dark field stop: their masks end at the field (no pixel in the black)."""
    from cellviewer.core.weaklabels import blank_margin

    stopped = smear.copy()
    h, w = stopped.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    stopped[(yy - h / 2) ** 2 + (xx - w / 2) ** 2 > (0.45 * min(h, w)) ** 2] = 0
    blank = blank_margin(stopped)
    assert blank is not None
    res = run_job(ClassicalSegmenter("watershed").segment(stopped))
    assert all(not lab[blank].any() for lab in res.labels.values())
    assert all(lab[int(m.y), int(m.x)] == m.cell for m in res.markers for lab in [res.labels[m.cls]])
