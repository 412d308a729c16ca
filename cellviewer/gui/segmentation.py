"""Running a segmenter on the open image, off the GUI thread, and applying its result undoably.

:func:`segmenter_request` turns :class:`SegmentParams` into a segmenter name
and options for ``core.segment.create_segmenter`` (values, never widgets).
:func:`device_text` says which device a run will use without importing torch
when it is not needed (classical models always run on the CPU).

When a result replaces an image that has corrections, the saved sidecar is first copied to
``<sidecar>.replaced-<time>`` (:meth:`Session.keep_before_replace`; a lasting warning says where:
the copy's name and folder, the full path in its tooltip).
When the image was edited while the run was going on, a lasting warning says that those edits
were replaced and that Ctrl+Z brings them back (undoing the segmentation restores the maps as
they were just before it, edits made during the run included, and clears that warning).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from cellviewer.core.errors import CellviewerError
from cellviewer.core.jobs import Progress
from cellviewer.gui import notifications
from cellviewer.gui.notifications import describe
from cellviewer.gui.commands import SegmentationCommand
from cellviewer.gui.state import Observable, SegmentParams
from cellviewer.gui.statusbits import where_kept
from cellviewer.gui.workers import JobRunner

#: a run started this soon (s) after one was cancelled (the next image's) says both in its start line
CANCEL_NOTE_S = 5.0

#: counting method -> registered classical segmenter name
CLASSICAL_BY_METHOD = {"watershed": "classical", "components": "classical-components",
                       "hough": "classical-hough", "distance_peaks": "classical-distance"}
CLASSICAL = "classical"


def available_models() -> dict[str, str]:
    """Segmenter name -> description, the classical variants folded into one ``classical`` entry."""
    from cellviewer.core.segment import list_segmenters

    out = {}
    for name, desc in list_segmenters().items():
        if name in CLASSICAL_BY_METHOD.values():
            if CLASSICAL not in out:
                out[CLASSICAL] = "Colour thresholds + a counting method (no training, CPU)"
            continue
        out[name] = desc
    return out


def model_summaries() -> dict:
    """Trained model name -> :class:`cellviewer.core.modelcards.ModelSummary` (reads the cards only)."""
    from cellviewer.core.modelcards import model_summaries as summaries

    try:
        return summaries()
    except CellviewerError:
        return {}


def default_model() -> str:
    from cellviewer.core.segment import default_segmenter_name

    name = default_segmenter_name()
    return CLASSICAL if name in CLASSICAL_BY_METHOD.values() else name


def is_classical(model: str) -> bool:
    return model == CLASSICAL or model in CLASSICAL_BY_METHOD.values()


def segmenter_request(p: SegmentParams, summaries: dict | None = None) -> tuple[str, dict]:
    """(segmenter name, options) for ``create_segmenter``; ``summaries`` (name -> ModelSummary,
    read from the cards when None) tells which models take ODE solver settings."""
    model = p.model or default_model()
    name = CLASSICAL_BY_METHOD.get(p.counting, CLASSICAL) if model == CLASSICAL else model
    opts: dict = {"device": p.device or "auto"}
    if p.use_um and p.um_per_px > 0:
        opts.update(diameter_um=float(p.diameter_um), um_per_px=float(p.um_per_px))
    elif p.diameter_px > 0:
        opts["diameter_px"] = float(p.diameter_px)
    if p.um_per_px > 0 and not is_classical(model):  # the calibration alone: red cells measured in µm
        opts["um_per_px"] = float(p.um_per_px)  # (morphology size prior); the scale stays estimated
    if p.tta and not is_classical(model):
        opts["tta"] = p.tta
    if not p.morphology:
        opts["morphology"] = False
    if p.ode_solver() and not is_classical(model):
        info = (model_summaries() if summaries is None else summaries).get(model)
        if info is not None and info.has_ode_solver:
            opts["solver"] = p.ode_solver()
    return name, opts


def calibrated(job, um_per_px: float | None):
    """``job`` (a segmentation), its result recording the image's calibration ``um_per_px`` when the segmenter did
    not (a classical one: its scale stays estimated per image as the panel says, and the document — its report's
    sizes in µm — gets the calibration, as ``cellviewer analyze --um-per-px`` gives it)."""
    result = yield from job
    if um_per_px and not result.params.get("um_per_px"):
        result.params["um_per_px"] = float(um_per_px)
    return result


def morphology_label(card: dict, um_per_px: float | None) -> str:
    """What ``provenance.params["morphology"]`` says of the morphology model of ``card`` (as a segmentation
    records it: ``"rbc-morphology 2"``, ``+ size prior at 0.1 µm/px`` when its size prior was used)."""
    from cellviewer.core.morphology import uses_size_prior

    sized = f" + size prior at {um_per_px:g} µm/px" if uses_size_prior(card, um_per_px) else ""
    return f"{card.get('name')} {card.get('version', '1')}{sized}"


def torch_ready() -> bool:
    """torch is imported and done importing: a worker may be importing it (it is in ``sys.modules`` from the
    start), and an ``import torch`` here would wait for that on the module lock — the window froze ~1 s."""
    mod = sys.modules.get("torch")
    return mod is not None and not getattr(getattr(mod, "__spec__", None), "_initializing", False)


def device_text(p: SegmentParams) -> str:
    """A short description of the device a run with ``p`` uses (for the status bar)."""
    if is_classical(p.model or default_model()):
        return "Device: CPU (classical model)"
    pref = p.device or "auto"
    if pref == "cpu":
        return "Device: CPU"
    if not torch_ready():
        return f"Device: {pref} (CUDA if available; checked when the model runs)"
    from cellviewer.core.device import describe_device, resolve_device

    try:
        return "Device: " + describe_device(resolve_device(pref))
    except CellviewerError as e:
        return f"Device: {pref} unavailable ({e.message})"


def _probe_job(pref: str):
    def make(_token):
        from cellviewer.core.device import describe_device, resolve_device

        yield Progress(0.0, "checking the device")
        return "Device: " + describe_device(resolve_device(pref))

    return make


class SegmentationController(QObject):
    """Owns the segmentation JobRunner; results become a SegmentationCommand on the document's stack."""

    applied = Signal(object)  # the SegmentationResult, after it is on the stack
    replaced = Signal()  # the masks and markers were replaced wholesale (a result, its undo or redo): ids changed
    device_text = Signal(str)  # what the status bar should say about the device

    def __init__(self, session, params: Observable, tools=None, parent=None):
        super().__init__(parent)
        self.session = session
        self.params = params
        self.tools = tools
        self.runner = JobRunner("segmentation", self)
        self.runner.finished.connect(self._on_result)
        self.runner.failed.connect(lambda exc: notifications.show_error(exc, "Segmentation"))
        self.runner.cancelled.connect(self._on_cancelled)
        self._cancel_note = None  # (text, when): a cancelled run, said again with the next run's start line
        self._target = None
        self._target_revision = 0  # the document's revision when the run started
        self._queued = False  # a run asked for while a cancelled one was still stopping
        self._dropped = False  # cancel() came after the job ended: its result, still on its way, is not applied
        self.classes_runner = JobRunner("red-cell classes", self)
        self.classes_runner.finished.connect(self._on_classes)
        self.classes_runner.failed.connect(lambda exc: notifications.show_error(exc, "Red-cell classes"))
        self._classes_for = None  # (document, calibration) the running classification is for
        self._warned_um: set = set()  # calibrations already warned about with a dialog
        self.runner.running_changed.connect(self._start_queued)
        self.probe = JobRunner("device check", self)
        self.probe.finished.connect(lambda text: self.device_text.emit(str(text)))
        self.probe.failed.connect(lambda e: self.device_text.emit(f"Device: unavailable — {describe(e)[0]}"))
        self.params.changed.connect(lambda names: names & {"model", "device"} and self.update_device())

    def update_device(self) -> None:
        """Say which device runs the model; resolving CUDA (importing torch) happens in a worker."""
        p = self.params.value
        if is_classical(p.model or default_model()) or p.device == "cpu" or torch_ready():
            self.device_text.emit(device_text(p))
            return
        self.device_text.emit(f"Device: {p.device} (checking…)")
        if not self.probe.is_running:
            self.probe.start(_probe_job(p.device))

    def run(self, confirm: bool = True) -> bool:
        doc = self.session.doc
        if doc is None:
            notifications.status("Open an image first.")
            return False
        if self.runner.is_running:
            if self.runner.cancelling:  # e.g. the next image opened while the last one was segmenting
                self._queued = True
                notifications.status("Segmenting as soon as the cancelled run has stopped…", 3000)
                return True
            notifications.status("Segmentation is already running — wait for it or cancel it (Esc).")
            return False
        if confirm and doc.n_manual_edits and not notifications.ask(
                "Run segmentation again?",
                f"This image has {doc.n_manual_edits} manual correction(s). A new segmentation replaces the "
                "masks and markers (you can undo it with Ctrl+Z). Continue?"):
            return False
        name, opts = self.segmenter_request()
        pixels = doc.image.pixels
        self._target, self._target_revision = doc, doc.revision
        um = float(self.params.value.um_per_px) or None

        def make_job(token):
            from cellviewer.core.segment import create_segmenter

            return calibrated(create_segmenter(name, **opts).segment(pixels, token), um)

        started = self.runner.start(make_job, "segmentation")
        if started:
            self._dropped = False
        note, self._cancel_note = self._cancel_note, None
        note = note[0] if note is not None and time.monotonic() - note[1] < CANCEL_NOTE_S else ""
        if started:
            this = Path(doc.image.info.path).name if doc.image.info.path else "this image"
            notifications.status(f"{note} — segmenting {this} with {name}…" if note else f"Segmenting with {name}…",
                                 8000 if note else 3000)
        return started

    def _on_cancelled(self) -> None:
        """A run stopped on Cancel, or because another image was opened: the status bar says so; when a run
        starts right after (the next image's), its start line says both (:data:`CANCEL_NOTE_S`)."""
        info = getattr(getattr(self._target, "image", None), "info", None)
        name = Path(info.path).name if info is not None and info.path else ""
        text = f"Segmentation of {name} cancelled" if name else "Segmentation cancelled"
        self._cancel_note = (text, time.monotonic())
        notifications.status(text + ".", 8000)

    def segmenter_request(self) -> tuple[str, dict]:
        return segmenter_request(self.params.value)

    def cancel(self) -> bool:
        self._queued = False
        cancelled = self.runner.cancel()
        self._dropped = self._dropped or cancelled  # a result already on its way is not applied either
        return cancelled

    def reclassify(self) -> bool:
        """Classify the red cells again on the current masks and markers, with the calibration now set and the
        active morphology model; classes set by hand stay. One undoable edit; the corrections are kept."""
        doc = self.session.doc
        d = (doc.provenance.params or {}).get("diameter_px") if doc is not None else None
        if doc is None or not d:
            notifications.status("Segment the image with a trained model first (it gives the red-cell size).")
            return False
        if not doc.labels["rbc"].any():
            notifications.status("No red cell with an outline to classify (a marker placed by hand has none).")
            return False
        if self.runner.is_running or self.classes_runner.is_running:
            notifications.status("Wait for the running segmentation or classification to end.")
            return False
        from dataclasses import replace

        um = float(self.params.value.um_per_px) or None
        pixels, markers, labels = doc.image.pixels, [replace(m) for m in doc.markers.values()], doc.labels["rbc"].copy()
        self._classes_for = (doc, um, labels, _red_cell_markers(markers))

        device = self.params.value.device or "auto"

        def make_job(token):
            from cellviewer.core.device import resolve_device
            from cellviewer.core.morphology import load_model, reclassify_job

            dev = resolve_device(device)
            classes = yield from reclassify_job(pixels, markers, labels, float(d), um, dev, token)
            return classes, morphology_label(load_model(device=dev)[1], um)  # (cached: the model it used)

        return self.classes_runner.start(make_job, "red-cell classes")

    def _on_classes(self, result) -> None:
        classes, model = result
        doc, um, labels, rbcs = self._classes_for or (None, None, None, None)
        if doc is None or doc is not self.session.doc:
            notifications.status("Red-cell classes discarded: the image was closed.")
            return
        if _red_cell_markers(doc.markers.values()) != rbcs or not np.array_equal(doc.labels["rbc"], labels):
            # the classes were made for cells that have changed since (an edit, an undo): by marker id they
            # would land on other cells
            notifications.status("Red-cell classes discarded: the red cells were edited while they were being "
                                 "classified — use Classify red cells again (Ctrl+Shift+C) once more.", 10000)
            return
        from cellviewer.core import edits
        from cellviewer.core.errors import EditError
        from cellviewer.gui.commands import EditCommand

        try:  # the calibration goes with the classes (undoable): the differential shows µm at it
            edit = edits.set_morphologies(doc, classes, detail=f"calibration {um:g} µm/px" if um else "no calibration",
                                          um_per_px=um, morphology=model)  # the report names the model used
        except EditError as e:
            notifications.status(e.message)
            return
        self.session.stack.push(EditCommand(doc, edit))
        n = sum(1 for a in edit.atoms if isinstance(a, edits.MarkerChange))
        notifications.status(f"Red-cell classes: {n} changed" + (f" (size prior at {um:g} µm/px)" if um else ""), 8000)
        if um:
            from cellviewer.core.sizeprior import calibration_warning

            self._warn_calibration(calibration_warning(doc.labels["rbc"], um), um)

    def _warn_calibration(self, text: str | None, um) -> None:
        """An implausible calibration (e.g. kept from another microscope): a dialog the first time for that value,
        the status bar after that."""
        if not text:
            return
        if um in self._warned_um:
            notifications.warn("Calibration: " + text, 20000)
            return
        self._warned_um.add(um)
        from cellviewer.core.errors import CellviewerError

        notifications.show_error(CellviewerError(text[0].upper() + text[1:] + ".",
                                                 hint="set the Segmentation panel's Calibration to this camera's "
                                                      "µm per pixel (unknown: 0), then Classify red cells again"),
                                 "Calibration")

    def _start_queued(self, running: bool) -> None:
        if not running and self._queued:
            self._queued = False
            QTimer.singleShot(0, lambda: self.run(confirm=False))

    def _on_replaced(self) -> None:
        """A result was applied, undone or redone: save soon; half-done picks by cell or marker id (a merge's first
        cell, a dragged marker, the review queue's current cell) now name other cells (:attr:`replaced`)."""
        self.session.save_soon()
        self.replaced.emit()

    def _on_result(self, result) -> None:
        doc = self.session.doc
        if self._dropped:  # cancelled after the job ended but before its result came (e.g. another image opened)
            self._dropped = False
            self._on_cancelled()
            return
        if doc is None or doc is not self._target:
            notifications.status("Segmentation result discarded: the image was closed.")
            return
        if self.tools is not None:
            self.tools.finish_active()
        edited_meanwhile = doc.revision != self._target_revision
        kept = self.session.keep_before_replace()  # the corrections it replaces: saved, and copied aside
        cmd = SegmentationCommand(doc, result, on_replaced=self._on_replaced)
        self.session.stack.push(cmd)
        counts = doc.counts()
        notifications.status(f"Segmentation done ({result.model_name}, {result.device}): "
                             + ", ".join(f"{k} {v}" for k, v in counts.items())
                             + (f" — replaced corrections kept as {kept.name}" if kept else ""),
                             20000 if kept else 8000)
        kept_tip = f"The corrections it replaced were saved and kept as:\n{kept}" if kept else ""
        if edited_meanwhile:
            name = self.session.path.name if self.session.path is not None else "the image"
            token = notifications.lasting(
                "Edits made during the run were replaced — Ctrl+Z brings them back",
                f"{name}: the edits made while the segmentation ran were replaced by its result — "
                "Undo (Ctrl+Z) brings them back." + ("\n\n" + kept_tip if kept_tip else ""))
            cmd.after_undo = lambda: notifications.clear_lasting(token)  # the undo that brings them back
        elif kept:
            notifications.lasting("Old corrections kept as " + where_kept(kept), kept_tip)
        if result.params.get("fallback"):  # out of memory: smaller tiles / the CPU were used (core.oom)
            notifications.warn("Segmentation: " + "; ".join(result.params["fallback"]), 15000)
        self._warn_calibration(result.params.get("calibration_warning"), result.params.get("um_per_px"))
        self.applied.emit(result)


def _red_cell_markers(markers) -> dict:
    """What the red-cell classes of a Classify again depend on: each red-cell marker's cell and place."""
    return {m.id: (m.cell, m.x, m.y) for m in markers if m.cls == "rbc"}
