"""The accumulated box scores of ``cellviewer evaluate`` (:mod:`cellviewer.core.evalsummary`)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from cellviewer.core.evalsummary import add_boxes, box_acc, box_summary


def _image(pred: dict, true: dict):
    """A segmentation result with ``pred[c]`` markers per class and a sample with ``true[c]`` boxes, each marker
    in its own box (no labels: the edge split is not scored)."""
    markers = [SimpleNamespace(cls=c, x=20.0 * k + 5, y=5.0, cell=0) for c, n in pred.items() for k in range(n)]
    boxes = {c: np.array([[20.0 * k, 0, 20.0 * k + 10, 10] for k in range(true.get(c, 0))]).reshape(-1, 4)
             for c in ("rbc", "wbc", "platelet")}
    return SimpleNamespace(markers=markers, labels={}), SimpleNamespace(boxes=boxes)


def test_the_count_mae_counts_images_without_such_cells_and_the_accuracy_skips_them():
    acc = box_acc()
    for pred, true in (({"platelet": 2}, {}),  # no platelet, two counted: an error of 2
                       ({"platelet": 1}, {"platelet": 1}),  # right
                       ({}, {}),  # none and none: an error of 0
                       ({"platelet": 3}, {"platelet": 2})):  # one too many
        add_boxes(acc, *_image(pred, true))
    s = box_summary(acc, 4)["platelet"]
    assert s["mae"] == pytest.approx((2 + 0 + 0 + 1) / 4)  # every image; the images with platelets alone: 0.5
    assert s["count_accuracy"] == pytest.approx((1.0 + 0.5) / 2)  # only where true > 0
    assert s["images_with_cells"] == 2 and s["zero_true_images"] == 2 and s["zero_true_false_counts"] == 1
    assert math.isnan(box_summary(box_acc(), 0)["rbc"]["mae"])  # no image: undefined
