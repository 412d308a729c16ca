"""Weak pixel labels from boxes: a class map and an edge target for training on box datasets.

:func:`weak_labels`: a cell's mask is the ellipse inscribed in its box — blood cells are
round to oval, so this is close to the true outline for tight boxes. The class map holds 1 rbc, 2 wbc, 3 platelet (drawn in that
order: a WBC covers the red cells its loose box overlaps, a platelet lying on a red
cell stays visible). The **edge** target, as in DO-U-Net, is a ring of ``edge_px``
pixels just inside every ellipse plus every pixel covered by two or more ellipses,
so that ``mask − edge`` separates touching cells into one seed each. Colour
refinement of the ellipses was not used: it punched holes at the pale centres of the
red cells and did not improve counting. For ``weak`` samples (original BCCD boxes)
stained pixels that no box explains are set to :data:`IGNORE` so that unboxed cells
are not taught as background (:func:`ignore_unlabelled`). :func:`resize_classmap` resizes
a class map in register with its image. The samples come from :mod:`cellviewer.core.datasets`
(which re-exports everything here).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi

from cellviewer.core.upsample import NEAREST

#: class index of each cell class in the class map of box datasets
CLASS_INDEX = {"rbc": 1, "wbc": 2, "platelet": 3}
IGNORE = 255
_DRAW_ORDER = ("rbc", "wbc", "platelet")


def weak_labels(shape: tuple[int, int], boxes: dict[str, np.ndarray], scale: float = 1.0,
                edge_px: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """``(classmap, edge)`` uint8 maps of ``shape`` from boxes given in native pixels.

    ``scale`` maps native box coordinates to ``shape``'s pixels (so labels can be drawn
    directly at the working scale). See the module docstring for the design.
    """
    h, w = shape
    classmap = np.zeros((h, w), np.uint8)
    cover = np.zeros((h, w), np.uint8)
    ring = np.zeros((h, w), np.uint8)
    sh = 4  # cv2 sub-pixel bits
    k = 2**sh
    t = max(1, int(round(edge_px)))
    for cls in _DRAW_ORDER:
        for x0, y0, x1, y1 in np.asarray(boxes.get(cls, np.zeros((0, 4))), float).reshape(-1, 4) * scale:
            c = (int(round((x0 + x1) / 2 * k)), int(round((y0 + y1) / 2 * k)))
            ax = (max(1, int(round((x1 - x0) / 2 * k))), max(1, int(round((y1 - y0) / 2 * k))))
            one = np.zeros((h, w), np.uint8)
            cv2.ellipse(one, c, ax, 0, 0, 360, 1, -1, cv2.LINE_8, sh)
            if not one.any():
                continue
            classmap[one > 0] = CLASS_INDEX[cls]
            cover += one
            inner = cv2.erode(one, np.ones((2 * t + 1, 2 * t + 1), np.uint8), borderValue=1)
            ring |= one & (inner == 0)
    edge = ((ring > 0) | (cover >= 2)).astype(np.uint8)
    return classmap, edge


def resize_classmap(classmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A class map resized to ``size`` (w, h), aligned with an image resized by ``cv2.resize``.

    Shrinking gives each output pixel the class covering most of its footprint (per-class
    ``INTER_AREA`` fractions); enlarging uses centre-aligned nearest neighbours. Both keep
    the map registered with the image to a fraction of a pixel (plain ``INTER_NEAREST`` put
    training targets half a working-scale pixel off their cells).
    """
    h, w = classmap.shape[:2]
    if (w, h) == tuple(size):
        return classmap.copy()
    if size[0] * size[1] >= w * h:
        return cv2.resize(classmap, size, interpolation=NEAREST)
    classes = np.unique(classmap)
    frac = np.stack([cv2.resize((classmap == c).astype(np.float32), size, interpolation=cv2.INTER_AREA)
                     for c in classes])
    return classes[frac.argmax(0)].astype(classmap.dtype)


