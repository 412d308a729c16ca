"""The red-cell size of an image: estimated from its stained blobs, or measured on predicted cells.

Used by :class:`cellviewer.core.netsegment.NetSegmenter` to choose the working scale
(see its step 1) and to decide on a second pass.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi

from cellviewer.core.datasets import stained_foreground

#: blob size estimate × this ≈ the median RBC box size (measured on the train split)
ESTIMATE_TO_BOX = 1.19
FALLBACK_DIAMETER_PX = 60.0


def estimate_rbc_diameter(image: np.ndarray) -> tuple[float, str]:
    """Expected RBC diameter (px) of an image from its stained blobs, and how it was found.

    On a copy at most 400 px wide: foreground = ``255 − green`` above its Otsu threshold
    (values capped at the 85th percentile, so dark nuclei do not pull it up), small
    holes (pale cell centres) filled; the diameter is twice the median height of the
    distance-transform peaks that reach half of the 90th-percentile peak (one peak per
    cell, specks and debris ignored), times :data:`ESTIMATE_TO_BOX` (calibrated on the
    train split to the median RBC box size; about ±10 % per image).
    """
    from skimage.feature import peak_local_max

    h, w = image.shape[:2]
    s = min(1.0, 400.0 / max(h, w))
    small = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else image
    fg = stained_foreground(small)
    if fg is None:
        return FALLBACK_DIAMETER_PX, "fallback"
    fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    dist = ndi.distance_transform_edt(fg)
    pk = peak_local_max(dist, min_distance=3, threshold_abs=2, exclude_border=False)
    v = dist[pk[:, 0], pk[:, 1]] if len(pk) else np.zeros(0)
    if len(v) < 3:
        return FALLBACK_DIAMETER_PX, "fallback"
    v = v[v >= 0.5 * np.percentile(v, 90)]
    return float(2.0 * np.median(v) / s * ESTIMATE_TO_BOX), "estimated"


def measured_rbc_diameter(rbc: np.ndarray) -> float | None:
    """Median equivalent diameter of the RBC instances not touching the border (None if < 5)."""
    if rbc.max() == 0:
        return None
    area = np.bincount(rbc.ravel())[1:].astype(float)
    edge = np.unique(np.concatenate([rbc[0], rbc[-1], rbc[:, 0], rbc[:, -1]]))
    keep = np.ones(len(area), bool)
    keep[edge[edge > 0] - 1] = False
    keep &= area > 0
    if keep.sum() < 5:
        return None
    return float(np.median(2.0 * np.sqrt(area[keep] / np.pi)))
