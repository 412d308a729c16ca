"""Layer toggles, overlay opacity and outline mode, bound to a :class:`ViewState`."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import QCheckBox, QFormLayout, QSlider, QVBoxLayout, QWidget

from cellviewer.core.document import CELL_CLASSES, CLASS_COLORS, DISPLAY_NAMES
from cellviewer.gui.panels.edit import swatch
from cellviewer.gui.state import Observable


class LayersPanel(QWidget):
    def __init__(self, state: Observable, parent=None):
        super().__init__(parent)
        self.state = state
        lay = QVBoxLayout(self)
        self.image = QCheckBox("Image")
        self.image.toggled.connect(lambda on: self.state.update(show_image=on))
        lay.addWidget(self.image)
        self.classes: dict[str, QCheckBox] = {}
        for cls in CELL_CLASSES:
            cb = QCheckBox(DISPLAY_NAMES[cls])
            cb.setIcon(swatch(CLASS_COLORS[cls]))
            cb.toggled.connect(lambda on, c=cls: self._set_class(c, on))
            self.classes[cls] = cb
            lay.addWidget(cb)
        self.parts = QCheckBox("WBC parts (nucleus / cytoplasm)")
        self.parts.toggled.connect(lambda on: self.state.update(show_parts=on))
        lay.addWidget(self.parts)
        self.markers = QCheckBox("Count markers")
        self.markers.toggled.connect(lambda on: self.state.update(show_markers=on))
        lay.addWidget(self.markers)
        form = QFormLayout()
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.valueChanged.connect(lambda v: self.state.update(opacity=v / 100.0))
        form.addRow("Opacity", self.opacity)
        lay.addLayout(form)
        self.outline = QCheckBox("Outlines only (O)")
        self.outline.toggled.connect(lambda on: self.state.update(outline=on))
        lay.addWidget(self.outline)
        self.hide_all = QCheckBox("Hide all overlays (H)")
        self.hide_all.toggled.connect(lambda on: self.state.update(hide_overlays=on))
        lay.addWidget(self.hide_all)
        lay.addStretch(1)
        state.changed.connect(self.sync)
        self.sync()

    def _set_class(self, cls: str, on: bool) -> None:
        classes = dict(self.state.value.classes)
        classes[cls] = on
        self.state.update(classes=classes)

    def sync(self, _names=None) -> None:
        v = self.state.value
        pairs = [(self.image, v.show_image), (self.parts, v.show_parts), (self.markers, v.show_markers),
                 (self.outline, v.outline), (self.hide_all, v.hide_overlays)]
        pairs += [(cb, bool(v.classes.get(c, True))) for c, cb in self.classes.items()]
        for cb, on in pairs:
            with QSignalBlocker(cb):
                cb.setChecked(on)
        with QSignalBlocker(self.opacity):
            self.opacity.setValue(int(round(v.opacity * 100)))
