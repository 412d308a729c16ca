"""The classical (no-training) segmenter: colour thresholds + a counting algorithm.

Pipeline on an RGB ``uint8`` smear (Giemsa / Wright / May-Grünwald stains):

1. **Colour features** (after a light blur): ``dark = 255 − G`` (every stained
   object absorbs green) and ``stain = (B − G) + (255 − G)`` (nuclei and
   platelets are dark *and* blue-purple; red cells are pink or pale lilac).
2. **Foreground** = ``dark`` above its Otsu threshold, computed on values capped
   at the 85th percentile so big dark nuclei cannot pull the threshold above the
   red cells. Small holes (central pallor, also where a cell is cut by the
   border) are filled.
3. **Stained mask** = ``stain`` above its Otsu threshold within the foreground,
   clamped to [``STAIN_MIN``, ``STAIN_MAX``] so an image without a nucleus does
   not split its red cells in two.
4. **Scale**: the expected RBC diameter is given (px, or µm + µm/px) or estimated
   from the round, isolated red-cell blobs (:func:`estimate_diameter`).
5. Stained blobs are grouped (lobes of one nucleus within ``0.2·d``); groups with
   at least ``WBC_MIN_AREA_FRAC`` of an RBC's area are **WBC** nuclei, grown by
   ``0.25·d`` into the foreground to take in the cytoplasm (parts: nucleus 1,
   cytoplasm 2); small isolated groups are **platelets**.
6. **RBC** mask = foreground − WBC − platelets, opened; then the chosen counting
   method (:mod:`cellviewer.core.counting`) makes the instances.

Scores: RBCs get :func:`~cellviewer.core.counting.shape_scores` (area and
roundness against the expected disc). WBCs and platelets get how far their mean
``stain`` lies above the threshold, ``clip(0.5 + (mean − thr) / 100, 0, 1)``.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from cellviewer.core.counting import (
    METHODS, inside_points, instances_from_mask, label_max, remove_small, shape_scores,
)
from cellviewer.core.document import Marker
from cellviewer.core.errors import SegmentationError
from cellviewer.core.jobs import CancelToken, Job, Progress
from cellviewer.core.scale import DEFAULT_RBC_DIAMETER_UM, count_params, diameter_from
from cellviewer.core.segment import SegmentationResult, register_segmenter

VERSION = "1"
STAIN_MIN, STAIN_MAX = 185.0, 270.0
FG_MIN_GAP = 12.0  # the foreground threshold is at least this far above the background level
WBC_MIN_AREA_FRAC = 0.3  # stained area of a WBC nucleus / expected RBC area
PLT_MIN_AREA_FRAC = 0.01
PLT_MAX_AREA_FRAC = 0.3
FALLBACK_DIAMETER_PX = 60.0


def _disk(r: float) -> np.ndarray:
    r = max(1, int(round(r)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


# -- colour masks -------------------------------------------------------------------------
def colour_features(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(dark, stain)`` float32 maps of an RGB image (see the module docstring)."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] < 3 or min(img.shape[:2]) < 8:
        raise SegmentationError(f"Expected an RGB image (H×W×3), got shape {img.shape}.",
                                hint="open a colour image of a stained blood smear")
    f = cv2.GaussianBlur(np.ascontiguousarray(img[..., :3]).astype(np.float32), (0, 0), 1.5)
    g = f[..., 1]
    dark = 255.0 - g
    stain = f[..., 2] - g + dark
    return dark, stain


def foreground_mask(dark: np.ndarray) -> tuple[np.ndarray, float]:
    """Everything stained (cells of any class) and its threshold on ``dark``."""
    sub = dark[::2, ::2]
    cap = float(np.percentile(sub, 85))
    bg = float(np.percentile(sub, 5))
    try:
        thr = float(threshold_otsu(np.minimum(sub, cap)))
    except ValueError:  # a flat image
        thr = cap
    thr = max(thr, bg + FG_MIN_GAP)
    return dark > thr, thr


def stain_mask(stain: np.ndarray, fg: np.ndarray) -> tuple[np.ndarray, float]:
    """Strongly stained (nuclei, platelets) pixels and the threshold used."""
    vals = stain[::2, ::2][fg[::2, ::2]]
    thr = STAIN_MAX
    if vals.size > 16 and np.ptp(vals) > 0:
        thr = float(np.clip(threshold_otsu(vals), STAIN_MIN, STAIN_MAX))
    return stain > thr, thr


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


def estimate_diameter(mask: np.ndarray) -> float | None:
    """Median equivalent diameter of the round, isolated blobs of ``mask`` (None if too few).

    A blob counts when its area is close to the disc of its largest inscribed
    radius (``0.75 < A/(π r²) < 1.35``), does not touch the image border and is not
    a speck (``r`` at least half the 90th percentile of the blobs' radii).
    """
    lab, n = ndi.label(mask)
    if n == 0:
        return None
    dist = ndi.distance_transform_edt(mask)
    ids = np.arange(1, n + 1)
    a = np.bincount(lab.ravel(), minlength=n + 1)[1:].astype(float)
    r = label_max(dist, lab, ids)
    edge = np.zeros(n + 1, bool)
    edge[np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])] = True
    q = a / (np.pi * np.maximum(r, 1) ** 2)
    big = r >= max(3.0, 0.5 * float(np.percentile(r, 90)))  # ignore specks and debris
    ok = (q > 0.75) & (q < 1.35) & ~edge[1:] & big
    if ok.sum() < 3:
        return None
    return float(np.median(2 * np.sqrt(a[ok] / np.pi)))


def _estimate_scale(fg: np.ndarray, stained: np.ndarray) -> tuple[float, str]:
    """The expected RBC diameter of an image (px) and how it was found."""
    h, w = fg.shape
    cells = fill_small_holes(fg & ~cv2.dilate(stained.astype(np.uint8), _disk(3)).astype(bool), 0.02 * h * w)
    cells = cv2.morphologyEx(cells.astype(np.uint8), cv2.MORPH_OPEN, _disk(2)).astype(bool)
    d = estimate_diameter(cells)
    if d is not None:
        return d, "estimated"
    dist = ndi.distance_transform_edt(cells)
    if dist.max() >= 3:  # no isolated round cell: twice the typical inscribed radius of the blobs
        lab, n = ndi.label(cells)
        r = label_max(dist, lab, np.arange(1, n + 1))
        r = r[r >= 3]
        if r.size:
            return float(2 * np.percentile(r, 75)), "estimated-peaks"
    return FALLBACK_DIAMETER_PX, "fallback"


def split_stained(stained: np.ndarray, fg: np.ndarray, stain: np.ndarray, thr: float, params) -> dict:
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
    is_plt = (st_area >= PLT_MIN_AREA_FRAC * a0) & ~is_wbc
    is_plt[0] = False
    nucleus = st & is_wbc[groups]
    # WBC: the nucleus closed and filled, grown into the foreground to take in the cytoplasm
    core = cv2.morphologyEx(nucleus.astype(np.uint8), cv2.MORPH_CLOSE, _disk(0.2 * d)).astype(bool)
    core = ndi.binary_fill_holes(core)
    grown = cv2.dilate(core.astype(np.uint8), _disk(0.25 * d)).astype(bool) & (fg | core)
    wbc_mask = ndi.binary_fill_holes(grown)
    wbc, _ = ndi.label(wbc_mask)
    wbc = remove_small(wbc.astype(np.int32), max(1, int(WBC_MIN_AREA_FRAC * a0)))
    parts = np.where(wbc > 0, np.where(nucleus, 1, 2), 0).astype(np.uint8)
    # platelets: the stained pixels of small groups, slightly closed; never inside a WBC
    plt_mask = st & is_plt[groups] & (wbc == 0)
    plt_mask = cv2.morphologyEx(plt_mask.astype(np.uint8), cv2.MORPH_CLOSE, _disk(max(1, 0.04 * d))).astype(bool)
    plt_lab, _ = ndi.label(ndi.binary_fill_holes(plt_mask))
    plt_lab = remove_small(plt_lab.astype(np.int32), max(1, int(PLT_MIN_AREA_FRAC * a0)))

    def stain_score(lab: np.ndarray) -> np.ndarray:
        n = int(lab.max())
        if n == 0:
            return np.zeros(0)
        m = np.asarray(ndi.mean(stain, np.where(stained, lab, 0), np.arange(1, n + 1)), float)
        return np.clip(0.5 + (np.nan_to_num(m, nan=thr) - thr) / 100.0, 0.0, 1.0)

    return {"wbc": wbc, "platelet": plt_lab, "parts": parts,
            "wbc_scores": stain_score(wbc), "platelet_scores": stain_score(plt_lab)}


def red_cell_mask(fg: np.ndarray, wbc: np.ndarray, platelet: np.ndarray, d: float) -> np.ndarray:
    """Foreground minus WBCs and (slightly grown) platelets, opened to cut thin bridges."""
    not_rbc = (wbc > 0) | cv2.dilate((platelet > 0).astype(np.uint8), _disk(0.05 * d)).astype(bool)
    rbc = (fg & ~not_rbc).astype(np.uint8)
    return cv2.morphologyEx(rbc, cv2.MORPH_OPEN, _disk(0.06 * d)).astype(bool)


_NAMES = {"watershed": "classical", "components": "classical-components",
          "hough": "classical-hough", "distance_peaks": "classical-distance"}
#: options a factory accepts and ignores (meaningful for nets only)
_IGNORED_OPTIONS = frozenset({"device", "batch_size", "tile", "tile_size", "overlap", "amp", "threads"})


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
            raise SegmentationError(f"Unknown counting method '{method}'.", hint=f"choose one of: {', '.join(METHODS)}")
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
        fg, thr_fg = foreground_mask(dark)
        stained, thr_st = stain_mask(stain, fg)
        stained &= fg
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
        other = split_stained(stained, fg, stain, thr_st, params)
        timings["stained"] = time.perf_counter() - t
        check()
        yield Progress(0.55, f"red cells ({self.method})")
        t = time.perf_counter()
        rbc_mask = red_cell_mask(fg, other["wbc"], other["platelet"], d)
        rbc = instances_from_mask(rbc_mask, self.method, params)
        timings["count"] = time.perf_counter() - t
        check()
        yield Progress(0.85, "markers")
        t = time.perf_counter()
        labels = {"rbc": rbc, "wbc": other["wbc"], "platelet": other["platelet"]}
        scores = {"rbc": shape_scores(rbc, params)[1], "wbc": other["wbc_scores"], "platelet": other["platelet_scores"]}
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
            "foreground_threshold": round(thr_fg, 2), "stain_threshold": round(thr_st, 2),
            "wbc_min_area_frac": WBC_MIN_AREA_FRAC, "platelet_area_frac": [PLT_MIN_AREA_FRAC, WBC_MIN_AREA_FRAC],
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
