"""The classical (no-training) segmenter: colour thresholds + a counting algorithm.

Pipeline on an RGB ``uint8`` smear (Giemsa / Wright / May-Grünwald stains):

1. **Colour features** (after a light blur): ``dark = 255 − G`` (every stained
   object absorbs green) and ``stain = (B − G) / B`` (nuclei and platelets are
   blue-purple; red cells are pink or pale lilac). The ratio does not depend on
   how bright the image is.
2. **Foreground** = ``dark`` above its Otsu threshold, computed on values capped
   at the 85th percentile so big dark nuclei cannot pull the threshold above the
   red cells. Holes up to half a cell (central pallor, also where a cell is cut
   by the border) are filled.
3. **Stained mask** = ``stain`` above Otsu's threshold of the foreground's values,
   but at least ``STAIN_MARGIN`` above their median (the red-cell level), clamped
   to [``STAIN_MIN``, ``STAIN_MAX``]; a lower threshold outlines pale platelets.
4. **Scale**: the expected RBC diameter ``d`` is given (px, or µm + µm/px) or
   estimated from the red-cell blobs (:func:`estimate_diameter`).
5. Stained blobs are grouped (lobes of one nucleus within ``0.2·d``); groups with
   at least ``WBC_MIN_AREA_FRAC`` of an RBC's area are **WBC** nuclei, grown by
   ``WBC_GROW_FRAC·d`` into the foreground to take in the cytoplasm (parts:
   nucleus 1, cytoplasm 2). Compact blobs outside WBCs with a stained core of
   ``PLT_MIN_AREA_FRAC`` … ``PLT_MAX_AREA_FRAC`` of an RBC's area are **platelets**.
6. **RBC** mask = foreground − WBC − platelets, opened; then the chosen counting
   method (:mod:`cellviewer.core.counting`) makes the instances.

Scores (``Marker.score``, in [0, 1]): RBCs get
:func:`~cellviewer.core.counting.shape_scores` (area and roundness against the
expected disc). WBCs and platelets get how far the mean ``stain`` of their
stained pixels lies above the threshold: ``clip(0.5 + (mean − thr) / 0.4, 0, 1)``.

Everything scale-dependent derives from ``d``; the thresholds adapt per image.
Measured numbers (count accuracy, detection F1) come from
:mod:`cellviewer.core.evalcount`.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu

from cellviewer.core.counting import (
    METHODS, edt, inside_points, instances_from_mask, label_max, relabel_sequential, remove_small, shape_scores,
)
from cellviewer.core.document import Marker
from cellviewer.core.errors import SegmentationError, SegmentationOptionError
from cellviewer.core.jobs import CancelToken, Job, Progress
from cellviewer.core.scale import DEFAULT_RBC_DIAMETER_UM, MAX_DIAMETER_PX, MIN_DIAMETER_PX, count_params, diameter_from
from cellviewer.core.segment import SegmentationResult, check_rgb, register_segmenter
from cellviewer.core.weaklabels import blank_margin, drop_blank_cells

VERSION = "1"
STAIN_MIN, STAIN_MAX, STAIN_MARGIN = 0.2, 0.55, 0.17
STAIN_SCORE_SPAN = 0.4
FG_MIN_GAP = 12.0  # the foreground threshold is at least this far above the background level
WBC_MIN_AREA_FRAC = 0.3  # stained area of a WBC nucleus / expected RBC area
WBC_GROW_FRAC = 0.2  # the cytoplasm ring: at most this fraction of d around the nucleus
WBC_ABSORB_FRAC = 0.5  # red-cell pieces smaller than this (× a0) touching a WBC are its cytoplasm
PLT_MIN_AREA_FRAC = 0.01
PLT_OPEN_FRAC = 0.05  # platelet candidates are opened by a disc of this radius (drops slivers on RBC rims)
PLT_MAX_AREA_FRAC = 0.3
FALLBACK_DIAMETER_PX = 60.0
HOLE_MAX_IMAGE_FRAC = 0.008  # before the scale is known, fill holes up to this fraction of the image


def _disk(r: float) -> np.ndarray:
    r = max(1, int(round(r)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


# -- colour masks -------------------------------------------------------------------------
def colour_features(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(dark, stain)`` float32 maps of an RGB image (see the module docstring)."""
    img = np.asarray(image)
    check_rgb(img)
    if img.dtype != np.uint8:
        raise SegmentationError(f"Expected 8-bit pixels, got {img.dtype}.",
                                hint="read the image with cellviewer.core.io, which converts it to RGB uint8")
    f = cv2.GaussianBlur(np.ascontiguousarray(img[..., :3]).astype(np.float32), (0, 0), 1.5)
    g = f[..., 1]
    dark = 255.0 - g
    stain = (f[..., 2] - g) / np.maximum(f[..., 2], 16.0)
    return dark, stain


