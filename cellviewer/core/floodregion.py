"""The 4-connected region under a click, found on growing crops around it (``operations.fill``): its cost
follows the region, not the image — a hole in a cell: well under a millisecond on a 48 MP field, where labelling
the whole layer took 0.5 s. numpy + OpenCV only."""

from __future__ import annotations

import cv2
import numpy as np

BBox = tuple[int, int, int, int]

#: fill floods a crop around the click first, this many px each side of it; a region that reaches the crop's
#: edge inside the image is flooded again on a larger crop (twice the side, up to the whole image), so its
#: cost follows the filled region, not the image (a hole in a cell: well under a millisecond on 48 MP)
FILL_CROP_HALF = 128


def _clip_box(y0: int, x0: int, y1: int, x1: int, h: int, w: int) -> BBox:
    return (max(0, y0), max(0, x0), min(h, y1), min(w, x1))


def _fill_crops(h: int, w: int, x: int, y: int, toward_edge: bool):
    """The crops :func:`flood_region` tries, smallest first, each twice the side of the one before; the last
    one is the whole image. With ``toward_edge`` all but the first reach to the image edge nearest the click:
    an open background region touches that edge in a crop far smaller than the image (refused at once)."""
    half = max(1, int(FILL_CROP_HALF))
    last = _clip_box(y - half, x - half, y + half + 1, x + half + 1, h, w)
    yield last
    side = min((y, 0), (h - 1 - y, 2), (x, 1), (w - 1 - x, 3))[1]  # the BBox index of the nearest edge
    while last != (0, 0, h, w):
        box = list(_clip_box(y - half, x - half, y + half + 1, x + half + 1, h, w))
        if toward_edge:
            box[side] = (0, 0, h, w)[side]
        half *= 2
        if tuple(box) != last:
            last = tuple(box)
            yield last


def flood_region(layer: np.ndarray, x: int, y: int, refuse_open: bool) -> tuple[BBox, np.ndarray] | None:
    """The 4-connected region of ``layer[y, x]``'s value holding (x, y): its bounding box (y0, x0, y1, x1)
    and its mask on that box. With ``refuse_open``, None when the region touches the image border, found
    as soon as a crop shows it (the region flooded in a crop is part of the whole region).

    Each crop is flooded with ``cv2.floodFill`` (cost: the region in the crop, plus the crop's mask); the
    result is final when the region does not reach an edge of the crop that lies inside the image (leaving
    the crop, a 4-connected region crosses such an edge)."""
    h, w = layer.shape
    src = layer[y, x]
    direct = layer.dtype == np.int32 and layer.flags.writeable  # else a 0/1 copy of each crop is flooded
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    for y0, x0, y1, x1 in _fill_crops(h, w, x, y, refuse_open):
        view = layer[y0:y1, x0:x1]
        if not direct:
            view = (view == src).view(np.uint8)
        mask = np.zeros((y1 - y0 + 2, x1 - x0 + 2), np.uint8)
        _, _, _, (rx, ry, rw, rh) = cv2.floodFill(view, mask, (x - x0, y - y0), 0, 0, 0, flags)
        box = (y0 + ry, x0 + rx, y0 + ry + rh, x0 + rx + rw)
        if refuse_open and (box[0] == 0 or box[1] == 0 or box[2] == h or box[3] == w):
            return None
        if ((box[0] == y0 and y0 > 0) or (box[1] == x0 and x0 > 0) or (box[2] == y1 and y1 < h)
                or (box[3] == x1 and x1 < w)):
            continue  # it may go on outside this crop
        return box, mask[1 + ry : 1 + ry + rh, 1 + rx : 1 + rx + rw] != 0
    raise AssertionError("the last crop is the whole image")  # pragma: no cover
