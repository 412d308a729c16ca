"""White-cell nucleus / cytoplasm on whole smear fields: a two-stage segmenter.

A nucleus/cytoplasm model (classes ``background, nucleus, cytoplasm``, e.g. the shipped
``wbc-nucleus-cytoplasm``) was trained on ``wbc_seg`` crops: one white cell in the middle
of a window about three red-cell diameters across. On a whole field it sees stained red
cells everywhere and calls most of them cytoplasm. :class:`WbcPartsSegmenter` therefore:

1. runs the **detector** (:data:`DETECTOR`, the default ``blood-cells`` model) on the image
   with the same options: every red cell, white cell and platelet as usual;
2. decides whether the image **is itself a WBC crop** (:func:`is_wbc_crop`): its longer
   side is at most :data:`CROP_MAX_RBC` red-cell diameters (the detector's ``diameter_px``;
   ``wbc_seg`` crops are 2.7 (d1) and 3.2 (d2) at their annotated scale, BCCD fields ≥ 4.8,
   TXL-PBC ≥ 2.7 — its PBC images are WBC crops too), or the detector's largest white cell
   covers at least :data:`DOMINANT_WBC_FRAC` of it (BCCD fields: at most 0.2). A crop is
   segmented **directly** by the parts model, exactly as before (so ``cellviewer evaluate``
   on ``wbc_seg``, which gives the annotated diameter, scores the same).
   When the diameter is given (``diameter_px`` / ``um_per_px``) and the size rule already
   holds, the detector is skipped: its diameter would be the given one, so the decision is
   the same;
3. otherwise, for each detected white cell, cuts a **context window** centred on it
   (:func:`context_window`: :data:`CONTEXT_RBC` red-cell diameters square, at least
   :data:`CONTEXT_WBC` × the cell's box — the geometry of the training crops; clipped at the
   image border), runs the parts model on it at the detector's diameter (so it is rescaled
   to the card's ``working_scale`` as in training), takes the parts-model cell that overlaps
   the detected one most, and keeps it inside the detected cell dilated by
   :data:`GROW_RBC` red-cell diameters. That region becomes the white cell's instance, and its
   nucleus / cytoplasm go into ``parts``. When the parts model finds no cell covering at least
   :data:`MIN_OVERLAP` of the detected one, the detected cell is kept unchanged, without parts
   (counted in ``params["wbc_parts"]["missing"]``).

Red cells and platelets are the detector's, untouched.

Before the detector: an image given **no diameter** whose longer side is at most
:data:`CROP_SIDE_PX` is taken as a single-cell crop and segmented directly at a red-cell
diameter of its side / :data:`CROP_RBC_ACROSS` (``params["diameter_source"] == "crop size"``).
The detector's size estimate is unreliable on crops (a few red cells, most of them cut):
on the ``wbc_seg`` test split given no diameter it sent some crops to the two stages at a far
too small scale (one d1 crop came out without a WBC, one scored Dice 0.21).

Measured (``cellviewer evaluate --model wbc-nucleus-cytoplasm --diameter estimate``, CPU):
whole-WBC Dice on the test split without → with the crop-size rule: d1 95.32 → 98.75,
d2 82.00 → 98.86 (nucleus 92.62 → 97.71 / 93.58 → 98.74, cytoplasm 89.96 → 96.11 /
70.87 → 96.50), the same as with the annotated diameter (98.75 / 98.89); validation split
(where 2.9 was chosen) d1 98.77, d2 97.70. On BCCD and TXL-PBC fields (all > 320 px) both
stages run: 25/25 + 25/25 test images, all 52 detected WBCs got parts. Give ``diameter_px``
(or ``um_per_px``) for crops larger than :data:`CROP_SIDE_PX`.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from cellviewer.core.counting import inside_points
from cellviewer.core.document import Marker
from cellviewer.core.errors import ModelLoadError
from cellviewer.core.jobs import CancelToken, Job, Progress
from cellviewer.core.segment import SegmentationResult

#: the segmenter that finds the cells of a field
DETECTOR = "blood-cells"
#: an image at most this many red-cell diameters on its longer side is a crop
CROP_MAX_RBC = 3.5
#: with no diameter given, an image whose longer side is at most this many pixels is a
#: single-cell crop (a camera field is >= 640 px; wbc_seg crops are <= 300 px; PBC's 360-px
#: crops hold 4-5 red cells across and still go through the detector) ...
CROP_SIDE_PX = 320
#: ... segmented directly with the red-cell diameter taken as its side / this (wbc_seg: 2.7 d1,
#: 3.2 d2; 2.9 chosen on the validation split among 2.7 / 2.9 / 3.1)
CROP_RBC_ACROSS = 2.9
#: ... or one whose largest detected white cell covers at least this fraction of it
DOMINANT_WBC_FRAC = 0.25
#: context window side in red-cell diameters (wbc_seg crops: 2.7 and 3.2) ...
CONTEXT_RBC = 3.0
#: ... and at least this many times the white cell's box (wbc_seg: 1.4 and 2.1)
CONTEXT_WBC = 1.4
#: the detected cell is dilated by this many red-cell diameters before clipping the parts
GROW_RBC = 0.15
#: the parts model's cell must cover this fraction of the detected cell to be used
MIN_OVERLAP = 0.3


def is_wbc_crop(shape: tuple[int, int], diameter: float, wbc: np.ndarray | None = None) -> bool:
    """True when an image of ``shape`` (with the detector's white-cell labels ``wbc``) is a WBC crop."""
    h, w = shape[:2]
    if max(h, w) <= CROP_MAX_RBC * max(float(diameter), 1e-6):
        return True
    if wbc is None or wbc.max() == 0:
        return False
    return float(np.bincount(wbc.ravel())[1:].max()) >= DOMINANT_WBC_FRAC * h * w


def context_window(mask: np.ndarray, diameter: float) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of the square window around the cell ``mask`` (clipped to the image)."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    cy, cx = (ys.min() + ys.max() + 1) / 2.0, (xs.min() + xs.max() + 1) / 2.0
    box = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    half = max(CONTEXT_RBC * diameter, CONTEXT_WBC * box) / 2.0
    y0, y1 = int(max(0, np.floor(cy - half))), int(min(h, np.ceil(cy + half)))
    x0, x1 = int(max(0, np.floor(cx - half))), int(min(w, np.ceil(cx + half)))
    return y0, y1, x0, x1


def cell_parts(det_cell: np.ndarray, crop_wbc: np.ndarray, crop_parts: np.ndarray | None,
               grow_px: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(cell mask, parts)`` within a window: the parts-model cell (labels ``crop_wbc``) that
    overlaps the detected cell ``det_cell`` most, clipped to ``det_cell`` dilated by
    ``grow_px``; None when none covers :data:`MIN_OVERLAP` of it."""
    if crop_parts is None or crop_wbc.max() == 0 or not det_cell.any():
        return None
    hits = np.bincount(crop_wbc[det_cell].ravel(), minlength=int(crop_wbc.max()) + 1)
    hits[0] = 0
    best = int(hits.argmax())
    if hits[best] < MIN_OVERLAP * det_cell.sum():
        return None
    k = 2 * max(0, int(grow_px)) + 1
    grown = cv2.dilate(det_cell.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
    cell = (crop_wbc == best) & grown
    return cell, np.where(cell, crop_parts, 0).astype(np.uint8)


def _relay(job: Job, lo: float, hi: float, label: str):
    """Run a sub-job, mapping its progress to ``lo..hi``; returns its value."""
    while True:
        try:
            p = next(job)
        except StopIteration as stop:
            return stop.value
        yield Progress(lo + (hi - lo) * float(p.fraction), f"{label}: {p.message}", note=p.note)


class WbcPartsSegmenter:
    """The two-stage segmenter of the module docstring around a parts-model checkpoint.

    ``make_parts(**overrides)`` builds the parts model's :class:`NetSegmenter` with the user's
    options (overrides: the diameter); ``options`` are those options (also given to the detector).
    """

    def __init__(self, make_parts, options: dict | None = None, detector: str = DETECTOR):
        self.options = dict(options or {})
        self.direct = make_parts()
        self._make_parts = make_parts
        self._by_diameter: dict[float, object] = {}
        self.detector_name = detector
        self._detector = None
        self.name, self.version = self.direct.name, self.direct.version
        self.classes, self.card = self.direct.classes, self.direct.card
        self.working_scale, self.device = self.direct.working_scale, self.direct.device

    def detector(self):
        """The detector segmenter, or None when it is not installed (then every image is a crop). A detector that
        is installed but cannot be loaded (a damaged file), or that is itself a parts model (a nucleus/cytoplasm
        model installed under the detector's name), is an error: the method never changes silently."""
        if self._detector is None:
            from cellviewer.core.modelfind import card_at
            from cellviewer.core.segment import create_segmenter, is_registered

            if not is_registered(self.detector_name) and card_at(self.detector_name) is None:
                self._detector = False  # not installed
            else:
                det = create_segmenter(self.detector_name, **self.options)  # ModelLoadError: said as it is
                if isinstance(det, WbcPartsSegmenter) or "nucleus" in (getattr(det, "classes", None) or ()):
                    raise ModelLoadError(
                        f"The model installed as '{self.detector_name}' is a nucleus/cytoplasm model, not the "
                        f"cell detector '{self.name}' needs",
                        hint=f"remove or rename that model (cellviewer models lists where it lies); a trained "
                             f"model takes the name of its --out unless --name is given")
                self._detector = det
        return self._detector or None

    def _own_params(self) -> dict:
        """What the parts model itself ran with, over the detector's params: its checkpoint, and its ODE
        solver settings (a NODE-UNet parts model's tolerance; none for other nets)."""
        from pathlib import Path

        out = {"checkpoint": Path(str(getattr(self.direct, "checkpoint", ""))).name or None, "solver": None}
        solver, net = getattr(self.direct, "solver", None), getattr(self.direct, "net", None)
        if solver:
            out["solver"] = dict(getattr(net, "solver", None) or {}, **solver)
        return out

    @property
    def tta(self):
        """The test-time augmentation used: the detector's (it finds the cells; the parts model gets the same
        options), the parts model's when no detector is installed."""
        return getattr(self.detector() or self.direct, "tta", None)

    @property
    def morphology(self) -> bool:
        """Whether red cells get a morphology class: the detector's (they are its cells); the parts model's
        (no red cells) when no detector is installed."""
        return bool(getattr(self.detector() or self.direct, "morphology", False))

    def _parts_at(self, diameter: float):
        key = round(float(diameter), 3)
        if key not in self._by_diameter:
            self._by_diameter[key] = self._make_parts(diameter_px=key, diameter_um=None, um_per_px=None)
        return self._by_diameter[key]

    def _direct(self, image, cancel, why: str, lo: float = 0.0):
        res = yield from _relay(self.direct.segment(image, cancel), lo, 1.0, "WBC crop")
        res.params["wbc_parts"] = {"mode": "crop", "why": why, "detector": self.detector_name}
        return res

    def _crop_prior(self, img: np.ndarray, cancel):
        """A small image with no diameter given: one cell's crop, at the crop's usual scale."""
        d = max(img.shape[:2]) / CROP_RBC_ACROSS
        res = yield from _relay(self._parts_at(d).segment(img, cancel), 0.0, 1.0, "WBC crop")
        res.params["diameter_source"] = "crop size"
        res.params["wbc_parts"] = {"mode": "crop", "why": f"no diameter given and the image is at most "
                                   f"{CROP_SIDE_PX} px: a single-cell crop {CROP_RBC_ACROSS} red cells across",
                                   "detector": self.detector_name}
        if not res.labels["wbc"].any():  # a small field of several cells, not one cell's crop: say what to do
            note = (f"No white cell found: an image at most {CROP_SIDE_PX} px with no red-cell diameter given is "
                    f"taken as one white cell's crop ({CROP_RBC_ACROSS} red cells across). If it is a field of "
                    f"several cells, give the red-cell diameter (Cell diameter; --diameter-px).")
            res.params["notes"] = list(res.params.get("notes") or []) + [note]
            yield Progress(1.0, "WBC crop: no white cell", note=note)
        return res

    def segment(self, image: np.ndarray, cancel: CancelToken | None = None) -> Job[SegmentationResult]:
        img = np.asarray(image)
        given = self.direct.diameter_px
        if img.ndim != 3 or (given is not None and is_wbc_crop(img.shape, given)):
            return (yield from self._direct(img, cancel, "size"))
        if given is None and max(img.shape[:2]) <= CROP_SIDE_PX:
            return (yield from self._crop_prior(img, cancel))
        det_seg = self.detector()
        if det_seg is None:
            return (yield from self._direct(img, cancel, f"no detector '{self.detector_name}'"))
        det = yield from _relay(det_seg.segment(img, cancel), 0.0, 0.5, "cells")
        d = float(det.params.get("diameter_px") or given or self.working_scale)
        wbc = det.labels["wbc"]
        if is_wbc_crop(img.shape, d, wbc):
            return (yield from self._direct(img, cancel, "size or dominant WBC", 0.5))
        return (yield from self._fields(img, det, d, cancel))

    def _fields(self, img: np.ndarray, det: SegmentationResult, d: float, cancel):
        t0 = time.perf_counter()
        h, w = img.shape[:2]
        wbc = det.labels["wbc"].copy()
        parts = np.zeros((h, w), np.uint8)
        seg = self._parts_at(d)
        ids = [int(i) for i in np.unique(wbc) if i]
        missing = 0
        for k, cid in enumerate(ids):
            if cancel is not None:
                cancel.check()
            y0, y1, x0, x1 = context_window(wbc == cid, d)
            crop = np.ascontiguousarray(img[y0:y1, x0:x1, :3])
            lo = 0.5 + 0.45 * k / len(ids)
            sub = yield from _relay(seg.segment(crop, cancel), lo, lo + 0.45 / len(ids), f"WBC {k + 1}/{len(ids)}")
            win = wbc[y0:y1, x0:x1]
            got = cell_parts(win == cid, sub.labels["wbc"], sub.parts, int(round(GROW_RBC * d)))
            if got is None:
                missing += 1
                continue
            cell, cell_parts_map = got
            win[(win == cid) & ~cell] = 0
            win[cell & (win == 0)] = cid
            pw = parts[y0:y1, x0:x1]
            mine = win == cid
            pw[mine] = cell_parts_map[mine]
        labels = dict(det.labels)
        labels["wbc"] = wbc
        score = {m.cell: m.score for m in det.markers if m.cls == "wbc"}
        markers = [m for m in det.markers if m.cls != "wbc"]
        cids, ys, xs = inside_points(wbc)
        for cid, y, x in zip(cids.tolist(), ys.tolist(), xs.tolist()):
            markers.append(Marker(id=0, cls="wbc", x=float(x), y=float(y), origin="auto", cell=int(cid),
                                  score=float(score.get(int(cid), 1.0))))
        for i, m in enumerate(markers, 1):
            m.id = i
        params = dict(det.params, model=self.name, detector=det.model_name, **self._own_params(),
                      wbc_parts={"mode": "fields", "detector": self.detector_name, "cells": len(ids),
                                 "missing": missing, "context_rbc": CONTEXT_RBC, "grow_rbc": GROW_RBC,
                                 "detector_checkpoint": det.params.get("checkpoint")})
        yield Progress(1.0, "done")
        return SegmentationResult(labels=labels, markers=markers, parts=parts, model_name=self.name,
                                  model_version=self.version, params=params, device=det.device,
                                  timings=dict(det.timings, wbc_parts=time.perf_counter() - t0))


def wrap_if_parts_model(segmenter, make_parts, options: dict):
    """The registration hook: a segmenter whose classes have ``nucleus`` becomes a
    :class:`WbcPartsSegmenter`; any other is returned as it is."""
    if "nucleus" not in (getattr(segmenter, "classes", None) or []):
        return segmenter
    return WbcPartsSegmenter(lambda **o: segmenter if not o else make_parts(**o), options)