def foreground_mask(dark: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Everything stained (cells of any class) and its threshold on ``dark``. ``valid``: the smear's pixels
    (without a blank margin, :func:`cellviewer.core.weaklabels.blank_margin`); the threshold is taken on them
    and nothing else is foreground."""
    sub = dark[::2, ::2] if valid is None else dark[::2, ::2][valid[::2, ::2]]
    if sub.size < 16:
        sub = dark[::2, ::2]
    cap = float(np.percentile(sub, 85))
    bg = float(np.percentile(sub, 5))
    try:
        thr = float(threshold_otsu(np.minimum(sub, cap)))
    except ValueError:  # a flat image
        thr = cap
    thr = max(thr, bg + FG_MIN_GAP)
    return (dark > thr) if valid is None else (dark > thr) & valid, thr


def stain_mask(stain: np.ndarray, fg: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Strongly stained (nuclei, platelets) pixels, the threshold and a lower one.

    The threshold is Otsu's on the foreground's ``stain`` values, but at least
    ``STAIN_MARGIN`` above their median (the red-cell level, so an image without a
    nucleus does not split its red cells), clamped to [``STAIN_MIN``, ``STAIN_MAX``].
    Pale platelets may lie outside the foreground, so the mask is not limited to it.
    The lower threshold (halfway between the median and ``thr``) outlines pale
    platelets around their stained core (hysteresis).
    """
    vals = stain[::2, ::2][fg[::2, ::2]]
    thr, med = STAIN_MAX, 0.0
    if vals.size > 16 and np.ptp(vals) > 0:
        med = float(np.median(vals))
        thr = float(np.clip(max(float(threshold_otsu(vals)), med + STAIN_MARGIN), STAIN_MIN, STAIN_MAX))
    low = max(med + 0.5 * (thr - med), 0.5 * thr)
    return stain > thr, thr, low


def fill_small_holes(mask: np.ndarray, max_area: float) -> np.ndarray:
    """Fill background pockets up to ``max_area`` px that are enclosed by ``mask``.

    A pocket open to at most one image side also counts (the central pallor of a
    cell cut by the border); background touching two or more sides never does.
    """
    bg, n = ndi.label(~mask)
    if n == 0:
        return mask.copy()
    sides = np.zeros((n + 1, 4), bool)
    for k, edge in enumerate((bg[0], bg[-1], bg[:, 0], bg[:, -1])):
        sides[edge, k] = True
    area = np.bincount(bg.ravel(), minlength=n + 1)
    fill = (sides.sum(axis=1) <= 1) & (area <= max_area)
    fill[0] = False
    return mask | fill[bg]


def estimate_diameter(mask: np.ndarray) -> tuple[float | None, str]:
    """The typical cell diameter (px) of the blobs of ``mask``, and how it was found.

    1. ``"isolated"``: the median equivalent diameter of round, isolated blobs —
       area close to the disc of the largest inscribed radius
       (``0.75 < A/(π r²) < 1.35``), not touching the image border and not a speck
       (``r`` at least half the 90th percentile of the blobs' radii); needs 2.
    2. ``"peaks"``: otherwise twice the median height of the distance-transform
       peaks (at least half the 95th-percentile peak), times 1.07 (inscribed radii
       run smaller than equivalent radii).
    Returns ``(None, "none")`` when the mask has no usable blob.
    """
    lab, n = ndi.label(mask)
    if n == 0:
        return None, "none"
    dist = edt(mask)
    ids = np.arange(1, n + 1)
    a = np.bincount(lab.ravel(), minlength=n + 1)[1:].astype(float)
    r = label_max(dist, lab, ids)
    edge = np.zeros(n + 1, bool)
    edge[np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])] = True
    q = a / (np.pi * np.maximum(r, 1) ** 2)
    big = r >= max(3.0, 0.5 * float(np.percentile(r, 90)))  # ignore specks and debris
    ok = (q > 0.75) & (q < 1.35) & ~edge[1:] & big
    if ok.sum() >= 2:
        return float(np.median(2 * np.sqrt(a[ok] / np.pi))), "isolated"
    pk = peak_local_max(dist, min_distance=5, threshold_abs=3, exclude_border=False)
    if len(pk) == 0:
        return None, "none"
    hv = dist[pk[:, 0], pk[:, 1]]
    hv = hv[hv >= 0.5 * np.percentile(hv, 95)]
    return float(2.14 * np.median(hv)), "peaks"


