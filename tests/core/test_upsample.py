"""Smooth enlargement of working-scale label maps (cellviewer.core.upsample)."""

from __future__ import annotations

import cv2
import numpy as np

from cellviewer.core.upsample import class_margin, resize_labels, upsample_labels


def _disc_probs(shape, centres, r):
    """3-class probabilities (background, cell, other) of soft discs, and their labels (argmax)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    d = np.stack([np.hypot(yy - cy, xx - cx) for cy, cx in centres])
    cell = (1.0 / (1.0 + np.exp(d - r))).max(0)  # 0.5 on the circles
    probs = np.stack([1.0 - cell, cell, np.zeros_like(cell)])
    lab = np.where(probs.argmax(0) == 1, d.argmin(0) + 1, 0).astype(np.int32)  # split at the bisector
    return probs, lab


def test_outline_follows_the_enlarged_probability_not_the_blocks():
    probs, lab = _disc_probs((40, 40), [(20.3, 19.6)], 9.3)
    margin = class_margin(probs, 1)
    k = 4
    big = upsample_labels(lab, margin, (160, 160))
    nearest = cv2.resize(lab, (160, 160), interpolation=cv2.INTER_NEAREST)
    # the true disc at full size
    yy, xx = np.mgrid[:160, :160]
    truth = np.hypot((yy + 0.5) / k - 0.5 - 20.3, (xx + 0.5) / k - 0.5 - 19.6) < 9.3
    assert (big == 1).sum() > 0 and set(np.unique(big)) == {0, 1}
    assert ((big > 0) != truth).sum() < 0.5 * ((nearest > 0) != truth).sum()
    # and no pixel is off by more than one (a staircase step is k pixels)
    dist_out = cv2.distanceTransform((~truth).astype(np.uint8), cv2.DIST_L2, 3)
    dist_in = cv2.distanceTransform(truth.astype(np.uint8), cv2.DIST_L2, 3)
    off = np.maximum(dist_out * ((big > 0) & ~truth), dist_in * ((big == 0) & truth))
    assert off.max() <= 1.5 < np.maximum(dist_out * ((nearest > 0) & ~truth), dist_in * ((nearest == 0) & truth)).max()


def test_touching_cells_stay_separate_and_keep_their_ids():
    probs, lab = _disc_probs((40, 60), [(20, 20), (20, 36)], 9.0)
    assert set(np.unique(lab)) == {0, 1, 2}
    big = upsample_labels(lab, class_margin(probs, 1), (100, 150))
    nearest = cv2.resize(lab, (150, 100), interpolation=cv2.INTER_NEAREST_EXACT)
    both = (big > 0) & (nearest > 0)
    assert (big[both] != nearest[both]).mean() < 0.01  # only steps where the two cells meet
    for i in (1, 2):
        n, _ = cv2.connectedComponents((big == i).astype(np.uint8))
        assert n == 2  # one piece each (background + the cell)


def test_steps_where_two_cells_meet_are_rounded_off():
    yy, xx = np.mgrid[:40, :40]
    lab = np.where(yy + 0.4 * xx < 26, 1, 2).astype(np.int32)  # two cells meeting along a slanted line
    lab[:, :2] = 0  # some background, far from the line's middle
    big = upsample_labels(lab, np.where(lab > 0, 1.0, -1.0).astype(np.float32), (160, 160))
    nearest = cv2.resize(lab, (160, 160), interpolation=cv2.INTER_NEAREST_EXACT)

    def largest_step(m):  # along the meeting line: a staircase jumps by a whole small pixel (4)
        first = [int(np.flatnonzero(m[:, x] == 2)[0]) for x in range(40, 160)]
        return int(np.abs(np.diff(first)).max())

    assert set(np.unique(big)) == {0, 1, 2}
    assert largest_step(nearest) == 4 and largest_step(big) <= 2


def test_same_size_shrinking_and_no_margin_are_plain_nearest():
    probs, lab = _disc_probs((30, 30), [(15, 15)], 7.0)
    m = class_margin(probs, 1)
    assert upsample_labels(lab, m, (30, 30)) is not None and (upsample_labels(lab, m, (30, 30)) == lab).all()
    assert (upsample_labels(lab, None, (60, 60)) == cv2.resize(lab, (60, 60), interpolation=cv2.INTER_NEAREST_EXACT)).all()
    small, sc = resize_labels(lab, np.array([0.7]), (15, 15), m)
    assert small.shape == (15, 15) and sc.tolist() == [0.7]


def test_a_cell_that_vanishes_is_dropped_with_its_score():
    lab = np.zeros((20, 20), np.int32)
    lab[5:9, 5:9] = 1
    lab[12, 12] = 2  # a one-pixel cell whose margin is negative everywhere: it vanishes
    margin = np.where(lab == 1, 1.0, -1.0).astype(np.float32)
    big, sc = resize_labels(lab, np.array([0.9, 0.4]), (60, 60), margin)
    assert sc.tolist() == [0.9]
    assert set(np.unique(big)) == {0, 1}
