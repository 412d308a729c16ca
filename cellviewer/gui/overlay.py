"""Overlay rendering on arrays (no Qt): labels -> RGBA for any rectangle.

The canvas keeps one persistent ``H×W×4`` RGBA composite and re-renders only
the rectangle a :class:`~cellviewer.core.document.Change` touched (grown by one
pixel, because a cell's outline depends on its neighbours).

Drawing order: RBC, WBC, WBC parts, platelets (smaller cells on top). In fill
mode a cell is tinted (``FILL_ALPHA``) with an opaque outline; in outline mode
only the outline is drawn. The parts are drawn over their white cell, so their outlines also follow
the boundary between two white cells (the cut a Split makes stays visible with the parts layer shown,
whether the white-cell layer is shown or not). Cells that are not counted (``hollow``: per class, the cell ids the
document's border rule leaves out) are outlines only in fill mode too — the tint marks what
counts (a white cell's parts included).
"""

from __future__ import annotations

import numpy as np

from cellviewer.core.document import CLASS_COLORS, PART_COLORS, BBox

FILL_ALPHA = 100
PART_ALPHA = 120
EDGE_ALPHA = 255
ORDER = ("rbc", "wbc", "parts", "platelet")


def grow(box: BBox, pad: int, shape: tuple[int, int]) -> BBox:
    return (max(0, box[0] - pad), max(0, box[1] - pad), min(shape[0], box[2] + pad), min(shape[1], box[3] + pad))


def edges(lab: np.ndarray, box: BBox) -> np.ndarray:
    """Boolean outline of the labelled cells of ``lab`` inside ``box`` (4-neighbourhood).

    A labelled pixel is an outline pixel when a 4-neighbour has another value;
    the image border counts as background.
    """
    h, w = lab.shape
    y0, x0, y1, x1 = box
    mid = lab[y0:y1, x0:x1]
    e = np.zeros(mid.shape, bool)
    if mid.size == 0:
        return e
    # compare with the real neighbours (views, no padded copy); beyond the image: background
    for axis, lo, hi, n in ((0, y0, y1, h), (1, x0, x1, w)):
        inner = (slice(1, None), slice(None)) if axis == 0 else (slice(None), slice(1, None))
        outer = (slice(None, -1), slice(None)) if axis == 0 else (slice(None), slice(None, -1))
        d = mid[inner] != mid[outer]  # neighbours inside the box, both directions
        e[inner] |= d
        e[outer] |= d
        first = (0, slice(None)) if axis == 0 else (slice(None), 0)
        last = (-1, slice(None)) if axis == 0 else (slice(None), -1)
        e[first] |= (mid[first] != lab[lo - 1, x0:x1]) if (axis == 0 and lo > 0) else (
            (mid[first] != lab[y0:y1, lo - 1]) if lo > 0 else True)
        e[last] |= (mid[last] != lab[hi, x0:x1]) if (axis == 0 and hi < n) else (
            (mid[last] != lab[y0:y1, hi]) if hi < n else True)
    return e & (mid != 0)


def _lut() -> np.ndarray:
    """Colour table indexed by the code map built in :func:`render`."""
    lut = np.zeros((16, 4), np.uint8)
    for i, key in enumerate(("rbc", "wbc", "platelet")):
        lut[1 + 2 * i] = (*CLASS_COLORS[key], FILL_ALPHA)
        lut[2 + 2 * i] = (*CLASS_COLORS[key], EDGE_ALPHA)
    for j, value in enumerate(sorted(PART_COLORS)):
        lut[7 + 2 * j] = (*PART_COLORS[value], PART_ALPHA)
        lut[8 + 2 * j] = (*PART_COLORS[value], EDGE_ALPHA)
    return lut


LUT = _lut()
_LUT32 = LUT.view(np.uint32).reshape(-1)
_CODE = {"rbc": 1, "wbc": 3, "platelet": 5}


def _occupied(lab: np.ndarray, box: BBox) -> BBox | None:
    """The part of ``box`` between the first and last labelled rows and columns; None: no label."""
    y0, x0, y1, x1 = box
    rows = np.flatnonzero(lab[y0:y1, x0:x1].any(1))
    if rows.size == 0:
        return None
    r0, r1 = y0 + int(rows[0]), y0 + int(rows[-1]) + 1
    cols = np.flatnonzero(lab[r0:r1, x0:x1].any(0))
    return r0, x0 + int(cols[0]), r1, x0 + int(cols[-1]) + 1


def _not_hollow(crop: np.ndarray, ids) -> np.ndarray:
    """Labelled pixels of ``crop`` whose cell is not in ``ids`` (the uncounted cells)."""
    fill = crop != 0
    if ids is not None and len(ids):
        fill &= ~np.isin(crop, ids)
    return fill


def render(labels: dict[str, np.ndarray], parts: np.ndarray | None, box: BBox,
           visible, outline: bool, hollow: dict | None = None) -> np.ndarray:
    """RGBA ``uint8`` of ``box`` (y0, x0, y1, x1); ``visible(key)`` says which layers to draw; ``hollow``
    (class -> cell ids) the cells drawn as outlines only."""
    hollow = hollow or {}
    y0, x0, y1, x1 = box
    code = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for key in ORDER:
        if not visible(key):
            continue
        if key == "parts":
            if parts is None:
                continue
            crop = parts[y0:y1, x0:x1]
            if not crop.any():
                continue
            e = edges(parts, box)
            wbc = labels.get("wbc")
            if wbc is not None:  # where two white cells meet (a Split's cut): outlined by the parts on top too
                sy0, sx0, sy1, sx1 = sub = _occupied(parts, box)
                e[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] |= edges(wbc, sub) & (parts[sy0:sy1, sx0:sx1] != 0)
            tint = (np.ones(crop.shape, bool) if wbc is None or not len(hollow.get("wbc", ()))
                    else ~np.isin(wbc[y0:y1, x0:x1], hollow["wbc"]))  # an uncounted white cell: no tint
            for j, value in enumerate(sorted(PART_COLORS)):
                m = crop == value
                if not outline:
                    code[m & tint] = 7 + 2 * j
                code[e & m] = 8 + 2 * j
            continue
        lab = labels.get(key)
        sub = None if lab is None else _occupied(lab, box)
        if sub is None:
            continue
        crop = lab[sub[0]:sub[2], sub[1]:sub[3]]  # sparse classes (white cells, platelets): a small box
        into = code[sub[0] - y0:sub[2] - y0, sub[1] - x0:sub[3] - x0]
        if not outline:
            into[_not_hollow(crop, hollow.get(key))] = _CODE[key]
        into[edges(lab, sub)] = _CODE[key] + 1
    return _LUT32[code].view(np.uint8).reshape(code.shape + (4,))
