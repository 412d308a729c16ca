"""Retraining from the GUI: fine-tune in a worker, then the regression gate, then Accept or Reject.

:class:`RetrainController` drives a :class:`~cellviewer.gui.panels.training.TrainingPanel`:

1. **Train** runs :func:`cellviewer.core.finetune.finetune` on the ticked reviewed images (it exports them
   into ``<run>/<name>-data``: train / val / test split) in a :class:`~cellviewer.gui.workers.JobRunner`; every
   ``TrainProgress`` is relayed to the panel's live loss and score curves. Cancel stops it at the next step.
2. **Resume** continues the last run from its latest epoch (``<out>-last``,
   :func:`cellviewer.core.training.train` with ``resume``) for one more budget.
3. After training, :func:`cellviewer.core.gate.regression_gate` scores the old and the new
   model on the export's held-out ``test`` images (worker again) and a
   :class:`~cellviewer.gui.gate_dialog.GateDialog` shows the table. **Accept** stores the
   new checkpoint as the next version in the :class:`~cellviewer.core.modelstore.ModelStore`
   (card: parent, data hashes, metrics, gate) and activates it; **Reject** deletes the run.

Runs live in ``$CELLVIEWER_HOME/training/<name>-<time>/``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from cellviewer.core.errors import CellviewerError
from cellviewer.gui import notifications
from cellviewer.gui.workers import JobRunner

STORE_PREFIX = "store:"
_REVIEWED_CACHE: dict[tuple, bool] = {}


def sidecar_reviewed(image_path) -> bool:
    """Whether the image's saved corrections are marked reviewed (reads only ``document.json``;
    remembered per sidecar file, size and modification time)."""
    from cellviewer.core.sidecar import find_sidecar

    sc = find_sidecar(image_path)
    if sc is None:
        return False
    try:
        st = sc.stat()
        key = (str(sc), st.st_mtime_ns, st.st_size)
        if key not in _REVIEWED_CACHE:
            with zipfile.ZipFile(sc) as z:
                meta = json.loads(z.read("document.json").decode("utf-8"))
            if len(_REVIEWED_CACHE) > 10000:
                _REVIEWED_CACHE.clear()
            _REVIEWED_CACHE[key] = isinstance(meta, dict) and meta.get("reviewed") is True
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return False
    return _REVIEWED_CACHE[key]


def reviewed_images(paths) -> list[Path]:
    return [Path(p) for p in paths if sidecar_reviewed(p)]


def home_dir() -> Path:
    from cellviewer.core.modelstore import default_root

    return default_root().parent


def model_choices(store) -> list[tuple[str, str]]:
    """``(key, label)`` of the models one can start from: registered nets, then every stored version."""
    from cellviewer.core.morphfinetune import morphology_base
    from cellviewer.core.morphology import MODEL_NAME
    from cellviewer.core.netsegment import find_models

    out = []
    for name, (_path, card) in sorted(find_models().items()):
        out.append((name, f"{name} (v{card.get('version', '?')})"))
    morph = morphology_base(MODEL_NAME)
    if morph is not None:
        out.append((MODEL_NAME, f"{MODEL_NAME} (v{morph[1].get('version', '?')}, red-cell morphology classes)"))
    for name in store.names():
        for v in store.versions(name):
            if v.problem:  # an unreadable card cannot be a starting point (the Model versions panel says why)
                continue
            out.append((f"{STORE_PREFIX}{name}:{v.version}",
                        f"{name} stored version {v.version}" + (" (active)" if v.active else "")))
    return out


def resolve_base(key: str, store) -> str:
    """A model key from :func:`model_choices` -> what ``finetune`` and the gate load (name or stem)."""
    if key.startswith(STORE_PREFIX):
        name, _, version = key[len(STORE_PREFIX):].rpartition(":")
        return str(store.get(name, int(version)).stem)
    return key


def run_name(key: str) -> str:
    """A folder-friendly name for a run from a model key (``store:blood-cells:2`` -> ``blood-cells-v2``)."""
    if key.startswith(STORE_PREFIX):
        name, _, version = key[len(STORE_PREFIX):].rpartition(":")
        return f"{name}-v{version}"
    return Path(key).name or "model"


def data_hashes(data_dir) -> list[str]:
    """sha256 of the train + val images of an export (what the model was trained on)."""
    import hashlib

    from cellviewer.core.export_read import load_exported

    return sorted(hashlib.sha256(Path(s.path).read_bytes()).hexdigest() for s in load_exported(data_dir)
                  if s.split in ("train", "val"))


@dataclass
class Run:
    """One fine-tuning run: where it lives and what it started from."""

    folder: Path
    out: Path  # checkpoint stem (best); ``<out>-last`` for resume
    base: str  # name or checkpoint stem
    images: list = field(default_factory=list)
    #: ``(checkpoint stem, name, version)`` the last gate compared with (``core.finetune.gate_base``): what
    #: ``base`` resolved to then — after an Accept, the version it stored — and the stored card's parent
    gated: tuple = ()
    result: object = None  # the FinetuneResult
    gate: object = None  # the GateResult


def finetune_job(run: Run, minutes, epochs, options: dict, relay, device: str = "auto"):
    """``make_job``: fine-tune in the worker (the device is resolved there: CUDA when asked for and present)."""

    def make(token):
        from cellviewer.core.device import resolve_device
        from cellviewer.core.finetune import finetune
        from cellviewer.core.morphfinetune import finetune_morphology, morphology_base

        if "device" not in options:
            options["device"] = "cuda" if device in ("auto", "cuda") and resolve_device("auto") == "cuda" else "cpu"
        tune = finetune_morphology if morphology_base(run.base) is not None else finetune
        job = tune(run.base, list(run.images), minutes=minutes, epochs=epochs, out=run.out, cancel=token, **options)
        return (yield from _relayed(job, relay))

    return make


def resume_job(run: Run, minutes, epochs, relay):
    """Continue ``run`` from ``<out>-last`` for ``epochs`` more epochs / ``minutes``."""

    def make(token):
        from dataclasses import replace

        from cellviewer.core.training import TrainConfig, train

        last = Path(f"{run.out}-last")
        card = json.loads(last.with_name(last.name + ".json").read_text(encoding="utf-8"))
        training = card.get("training") or {}
        done = int((training.get("state") or {}).get("epoch") or 0)
        cfg = TrainConfig.from_dict(dict(training.get("config") or {}))
        cfg = replace(cfg, resume=str(last), out=str(run.out), epochs=done + int(epochs or 1),
                      max_minutes=minutes, patience=int(epochs or 1) + done + 1)
        res = yield from _relayed(train(cfg, token, command=f"resume of {run.out}"), relay)
        if run.result is not None:
            return replace(run.result, checkpoint=res.checkpoint, best_score=res.best_score,
                           best_epoch=res.best_epoch, epochs_run=res.epochs_run, minutes=res.minutes,
                           stopped=res.stopped, history=res.history)
        from cellviewer.core.finetune import FinetuneResult  # the first run was cancelled before it ended

        data_dir = run.out.with_name(run.out.name + "-data")
        return FinetuneResult(res.checkpoint, res.best_score, res.best_epoch, res.epochs_run, res.minutes,
                              res.stopped, res.history, base=run.base, data_dir=str(data_dir),
                              data_hashes=data_hashes(data_dir))

    return make


def _relayed(job, relay):
    """Yield the job's progress on, handing every progress object to ``relay`` (a queued Qt signal)."""
    while True:
        try:
            p = next(job)
        except StopIteration as stop:
            return stop.value
        relay.emit(p)
        yield p


