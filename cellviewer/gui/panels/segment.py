"""Model picker, device, scale and counting method, Run / Cancel and progress — bound to SegmentParams."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel,
                               QProgressBar, QPushButton, QVBoxLayout, QWidget)

from cellviewer.gui.segmentation import CLASSICAL_BY_METHOD, available_models, default_model, is_classical
from cellviewer.gui.state import Observable

DEVICES = ("auto", "cpu", "cuda", "mps")


class SegmentPanel(QWidget):
    run_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, state: Observable, parent=None):
        super().__init__(parent)
        self.state = state
        self.models = available_models()
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.model = QComboBox()
        for name, desc in self.models.items():
            self.model.addItem(name, name)
            self.model.setItemData(self.model.count() - 1, desc, 3)  # tooltip role
        self.model.currentIndexChanged.connect(lambda _i: self.state.update(model=self.model.currentData()))
        form.addRow("Model", self.model)
        self.description = QLabel()
        self.description.setWordWrap(True)
        form.addRow("", self.description)
        self.counting = QComboBox()
        for m in CLASSICAL_BY_METHOD:
            self.counting.addItem(m.replace("_", " "), m)
        self.counting.currentIndexChanged.connect(lambda _i: self.state.update(counting=self.counting.currentData()))
        form.addRow("Counting", self.counting)
        self.device = QComboBox()
        for d in DEVICES:
            self.device.addItem(d, d)
        self.device.setToolTip("auto = CUDA GPU if available, else Apple MPS, else CPU")
        self.device.currentIndexChanged.connect(lambda _i: self.state.update(device=self.device.currentData()))
        form.addRow("Device", self.device)
        self.diameter_px = QDoubleSpinBox()
        self.diameter_px.setRange(0, 2000)
        self.diameter_px.setDecimals(1)
        self.diameter_px.setSpecialValueText("auto (estimate)")
        self.diameter_px.setSuffix(" px")
        self.diameter_px.setToolTip("Expected red-cell diameter in pixels; 0 = estimate it per image")
        self.diameter_px.valueChanged.connect(lambda v: self.state.update(diameter_px=float(v)))
        form.addRow("Cell diameter", self.diameter_px)
        self.use_um = QCheckBox("Give the diameter in µm")
        self.use_um.toggled.connect(lambda on: self.state.update(use_um=on))
        form.addRow("", self.use_um)
        self.diameter_um = QDoubleSpinBox()
        self.diameter_um.setRange(0.5, 100)
        self.diameter_um.setSuffix(" µm")
        self.diameter_um.valueChanged.connect(lambda v: self.state.update(diameter_um=float(v)))
        form.addRow("Diameter", self.diameter_um)
        self.um_per_px = QDoubleSpinBox()
        self.um_per_px.setRange(0, 100)
        self.um_per_px.setDecimals(4)
        self.um_per_px.setSpecialValueText("unknown")
        self.um_per_px.setSuffix(" µm/px")
        self.um_per_px.valueChanged.connect(lambda v: self.state.update(um_per_px=float(v)))
        form.addRow("Calibration", self.um_per_px)
        self.auto_run = QCheckBox("Segment new images automatically")
        self.auto_run.toggled.connect(lambda on: self.state.update(auto_run=on))
        form.addRow("", self.auto_run)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.run_button = QPushButton("Run (Ctrl+R)")
        self.cancel_button = QPushButton("Cancel")
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress_label = QLabel("")
        lay.addWidget(self.progress)
        lay.addWidget(self.progress_label)
        lay.addStretch(1)
        state.changed.connect(self.sync)
        self.set_running(False)
        self.sync()

    def sync(self, _names=None) -> None:
        v = self.state.value
        model = v.model if v.model in self.models else default_model()
        with QSignalBlocker(self.model):
            self.model.setCurrentIndex(max(0, self.model.findData(model)))
        self.description.setText(self.models.get(model, ""))
        with QSignalBlocker(self.counting):
            self.counting.setCurrentIndex(max(0, self.counting.findData(v.counting)))
        self.counting.setEnabled(is_classical(model))
        self.device.setEnabled(not is_classical(model))
        with QSignalBlocker(self.device):
            self.device.setCurrentIndex(max(0, self.device.findData(v.device)))
        for w, val in ((self.diameter_px, v.diameter_px), (self.diameter_um, v.diameter_um),
                       (self.um_per_px, v.um_per_px)):
            with QSignalBlocker(w):
                w.setValue(float(val))
        for w, val in ((self.use_um, v.use_um), (self.auto_run, v.auto_run)):
            with QSignalBlocker(w):
                w.setChecked(bool(val))
        self.diameter_px.setEnabled(not v.use_um)
        self.diameter_um.setEnabled(v.use_um)

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if not running:
            self.progress.setValue(0)
            self.progress_label.setText("")

    def set_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        self.progress_label.setText(message)