def stained_foreground(image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray | None:
    """Stained pixels (cells of any class) of an RGB image, pale cell centres filled; None if flat.

    ``255 − green`` (every stain absorbs green), lightly blurred, above its Otsu threshold
    computed on values capped at the 85th percentile (so dark nuclei do not pull it up)
    and at least 12 grey levels above the background. ``valid``: the pixels of the smear (e.g. without
    :func:`blank_margin`); the statistics are taken on them only and the rest is never foreground.
    """
    from skimage.filters import threshold_otsu

    dark = 255.0 - cv2.GaussianBlur(np.ascontiguousarray(image[..., 1]).astype(np.float32), (0, 0), 1.0)
    vals = dark if valid is None else dark[valid]
    if vals.size < 16:
        return None
    cap = float(np.percentile(vals, 85))
    try:
        thr = float(threshold_otsu(np.minimum(vals, cap)))
    except ValueError:
        return None
    fg = dark > max(thr, float(np.percentile(vals, 5)) + 12.0)
    if valid is not None:  # not within 2 px of the margin either: the blur (and a shrunk copy) darken the field's
        # rim, and a dark rim closed around the field would make all its plasma "holes" to fill
        fg &= cv2.erode(valid.astype(np.uint8), np.ones((5, 5), np.uint8), borderType=cv2.BORDER_REPLICATE) > 0
    holes = ndi.binary_fill_holes(fg) & ~fg
    lab, n = ndi.label(holes)
    if n:
        small = np.bincount(lab.ravel()) <= 0.02 * fg.size
        small[0] = False
        fg |= small[lab]
    return fg


#: a pixel is blank when all its channels are at least this (white, a transparent area on white) ...
BLANK_WHITE = 247
#: ... or at most this (black: outside the microscope's field stop, padding; a phone photo's stop is 10–20 with
#: JPEG noise) ...
BLANK_BLACK = 24
#: ... or, when the smear is bright, at most this share of its brightness (the 95th percentile of each pixel's
#: brightest channel), up to :data:`BLANK_GREY_MAX`: a stop lit grey by stray light or a phone's auto exposure
#: (30–50). None of the 1340 development images changes by it: two have a black margin, the rest none.
BLANK_DARK_SHARE = 0.25
BLANK_GREY_MAX = 56
#: blank areas smaller than this fraction of the image are left alone (a glare spot, a black nucleus pixel)
BLANK_MIN_FRAC = 0.01
#: the field of view (what is not blank) must lie in one piece holding at least this share of it ...
FIELD_SHARE = 0.9
#: ... that fills at least this share of its convex hull (a round stop, bars, a frame) ...
FIELD_CONVEXITY = 0.9
#: ... and, when the margin is white, this share of its bounding box (a frame, a strip): a white smear
#: background (overexposed, or a single-cell crop on white) surrounds cells, which is no margin
FIELD_RECT = 0.97


def dark_level(brightest: np.ndarray) -> int:
    """The level at or below which a pixel is blank dark (``brightest``: each pixel's brightest channel):
    :data:`BLANK_BLACK`, or :data:`BLANK_DARK_SHARE` of the smear's brightness up to :data:`BLANK_GREY_MAX`."""
    step = max(1, int(np.sqrt(brightest.size / 250_000)))  # a sample of about 250 000 pixels is enough
    bright = float(np.percentile(brightest[::step, ::step], 95))
    return int(np.clip(BLANK_DARK_SHARE * bright, BLANK_BLACK, BLANK_GREY_MAX))


def _extreme_border(image: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Pure white or dark (:func:`dark_level`) areas touching the image border, each at least
    :data:`BLANK_MIN_FRAC` of the image, and the share of white among them; None when there is none."""
    rgb = image[..., :3]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]  # (elementwise: 5× faster than a reduction over the channels)
    white = np.minimum(np.minimum(r, g), b) >= BLANK_WHITE
    brightest = np.maximum(np.maximum(r, g), b)
    extreme = white | (brightest <= dark_level(brightest))
    if not extreme.any():
        return None
    # 4-connected components with their areas (as ndimage.label, several times faster on a large field)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(extreme.view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    edge = edge[edge > 0]
    if not len(edge):
        return None
    sizes = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
    keep = np.zeros(n, bool)
    keep[edge[sizes[edge] >= BLANK_MIN_FRAC * extreme.size]] = True
    blank = keep[lab]
    if not blank.any():
        return None
    return blank, float(np.count_nonzero(white & blank)) / float(np.count_nonzero(blank))


def field_of_view(image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(blank, hull)``: the margin outside the field of view and the field's convex hull (``uint8`` 0/1), or
    None when the field fills the image or what is blank is no margin (see :data:`FIELD_SHARE`,
    :data:`FIELD_CONVEXITY`, :data:`FIELD_RECT`)."""
    found = _extreme_border(image)
    if found is None:
        return None
    blank, white = found
    n, lab, stats, _ = cv2.connectedComponentsWithStats((~blank).view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    if n < 2:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
    k = int(np.argmax(areas))
    if areas[k] < FIELD_SHARE * areas.sum():  # cells scattered in a white background
        return None
    field = (lab == k + 1).astype(np.uint8)
    contours, _ = cv2.findContours(field, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = np.zeros_like(field)
    cv2.fillPoly(hull, [cv2.convexHull(max(contours, key=cv2.contourArea))], 1)
    if areas[k] < FIELD_CONVEXITY * int(np.count_nonzero(hull)):
        return None
    if white > 0.5 and areas[k] < FIELD_RECT * int(stats[k + 1, cv2.CC_STAT_WIDTH]) * int(stats[k + 1, cv2.CC_STAT_HEIGHT]):
        return None
    return blank, hull


def blank_margin(image: np.ndarray) -> np.ndarray | None:
    """Pixels outside the field of view (:func:`field_of_view`): pure white or pure black areas connected to the
    image border, each at least :data:`BLANK_MIN_FRAC` of it, around one convex field (a frame, the dark ring
    outside a round field of view, a transparent area flattened onto white); None when there is none."""
    found = field_of_view(image)
    return None if found is None else found[0]


#: a predicted cell with at least this share of its pixels in the blank margin is no cell (the net reads a
#: black field stop as dark cells)
BLANK_CELL_FRAC = 0.5


def drop_blank_cells(labels: dict, scores: dict, blank: np.ndarray | None) -> tuple[dict, dict, int]:
    """``labels`` / ``scores`` (per class: instance map, score per id − 1) without the cells lying mostly
    (:data:`BLANK_CELL_FRAC`) in ``blank`` (:func:`blank_margin`, same shape), ids renumbered from 1, and the
    others cut back to the field (no mask reaches into a black field stop or a white frame); and how many
    were dropped."""
    if blank is None:
        return labels, scores, 0
    dropped = 0
    labels, scores = dict(labels), dict(scores)
    for cls, lab in labels.items():
        n = int(lab.max(initial=0))
        if n == 0 or cls not in scores:
            continue
        area = np.bincount(lab.ravel(), minlength=n + 1)
        inside = np.bincount(lab[blank].ravel(), minlength=n + 1)
        bad = inside >= BLANK_CELL_FRAC * np.maximum(area, 1)
        bad[0] = False
        if inside[1:].any():
            lab = lab.copy()
            lab[blank] = 0
            labels[cls] = lab
        if not bad[1:].any():
            continue
        keep = ~bad
        keep[0] = True
        new_id = np.cumsum(keep) - 1  # 0 stays 0; kept ids 1..m
        new_id[bad] = 0
        labels[cls] = new_id[lab].astype(lab.dtype, copy=False)
        scores[cls] = np.asarray(scores[cls])[keep[1:]]
        dropped += int(bad.sum())
    return labels, scores, dropped


def ignore_unlabelled(image: np.ndarray, classmap: np.ndarray, margin_px: float = 2.0) -> np.ndarray:
    """``classmap`` with stained pixels that no box explains set to :data:`IGNORE`.

    Used for the incomplete original BCCD boxes: :func:`stained_foreground` minus every
    labelled cell grown by ``margin_px``.
    """
    fg = stained_foreground(image)
    if fg is None:
        return classmap.copy()
    r = max(1, int(round(margin_px)))
    labelled = cv2.dilate((classmap > 0).astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
    out = classmap.copy()
    out[fg & ~labelled] = IGNORE
    return out
