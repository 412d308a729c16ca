"""The retrain panel: starting model, reviewed images, a time or epoch budget, live curves.

Widgets only: it edits a :class:`RetrainParams` (values), lists the images it is given
and draws the :class:`~cellviewer.core.training.TrainProgress` points it is fed. The
work (export, fine-tuning, the regression gate) is done by
:class:`cellviewer.gui.retrain.RetrainController`, which the main window wires to it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QListWidget, QListWidgetItem, QProgressBar, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

_STEP = re.compile(r"step (\d+)/(\d+)")
_EPOCH_OF = re.compile(r"epoch (\d+)/\d+")  # "epoch 4/1000": a time budget's epoch cap, no number to show


@dataclass
class RetrainParams:
    base_model: str = ""  # a segmenter name, or "store:<name>:<version>"
    budget: str = "minutes"  # "minutes" | "epochs"
    minutes: float = 10.0
    epochs: int = 5
    reference: str = ""  # an export folder the gate also scores on (a reference set the lab keeps); "" = none


class TrainingPanel(QWidget):
    train_requested = Signal()
    cancel_requested = Signal()
    resume_requested = Signal()
    refresh_requested = Signal()  # re-scan the folder for reviewed images

    def __init__(self, params: RetrainParams | None = None, parent=None):
        super().__init__(parent)
        self.params = params or RetrainParams()
        self.loss_x: list[float] = []
        self.loss_y: list[float] = []
        self.val_x: list[float] = []
        self.val_y: list[float] = []
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.model = QComboBox()
        self.model.setToolTip("The model to fine-tune (a shipped model or a version from your model store)")
        self.model.currentIndexChanged.connect(self._on_model)
        form.addRow("Start from", self.model)
        row = QWidget()
        rl = QHBoxLayout(row)
        rl.setContentsMargins(0, 0, 0, 0)
        self.budget = QComboBox()
        self.budget.addItem("minutes", "minutes")
        self.budget.addItem("epochs", "epochs")
        self.minutes = QDoubleSpinBox()
        self.minutes.setRange(0.1, 24 * 60)
        self.minutes.setDecimals(1)
        self.minutes.setSuffix(" min")
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 10000)
        self.epochs.setSuffix(" epochs")
        for w in (self.budget, self.minutes, self.epochs):
            rl.addWidget(w)
        self.budget.currentIndexChanged.connect(lambda _i: self._set(budget=self.budget.currentData()))
        self.minutes.valueChanged.connect(lambda v: self._set(minutes=float(v)))
        self.epochs.valueChanged.connect(lambda v: self._set(epochs=int(v)))
        form.addRow("Budget", row)
        ref = QWidget()
        refl = QHBoxLayout(ref)
        refl.setContentsMargins(0, 0, 0, 0)
        self.reference = QLineEdit()
        self.reference.setReadOnly(True)
        self.reference.setPlaceholderText("none (held-out reviewed images only)")
        self.reference.setToolTip("A training-set export (File ▸ Export training set…) the lab keeps fixed: "
                                  "the regression gate also refuses a model that is worse on it")
        self.reference_browse = QPushButton("…")
        self.reference_browse.setToolTip("Choose a reference set (an exported training-set folder)")
        self.reference_browse.clicked.connect(self._choose_reference)
        self.reference_clear = QPushButton("×")
        self.reference_clear.setToolTip("No reference set")
        self.reference_clear.clicked.connect(lambda: self._set(reference=""))
        for b in (self.reference_browse, self.reference_clear):
            b.setFixedWidth(b.fontMetrics().horizontalAdvance("…") * 3 + 16)
        for w in (self.reference, self.reference_browse, self.reference_clear):
            refl.addWidget(w, 1 if w is self.reference else 0)
        form.addRow("Reference", ref)
        lay.addLayout(form)
        head = QHBoxLayout()
        self.images_label = QLabel("No folder open")
        self.images_label.setWordWrap(True)
        self.rescan = QPushButton("Rescan")
        self.rescan.setToolTip("Look again for images marked reviewed in the open folder")
        self.rescan.clicked.connect(self.refresh_requested)
        head.addWidget(self.images_label, 1)
        head.addWidget(self.rescan)
        lay.addLayout(head)
        self.images = QListWidget()
        self.images.setMaximumHeight(110)
        self.images.setToolTip("Reviewed images of the open folder; untick one to leave it out")
        lay.addWidget(self.images)
        buttons = QHBoxLayout()
        self.train_button = QPushButton("▶ Start training")
        self.train_button.setToolTip("Fine-tune the chosen model on the ticked reviewed images, then compare it "
                                     "with the current one on held-out images (the regression gate)")
        self.cancel_button = QPushButton("Cancel")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the last cancelled or finished run from its latest epoch")
        self.train_button.clicked.connect(self.train_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.resume_button.clicked.connect(self.resume_requested)
        for b in (self.train_button, self.cancel_button, self.resume_button):
            buttons.addWidget(b)
        lay.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)
        lay.addWidget(self.progress)
        lay.addWidget(self.progress_label)
        self.loss_plot = pg.PlotWidget(title="training loss")
        self.loss_plot.setLabel("bottom", "epoch")
        self.loss_plot.setMinimumHeight(110)
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen((230, 120, 40), width=2))
        self.val_plot = pg.PlotWidget(title="validation score (picks the epoch)")
        self.val_plot.setLabel("bottom", "epoch")
        self.val_plot.setMinimumHeight(110)
        self.val_curve = self.val_plot.plot([], [], pen=pg.mkPen((60, 170, 90), width=2), symbol="o", symbolSize=6)
        for plot in (self.loss_plot, self.val_plot):  # the wheel scrolls the panel; it zoomed the curves out of view
            plot.setMouseEnabled(x=False, y=False)
        lay.addWidget(self.loss_plot, 1)
        lay.addWidget(self.val_plot, 1)
        self._running = False
        self._can_resume = False
        self.sync()
        self.set_running(False)

    # -- parameters ----------------------------------------------------------------------
    def _set(self, **kw) -> None:
        for k, v in kw.items():
            setattr(self.params, k, v)
        self.sync()

    def _choose_reference(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Reference set (an exported training set)",
                                             self.params.reference or str(Path.home()))
        if d:
            self._set(reference=d)

    def _on_model(self, _i: int) -> None:
        data = self.model.currentData()
        if data is not None:
            self.params.base_model = str(data)

    def set_models(self, choices: list[tuple[str, str]]) -> None:
        """``[(key, label), ...]``: the models to start from (keys go to ``params.base_model``)."""
        with QSignalBlocker(self.model):
            self.model.clear()
            for key, label in choices:
                self.model.addItem(label, key)
            i = self.model.findData(self.params.base_model)
            self.model.setCurrentIndex(i if i >= 0 else 0)
        self._on_model(0)

    def sync(self) -> None:
        p = self.params
        with QSignalBlocker(self.budget):
            self.budget.setCurrentIndex(max(0, self.budget.findData(p.budget)))
        with QSignalBlocker(self.minutes):
            self.minutes.setValue(float(p.minutes))
        with QSignalBlocker(self.epochs):
            self.epochs.setValue(int(p.epochs))
        self.reference.setText(p.reference)
        self.minutes.setVisible(p.budget == "minutes")
        self.epochs.setVisible(p.budget == "epochs")

    # -- images --------------------------------------------------------------------------
    def set_images(self, paths, folder=None) -> None:
        """The reviewed images (all ticked)."""
        self.images.clear()
        for p in paths:
            item = QListWidgetItem(Path(p).name)
            item.setData(Qt.ItemDataRole.UserRole, str(p))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.images.addItem(item)
        n = len(paths)
        where = f" in {Path(folder).name}" if folder else ""
        self.images_label.setText(f"{n} reviewed image{'s' if n != 1 else ''}{where}" if folder or n
                                  else "No folder open")
        self._sync_buttons()

    def listed_images(self) -> list[str]:
        return [self.images.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.images.count())]

    def chosen_images(self) -> list[str]:
        out = []
        for i in range(self.images.count()):
            item = self.images.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(item.data(Qt.ItemDataRole.UserRole))
        return out

    # -- running -------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        self._running = running
        for w in (self.model, self.budget, self.minutes, self.epochs, self.images, self.rescan,
                  self.reference_browse, self.reference_clear):
            w.setEnabled(not running)
        self._sync_buttons()

    def set_can_resume(self, can: bool) -> None:
        self._can_resume = can
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        self.train_button.setEnabled(not self._running and self.images.count() > 0)
        self.cancel_button.setEnabled(self._running)
        self.resume_button.setEnabled(not self._running and self._can_resume)

    def set_progress(self, fraction: float, message: str) -> None:
        if self.params.budget == "minutes":
            message = _EPOCH_OF.sub(r"epoch \1", message)
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        self.progress_label.setText(message)

    # -- curves --------------------------------------------------------------------------
    def reset_curves(self) -> None:
        self.loss_x, self.loss_y, self.val_x, self.val_y = [], [], [], []
        self.loss_curve.setData([], [])
        self.val_curve.setData([], [])
        for plot in (self.loss_plot, self.val_plot):  # each run in view, whatever was zoomed before
            plot.enableAutoRange()

    def add_point(self, p) -> None:
        """Plot one ``TrainProgress`` (other Progress objects are ignored): loss per step, score per epoch;
        a score at epoch 0 is the starting model's (the one a fine-tune has to beat)."""
        epoch = int(getattr(p, "epoch", 0) or 0)
        message = str(getattr(p, "message", ""))
        loss, val = getattr(p, "loss", float("nan")), getattr(p, "val", None)
        if not epoch:
            if " val " in f" {message}" and val is not None and math.isfinite(float(val)) and not self.val_x:
                self.val_x.append(0.0)
                self.val_y.append(float(val))
                self.val_curve.setData(self.val_x, self.val_y)
            return
        m = _STEP.search(message)
        x = (epoch - 1) + (int(m.group(1)) / max(1, int(m.group(2))) if m else 1.0)
        if loss is not None and math.isfinite(float(loss)) and (not self.loss_x or x > self.loss_x[-1]):
            self.loss_x.append(x)
            self.loss_y.append(float(loss))
            self.loss_curve.setData(self.loss_x, self.loss_y)
        end_of_epoch = m is None and " val " in message and val is not None and math.isfinite(float(val))
        if end_of_epoch and (not self.val_x or self.val_x[-1] < epoch):
            self.val_x.append(float(epoch))
            self.val_y.append(float(val))
            self.val_curve.setData(self.val_x, self.val_y)
