"""The papers' segmentation, counting and detection metrics, on numpy arrays.

Inputs are predictions and truths of the same shape: binary masks (bool or 0/1)
or integer class maps. Binary metrics take ``positive``: ``None`` treats every
non-zero pixel as positive, an integer selects that class of a class map.

Empty-denominator convention (documented once, used everywhere): when both the
prediction and the truth have nothing of the measured kind the score is 1.0
(nothing to find, nothing found); otherwise a 0/0 score is 0.0.

Only numpy (and ``scipy.ndimage`` for the boundary F1's distance transform).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


def _pair(pred, true) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(pred), np.asarray(true)
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} differ in shape")
    return p, t


def _binary(pred, true, positive: int | None) -> tuple[np.ndarray, np.ndarray]:
    p, t = _pair(pred, true)
    if positive is None:
        return p != 0, t != 0
    return p == positive, t == positive


def _ratio(num: float, den: float, both_empty: bool) -> float:
    if den == 0:
        return 1.0 if both_empty else 0.0
    return float(num) / float(den)


@dataclass(frozen=True)
class Counts:
    """Pixel confusion counts of a binary comparison."""

    tp: int
    fp: int
    fn: int
    tn: int


def binary_counts(pred, true, positive: int | None = None) -> Counts:
    """TP / FP / FN / TN pixel counts."""
    p, t = _binary(pred, true, positive)
    return Counts(tp=int(np.sum(p & t)), fp=int(np.sum(p & ~t)),
                  fn=int(np.sum(~p & t)), tn=int(np.sum(~p & ~t)))


def confusion_matrix(pred, true, n_classes: int | None = None) -> np.ndarray:
    """``M[i, j]`` = number of pixels of true class i predicted as class j."""
    p, t = _pair(pred, true)
    p, t = p.astype(np.int64).ravel(), t.astype(np.int64).ravel()
    if p.size and (p.min() < 0 or t.min() < 0):
        raise ValueError("class maps must be non-negative integers")
    top = int(max(p.max(initial=0), t.max(initial=0)))
    n = n_classes or top + 1
    if top >= n:
        raise ValueError(f"class {top} found but n_classes={n}")
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n)


def pixel_accuracy(pred, true) -> float:
    """Fraction of pixels whose predicted label equals the true label."""
    p, t = _pair(pred, true)
    return _ratio(np.sum(p == t), p.size, True)


def misclassification_error(pred, true) -> float:
    """``1 − pixel accuracy``."""
    return 1.0 - pixel_accuracy(pred, true)


def class_pixel_accuracy(pred, true, n_classes: int | None = None) -> np.ndarray:
    """Per class: correctly labelled pixels / true pixels of that class (NaN if absent)."""
    m = confusion_matrix(pred, true, n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m.sum(1) > 0, np.diag(m) / np.maximum(m.sum(1), 1), np.nan)


def iou(pred, true, positive: int | None = None) -> float:
    """Intersection over union (Jaccard) of the positive pixels."""
    c = binary_counts(pred, true, positive)
    return _ratio(c.tp, c.tp + c.fp + c.fn, c.tp + c.fp + c.fn == 0)


def per_class_iou(pred, true, n_classes: int | None = None) -> np.ndarray:
    """IoU of every class of a class map (NaN for a class in neither map)."""
    m = confusion_matrix(pred, true, n_classes)
    inter = np.diag(m).astype(float)
    union = m.sum(0) + m.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def mean_iou(pred, true, n_classes: int | None = None) -> float:
    """Mean IoU over the classes present in the prediction or the truth."""
    values = per_class_iou(pred, true, n_classes)
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else 1.0


def dice(pred, true, positive: int | None = None) -> float:
    """Dice coefficient = pixel F1 ``2TP / (2TP + FP + FN)``."""
    c = binary_counts(pred, true, positive)
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, c.tp + c.fp + c.fn == 0)


f1_score = dice


def precision(pred, true, positive: int | None = None) -> float:
    """``TP / (TP + FP)``."""
    c = binary_counts(pred, true, positive)
    return _ratio(c.tp, c.tp + c.fp, c.tp + c.fn == 0)


def recall(pred, true, positive: int | None = None) -> float:
    """Sensitivity ``TP / (TP + FN)``."""
    c = binary_counts(pred, true, positive)
    return _ratio(c.tp, c.tp + c.fn, c.fp == 0)


def specificity(pred, true, positive: int | None = None) -> float:
    """``TN / (TN + FP)``."""
    c = binary_counts(pred, true, positive)
    return _ratio(c.tn, c.tn + c.fp, True)


def fpr(pred, true, positive: int | None = None) -> float:
    """False-positive rate ``FP / (FP + TN)`` = 1 − specificity."""
    return 1.0 - specificity(pred, true, positive)


def fnr(pred, true, positive: int | None = None) -> float:
    """False-negative rate ``FN / (FN + TP)`` = 1 − recall."""
    return 1.0 - recall(pred, true, positive)


def _boundary(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    # border_value=1: the image edge itself is not a cell boundary
    eroded = ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), border_value=1)
    return mask & ~eroded


def boundary_f1(pred, true, tolerance: float = 2.0, positive: int | None = None) -> float:
    """Boundary F1 (BF score): boundary pixels matched within ``tolerance`` px.

    Boundaries are the mask pixels with a background 8-neighbour. Precision is
    the share of predicted boundary pixels within ``tolerance`` (Euclidean) of a
    true boundary pixel, recall the reverse; the score is their harmonic mean.
    """
    from scipy import ndimage

    p, t = _binary(pred, true, positive)
    if p.ndim != 2:
        raise ValueError("boundary_f1 needs 2-D masks")
    bp, bt = _boundary(p), _boundary(t)
    if not bp.any() and not bt.any():
        return 1.0
    if not bp.any() or not bt.any():
        return 0.0
    dist_to_true = ndimage.distance_transform_edt(~bt)
    dist_to_pred = ndimage.distance_transform_edt(~bp)
    prec = float(np.mean(dist_to_true[bp] <= tolerance))
    rec = float(np.mean(dist_to_pred[bt] <= tolerance))
    return 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)


def counting_accuracy(pred_count: float, true_count: float) -> float:
    """``1 − |pred − true| / true`` (can go below 0 for gross over-counts).

    With ``true == 0`` it is 1.0 when nothing was counted and 0.0 otherwise.
    """
    if true_count < 0 or pred_count < 0:
        raise ValueError("counts must be non-negative")
    if true_count == 0:
        return 1.0 if pred_count == 0 else 0.0
    return 1.0 - abs(pred_count - true_count) / true_count


def bootstrap_ci(values: Sequence[float] | np.ndarray, level: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``values``.

    The items (e.g. per-image scores) are resampled with replacement ``n_resamples``
    times; the interval is the ``(1 − level) / 2`` and ``(1 + level) / 2`` quantiles of
    the resampled means. NaNs are dropped; no values gives ``(nan, nan)``. Fixed
    ``seed``: the same values always give the same interval (cards can be re-checked).
    Use it to tell whether a score differs from a reference by more than the test set's
    sampling noise: a reference inside the interval is not shown to be different.
    """
    if not 0.0 < level < 1.0:
        raise ValueError("level must be between 0 and 1")
    v = np.asarray(values, dtype=float).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_resamples, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(lo), float(hi)


