"""QActions built from the one shortcut table, and the Help ▸ Shortcuts dialog."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QLabel, QTableWidget, QTableWidgetItem,
                               QVBoxLayout)

from cellviewer.gui.shortcuts import BY_ACTION, SHORTCUTS


def keys_of(action_id: str) -> list[QKeySequence]:
    return [QKeySequence(k) for k in BY_ACTION[action_id].keys]


def make_action(parent, action_id: str, slot=None, checkable: bool = False, text: str | None = None) -> QAction:
    """An action named ``action_id`` with the table's text and keys, added to ``parent`` (window-wide keys)."""
    sc = BY_ACTION[action_id]
    a = QAction(text or sc.text, parent)
    a.setObjectName(action_id)
    a.setShortcuts(keys_of(action_id))
    a.setCheckable(checkable)
    a.setToolTip(f"{sc.text} ({' / '.join(sc.keys)})")
    if slot is not None:
        a.triggered.connect(slot)
    parent.addAction(a)
    return a


class ShortcutsDialog(QDialog):
    """Help ▸ Shortcuts: the shortcut table, grouped."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        lay = QVBoxLayout(self)
        rows = sorted(SHORTCUTS, key=lambda s: ["File", "Edit", "Tools", "View", "Segmentation", "Help"].index(s.group))
        table = QTableWidget(len(rows), 3)
        table.setHorizontalHeaderLabels(["Group", "Keys", "Action"])
        for i, s in enumerate(rows):
            keys = " / ".join(QKeySequence(k).toString(QKeySequence.SequenceFormat.NativeText) for k in s.keys)
            for j, text in enumerate((s.group, keys, s.text)):
                table.setItem(i, j, QTableWidgetItem(text))
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.resizeColumnsToContents()
        lay.addWidget(table)
        lay.addWidget(QLabel("Mouse: wheel zooms; middle-drag pans (left-drag too in Navigate); right-drag zooms.\n"
                             "Navigate tool: drag a marker to move it.\n"
                             "Keyboard: the arrow keys pan the image while it has the focus (Shift: further);\n"
                             "Esc in a panel gives the focus back to the image; Tab / Shift+Tab move between "
                             "controls."))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.table = table
        self.resize(560, 620)