def gate_job(old: str, new: str, data_dir: str, reference_dir: str, min_gain: float):
    """The gate on the export's held-out ``test`` images (+ every image of a reference export, if any); for a
    morphology model, on their red cells' classes (:func:`cellviewer.core.morphfinetune.morphology_gate`)."""

    def make(token):
        from cellviewer.core.export_read import load_exported
        from cellviewer.core.gate import regression_gate
        from cellviewer.core.morphfinetune import morphology_base, morphology_gate

        if morphology_base(old) is not None:
            return (yield from morphology_gate(old, new, data_dir, reference_items=reference_dir or None,
                                               min_gain=min_gain, cancel=token))
        reference = load_exported(reference_dir) if reference_dir else None
        return (yield from regression_gate(old, new, data_dir, reference_items=reference, min_gain=min_gain,
                                           cancel=token))

    return make


class _Relay(QObject):
    point = Signal(object)


class RetrainController(QObject):
    trained = Signal(object)  # the FinetuneResult
    gated = Signal(object)  # the GateResult (the dialog is open)
    stored = Signal(str, str)  # name, version of an accepted model
    discarded = Signal()

    def __init__(self, panel, models_panel=None, parent=None):
        super().__init__(parent)
        self.panel = panel
        self.models_panel = models_panel
        #: extra finetune() options (e.g. steps_per_epoch, batch_size, val_limit, device); threads: leave one core
        self.options: dict = {"threads": max(1, (os.cpu_count() or 2) - 1)}
        self.device = "auto"  # the segmentation panel's device preference (auto / cpu / cuda / mps)
        self.min_gain = 0.0
        self.run: Run | None = None
        self.dialog = None
        self._relay = _Relay(self)
        self._relay.point.connect(panel.add_point)
        self.runner = JobRunner("fine-tuning", self)
        self.runner.progress.connect(panel.set_progress)
        self.runner.running_changed.connect(self._on_running)
        self.runner.finished.connect(self._on_trained)
        self.runner.failed.connect(lambda exc: notifications.show_error(exc, "Fine-tuning"))
        self.runner.cancelled.connect(self._on_cancelled)
        self.gate_runner = JobRunner("regression gate", self)
        self.gate_runner.progress.connect(lambda f, m: panel.set_progress(f, "gate: " + m))
        self.gate_runner.running_changed.connect(self._on_running)
        self.gate_runner.finished.connect(self._on_gated)
        self.gate_runner.failed.connect(lambda exc: notifications.show_error(exc, "Regression gate"))
        self.gate_runner.cancelled.connect(self._on_gate_cancelled)
        panel.cancel_requested.connect(self.cancel)
        self.refresh_models()

    @property
    def store(self):
        from cellviewer.core.modelstore import ModelStore

        return self.models_panel.store if self.models_panel is not None else ModelStore()

    @property
    def busy(self) -> bool:
        return self.runner.is_running or self.gate_runner.is_running or self.dialog is not None

    def refresh_models(self) -> None:
        try:
            self.panel.set_models(model_choices(self.store))
        except CellviewerError as e:
            notifications.show_error(e, "Models")

    # -- training ----------------------------------------------------------------------------
    def start(self, images, resume: bool = False) -> bool:
        """Fine-tune on ``images`` (reviewed image paths) with the panel's model and budget; or resume."""
        if self.busy:
            notifications.status("A retraining is still running or waiting for Accept / Reject.")
            return False
        p = self.panel.params
        minutes = float(p.minutes) if p.budget == "minutes" else None
        epochs = int(p.epochs) if p.budget == "epochs" else 1000
        if resume:
            if not self.can_resume():
                notifications.status("Nothing to resume: train first.")
                return False
            job = resume_job(self.run, minutes, epochs if p.budget == "epochs" else 1000, self._relay.point)
            return self.runner.start(job, "fine-tuning")
        images = [str(i) for i in images]
        if len(images) < 3:
            notifications.warn(f"Retraining needs at least 3 reviewed images (train, validation and held-out "
                               f"test); {len(images)} chosen. Mark more images reviewed (Ctrl+Shift+R).")
            return False
        try:
            base = resolve_base(p.base_model, self.store)
        except CellviewerError as e:
            notifications.show_error(e, "Retrain")
            return False
        name = run_name(p.base_model)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = home_dir() / "training" / f"{name}-{stamp}"
        self.run = Run(folder, folder / name, base, images)
        self.panel.reset_curves()
        job = finetune_job(self.run, minutes, epochs, dict(self.options), self._relay.point, self.device)
        started = self.runner.start(job, "fine-tuning")
        if started:
            notifications.status(f"Fine-tuning {p.base_model} on {len(images)} reviewed image(s)…", 5000)
        return started

    def can_resume(self) -> bool:
        return bool(self.run is not None and Path(f"{self.run.out}-last.json").is_file())

    def cancel(self) -> bool:
        return self.runner.cancel() or self.gate_runner.cancel()

    def _on_gate_cancelled(self) -> None:
        self.panel.set_progress(0.0, "Regression gate cancelled.")
        notifications.status("Regression gate cancelled.")

    def _on_running(self, _running: bool) -> None:
        running = self.runner.is_running or self.gate_runner.is_running
        self.panel.set_running(running)
        self.panel.set_can_resume(not running and self.dialog is None and self.can_resume())

    def _on_cancelled(self) -> None:
        text = "Fine-tuning cancelled." + (" Resume continues from the last finished epoch." if self.can_resume()
                                           else "")
        self.panel.set_progress(0.0, text)  # not the last step's "exporting …" / "epoch 3" left standing
        notifications.status(text, 8000)
        self._on_running(False)

    def _on_trained(self, result) -> None:
        self.run.result = result
        self.trained.emit(result)
        self.panel.set_progress(1.0, f"trained {result.epochs_run} epoch(s), best validation score "
                                     f"{result.best_score:.3f} (epoch {result.best_epoch}); running the gate…")
        data_dir = getattr(result, "data_dir", "") or str(self.run.out.with_name(self.run.out.name + "-data"))
        from cellviewer.core.finetune import gate_base

        try:  # pinned: the version active now (after an Accept, the one it stored), named so in the card
            self.run.gated = gate_base(self.run.base)
        except CellviewerError as e:
            notifications.show_error(e, "Regression gate")
            return
        self.gate_runner.start(gate_job(self.run.gated[0], result.checkpoint, data_dir, self.panel.params.reference,
                                        self.min_gain), "regression gate")

    # -- gate, accept, reject --------------------------------------------------------------------
    def _on_gated(self, gate) -> None:
        from cellviewer.gui.gate_dialog import GateDialog

        from cellviewer.core.finetune import label_gate

        _stem, name, version = self.run.gated
        self.run.gate = label_gate(gate, name, version)
        self.panel.set_progress(1.0, ("gate passed: " if gate.accepted else "gate refused: ") + gate.reason)
        self.dialog = GateDialog(gate, gate.old_name, gate.new_name, self.panel.window())
        self.dialog.decided.connect(self._on_decided)
        self.dialog.show()
        self._on_running(False)
        self.gated.emit(gate)

    def _on_decided(self, accept: bool) -> None:
        dialog, self.dialog = self.dialog, None
        if dialog is not None:
            dialog.deleteLater()
        if accept:
            self.accept()
        else:
            self.reject()
        self._on_running(False)

    def accept(self):
        """Store the run's checkpoint as a new version of the base model's name and activate it."""
        from dataclasses import replace

        from cellviewer.core.finetune import store_result

        res, gate = self.run.result, self.run.gate
        if self.run.gated:  # the parent is the version the gate compared with
            res = replace(res, base_version=self.run.gated[2])
        try:
            mv = store_result(res, gate, self.store)
        except CellviewerError as e:
            notifications.show_error(e, "Store the model")
            return None
        notifications.status(f"{mv.name} version {mv.version} stored and active.", 10000)
        if self.models_panel is not None:
            self.models_panel.refresh()
        self.refresh_models()
        self.stored.emit(mv.name, str(mv.version))
        return mv

    def reject(self) -> None:
        """Discard the run (its folder: checkpoints and exported data)."""
        run, self.run = self.run, None
        if run is not None:
            shutil.rmtree(run.folder, ignore_errors=True)
        notifications.status("The fine-tuned model was discarded.", 8000)
        self.discarded.emit()

    def shutdown(self) -> None:
        self.runner.shutdown()
        self.gate_runner.shutdown()
        if self.dialog is not None:  # the window closes: the run stays on disk, undecided
            self.dialog.decided.disconnect()
            self.dialog.hide()
            self.dialog.deleteLater()
            self.dialog = None
