"""The four counting / instance algorithms of the DO-U-Net paper, on binary masks.

Every algorithm has the signature ``fn(foreground, params) -> labels``: a
boolean foreground mask in, an ``int32`` instance-label map out (0 = none,
1..N = one cell each, numbered without gaps). All sizes derive from
:class:`~cellviewer.core.scale.CountParams` (the expected cell diameter).

* :func:`components` — connected components, small objects removed.
* :func:`watershed` — watershed on the distance transform, seeded by its
  h-maxima, constrained to the mask.
* :func:`hough` — circle Hough transform on the (blurred) mask edges (radii = expected
  radius ± tolerance); circles rasterised, intersected with the mask, overlaps
  given to the nearest centre.
* :func:`distance_peaks` — local maxima of the distance transform as markers,
  each foreground pixel given to its nearest marker in the same connected blob.

:func:`instances_from_mask` dispatches by name. :func:`centroids`,
:func:`areas`, :func:`inside_points` and :func:`shape_scores` are the
vectorised per-cell helpers (no per-cell full-image loops).
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.morphology import h_maxima
from skimage.segmentation import watershed as _sk_watershed

from cellviewer.core.errors import SegmentationError
from cellviewer.core.scale import CountParams, count_params

__all__ = [
    "METHODS", "CountParams", "count_params", "components", "watershed", "hough", "distance_peaks",
    "instances_from_mask", "relabel_sequential", "remove_small", "centroids", "areas",
    "inside_points", "shape_scores", "edt", "label_max", "label_argmax",
]

METHODS: tuple[str, ...] = ("watershed", "components", "hough", "distance_peaks")
_STRUCT8 = np.ones((3, 3), bool)
#: markers are searched at a scale where the expected diameter is about this many px
WORK_DIAMETER_PX = 32.0
HOUGH_WORK_DIAMETER_PX = 40.0


# -- small vectorised helpers -----------------------------------------------------------
def _as_mask(foreground: np.ndarray) -> np.ndarray:
    fg = np.asarray(foreground)
    if fg.ndim != 2:
        raise SegmentationError(f"A foreground mask must be 2-D, got shape {fg.shape}.",
                                hint="pass one boolean H×W mask per class")
    return fg.astype(bool, copy=False)


def relabel_sequential(labels: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """Renumber ``labels`` to 1..N without gaps; ``keep[id]`` False drops that id."""
    n = int(labels.max()) + 1 if labels.size else 1
    present = np.bincount(labels.ravel(), minlength=n) > 0
    if keep is not None:
        present &= keep[:n]
    present[0] = False
    lut = np.zeros(n, np.int32)
    lut[present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
    return lut[labels]


def remove_small(labels: np.ndarray, min_area: int, min_area_border: int | None = None) -> np.ndarray:
    """Drop instances smaller than ``min_area`` pixels and renumber the rest.

    With ``min_area_border`` instances touching the image border (cells cut by
    it) need that many pixels instead (fewer keeps slivers, more drops them).
    """
    counts = np.bincount(labels.ravel())
    need = np.full(counts.shape, min_area, np.int64)
    if min_area_border is not None and labels.size:
        edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
        need[np.unique(edge)] = min_area_border
        need[0] = min_area
    return relabel_sequential(labels, counts >= need)


def _remove_small(labels: np.ndarray, params: CountParams) -> np.ndarray:
    return remove_small(labels, params.min_area, params.min_area_border)


def areas(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, areas)`` of the instances present in ``labels`` (ids ascending)."""
    counts = np.bincount(labels.ravel())
    ids = np.nonzero(counts)[0]
    ids = ids[ids > 0]
    return ids.astype(np.int32), counts[ids].astype(np.int64)


def _centroids_slices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """:func:`centroids` plus the ``find_objects`` slices (index ``id - 1``).

    Works on each instance's bounding box (one C pass over the image, then small crops):
    on a 5-megapixel map with a few hundred cells ~10× faster than whole-image weighted
    bincounts, with the same values (integer sums, one float division).
    """
    lab = labels if labels.dtype.kind in "iu" else labels.astype(np.int64)
    slices = ndi.find_objects(lab) if lab.size else []
    ids, ys, xs = [], [], []
    for i, sl in enumerate(slices, 1):
        if sl is None:
            continue
        r, c = np.nonzero(lab[sl] == i)
        n = r.size
        ids.append(i)
        ys.append((int(r.sum()) + sl[0].start * n) / n)
        xs.append((int(c.sum()) + sl[1].start * n) / n)
    return np.asarray(ids, np.int32), np.asarray(ys, np.float64), np.asarray(xs, np.float64), slices