@dataclass(frozen=True)
class DetectionScore:
    """Result of :func:`detection_f1`; ``matches`` pairs (point index, box index)."""

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    matches: tuple[tuple[int, int], ...] = ()

    def as_dict(self) -> dict:
        """Plain dict (e.g. for JSON/CSV)."""
        return asdict(self)


def detection_f1(points: Sequence[Sequence[float]] | np.ndarray,
                 boxes: Sequence[Sequence[float]] | np.ndarray) -> DetectionScore:
    """Score predicted cell centroids against true bounding boxes.

    ``points``: K×2 ``(x, y)``; ``boxes``: M×4 ``(x0, y0, x1, y1)``, inclusive.
    A point can match a box it lies inside; matching is one-to-one and greedy,
    closest (point, box-centre) pairs first. Unmatched points are false
    positives, unmatched boxes false negatives.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    bxs = np.asarray(boxes, dtype=float).reshape(-1, 4)
    pairs: list[tuple[float, int, int]] = []
    if len(pts) and len(bxs):
        x, y = pts[:, 0:1], pts[:, 1:2]
        inside = ((x >= bxs[:, 0]) & (x <= bxs[:, 2]) & (y >= bxs[:, 1]) & (y <= bxs[:, 3]))
        cx = (bxs[:, 0] + bxs[:, 2]) / 2
        cy = (bxs[:, 1] + bxs[:, 3]) / 2
        dist = np.hypot(x - cx, y - cy)
        for i, j in zip(*np.nonzero(inside)):
            pairs.append((float(dist[i, j]), int(i), int(j)))
    pairs.sort()
    used_p: set[int] = set()
    used_b: set[int] = set()
    matches: list[tuple[int, int]] = []
    for _, i, j in pairs:
        if i not in used_p and j not in used_b:
            used_p.add(i)
            used_b.add(j)
            matches.append((i, j))
    tp = len(matches)
    fp = len(pts) - tp
    fn = len(bxs) - tp
    empty = len(pts) == 0 and len(bxs) == 0
    prec = _ratio(tp, tp + fp, empty)
    rec = _ratio(tp, tp + fn, empty)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn, empty)
    return DetectionScore(tp=tp, fp=fp, fn=fn, precision=prec, recall=rec, f1=f1,
                          matches=tuple(sorted(matches)))


def edge_errors(score: DetectionScore, point_on_edge: Sequence[bool] | np.ndarray,
                boxes: Sequence[Sequence[float]] | np.ndarray, shape: tuple[int, int],
                margin: float = 2.0) -> tuple[int, int]:
    """How many of ``score``'s false positives and false negatives lie at the image edge.

    A false positive is at the edge when ``point_on_edge[i]`` (its predicted cell touches
    the image edge); a false negative when its box comes within ``margin`` px of the edge
    of an image of ``shape`` (H, W). Sources differ in which cut cells they box, so this
    splits the detection errors into border-convention ones and the rest.
    """
    on_edge = np.asarray(point_on_edge, bool).reshape(-1)
    bxs = np.asarray(boxes, dtype=float).reshape(-1, 4)
    used_p = {i for i, _ in score.matches}
    used_b = {j for _, j in score.matches}
    fp = sum(1 for i in range(len(on_edge)) if i not in used_p and on_edge[i])
    h, w = shape
    near = ((bxs[:, 0] <= margin) | (bxs[:, 1] <= margin) | (bxs[:, 2] >= w - 1 - margin)
            | (bxs[:, 3] >= h - 1 - margin))
    fn = sum(1 for j in range(len(bxs)) if j not in used_b and near[j])
    return fp, fn


def segmentation_scores(pred, true, positive: int | None = None) -> dict[str, float]:
    """All binary pixel metrics at once (for reports and the evaluate command)."""
    return {
        "pixel_accuracy": pixel_accuracy(*_binary(pred, true, positive)),
        "iou": iou(pred, true, positive),
        "dice": dice(pred, true, positive),
        "precision": precision(pred, true, positive),
        "recall": recall(pred, true, positive),
        "specificity": specificity(pred, true, positive),
        "fpr": fpr(pred, true, positive),
        "fnr": fnr(pred, true, positive),
    }
