"""Trained networks as segmenters: :class:`NetSegmenter` and the ``models/`` registry.

Pipeline of :meth:`NetSegmenter.segment` on an RGB ``uint8`` image:

1. **Scale.** The image is resized (``INTER_AREA``/linear) so that a red cell is the
   model's ``working_scale`` px across (the card's expected RBC diameter). The cell
   size in the input is ``diameter_px`` when given (or ``diameter_um`` /
   ``um_per_px``); otherwise it is estimated from the colour blobs
   (:func:`estimate_rbc_diameter`, distance-transform peaks of the stained blobs
   calibrated to box size). With ``refine_scale`` (default) the predicted red cells
   are measured and, when their median size is off by more than 10 %
   (:data:`REFINE_TOLERANCE`, relative to the card's ``postprocess.rbc_measured_to_box``),
   the image is rescaled and predicted once more.
2. **Predict**, after the card's ``preprocessing.steps`` (:mod:`cellviewer.nets.preprocess`,
   e.g. NODE-UNet's CLAHE on Y), with :func:`cellviewer.core.tiling.iter_tiled` (``inference_mode``,
   ``channels_last``, fp16 autocast on CUDA). An image that is at most
   :data:`SINGLE_TILE_MAX_PX` at the working scale (a 2592×1944 field is ~0.45 MP) runs
   as ONE tile — no overlap recomputed, no seams; larger ones in overlapping
   ``tile``-px tiles (default 1024), cosine-blended, batched. The card's ``inference``
   may ask for a mirrored margin (``border_pad``, in RBC diameters: the image border then
   looks as it did in the training crops, whose outside is reflected) and for test-time
   augmentation (``tta``: ``flips`` / ``d4``, :mod:`cellviewer.core.tta`); both can be
   overridden per segmenter.
3. **Instances** per class at the working scale (:func:`cellviewer.core.instances.instances_from_probs`):
   class = argmax of the softmax; *seeds* = class mask − edge (edge probability ≥ 0.5),
   small seeds dropped; a watershed on the edge probability grows the seeds back to
   the whole class mask (DO-U-Net's separation of touching cells) for the classes in
   :data:`SEPARATE` (red and white cells); platelets, which rarely touch, are connected
   components (this counted better on the val split). Models without an edge head use
   ``method`` from :mod:`cellviewer.core.counting` instead. Models with
   nucleus/cytoplasm classes give WBC instances (nucleus ∪ cytoplasm, split by their nuclei
   when the card's ``postprocess.split_by_nuclei`` asks) and ``parts``.
4. Labels are resized back to the input size with smooth outlines (:mod:`cellviewer.core.upsample`:
   nearest labels, outlines from the bilinearly enlarged class margin), one marker per
   cell at an interior point; a cell's **score** is the mean probability of its class over its
   pixels.

Every ``*.json`` card found in ``sys._MEIPASS/models`` (a PyInstaller bundle),
``<repo>/models`` and ``$CELLVIEWER_HOME/models`` (user store; default
``~/.local/share/cellviewer/models``) is registered under the card's ``name`` (later
folders win). Nets are loaded lazily and cached per (file, device). A nucleus/cytoplasm
card is registered as :class:`cellviewer.core.wbcparts.WbcPartsSegmenter` (the detector on
whole fields, the parts model on each white cell's window; WBC crops directly). The search
and the factories live in :mod:`cellviewer.core.modelfind`.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from cellviewer.core.cellsize import (ESTIMATE_TO_BOX, FALLBACK_DIAMETER_PX,  # noqa: F401 (re-exported)
                                     estimate_rbc_diameter, measured_rbc_diameter)
from cellviewer.core.counting import inside_points
from cellviewer.core.document import Marker
from cellviewer.core.errors import SegmentationError
from cellviewer.core.instances import (MIN_FRACS, SEPARATE, instances_from_probs,  # noqa: F401 (re-exported)
                                       softmax_np)
from cellviewer.core.jobs import CancelToken, Job, Progress
from cellviewer.core.modelcards import apply_solver
from cellviewer.core.oom import FallbackLog
from cellviewer.core.scale import diameter_from
from cellviewer.core.segment import SegmentationResult, check_rgb
from cellviewer.core.tta import averaged as tta_averaged, transforms as tta_transforms
from cellviewer.core.upsample import NEAREST, class_margin, resize_labels
from cellviewer.core.weaklabels import blank_margin, drop_blank_cells

#: a second pass is run when the predicted red cells are off-size by more than this
REFINE_TOLERANCE = 0.1
#: an image whose red cells are enlarged this much or more for the net gets a note (slow, approximate outlines)
ENLARGE_NOTE_AT = 2.5
#: images up to this many pixels at the working scale are predicted as one tile
SINGLE_TILE_MAX_PX = 4_000_000
_CACHE: dict[tuple[str, str], tuple[object, dict]] = {}
_LOCK = threading.Lock()


# -- the segmenter ----------------------------------------------------------------------------
def _load(stem: str, device: str):
    from cellviewer.nets.checkpoint import load_checkpoint

    key = (str(stem), device)
    with _LOCK:
        if key not in _CACHE:
            net, card = load_checkpoint(stem, device)
            from cellviewer.nets.fuse import fold_batch_norms

            fold_batch_norms(net)  # inference only: the same outputs, ~15 % less CPU time
            if device == "cpu" or device.startswith("cuda"):  # ~1.5× faster convolutions (see tiling)
                import torch

                net = net.to(memory_format=torch.channels_last)
            _CACHE[key] = net, card
        return _CACHE[key]


def enlarge_note(d: float, s: float, size: tuple[int, int], working_scale: float, views: int) -> str:
    """What the user should know when red cells of ``d`` px are enlarged ``s`` times for the net."""
    text = (f"red cells of {d:.1f} px are enlarged {s:.1f}× to the model's working scale ({working_scale:g} px; "
            f"{size[0]}×{size[1]} px): outlines of cells this small are approximate, and it takes about "
            f"{s * s:.0f}× as long as at the working scale")
    if views > 1:
        text += f"; without test-time augmentation (--tta none / Test-time augm. 'none') it is {views}× faster"
    return text


class NetSegmenter:
    """A trained network behind the :class:`~cellviewer.core.segment.Segmenter` protocol.

    Options: ``device`` ("auto" = cuda, then mps, then cpu), ``diameter_px`` /
    ``diameter_um`` + ``um_per_px`` (RBC size in the input; estimated when absent), ``um_per_px``
    alone (the image's calibration: the scale is still estimated; red cells are measured in µm for
    the morphology model's size prior, :mod:`cellviewer.core.sizeprior`),
    ``refine_scale`` (second pass when the predicted cells are off-size), ``tile`` /
    ``overlap`` / ``batch_size`` (tiling at the working scale), ``method``
    ("edge-watershed", or a :data:`cellviewer.core.counting.METHODS` name for red cells),
    ``threads`` (torch CPU threads; None leaves torch's setting), ``solver`` (ODE nets such as
    NODE-UNet: ``{"method", "rtol", "atol", "step_size"}`` for this segmenter's runs; ignored by other nets),
    ``morphology`` (give each red cell a morphology class, :mod:`cellviewer.core.morphology`, when
    that model is installed; default on).
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str = "auto", diameter_px: float | None = None,
                 diameter_um: float | None = None, um_per_px: float | None = None, refine_scale: bool = True,
                 tile: int = 1024, overlap: int = 48, batch_size: int = 2, method: str | None = None,
                 threads: int | None = None, solver: dict | None = None, tta: str | None = None,
                 border_pad: float | None = None, morphology: bool = True, **_ignored):
        from cellviewer.core.device import resolve_device

        ck = str(checkpoint)
        self.checkpoint = str(Path(ck).with_suffix("")) if ck.endswith((".json", ".safetensors")) else ck
        self.device = resolve_device(device)
        # the scale is fixed by a diameter in px, or in µm with the calibration; a calibration alone
        # leaves it to the estimate (it measures red cells in µm for the morphology size prior)
        self.diameter_px = diameter_from(diameter_px, diameter_um, um_per_px) if (
            diameter_px is not None or (diameter_um is not None and um_per_px is not None)) else None
        if um_per_px is not None and not (math.isfinite(float(um_per_px)) and float(um_per_px) > 0):
            raise SegmentationError(f"µm per pixel must be positive, got {um_per_px!r}.",
                                    hint="give the pixel size of the camera (e.g. 0.17), or leave it out")
        self.um_per_px = None if um_per_px is None else float(um_per_px)
        self.refine_scale = refine_scale
        self.tile, self.overlap, self.batch_size = int(tile), int(overlap), int(batch_size)
        self.threads = threads
        self.net, self.card = _load(self.checkpoint, self.device)
        self.name = str(self.card.get("name") or Path(self.checkpoint).name)
        self.version = str(self.card.get("version", "1"))
        self.classes = list(self.card.get("classes") or ["background", "rbc", "wbc", "platelet"])
        self.working_scale = float(self.card.get("working_scale") or 32.0)
        post = self.card.get("postprocess") or {}
        self.method = method or post.get("method", "edge-watershed")
        #: predicted RBC equivalent diameter / annotated box size, at the right scale
        self.measured_to_box = float(post.get("rbc_measured_to_box", 1.0))
        #: smallest seed/cell per class and smallest border-cut cell (fractions of an RBC's area)
        self.fracs = {c: tuple(v) for c, v in (post.get("min_fracs") or {}).items()}
        self.border_fracs = {c: float(v) for c, v in (post.get("border_fracs") or {}).items()}
        #: parts models: split white cells holding nuclei of different cells (core.instances.split_by_nuclei)
        self.nucleus_split = post.get("split_by_nuclei")
        #: small pieces lying against other cells merged into them, per class (core.instances.merge_fragments)
        self.merge = {c: tuple(v) for c, v in (post.get("merge_fragments") or {}).items()}
        self.edge_threshold = {c: float(v) for c, v in (post.get("edge_threshold") or {}).items()}  # seeds: edge_p below
        self.solver = dict(solver or {}) if hasattr(self.net, "set_solver") else {}  # set per run, then restored
        #: reflect-pad the input by this many RBC diameters (its edge then looks as in training crops)
        self.border_pad = float((self.card.get("inference") or {}).get("border_pad", 0.0) if border_pad is None
                                else border_pad)
        self.tta = tta or (self.card.get("inference") or {}).get("tta", "none")  # core.tta mode
        #: classify each red cell's morphology (core.morphology) when that model is installed
        self.morphology = bool(morphology) and "rbc" in self.classes
        tta_transforms(self.tta)  # an unknown mode fails here, not mid-run
        from cellviewer.nets.preprocess import card_steps

        self.preprocess = card_steps(self.card)  # e.g. NODE-UNet's CLAHE, applied in predict (ValueError: unknown)

    def predict(self, image_small: np.ndarray, cancel: CancelToken | None = None, log=None) -> Job[tuple]:
        """Long job: ``(probs C×H×W, edge_p H×W or None)`` of an image at the working scale. Out of
        memory: smaller tiles, then the CPU (:mod:`cellviewer.core.oom`; the steps go to ``log``)."""
        from cellviewer.core.oom import predict_with_fallback
        from cellviewer.core.tiling import crop_margin, iter_tiled, mirror_margin

        if self.preprocess:
            from cellviewer.nets.preprocess import apply_steps

            image_small = apply_steps(np.ascontiguousarray(image_small), self.preprocess)
        # mirrored context, as the training crops saw beyond the image edge
        image_small, pad = mirror_margin(image_small, self.border_pad * self.working_scale)
        h, w = image_small.shape[:2]
        first_tile = max(h, w) if h * w <= SINGLE_TILE_MAX_PX else self.tile

        def run(img: np.ndarray, tile: int, batch: int, device: str):
            net = self.net if device == self.device else _load(self.checkpoint, device)[0]
            old = apply_solver(net, self.solver)  # the net is shared (cached): restore its solver after
            try:
                return (yield from iter_tiled(net, img, tile=tile, overlap=self.overlap, batch_size=batch,
                                              device=device, cancel=cancel, channels_last=device != "mps"))
            finally:
                apply_solver(net, old)

        def one_view(img: np.ndarray):
            return predict_with_fallback(lambda t, b, d: run(img, t, b, d), first_tile, self.batch_size,
                                         self.device, log)

        out = yield from tta_averaged(one_view, image_small, self.tta)  # one view unless the card asks for more
        out = crop_margin(out, pad)
        if "mask" not in out:
            raise SegmentationError(f"Model '{self.name}' gave no 'mask' output.", hint="check the model card")
        probs = softmax_np(out["mask"])
        edge = out.get("edge")
        return probs, (None if edge is None else 1.0 / (1.0 + np.exp(-edge[0])))

    def segment(self, image: np.ndarray, cancel: CancelToken | None = None) -> Job[SegmentationResult]:
        img = np.asarray(image)
        check_rgb(img)
        img = np.ascontiguousarray(img[..., :3])
        if img.dtype != np.uint8:
            img = np.clip(img, 0, 255).astype(np.uint8)
        if self.threads:
            import torch

            torch.set_num_threads(int(self.threads))
        timings: dict[str, float] = {}
        oom = FallbackLog()  # out-of-memory fallbacks taken (smaller tiles, CPU), for the result
        t0 = time.perf_counter()
        yield Progress(0.0, "cell size")
        if self.diameter_px is not None:
            d, source = float(self.diameter_px), "given"
        else:
            d, source = estimate_rbc_diameter(img)
        timings["scale"] = time.perf_counter() - t0
        h, w = img.shape[:2]
        passes, notes, blank_small = 0, [], None
        while True:
            passes += 1
            s = self.working_scale / d
            sw, sh = max(8, int(round(w * s))), max(8, int(round(h * s)))
            if s >= ENLARGE_NOTE_AT and not notes:
                notes.append(enlarge_note(d, s, (sw, sh), self.working_scale, len(tta_transforms(self.tta))))
                yield Progress(0.05, f"enlarged {s:.1f}×", note=notes[0])
            t = time.perf_counter()
            small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            timings["resize"] = timings.get("resize", 0.0) + time.perf_counter() - t
            t = time.perf_counter()
            job = self.predict(small, cancel, oom)
            while True:
                try:
                    p = next(job)
                except StopIteration as stop:
                    probs, edge_p = stop.value
                    break
                lo, hi = (0.1, 0.6) if passes == 1 else (0.62, 0.76)  # never backwards: a 2nd pass fits in after
                yield Progress(lo + (hi - lo) * p.fraction,
                               f"predict ({p.message})" if passes == 1 else f"predict again at the measured size ({p.message})")
            timings["predict"] = timings.get("predict", 0.0) + time.perf_counter() - t
            if cancel is not None:
                cancel.check()
            yield Progress(0.6 if passes == 1 else 0.76, "cells from the net's output")
            t = time.perf_counter()
            if "nucleus" in self.classes:  # parts: smooth outlines from probabilities at full size
                probs = np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in probs])
                labels, parts, scores = instances_from_probs(probs, None, self.classes, d, self.method,
                                                             nucleus_split=self.nucleus_split)
            else:
                labels, parts, scores = instances_from_probs(probs, edge_p, self.classes, self.working_scale,
                                                             self.method, self.fracs, self.border_fracs,
                                                             merge=self.merge, edge_threshold=self.edge_threshold)
                blank_small = blank_margin(small)
                labels, scores, _ = drop_blank_cells(labels, scores, blank_small)  # a black field stop
            timings["instances"] = timings.get("instances", 0.0) + time.perf_counter() - t
            m = (measured_rbc_diameter(labels["rbc"], blank_small)  # whole cells: not cut by a field stop either
                 if self.refine_scale and "rbc" in labels and passes == 1 and source != "given" else None)
            expected = self.working_scale * self.measured_to_box
            if m is None or abs(m / expected - 1.0) <= REFINE_TOLERANCE:
                break
            d = d * m / expected
            source = f"{source}+refined"
        yield Progress(0.8, "markers")
        t = time.perf_counter()
        out_labels: dict[str, np.ndarray] = {}
        markers: list[Marker] = []
        blank = None if blank_small is None else blank_margin(img)  # smooth outlines stay out of it too
        for k, cls in enumerate(("rbc", "wbc", "platelet")):
            yield Progress(0.8 + 0.05 * k, f"outlines at full size ({cls})")
            if cls not in labels:
                out_labels[cls] = np.zeros((h, w), np.int32)
                continue
            margin = (class_margin(probs, self.classes.index(cls))
                      if cls in self.classes and probs.shape[1:] == labels[cls].shape else None)
            lab, sc = resize_labels(labels[cls], scores[cls], (h, w), margin)  # smooth outlines (core.upsample)
            if blank is not None:
                lab = np.where(blank, 0, lab)
            out_labels[cls] = lab.astype(np.int32, copy=False)
            ids, ys, xs = inside_points(lab)
            for cid, y, x in zip(ids.tolist(), ys.tolist(), xs.tolist()):
                markers.append(Marker(id=len(markers) + 1, cls=cls, x=float(x), y=float(y), origin="auto",
                                      cell=int(cid), score=float(sc[cid - 1])))
        if parts is not None:
            parts = cv2.resize(parts, (w, h), interpolation=NEAREST) * (out_labels["wbc"] > 0)
        timings["markers"] = time.perf_counter() - t
        yield Progress(0.95, "red-cell classes")
        morph = self._classify(img, markers, d, out_labels["rbc"])
        if morph:
            timings["morphology"] = morph[1]
        timings["total"] = time.perf_counter() - t0
        params = {"model": self.name, "checkpoint": Path(self.checkpoint).name, "diameter_px": round(d, 2),
                  "diameter_source": source, "working_scale": self.working_scale, "scale": round(s, 4),
                  "method": self.method, "tta": self.tta, "tile": self.tile, "overlap": self.overlap, "passes": passes,
                  **({"solver": dict(self.net.solver, **self.solver)} if self.solver else {}),
                  **({"fallback": list(oom.notices)} if oom.notices else {}),
                  **({"notes": notes} if notes else {}),
                  **({"morphology": morph[0]} if morph else {}),
                  **({"um_per_px": self.um_per_px} if self.um_per_px else {}),
                  **({"calibration_warning": warn} if (warn := self._calibration_warning(out_labels)) else {})}
        yield Progress(1.0, "done")
        return SegmentationResult(labels=out_labels, markers=markers, parts=parts, model_name=self.name,
                                  model_version=self.version, params=params, device=oom.device or self.device,
                                  timings=timings)

    def _calibration_warning(self, labels: dict) -> str | None:
        if not self.um_per_px or "rbc" not in self.classes:
            return None
        from cellviewer.core.sizeprior import calibration_warning

        return calibration_warning(labels["rbc"], self.um_per_px)

    def _classify(self, img: np.ndarray, markers: list, d: float, rbc: np.ndarray) -> tuple[str, float] | None:
        """Red-cell morphology classes on ``markers`` (in place; not for cells cut by the image edge, ``rbc``
        labels); ``(model name + version, seconds)``, or None when off or when no morphology model is installed."""
        from cellviewer.core import morphology

        if not self.morphology or not any(m.cls == "rbc" for m in markers):
            return None
        card = morphology.find_card()
        if card is None:
            return None
        t = time.perf_counter()
        model = morphology.load_model(card, device=self.device)
        morphology.classify_cells(img, markers, d, model=model, device=self.device, labels=rbc,
                                  um_per_px=self.um_per_px)
        sized = (f" + size prior at {self.um_per_px:g} µm/px"
                 if morphology.uses_size_prior(model[1], self.um_per_px) else "")
        return f"{model[1].get('name')} {model[1].get('version', '1')}{sized}", time.perf_counter() - t


# -- the registry of model cards (core.modelfind; re-exported here) -----------------------------
from cellviewer.core.modelfind import (_factory, card_at, find_models, model_dirs,  # noqa: E402,F401
                                       register_models, segmenter_at)

register_models()
