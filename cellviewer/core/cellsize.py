"""The red-cell size of an image: estimated from its stained blobs, or measured on predicted cells.

Used by :class:`cellviewer.core.netsegment.NetSegmenter` to choose the working scale
(see its step 1) and to decide on a second pass.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi

from cellviewer.core.weaklabels import blank_margin, stained_foreground

#: blob size estimate × this ≈ the median RBC box size (measured on the train split)
ESTIMATE_TO_BOX = 1.19
FALLBACK_DIAMETER_PX = 60.0


#: longest side of the copy (or of each window) the blobs are measured on
ESTIMATE_SIDE_PX = 400
#: images up to this long side are measured on one whole copy (every image of the shared data)
SINGLE_COPY_MAX_SIDE_PX = 800
#: larger ones are measured in windows about this many red cells wide, each shrunk to 400 px
WINDOW_CELLS = 12.0
#: at most this many window sizes are tried
MAX_LEVELS = 5


def _blob_peaks(small: np.ndarray) -> np.ndarray:
    """Distance-transform peak heights (px of ``small``) of the stained blobs of one copy."""
    from skimage.feature import peak_local_max

    blank = blank_margin(small)  # a white frame or a dark field stop is not a huge cell
    fg = stained_foreground(small, None if blank is None else ~blank)
    if fg is None:
        return np.zeros(0)
    fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    dist = ndi.distance_transform_edt(fg)
    pk = peak_local_max(dist, min_distance=3, threshold_abs=2, exclude_border=False)
    return dist[pk[:, 0], pk[:, 1]] if len(pk) else np.zeros(0)


def _diameter(v: np.ndarray, s: float) -> float | None:
    """Diameter (input px) from the peak heights of a copy at scale ``s``; None if < 3 peaks."""
    if len(v) < 3:
        return None
    v = v[v >= 0.5 * np.percentile(v, 90)]
    return float(2.0 * np.median(v) / s * ESTIMATE_TO_BOX)


def _windows(h: int, w: int, side: int) -> list[tuple[int, int]]:
    """Top-left corners of up to 5 ``side``-px windows: the four quadrant centres and the centre."""
    if h <= side and w <= side:
        return [(0, 0)]
    ys = sorted({min(max(0, int(round(f * h - side / 2))), max(0, h - side)) for f in (0.25, 0.5, 0.75)})
    xs = sorted({min(max(0, int(round(f * w - side / 2))), max(0, w - side)) for f in (0.25, 0.5, 0.75)})
    corners = [(ys[0], xs[0]), (ys[0], xs[-1]), (ys[-1], xs[0]), (ys[-1], xs[-1]), (ys[len(ys) // 2], xs[len(xs) // 2])]
    return list(dict.fromkeys(corners))


def _measure(image: np.ndarray, side: int) -> float | None:
    """Diameter from up to five ``side``-px windows, each shrunk to 400 px (one copy when it is the whole image)."""
    h, w = image.shape[:2]
    side = min(side, max(h, w))
    s = min(1.0, ESTIMATE_SIDE_PX / side)
    peaks = []
    for y, x in _windows(h, w, side):
        win = image[y:y + side, x:x + side]
        peaks.append(_blob_peaks(cv2.resize(win, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else win))
    return _diameter(np.concatenate(peaks), s)


def estimate_rbc_diameter(image: np.ndarray) -> tuple[float, str]:
    """Expected RBC diameter (px) of an image from its stained blobs, and how it was found.

    On a copy at most 400 px wide: foreground = ``255 − green`` above its Otsu threshold
    (values capped at the 85th percentile, so dark nuclei do not pull it up), small
    holes (pale cell centres) filled; the diameter is twice the median height of the
    distance-transform peaks that reach half of the 90th-percentile peak (one peak per
    cell, specks and debris ignored), times :data:`ESTIMATE_TO_BOX` (calibrated on the
    train split to the median RBC box size; about ±10 % per image).

    Large fields of view (long side over :data:`SINGLE_COPY_MAX_SIDE_PX`): the measure holds
    when a 400-px copy spans about a dozen red cells. One copy of a whole field of 50 cells
    shrinks a cell to 8 px, the gaps between touching cells vanish and clumps measure as
    one cell (a mosaic of 8 × 8 copies of the bundled sample: 1.8 × its own estimate), while
    a 400-px window at full resolution holds 4 cells, most of them cut (0.75 ×). So the
    whole image is measured first, then windows :data:`WINDOW_CELLS` times the last
    estimate wide (five of them — quadrant centres and centre — their peaks pooled, each
    shrunk to 400 px), until the window size settles (within 25 %) or after
    :data:`MAX_LEVELS` sizes. On mosaics of BCCD fields (3 × 3 to 8 × 8, shrunk or enlarged
    2×) this lands within 10 % of the fields' own estimates (``tests/core/test_cellsize.py``).
    """
    h, w = image.shape[:2]
    side = max(h, w)
    d = _measure(image, side)  # one copy of the whole image
    if side <= SINGLE_COPY_MAX_SIDE_PX:
        return (FALLBACK_DIAMETER_PX, "fallback") if d is None else (d, "estimated")
    for _ in range(MAX_LEVELS - 1):
        nxt = int(min(max(h, w), max(ESTIMATE_SIDE_PX, (WINDOW_CELLS * d) if d is not None else side / 2)))
        if d is not None and 0.8 <= nxt / side <= 1.25:
            break
        side = nxt
        d = _measure(image, side)
    return (FALLBACK_DIAMETER_PX, "fallback") if d is None else (d, "estimated-windows")


def measured_rbc_diameter(rbc: np.ndarray, blank: np.ndarray | None = None) -> float | None:
    """Median equivalent diameter of the RBC instances not touching the border (None if < 5); with ``blank``
    (:func:`cellviewer.core.weaklabels.blank_margin`, same shape), not within 2 px of it either (cells cut by
    a field stop)."""
    if rbc.max() == 0:
        return None
    area = np.bincount(rbc.ravel())[1:].astype(float)
    edge = np.unique(np.concatenate([rbc[0], rbc[-1], rbc[:, 0], rbc[:, -1]]))
    if blank is not None:
        near = cv2.dilate(blank.view(np.uint8), np.ones((5, 5), np.uint8)) > 0
        edge = np.union1d(edge, np.unique(rbc[near]))
    keep = np.ones(len(area), bool)
    keep[edge[edge > 0] - 1] = False
    keep &= area > 0
    if keep.sum() < 5:
        return None
    return float(np.median(2.0 * np.sqrt(area[keep] / np.pi)))