def centroids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, ys, xs)``: the centre of mass of every instance (float pixel coordinates)."""
    ids, ys, xs, _ = _centroids_slices(labels)
    return ids, ys, xs


def label_max(values: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Maximum of ``values`` over each instance in ``ids`` (vectorised, -inf if absent)."""
    n = int(labels.max()) + 1 if labels.size else 1
    out = np.full(n, -np.inf)
    np.maximum.at(out, labels.ravel(), values.ravel().astype(np.float64))
    return out[np.asarray(ids, np.intp)]


def label_argmax(values: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``(len(ids), 2)`` row/col of the (first) maximum of ``values`` in each instance."""
    ids = np.asarray(ids, np.intp)
    n = int(labels.max()) + 1 if labels.size else 1
    best = np.full(n, -np.inf)
    flat_l, flat_v = labels.ravel(), values.ravel().astype(np.float64)
    np.maximum.at(best, flat_l, flat_v)
    hit = np.nonzero((flat_v == best[flat_l]) & (flat_l > 0))[0]
    first = np.full(n, -1, np.int64)
    lab_hit = flat_l[hit]
    first[lab_hit[::-1]] = hit[::-1]  # reversed assignment keeps the first index
    idx = first[ids]
    return np.stack(np.unravel_index(np.maximum(idx, 0), labels.shape), axis=1)


def inner_boundary(labels: np.ndarray) -> np.ndarray:
    """Pixels of a cell with a 4-neighbour of another value (another cell or background)."""
    b = np.zeros(labels.shape, bool)
    dy = labels[1:, :] != labels[:-1, :]
    dx = labels[:, 1:] != labels[:, :-1]
    b[1:, :] |= dy
    b[:-1, :] |= dy
    b[:, 1:] |= dx
    b[:, :-1] |= dx
    return b & (labels > 0)


def edt(mask: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance of each mask pixel to the nearest background pixel (float32).

    OpenCV's precise transform (same values as scipy's, ~3× faster); the image
    border is not background.
    """
    return cv2.distanceTransform(np.asarray(mask, np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def _cell_distance(labels: np.ndarray) -> np.ndarray:
    """Distance of every pixel to the nearest pixel outside its own cell."""
    inner = (labels > 0) & ~inner_boundary(labels)
    return edt(inner) + (labels > 0)


def inside_points(labels: np.ndarray, dist: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, ys, xs)``: one point per instance that lies inside it.

    The centroid where it falls inside the cell; otherwise (concave cells) the
    point of the cell farthest from its outline (maximum of the distance transform).
    """
    ids, ys, xs, slices = _centroids_slices(labels)
    if ids.size == 0:
        return ids, ys, xs
    h, w = labels.shape
    iy = np.clip(np.rint(ys).astype(np.intp), 0, h - 1)
    ix = np.clip(np.rint(xs).astype(np.intp), 0, w - 1)
    bad = labels[iy, ix] != ids
    if bad.any():
        if dist is not None:
            pos = label_argmax(dist, labels, ids[bad]).astype(np.float64)
        else:  # per cell, on its box grown by 1 px (same distances inside the cell)
            pos = np.array([_crop_argmax_distance(labels, int(i), slices[i - 1]) for i in ids[bad]], np.float64)
        ys = ys.copy()
        xs = xs.copy()
        ys[bad], xs[bad] = pos[:, 0], pos[:, 1]
    return ids, ys, xs


def _crop_argmax_distance(labels: np.ndarray, cell: int, sl) -> tuple[int, int]:
    """Row/col of the (first) maximum of :func:`_cell_distance` within ``cell``, computed on its box."""
    h, w = labels.shape
    y0, x0 = max(0, sl[0].start - 1), max(0, sl[1].start - 1)
    crop = labels[y0:min(h, sl[0].stop + 1), x0:min(w, sl[1].stop + 1)]
    d = np.where(crop == cell, _cell_distance(crop), -np.inf)
    k = int(np.argmax(d))
    return y0 + k // crop.shape[1], x0 + k % crop.shape[1]


def shape_scores(
    labels: np.ndarray, params: CountParams, dist: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, scores)``: how much each instance looks like one expected cell, in [0, 1].

    ``score = sqrt(size · roundness)`` where ``size = min(A/A0, A0/A)`` compares the
    area with the expected area ``A0 = π (d/2)²`` and ``roundness = min(q, 1/q)``
    with ``q = A / (π r²)``, ``r`` the largest inscribed radius (a disc gives 1;
    merged pairs, slivers and cut cells give less). Instances larger than
    ``max_area`` score at most 0.25.
    """
    ids, a = areas(labels)
    if ids.size == 0:
        return ids, np.zeros(0, np.float64)
    if dist is None:
        dist = _cell_distance(labels)
    rmax = label_max(dist, labels, ids)
    a0 = params.expected_area
    size = np.minimum(a / a0, a0 / a)
    q = a / (np.pi * np.maximum(rmax, 0.5) ** 2)
    roundness = np.minimum(q, 1.0 / q)
    score = np.sqrt(np.clip(size * roundness, 0.0, 1.0))
    score = np.where(a > params.max_area, np.minimum(score, 0.25), score)
    return ids, score


# -- the four algorithms ----------------------------------------------------------------------
def components(foreground: np.ndarray, params: CountParams) -> np.ndarray:
    """Connected components (8-connected) of the mask, objects under ``min_area`` removed."""
    fg = _as_mask(foreground)
    lab, _ = ndi.label(fg, structure=_STRUCT8)
    return _remove_small(lab.astype(np.int32, copy=False), params)


def _smooth_distance(fg: np.ndarray, params: CountParams) -> np.ndarray:
    dist = edt(fg)
    sigma = max(0.5, 0.03 * params.diameter_px)
    return ndi.gaussian_filter(dist, sigma) * fg


def _ensure_one_marker(markers: np.ndarray, cc: np.ndarray, n_cc: int, dist: np.ndarray) -> np.ndarray:
    """Give every connected component without a marker one, at its distance maximum."""
    has = np.zeros(n_cc + 1, bool)
    has[cc[markers > 0]] = True
    missing = np.nonzero(~has[1:])[0] + 1
    if missing.size:
        pos = label_argmax(dist, cc, missing)
        start = int(markers.max()) + 1
        markers[pos[:, 0], pos[:, 1]] = np.arange(start, start + len(pos), dtype=np.int32)
    return markers


def _peak_markers(dist: np.ndarray, cc: np.ndarray, n_cc: int, params: CountParams) -> np.ndarray:
    coords = peak_local_max(
        dist,
        min_distance=params.min_distance,
        threshold_abs=params.peak_min_height_frac * params.radius_px,
        labels=cc,
        exclude_border=False,
    )
    markers = np.zeros(dist.shape, np.int32)
    if len(coords):
        markers[coords[:, 0], coords[:, 1]] = np.arange(1, len(coords) + 1, dtype=np.int32)
    return _ensure_one_marker(markers, cc, n_cc, dist)


def _hmax_markers(dist: np.ndarray, fg: np.ndarray, params: CountParams) -> np.ndarray:
    """Markers = h-maxima of ``dist`` (found at a working scale where d ≈ 32 px, for speed)."""
    s = min(1.0, WORK_DIAMETER_PX / params.diameter_px)
    small = dist if s == 1.0 else cv2.resize(dist, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) * s
    r = params.radius_px * s
    peaks = h_maxima(small, max(0.5, params.h_frac * r)).astype(bool)
    peaks &= small >= params.peak_min_height_frac * r
    # maxima closer than min_distance belong to the same cell: merge by dilation
    rad = max(1, int(round(params.min_distance * s / 2)))
    merged = cv2.dilate(peaks.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rad + 1,) * 2))
    mlab, _ = ndi.label(merged, structure=_STRUCT8)
    ys, xs = np.nonzero(peaks)
    ids = mlab[ys, xs]
    if s != 1.0:  # back to full resolution (pixel centres)
        ys = np.clip(((ys + 0.5) / s).astype(np.intp), 0, fg.shape[0] - 1)
        xs = np.clip(((xs + 0.5) / s).astype(np.intp), 0, fg.shape[1] - 1)
    keep = fg[ys, xs]
    markers = np.zeros(fg.shape, np.int32)
    markers[ys[keep], xs[keep]] = ids[keep]
    return markers


def watershed(foreground: np.ndarray, params: CountParams) -> np.ndarray:
    """Watershed on the (smoothed) distance transform, markers = its h-maxima.

    Maxima lower than ``peak_min_height_frac·r`` are ignored and maxima closer than
    ``min_distance`` merge; every blob keeps at least one marker.
    """
    fg = _as_mask(foreground)
    cc, n_cc = ndi.label(fg, structure=_STRUCT8)
    cc = _remove_small(cc.astype(np.int32, copy=False), params)
    fg = cc > 0
    n_cc = int(cc.max())
    if n_cc == 0:
        return cc
    dist = _smooth_distance(fg, params)
    markers = _hmax_markers(dist, fg, params)
    markers = _ensure_one_marker(markers, cc, n_cc, dist)
    lab = _sk_watershed(-dist, markers, mask=fg)
    return _remove_small(lab.astype(np.int32, copy=False), params)


def distance_peaks(foreground: np.ndarray, params: CountParams) -> np.ndarray:
    """Distance-transform peaks as markers; each pixel goes to its nearest marker in its blob."""
    fg = _as_mask(foreground)
    cc, _ = ndi.label(fg, structure=_STRUCT8)
    cc = _remove_small(cc.astype(np.int32, copy=False), params)
    n_cc = int(cc.max())
    out = np.zeros(fg.shape, np.int32)
    if n_cc == 0:
        return out
    dist = _smooth_distance(cc > 0, params)
    markers = _peak_markers(dist, cc, n_cc, params)
    # nearest marker, computed per blob inside its bounding box only
    for i, sl in enumerate(ndi.find_objects(cc), start=1):
        if sl is None:
            continue
        own = cc[sl] == i
        m = np.where(own, markers[sl], 0)
        if not m.any():
            continue
        idx = ndi.distance_transform_edt(m == 0, return_distances=False, return_indices=True)
        near = m[idx[0], idx[1]]
        out[sl][own] = near[own]
    return _remove_small(out, params)


def hough(foreground: np.ndarray, params: CountParams) -> np.ndarray:
    """Circle Hough transform (OpenCV ``HOUGH_GRADIENT``) on the edges of the blurred mask.

    Runs at a working scale where the diameter is about 40 px. A circle needs
    votes from ``hough_votes`` of the circumference of the smallest radius.
    Circles are rasterised and intersected with the mask; a pixel inside several
    circles goes to the nearest centre. With ``hough_fill_uncovered`` blobs that no
    circle covers (cells cut by the border, odd shapes) are added as cells when
    they have half the expected area (``min_area_border`` at the border).
    """
    fg = _as_mask(foreground)
    out = np.zeros(fg.shape, np.int32)
    if not fg.any():
        return out
    s = min(1.0, HOUGH_WORK_DIAMETER_PX / params.diameter_px)
    img = fg.astype(np.uint8) * 255
    if s < 1.0:
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    k = max(3, int(round(0.06 * params.diameter_px * s)) | 1)
    img = cv2.GaussianBlur(img, (k, k), 0)
    rmin, rmax = params.hough_radii
    rmin_s, rmax_s = max(1, int(rmin * s)), max(2, int(np.ceil(rmax * s)))
    circles = cv2.HoughCircles(
        img, cv2.HOUGH_GRADIENT, dp=1.0, minDist=max(2.0, params.hough_min_dist_frac * params.diameter_px * s),
        param1=100, param2=max(1.0, params.hough_votes * 2 * np.pi * rmin_s), minRadius=rmin_s, maxRadius=rmax_s,
    )
    if circles is not None and len(circles[0]):
        c = circles[0].astype(np.float64) / s
        h, w = fg.shape
        cy = np.clip(np.rint(c[:, 1]).astype(np.intp), 0, h - 1)
        cx = np.clip(np.rint(c[:, 0]).astype(np.intp), 0, w - 1)
        centres = np.zeros(fg.shape, np.int32)
        centres[cy, cx] = np.arange(1, len(c) + 1, dtype=np.int32)
        dist, idx = ndi.distance_transform_edt(centres == 0, return_indices=True)
        near = centres[idx[0], idx[1]]
        radius = np.concatenate([[0.0], c[:, 2]])
        out = np.where(fg & (near > 0) & (dist <= radius[near]), near, 0).astype(np.int32)
        out = _remove_small(out, params)
    if params.hough_fill_uncovered:
        rest, _ = ndi.label(fg & (out == 0))
        rest = remove_small(rest.astype(np.int32, copy=False), max(params.min_area, int(0.5 * params.expected_area)),
                            params.min_area_border)
        out = np.where(rest > 0, rest + out.max(), out).astype(np.int32)
    return relabel_sequential(out)


_METHODS: dict[str, Callable[[np.ndarray, CountParams], np.ndarray]] = {
    "watershed": watershed,
    "components": components,
    "hough": hough,
    "distance_peaks": distance_peaks,
}


def instances_from_mask(mask: np.ndarray, method: str, params: CountParams) -> np.ndarray:
    """Run the counting algorithm ``method`` (one of :data:`METHODS`) on ``mask``."""
    fn = _METHODS.get(method)
    if fn is None:
        raise SegmentationError(f"Unknown counting method '{method}'.", hint=f"choose one of: {', '.join(METHODS)}")
    return fn(mask, params)
