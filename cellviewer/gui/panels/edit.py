"""Tool buttons, class selector and brush size, bound to a :class:`ToolState`."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QButtonGroup, QFormLayout, QGridLayout, QHBoxLayout, QRadioButton, QSpinBox,
                               QToolButton, QVBoxLayout, QWidget)

from cellviewer.core.document import CELL_CLASSES, CLASS_COLORS, DISPLAY_NAMES, PART_COLORS
from cellviewer.core.partsbrush import PART_VALUES
from cellviewer.gui.shortcuts import BY_ACTION
from cellviewer.gui.state import TOOL_NAMES, TOOLS, Observable


def swatch(rgb, size: int = 12) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(QColor(*rgb))
    return QIcon(pm)


#: button texts shorter than the tools' names (which the tooltips, menus and status bar use)
_SHORT = {"navigate": "Navigate", "delete": "Delete", "merge": "Merge", "split": "Split", "reclassify": "Cell class",
          "marker_reclassify": "Marker class"}


class EditPanel(QWidget):
    def __init__(self, state: Observable, parent=None):
        super().__init__(parent)
        self.state = state
        lay = QVBoxLayout(self)
        grid = QGridLayout()
        self.tool_group = QButtonGroup(self)
        self.tool_group.setExclusive(True)
        self.tool_buttons: dict[str, QToolButton] = {}
        for i, tool in enumerate(TOOLS):
            b = QToolButton()
            sc = BY_ACTION.get(f"tool.{tool}")
            key = f" ({sc.keys[0]})" if sc else ""
            b.setText(_SHORT.get(tool, TOOL_NAMES[tool]) + key)  # short: the dock leaves the image the room
            b.setToolTip(TOOL_NAMES[tool] + key)
            b.setCheckable(True)
            b.setAutoRaise(True)
            self.tool_group.addButton(b, i)
            self.tool_buttons[tool] = b
            grid.addWidget(b, i // 2, i % 2)
            b.clicked.connect(lambda _=False, t=tool: self.state.update(tool=t))
        lay.addLayout(grid)
        form = QFormLayout()
        self.class_buttons: dict[str, QRadioButton] = {}
        cls_box = QWidget()
        cls_lay = QHBoxLayout(cls_box)  # one row: the whole panel fits a 768-px-high screen
        cls_lay.setContentsMargins(0, 0, 0, 0)
        self.class_group = QButtonGroup(self)
        for i, cls in enumerate(CELL_CLASSES):
            r = QRadioButton(DISPLAY_NAMES[cls])
            r.setToolTip(f"Draw and count {DISPLAY_NAMES[cls]} (key {i + 1})")
            r.setIcon(swatch(CLASS_COLORS[cls]))
            self.class_group.addButton(r, i)
            self.class_buttons[cls] = r
            cls_lay.addWidget(r)
            r.toggled.connect(lambda on, c=cls: on and self.state.update(cls=c))
        form.addRow("Class", cls_box)
        self.part_buttons: dict[str, QRadioButton] = {}
        part_box = QWidget()
        part_lay = QHBoxLayout(part_box)
        part_lay.setContentsMargins(0, 0, 0, 0)
        self.part_group = QButtonGroup(self)
        for part, value in PART_VALUES.items():
            r = QRadioButton(part.capitalize())
            r.setIcon(swatch(PART_COLORS[value]))
            r.setToolTip("What the parts brush (W) paints inside a white cell (X switches)")
            self.part_group.addButton(r, value)
            self.part_buttons[part] = r
            part_lay.addWidget(r)
            r.toggled.connect(lambda on, p=part: on and self.state.update(part=p))
        form.addRow("Parts brush", part_box)
        self.radius = QSpinBox()
        self.radius.setRange(1, 200)
        self.radius.setSuffix(" px")
        self.radius.setToolTip("Radius of the brush, eraser and parts brush in image pixels ([ and ] change it)")
        self.radius.valueChanged.connect(lambda v: self.state.update(brush_radius=int(v)))
        form.addRow("Brush radius", self.radius)
        lay.addLayout(form)
        lay.addStretch(1)
        state.changed.connect(self.sync)
        self.sync()

    def sync(self, _names=None) -> None:
        v = self.state.value
        for tool, b in self.tool_buttons.items():
            with QSignalBlocker(b):
                b.setChecked(tool == v.tool)
        for cls, r in self.class_buttons.items():
            with QSignalBlocker(r):
                r.setChecked(cls == v.cls)
        for part, r in self.part_buttons.items():
            with QSignalBlocker(r):
                r.setChecked(part == v.part)
        with QSignalBlocker(self.radius):
            self.radius.setValue(int(v.brush_radius))
