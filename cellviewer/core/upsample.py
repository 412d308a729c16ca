"""Label maps from the model's working scale back to the image size, with smooth outlines.

A net segments at its working scale (a red cell ~32 px across); the image may be twice as
large or more. Enlarging the label map with nearest neighbours alone gives staircase
outlines (every small pixel becomes a block). :func:`upsample_labels` instead

1. grows every cell by the background pixels next to it (4-neighbour grey dilation at the small
   scale) and enlarges that with centre-aligned nearest neighbours (``INTER_NEAREST_EXACT``):
   this says which cell a pixel may belong to;
2. keeps a pixel where the class *margin* (the class probability minus the best other
   class: > 0 where the softmax argmax made the mask), enlarged bilinearly, is positive —
   a smooth outline. Cell pixels with no background in their 3×3 neighbourhood (the
   interior, where touching cells meet, filled holes) are always kept.

3. where two cells meet (cell pixels with no background in their 3×3 neighbourhood, also
   where the net saw a thin gap between them, so no specks of background appear there),
   a 5×5 median of the enlarged labels — a majority vote of the two cells — rounds the
   nearest-neighbour steps off. Touching cells stay separated: a pixel can only move to a
   cell it touches.

A cell keeps its interior,
so no cell vanishes unless it is all outline and all below the margin;
:func:`resize_labels` drops such labels and their scores. Cost on a 2592×1944 field: about
+10 ms per class (one more bilinear resize and a multiply), +10 ms for the median.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi

#: centre-aligned nearest neighbour (cv2's plain INTER_NEAREST samples the top-left source
#: pixel and shifts the content by about half an output pixel toward the bottom right)
NEAREST = getattr(cv2, "INTER_NEAREST_EXACT", cv2.INTER_NEAREST)
_K3 = np.ones((3, 3), np.uint8)
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def class_margin(probs: np.ndarray, channel: int) -> np.ndarray:
    """``probs[channel]`` minus the largest other channel (C×H×W): > 0 where it is the argmax."""
    others = np.delete(probs, channel, axis=0)
    return (probs[channel] - others.max(0)).astype(np.float32)


def upsample_labels(lab: np.ndarray, margin: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """``lab`` (int32, small) enlarged to ``shape`` (h, w); outlines follow ``margin > 0``
    (same size as ``lab``, see :func:`class_margin`) enlarged bilinearly. Without a margin,
    or when not enlarging, plain nearest neighbours."""
    h, w = shape
    lab = np.ascontiguousarray(lab, np.int32)
    if lab.shape == (h, w):
        return lab
    if margin is None or h < lab.shape[0] or w < lab.shape[1] or not lab.any():
        return cv2.resize(lab, (w, h), interpolation=NEAREST)
    f = lab.astype(np.float32)  # exact below 2**24 labels
    hi = cv2.dilate(f, _K3, borderType=cv2.BORDER_REPLICATE)
    lo = cv2.erode(f, _K3, borderType=cv2.BORDER_REPLICATE)
    band = (hi != lo) & (lo == 0)
    # background beside a cell (4-neighbours: a diagonal one could leave specks): that cell
    grow = np.where(lab > 0, lab, cv2.dilate(f, _CROSS).astype(np.int32))
    # a cell pixel off the band is always kept: margins lie in [-1, 1] and 4 outweighs any 3
    # neighbours in a bilinear quad; a quad that holds such a pixel holds no background, so
    # outlines against the background do not move
    m = np.where((lab > 0) & ~band, np.float32(4.0), margin).astype(np.float32)
    big = cv2.resize(grow, (w, h), interpolation=NEAREST)
    big *= cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) > 0
    touch = (hi != lo) & (lo > 0)  # where two cells meet: a 5×5 majority (median) rounds the steps
    if touch.any() and hi.max() < 65536:
        near = cv2.resize(touch.view(np.uint8), (w, h), interpolation=NEAREST).view(bool)
        med = cv2.medianBlur(big.astype(np.uint16), 5)
        np.copyto(big, med, where=near & (med > 0), casting="unsafe")  # never opens a gap
    return big


def resize_labels(lab: np.ndarray, scores: np.ndarray, shape: tuple[int, int],
                  margin: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`upsample_labels` (or a nearest shrink), then drop labels that vanished and their
    ``scores`` (``scores[i]`` belongs to label ``i + 1``); labels stay 1..n."""
    h, w = shape
    n = len(scores)
    lab = np.ascontiguousarray(lab, np.int32)
    if h >= lab.shape[0] and w >= lab.shape[1]:  # enlarging keeps every label but those all band
        big = upsample_labels(lab, margin, shape)
        present = np.bincount(lab.ravel(), minlength=n + 1)[: n + 1] > 0
        if margin is not None and lab.shape != (h, w):
            f = lab.astype(np.float32)
            inner = lab[(cv2.dilate(f, _K3) == cv2.erode(f, _K3)) & (lab > 0)]
            check = present & ~(np.bincount(inner, minlength=n + 1)[: n + 1] > 0)
            check[0] = False
            if check.any():  # look for them on the big map, each in its box only
                ry, rx = h / lab.shape[0], w / lab.shape[1]
                boxes = ndi.find_objects(lab, max_label=n)
                for i in np.flatnonzero(check):
                    ys, xs = boxes[i - 1]
                    y0, x0 = int(max(ys.start - 1, 0) * ry), int(max(xs.start - 1, 0) * rx)  # grown by one
                    crop = big[y0:int(np.ceil((ys.stop + 1) * ry)), x0:int(np.ceil((xs.stop + 1) * rx))]
                    present[i] = bool((crop == i).any())
    else:
        big = cv2.resize(lab, (w, h), interpolation=NEAREST)
        present = np.bincount(big.ravel(), minlength=n + 1)[: n + 1] > 0
    present[0] = False
    if present[1:].all():
        return big, scores
    lut = np.zeros(n + 1, np.int32)
    lut[present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
    return lut[big], scores[present[1:]]
