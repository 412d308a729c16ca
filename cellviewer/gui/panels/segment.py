"""Model picker (name, card summary, working scale), device, scale, counting method, NODE-UNet's
ODE solver, Run / Cancel and progress — bound to SegmentParams (values live there, not in widgets).

A model the state names that is not installed any more (a settings file from before it was removed, a stored
model rolled back with nothing shipped under its name) is replaced *in the state* by the default model, so the
picker and Run always use the same one, and the user is told once (a lasting warning).
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QFrame, QGroupBox,
                               QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QSizePolicy, QVBoxLayout,
                               QWidget)

from cellviewer.core.modelcards import ODE_METHODS
from cellviewer.gui import notifications
from cellviewer.gui.segmentation import (CLASSICAL_BY_METHOD, available_models, default_model, is_classical,
                                         model_summaries)
from cellviewer.gui.state import Observable

DEVICES = ("auto", "cpu", "cuda", "mps")
#: test-time augmentation choices (text, SegmentParams.tta); "" = the model card's own
TTA_CHOICES = (("model's own", ""), ("off (1 pass)", "none"), ("flips (4 passes)", "flips"),
               ("flips + transposes (8 passes)", "d4"))
#: ODE solver tolerances offered (looser = faster, fewer function evaluations)
TOLERANCES = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7)
#: the picker's last entry: choose a trained model's card on disk (a model trained or received, not installed)
MODEL_FILE = "\x00model-file"
PATH_DESCRIPTION = "a trained model given by its path"


class SegmentPanel(QWidget):
    run_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, state: Observable, parent=None):
        super().__init__(parent)
        self.state = state
        self.models, self.summaries = {}, {}
        self._told_missing: set[str] = set()  # models already said to be gone (told once)
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.model = QComboBox()
        self.model.currentIndexChanged.connect(self._model_picked)
        form.addRow("Model", self.model)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)  # never clipped
        form.addRow("", self.description)
        self.card = QLabel()  # the card summary: architecture, classes, working scale, version, test numbers
        self.card.setWordWrap(True)
        self.card.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        card_box = QScrollArea()  # long test numbers scroll instead of being cut mid-line
        card_box.setWidget(self.card)
        card_box.setWidgetResizable(True)
        card_box.setFrameShape(QFrame.Shape.NoFrame)
        card_box.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        card_box.setMaximumHeight(120)
        form.addRow("", card_box)
        self.ode_box = self._ode_controls()
        form.addRow(self.ode_box)
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
        self.um_per_px.setToolTip("Pixel size of the camera (from a stage micrometer). Trained networks then weigh "
                                  "each red cell's measured size in µm in its morphology class (microcyte, "
                                  "macrocyte); with 'Give the diameter in µm' it also sets the expected cell size")
        self.um_per_px.valueChanged.connect(lambda v: self.state.update(um_per_px=float(v)))
        form.addRow("Calibration", self.um_per_px)
        self.tta = QComboBox()
        for text, value in TTA_CHOICES:
            self.tta.addItem(text, value)
        self.tta.setToolTip("Average the network over flipped copies of the image: slightly more accurate "
                            "outlines, 4-8 times the prediction time")
        self.tta.currentIndexChanged.connect(lambda _i: self.state.update(tta=self.tta.currentData()))
        form.addRow("Test-time augm.", self.tta)
        self.morphology = QCheckBox("Red-cell morphology")
        self.morphology.setToolTip("Give each red cell a morphology class (normal, spherocyte, target cell, ...) with "
                                   "the rbc-morphology model (trained networks only; shown in Counts and the review "
                                   "queue)")
        self.morphology.toggled.connect(lambda on: self.state.update(morphology=on))
        form.addRow("", self.morphology)
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
        self.progress.setTextVisible(False)  # no "0%" while idle
        self.progress_label = QLabel("")
        lay.addWidget(self.progress)
        lay.addWidget(self.progress_label)
        lay.addStretch(1)
        state.changed.connect(self.sync)
        self.set_running(False)
        self.reload_models()

    def _ode_controls(self) -> QGroupBox:
        box = QGroupBox("ODE solver (NODE-UNet)")
        box.setToolTip("Looser tolerances run faster (fewer solver steps) at some cost in accuracy")
        f = QFormLayout(box)
        self.ode_method = QComboBox()
        self.ode_method.addItem("model's own", "")
        for m in ODE_METHODS:
            self.ode_method.addItem(m, m)
        self.ode_method.currentIndexChanged.connect(
            lambda _i: self.state.update(ode_method=self.ode_method.currentData()))
        f.addRow("Method", self.ode_method)
        self.ode_rtol, self.ode_atol = QComboBox(), QComboBox()
        for key, combo in (("ode_rtol", self.ode_rtol), ("ode_atol", self.ode_atol)):
            combo.addItem("model's own", 0.0)
            for t in TOLERANCES:
                combo.addItem(f"{t:.0e}", t)
            combo.currentIndexChanged.connect(lambda _i, k=key, c=combo: self.state.update(**{k: c.currentData()}))
        f.addRow("Rel. tolerance", self.ode_rtol)
        f.addRow("Abs. tolerance", self.ode_atol)
        return box

    def reload_models(self) -> None:
        """Read the segmenters and model cards again (after a model was added or activated)."""
        self.models, self.summaries = available_models(), model_summaries()
        path = self.state.value.model
        if path and path not in self.models and _is_checkpoint_path(path):  # a trained model given by its path
            self.models[path] = PATH_DESCRIPTION
            info = _path_summary(path)
            if info is not None:
                self.summaries[path] = info
        with QSignalBlocker(self.model):
            self.model.clear()
            for name, desc in self.models.items():
                info = self.summaries.get(name)
                by_path = desc == PATH_DESCRIPTION
                self.model.addItem(f"{_stem(name)} (file)" if by_path else name, name)
                tip = (info.text() if info else desc) + (f"\n{name}" if by_path else "")
                self.model.setItemData(self.model.count() - 1, tip, 3)  # tooltip
            self.model.addItem("Model file…", MODEL_FILE)
            self.model.setItemData(self.model.count() - 1, "Use a trained model's card (.json, its .safetensors "
                                   "beside it) from disk: one trained here or received, not installed", 3)
        self.sync()

    def _model_picked(self, _index: int) -> None:
        data = self.model.currentData()
        if data == MODEL_FILE:  # not a model: ask for one (after this signal: a modal dialog inside it misbehaves)
            QTimer.singleShot(0, self.choose_model_file)
            return
        self.state.update(model=data)

    @staticmethod
    def ask_model_file(parent, start: str) -> str:
        """The card chosen in a file dialog ('' when cancelled); tests replace it."""
        path, _ = QFileDialog.getOpenFileName(parent, "Model file", start,
                                              "Model card (*.json *.safetensors);;All files (*)")
        return path

    def choose_model_file(self) -> None:
        """Use a model checkpoint from disk for the next runs (the state holds its card's path, as when a model
        was given by path); one that is not a segmentation checkpoint is refused with a warning."""
        from pathlib import Path

        from cellviewer.core.modelfind import card_at

        now = self.state.value.model
        path = self.ask_model_file(self, str(Path(now).parent) if _is_checkpoint_path(now) else str(Path.home()))
        problem = _model_file_problem(path) if path else None
        if path and problem is None:
            card = str(card_at(path))
            self.state.update(model=card)  # (sync lists it)
            notifications.status(f"Model {Path(card).stem} from {Path(card).parent}: used for the next Run")
            return
        if problem:
            notifications.warn(problem)
        self.sync()  # back to the model in use

    @staticmethod
    def _select(combo: QComboBox, value) -> None:
        with QSignalBlocker(combo):
            i = combo.findData(value)
            if i < 0 and isinstance(value, float) and value > 0:  # a value set elsewhere (settings): offer it
                combo.addItem(f"{value:.0e}", value)
                i = combo.count() - 1
            combo.setCurrentIndex(max(0, i))

    def _fall_back(self, missing: str) -> None:
        """``missing`` is not installed: the state gets the default model (what the picker shows is what Run uses),
        and the user is told once — after the window is built when this happens while it is being made."""
        fallback = default_model()
        self.state.update(model=fallback)  # -> sync() again, with the fallback
        if missing in self._told_missing:
            return
        self._told_missing.add(missing)
        text = f"Model '{missing}' is not installed any more — segmenting with '{fallback}'"
        tip = (f"The model '{missing}' (from the settings, or a stored model rolled back with no version left "
               f"active and none shipped under that name) is not available, so new segmentations use "
               f"'{fallback}'. Pick another model in the Segmentation panel, or make a stored version of "
               f"'{missing}' active again (Model versions, or 'cellviewer versions {missing} --activate V').")
        QTimer.singleShot(0, lambda: notifications.lasting(text, tip))

    def sync(self, _names=None) -> None:
        v = self.state.value
        if v.model and v.model not in self.models and _is_checkpoint_path(v.model):
            self.reload_models()  # a model given by its path (it lists it, then syncs)
            return
        if v.model and v.model not in self.models and self.models:
            self._fall_back(v.model)
            return
        model = v.model if v.model in self.models else default_model()
        with QSignalBlocker(self.model):
            self.model.setCurrentIndex(max(0, self.model.findData(model)))
        self.description.setText(self.models.get(model, ""))
        info = self.summaries.get(model)
        self.card.setText(info.text() if info else ("Classical: no trained weights; the cell size is estimated "
                                                    "per image" if is_classical(model) else ""))
        self.card.setVisible(bool(self.card.text()))
        ode = info is not None and info.has_ode_solver
        self.ode_box.setVisible(ode)
        self.ode_box.setEnabled(ode)
        if ode:
            own = info.solver
            self.ode_box.setTitle("ODE solver (NODE-UNet; card: " + ", ".join(f"{k} {v}" for k, v in own.items())
                                  + ")" if own else "ODE solver (NODE-UNet)")
        self._select(self.ode_method, v.ode_method)
        self._select(self.ode_rtol, float(v.ode_rtol))
        self._select(self.ode_atol, float(v.ode_atol))
        with QSignalBlocker(self.counting):
            self.counting.setCurrentIndex(max(0, self.counting.findData(v.counting)))
        self.counting.setEnabled(is_classical(model))
        self._select(self.tta, v.tta if v.tta in {d for _, d in TTA_CHOICES} else "")
        self.tta.setItemText(0, f"model's own ({info.tta if info is not None else 'none'})")
        self.tta.setEnabled(not is_classical(model))
        self.device.setEnabled(not is_classical(model))
        with QSignalBlocker(self.device):
            self.device.setCurrentIndex(max(0, self.device.findData(v.device)))
        for w, val in ((self.diameter_px, v.diameter_px), (self.diameter_um, v.diameter_um),
                       (self.um_per_px, v.um_per_px)):
            with QSignalBlocker(w):
                w.setValue(float(val))
        self.morphology.setEnabled(not is_classical(model))
        for w, val in ((self.use_um, v.use_um), (self.auto_run, v.auto_run), (self.morphology, v.morphology)):
            with QSignalBlocker(w):
                w.setChecked(bool(val))
        has_um = v.um_per_px > 0  # a diameter in µm needs the calibration (else it was silently ignored)
        self.use_um.setEnabled(has_um)
        self.use_um.setToolTip("" if has_um else "Set the Calibration (µm/px) first")
        self.diameter_px.setEnabled(not (v.use_um and has_um))
        self.diameter_um.setEnabled(v.use_um and has_um)

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress.setTextVisible(running)
        if not running:
            self.progress.setValue(0)
            self.progress_label.setText("")

    def set_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        self.progress_label.setText(message)


def _stem(path: str) -> str:
    from pathlib import Path

    return Path(path).stem


def _path_summary(path: str):
    """The card summary of a model given by path (None when it is no readable segmentation card)."""
    from cellviewer.core.errors import ModelLoadError
    from cellviewer.core.modelcards import summarize_card
    from cellviewer.core.modelfind import segmentation_card

    try:
        return summarize_card(segmentation_card(path)[1], _stem(path))
    except ModelLoadError:
        return None


def _model_file_problem(path: str) -> str | None:
    """Why ``path`` cannot be used as a segmentation model (None when it can; core.modelfind says why)."""
    from cellviewer.core.errors import ModelLoadError
    from cellviewer.core.modelfind import segmentation_card

    try:
        segmentation_card(path)
    except ModelLoadError as e:
        return str(e)
    return None


def _is_checkpoint_path(model: str) -> bool:
    """``model`` names a trained checkpoint by its path (Run can use it; see ``core.segment.create_segmenter``)."""
    from cellviewer.core.modelfind import card_at

    try:
        return card_at(model) is not None
    except (OSError, ValueError):
        return False
