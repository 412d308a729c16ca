"""Count accuracy / detection F1 on a tiny fake data set in the shared layout."""

import csv

import cv2
import numpy as np
import pytest

from cellviewer.core.classical import ClassicalSegmenter
from cellviewer.core.errors import CellviewerError
from cellviewer.core.evalcount import evaluate_counts, format_table, load_dataset, match_markers
from tests.core.test_classical import R, make_smear

RBC_CENTRES = [(30, 30), (30, 100), (30, 170), (100, 30), (170, 30), (250, 40), (250, 120), (260, 330),
               (170, 150), (170, 182)]  # (y, x) as drawn by make_smear
PLATELETS = [(240, 220), (30, 250), (180, 360)]


def _box(cy, cx, r):
    return [cx - r - 2, cy - r - 2, cx + r + 2, cy + r + 2]


@pytest.fixture
def fake_root(tmp_path):
    folder = tmp_path / "bccd"
    (folder / "images").mkdir(parents=True)
    img = make_smear()
    cv2.imwrite(str(folder / "images" / "a.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "images" / "b.png"), np.full((100, 120, 3), 230, np.uint8))  # empty smear
    with open(folder / "images.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "width", "height", "has_txl"])
        w.writerow(["a.png", 400, 300, 1])
        w.writerow(["b.png", 120, 100, 1])
        w.writerow(["c.png", 120, 100, 0])  # not part of the TXL subset
    with open(folder / "annotations_txl.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "cls", "xmin", "ymin", "xmax", "ymax"])
        for cy, cx in RBC_CENTRES[:9]:  # one RBC box missing: 9 true, 10 predicted
            w.writerow(["a.png", "RBC", *_box(cy, cx, R)])
        w.writerow(["a.png", "WBC", *_box(90, 290, 36)])
        for cy, cx in PLATELETS:
            w.writerow(["a.png", "Platelets", *_box(cy, cx, 6)])
    return tmp_path


def test_load_dataset_filters_txl(fake_root):
    recs = load_dataset(fake_root, "bccd")
    assert [r["image"] for r in recs] == ["a.png", "b.png"]
    assert recs[0]["boxes"]["rbc"].shape == (9, 4) and recs[1]["boxes"]["wbc"].shape == (0, 4)
    with pytest.raises(CellviewerError):
        load_dataset(fake_root, "nope")
    with pytest.raises(CellviewerError):
        load_dataset(fake_root / "missing", "bccd")


def test_evaluate_counts_on_fake_set(fake_root):
    res = evaluate_counts(ClassicalSegmenter("watershed", diameter_px=2 * R), fake_root, "bccd")
    assert res["n_images"] == 2
    rbc, wbc, plt = (res["classes"][c] for c in ("rbc", "wbc", "platelet"))
    assert rbc["n_images"] == 1 and rbc["zero_true_images"] == 1 and rbc["zero_true_pred_pos"] == 0
    assert rbc["count_accuracy"] == pytest.approx(1 - 1 / 9)
    # the MAE is over both images: |10 - 9| on a.png and |0 - 0| on the empty b.png, not over a.png alone
    assert rbc["mean_abs_error"] == pytest.approx(0.5)
    assert rbc["recall"] == 1.0 and rbc["precision"] == pytest.approx(0.9)
    assert wbc["count_accuracy"] == 1.0 and wbc["f1"] == 1.0
    assert plt["count_accuracy"] == 1.0 and plt["f1"] == 1.0
    table = format_table({"classical": res})
    assert "classical" in table and "platelet" in table


def test_match_markers_is_one_to_one():
    boxes = np.array([[0, 0, 10, 10], [8, 0, 20, 10]], float)
    # two markers inside the overlap of both boxes: both can be matched, one each
    assert match_markers(np.array([9.0, 9.5]), np.array([5.0, 5.0]), boxes) == 2
    # three markers, two boxes: at most two matches
    assert match_markers(np.array([5.0, 9.0, 15.0]), np.array([5.0, 5.0, 5.0]), boxes) == 2
    assert match_markers(np.array([50.0]), np.array([50.0]), boxes) == 0
    assert match_markers(np.array([]), np.array([]), boxes) == 0
