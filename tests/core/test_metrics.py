"""Metrics against small hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from cellviewer.core import metrics as m

# 3×4 binary case: TP = 2, FP = 1, FN = 2, TN = 7
PRED = np.array([[1, 1, 0, 0],
                 [1, 0, 0, 0],
                 [0, 0, 0, 0]])
TRUE = np.array([[1, 1, 1, 0],
                 [0, 0, 1, 0],
                 [0, 0, 0, 0]])


def test_binary_counts_and_derived_scores():
    c = m.binary_counts(PRED, TRUE)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 2, 7)
    assert m.pixel_accuracy(PRED, TRUE) == pytest.approx(9 / 12)
    assert m.misclassification_error(PRED, TRUE) == pytest.approx(3 / 12)
    assert m.iou(PRED, TRUE) == pytest.approx(2 / 5)
    assert m.dice(PRED, TRUE) == pytest.approx(4 / 7)
    assert m.f1_score(PRED, TRUE) == m.dice(PRED, TRUE)
    assert m.precision(PRED, TRUE) == pytest.approx(2 / 3)
    assert m.recall(PRED, TRUE) == pytest.approx(2 / 4)
    assert m.specificity(PRED, TRUE) == pytest.approx(7 / 8)
    assert m.fpr(PRED, TRUE) == pytest.approx(1 / 8)
    assert m.fnr(PRED, TRUE) == pytest.approx(2 / 4)
    scores = m.segmentation_scores(PRED.astype(bool), TRUE.astype(bool))
    assert scores["iou"] == pytest.approx(0.4) and scores["pixel_accuracy"] == pytest.approx(0.75)


def test_empty_conventions():
    z = np.zeros((3, 3), int)
    one = z.copy()
    one[1, 1] = 1
    assert m.iou(z, z) == 1.0 and m.dice(z, z) == 1.0
    assert m.precision(z, z) == 1.0 and m.recall(z, z) == 1.0
    assert m.precision(z, one) == 0.0  # nothing predicted, something to find
    assert m.recall(one, z) == 0.0  # nothing to find, something predicted
    assert m.iou(one, z) == 0.0


# class maps: 0 background, 1 nucleus, 2 cytoplasm
CP = np.array([[0, 1, 1],
               [2, 2, 0],
               [0, 0, 2]])
CT = np.array([[0, 1, 2],
               [2, 2, 0],
               [0, 1, 0]])


def test_class_maps():
    cm = m.confusion_matrix(CP, CT)
    # rows true, cols pred
    assert cm.tolist() == [[3, 0, 1], [1, 1, 0], [0, 1, 2]]
    assert m.pixel_accuracy(CP, CT) == pytest.approx(6 / 9)
    np.testing.assert_allclose(m.class_pixel_accuracy(CP, CT), [3 / 4, 1 / 2, 2 / 3])
    ious = m.per_class_iou(CP, CT)
    # class 0: inter 3, union 4 + 4 - 3 = 5; class 1: 1 / (2 + 2 - 1); class 2: 2 / (3 + 3 - 2)
    np.testing.assert_allclose(ious, [3 / 5, 1 / 3, 2 / 4])
    assert m.mean_iou(CP, CT) == pytest.approx((3 / 5 + 1 / 3 + 1 / 2) / 3)
    assert m.iou(CP, CT, positive=2) == pytest.approx(1 / 2)
    assert m.dice(CP, CT, positive=1) == pytest.approx(2 * 1 / (2 + 2))
    # a class absent from both maps does not drag the mean down
    ious4 = m.per_class_iou(CP, CT, n_classes=4)
    assert np.isnan(ious4[3])
    assert m.mean_iou(CP, CT, n_classes=4) == pytest.approx(m.mean_iou(CP, CT))
    assert np.isnan(m.class_pixel_accuracy(CP, CT, n_classes=4)[3])
    with pytest.raises(ValueError):
        m.confusion_matrix(CP, CT, n_classes=2)
    with pytest.raises(ValueError):
        m.pixel_accuracy(CP, CT[:2])


def _square(n, y0, x0, s):
    a = np.zeros((n, n), bool)
    a[y0:y0 + s, x0:x0 + s] = True
    return a


def test_boundary_f1():
    t = _square(20, 5, 5, 8)
    assert m.boundary_f1(t, t, tolerance=0) == 1.0
    shifted = _square(20, 5, 6, 8)  # one pixel to the right
    assert m.boundary_f1(shifted, t, tolerance=1) == 1.0
    # tolerance 0: shared boundary pixels are the top and bottom rows minus the ends:
    # predicted boundary has 28 px; on the true boundary lie rows 5 and 12 at x 6..12 = 14 px
    assert m.boundary_f1(shifted, t, tolerance=0) == pytest.approx(14 / 28)
    far = _square(20, 5, 5, 3)
    assert m.boundary_f1(far, t, tolerance=1) < 0.7
    z = np.zeros((20, 20), bool)
    assert m.boundary_f1(z, z) == 1.0 and m.boundary_f1(z, t) == 0.0
    # the image edge is not a boundary: a full mask has none
    full = np.ones((20, 20), bool)
    assert m.boundary_f1(full, full) == 1.0


def test_counting_accuracy():
    assert m.counting_accuracy(90, 100) == pytest.approx(0.9)
    assert m.counting_accuracy(110, 100) == pytest.approx(0.9)
    assert m.counting_accuracy(250, 100) == pytest.approx(-0.5)
    assert m.counting_accuracy(0, 0) == 1.0 and m.counting_accuracy(3, 0) == 0.0
    with pytest.raises(ValueError):
        m.counting_accuracy(-1, 5)


def test_detection_f1_one_to_one_greedy():
    boxes = [(0, 0, 10, 10), (20, 0, 30, 10), (40, 40, 50, 50)]
    points = [
        (5, 5),    # centre of box 0
        (6, 6),    # also in box 0, farther -> false positive (box 0 already taken)
        (21, 1),   # in box 1
        (100, 100),  # in nothing -> false positive
    ]
    s = m.detection_f1(points, boxes)
    assert (s.tp, s.fp, s.fn) == (2, 2, 1)
    assert s.matches == ((0, 0), (2, 1))
    assert s.precision == pytest.approx(2 / 4)
    assert s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    assert s.as_dict()["tp"] == 2


def test_detection_greedy_uses_distance_to_box_centre():
    # overlapping boxes: the point nearer box B's centre goes to B, freeing A for the other
    boxes = [(0, 0, 10, 10), (5, 0, 15, 10)]  # centres (5, 5) and (10, 5)
    points = [(9, 5), (6, 5)]
    s = m.detection_f1(points, boxes)
    assert s.tp == 2 and s.matches == ((0, 1), (1, 0))
    empty = m.detection_f1([], [])
    assert (empty.tp, empty.fp, empty.fn, empty.f1) == (0, 0, 0, 1.0)
    none_found = m.detection_f1([], boxes)
    assert none_found.fn == 2 and none_found.recall == 0.0 and none_found.f1 == 0.0


def test_edge_errors_split_false_positives_and_negatives_by_the_image_edge():
    # a 100 x 200 (H x W) image; boxes: one matched, one cut by the left edge, one 2 px from the
    # bottom edge (counts as cut), one in the middle; points: one matched, two unmatched
    boxes = [(50, 40, 60, 50), (0, 10, 8, 20), (100, 87, 110, 97), (150, 40, 160, 50)]
    points = [(55, 45), (195, 50), (120, 20)]
    s = m.detection_f1(points, boxes)
    assert (s.tp, s.fp, s.fn) == (1, 2, 3)
    # the cell of point 1 touches the edge, that of point 2 does not; the matched point 0 never counts
    assert m.edge_errors(s, [True, True, False], boxes, (100, 200)) == (1, 2)
    assert m.edge_errors(s, [True, False, False], boxes, (100, 200), margin=0) == (0, 1)
    assert m.edge_errors(m.detection_f1([], []), [], [], (10, 10)) == (0, 0)


def test_bootstrap_ci_hand_cases():
    # two items: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4 -> 95 % CI (0, 1)
    assert m.bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    # every resample of a constant is the constant; NaNs are dropped
    assert m.bootstrap_ci([0.7, 0.7, float("nan"), 0.7]) == pytest.approx((0.7, 0.7))
    lo, hi = m.bootstrap_ci([])
    assert np.isnan(lo) and np.isnan(hi)
    with pytest.raises(ValueError):
        m.bootstrap_ci([1.0], level=1.0)


def test_bootstrap_ci_brackets_the_mean_narrows_with_n_and_is_reproducible():
    rng = np.random.default_rng(1)
    small, big = rng.random(10), rng.random(1000)
    for v in (small, big):
        lo, hi = m.bootstrap_ci(v)
        assert lo < v.mean() < hi and v.min() <= lo and hi <= v.max()
    assert np.diff(m.bootstrap_ci(big)) < np.diff(m.bootstrap_ci(small)) / 5  # ~ 1/sqrt(n): 10x narrower
    # for the mean of uniforms, ±1.96 standard errors (sd = 1/sqrt(12))
    lo, hi = m.bootstrap_ci(big)
    assert (hi - lo) / 2 == pytest.approx(1.96 / np.sqrt(12 * 1000), rel=0.15)
    assert m.bootstrap_ci(small) == m.bootstrap_ci(small)
    assert m.bootstrap_ci([0.0, 1.0, 1.0], level=0.5) != m.bootstrap_ci([0.0, 1.0, 1.0], level=0.99)