def _estimate_scale(fg: np.ndarray, stained: np.ndarray) -> tuple[float, str]:
    """The expected RBC diameter of an image (px) and how it was found."""
    h, w = fg.shape
    cells = fg & ~cv2.dilate(stained.astype(np.uint8), _disk(3)).astype(bool)
    cells = fill_small_holes(cells, HOLE_MAX_IMAGE_FRAC * h * w)
    cells = cv2.morphologyEx(cells.astype(np.uint8), cv2.MORPH_OPEN, _disk(2)).astype(bool)
    d, how = estimate_diameter(cells)
    if d is None or not MIN_DIAMETER_PX <= d <= MAX_DIAMETER_PX:  # an estimate is never an option error
        return FALLBACK_DIAMETER_PX, "fallback"
    return d, f"estimated-{how}"


def split_stained(stained: np.ndarray, fg: np.ndarray, stain: np.ndarray, thr: float, low: float, params) -> dict:
    """Group stained blobs into WBC (with cytoplasm) and platelet instances.

    Returns ``wbc``/``platelet`` int32 label maps, the ``parts`` map and
    per-instance scores ``wbc_scores``/``platelet_scores`` (index = label − 1).
    """
    d, a0 = params.diameter_px, params.expected_area
    st = cv2.morphologyEx(stained.astype(np.uint8), cv2.MORPH_OPEN, _disk(max(1, 0.02 * d))).astype(bool)
    groups, _ = ndi.label(cv2.dilate(st.astype(np.uint8), _disk(0.2 * d)))
    st_area = np.bincount(groups.ravel(), weights=st.ravel().astype(float))
    st_area[0] = 0
    is_wbc = st_area >= WBC_MIN_AREA_FRAC * a0
    nucleus = st & is_wbc[groups]
    # WBC: the nucleus closed and filled, grown into the foreground to take in the cytoplasm
    core = cv2.morphologyEx(nucleus.astype(np.uint8), cv2.MORPH_CLOSE, _disk(0.2 * d)).astype(bool)
    core = fill_small_holes(core, np.inf)
    grown = (cv2.dilate(core.astype(np.uint8), _disk(WBC_GROW_FRAC * d)).astype(bool) & fg) | core
    grown = cv2.morphologyEx(grown.astype(np.uint8), cv2.MORPH_OPEN, _disk(0.08 * d)).astype(bool) | core
    wbc_mask = fill_small_holes(grown, 0.5 * a0)
    wbc, _ = ndi.label(wbc_mask)
    wbc = remove_small(wbc.astype(np.int32), max(1, int(WBC_MIN_AREA_FRAC * a0)))
    parts = np.where(wbc > 0, np.where(nucleus, 1, 2), 0).astype(np.uint8)
    # platelets: compact blobs above the low threshold (opened: no slivers on red-cell rims) holding
    # at least PLT_MIN_AREA_FRAC·a0 stained pixels, at most PLT_MAX_AREA_FRAC·a0 large
    pale = cv2.morphologyEx(((stain > low) & (wbc == 0)).astype(np.uint8), cv2.MORPH_OPEN, _disk(PLT_OPEN_FRAC * d))
    cand, n = ndi.label(pale)
    core_area = np.bincount(cand.ravel(), weights=stained.ravel().astype(float), minlength=n + 1)
    area = np.bincount(cand.ravel(), minlength=n + 1)
    keep = (core_area >= PLT_MIN_AREA_FRAC * a0) & (area <= PLT_MAX_AREA_FRAC * a0)
    keep[0] = False
    plt_mask = cv2.morphologyEx(keep[cand].astype(np.uint8), cv2.MORPH_CLOSE, _disk(max(1, 0.04 * d))).astype(bool)
    plt_lab, _ = ndi.label(fill_small_holes(plt_mask, PLT_MAX_AREA_FRAC * a0))
    plt_lab = relabel_sequential(plt_lab.astype(np.int32))

    def stain_score(lab: np.ndarray) -> np.ndarray:
        n = int(lab.max())
        core = np.where(stained, lab, 0).ravel()
        cnt = np.bincount(core, minlength=n + 1)[1:]
        tot = np.bincount(core, weights=stain.ravel().astype(np.float64), minlength=n + 1)[1:]
        mean = np.where(cnt > 0, tot / np.maximum(cnt, 1), thr)
        return np.clip(0.5 + (mean - thr) / STAIN_SCORE_SPAN, 0.0, 1.0)

    return {"wbc": wbc, "platelet": plt_lab, "parts": parts,
            "wbc_scores": stain_score(wbc), "platelet_scores": stain_score(plt_lab)}


def absorb_fragments(
    rbc: np.ndarray, wbc: np.ndarray, parts: np.ndarray, a0: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Give red-cell instances smaller than ``WBC_ABSORB_FRAC·a0`` that touch a WBC to it.

    They are what is left of a cytoplasm wider than the grown band, not cells;
    they become cytoplasm (part 2) of the WBC they touch. Returns new
    ``(rbc, wbc, parts)``.
    """
    if not wbc.any() or not rbc.any() or WBC_ABSORB_FRAC <= 0:
        return rbc, wbc, parts
    near = ndi.grey_dilation(wbc, size=(5, 5))  # the WBC label next to each pixel
    n = int(rbc.max())
    owner = np.zeros(n + 1, np.int32)
    touch = (rbc > 0) & (near > 0)
    owner[rbc[touch]] = near[touch]
    small = np.bincount(rbc.ravel(), minlength=n + 1) < WBC_ABSORB_FRAC * a0
    owner[~small] = 0
    owner[0] = 0
    if not owner.any():
        return rbc, wbc, parts
    moved = owner[rbc]
    wbc = np.where(moved > 0, moved, wbc).astype(np.int32)
    parts = np.where(moved > 0, 2, parts).astype(np.uint8)
    return relabel_sequential(np.where(moved > 0, 0, rbc).astype(np.int32)), wbc, parts


def red_cell_mask(fg: np.ndarray, wbc: np.ndarray, platelet: np.ndarray, d: float) -> np.ndarray:
    """Foreground minus WBCs and (slightly grown) platelets, opened to cut thin bridges."""
    not_rbc = (wbc > 0) | cv2.dilate((platelet > 0).astype(np.uint8), _disk(0.05 * d)).astype(bool)
    rbc = (fg & ~not_rbc).astype(np.uint8)
    return cv2.morphologyEx(rbc, cv2.MORPH_OPEN, _disk(0.06 * d)).astype(bool)


_NAMES = {"watershed": "classical", "components": "classical-components",
          "hough": "classical-hough", "distance_peaks": "classical-distance"}
#: options a factory accepts and ignores (meaningful for nets only)
_IGNORED_OPTIONS = frozenset({"device", "batch_size", "tile", "tile_size", "overlap", "amp", "threads", "tta"})


class ClassicalSegmenter:
    """Colour thresholds + one of the four counting methods (see the module docstring).

    ``diameter_px`` (or ``diameter_um`` with ``um_per_px``) fixes the expected RBC
    diameter; when neither is known it is estimated per image and recorded in
    ``params["diameter_px"]``. Extra keyword arguments override
    :class:`~cellviewer.core.scale.CountParams` fields. ``device`` is ignored.
    """

    version = VERSION

    def __init__(self, method: str = "watershed", diameter_px: float | None = None,
                 diameter_um: float | None = DEFAULT_RBC_DIAMETER_UM, um_per_px: float | None = None,
                 device: str = "cpu", **count_overrides):
        if method not in METHODS:
            raise SegmentationOptionError(f"Unknown counting method '{method}'.",
                                          hint=f"choose one of: {', '.join(METHODS)}")
        self.method = method
        self.name = _NAMES[method]
        self.model_name = f"classical-{method}"
        self.diameter_px = diameter_from(diameter_px, diameter_um, um_per_px)
        self.diameter_um = diameter_um
        self.um_per_px = um_per_px
        self.count_overrides = dict(count_overrides)
        count_params(self.diameter_px or FALLBACK_DIAMETER_PX, **self.count_overrides)  # validate early

    def segment(self, image: np.ndarray, cancel: CancelToken | None = None) -> Job[SegmentationResult]:
        """Long job: yields :class:`Progress`, returns a :class:`SegmentationResult`."""
        def check() -> None:
            if cancel is not None:
                cancel.check()

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        check()
        yield Progress(0.0, "colour thresholds")
        dark, stain = colour_features(image)
        blank = blank_margin(np.asarray(image))  # a white frame or a dark field stop is no cell
        fg, thr_fg = foreground_mask(dark, None if blank is None else ~blank)
        stained, thr_st, low_st = stain_mask(stain, fg)
        if blank is not None:
            stained &= ~blank
        timings["colour"] = time.perf_counter() - t0
        check()
        yield Progress(0.2, "cell size")
        t = time.perf_counter()
        if self.diameter_px is not None:
            d, source = self.diameter_px, "given"
        else:
            d, source = _estimate_scale(fg, stained)
        params = count_params(d, **self.count_overrides)
        fg = fill_small_holes(fg, 0.5 * params.expected_area)
        timings["scale"] = time.perf_counter() - t
        check()
        yield Progress(0.35, "white cells and platelets")
        t = time.perf_counter()
        other = split_stained(stained, fg, stain, thr_st, low_st, params)
        timings["stained"] = time.perf_counter() - t
        check()
        yield Progress(0.55, f"red cells ({self.method})")
        t = time.perf_counter()
        rbc_mask = red_cell_mask(fg, other["wbc"], other["platelet"], d)
        rbc = instances_from_mask(rbc_mask, self.method, params)
        rbc, other["wbc"], other["parts"] = absorb_fragments(rbc, other["wbc"], other["parts"], params.expected_area)
        timings["count"] = time.perf_counter() - t
        check()
        yield Progress(0.85, "markers")
        t = time.perf_counter()
        labels = {"rbc": rbc, "wbc": other["wbc"], "platelet": other["platelet"]}
        scores = {"rbc": shape_scores(rbc, params)[1], "wbc": other["wbc_scores"], "platelet": other["platelet_scores"]}
        if blank is not None:  # no cell in the margin, and no outline reaching into it (as the net's)
            labels, scores, _ = drop_blank_cells(labels, scores, blank)
            other["parts"] = np.where(blank, 0, other["parts"]).astype(other["parts"].dtype)
        markers: list[Marker] = []
        for cls in ("rbc", "wbc", "platelet"):
            ids, ys, xs = inside_points(labels[cls])
            for cid, y, x in zip(ids.tolist(), ys.tolist(), xs.tolist()):
                markers.append(Marker(id=len(markers) + 1, cls=cls, x=float(x), y=float(y), origin="auto",
                                      cell=int(cid), score=float(scores[cls][cid - 1])))
        timings["markers"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        parts = other["parts"] if (other["wbc"] > 0).any() else None
        run_params = {
            "method": self.method, "diameter_px": round(float(d), 2), "diameter_source": source,
            "diameter_um": self.diameter_um, "um_per_px": self.um_per_px,
            "foreground_threshold": round(thr_fg, 2), "stain_threshold": round(thr_st, 3),
            "stain_low_threshold": round(low_st, 3),
            "wbc_min_area_frac": WBC_MIN_AREA_FRAC, "platelet_area_frac": [PLT_MIN_AREA_FRAC, PLT_MAX_AREA_FRAC],
            "wbc_grow_frac": WBC_GROW_FRAC,
            "count": params.to_dict(),
        }
        yield Progress(1.0, "done")
        return SegmentationResult(labels=labels, markers=markers, parts=parts, model_name=self.model_name,
                                  model_version=VERSION, params=run_params, device="cpu", timings=timings)


def _factory(method: str):
    def make(**options) -> ClassicalSegmenter:
        opts = {k: v for k, v in options.items() if k not in _IGNORED_OPTIONS}
        return ClassicalSegmenter(method=method, **opts)

    return make


for _m, _n in _NAMES.items():
    register_segmenter(_n, _factory(_m), f"classical colour thresholds + {_m.replace('_', ' ')} counting (no training)")
