"""Dock panels of the main window: each panel scrolls inside its dock.

Without the scroll area a dock's minimum height is its panel's, and the docks stacked on one
side add up (about 1000 px), so the window did not fit a 768- or 900-px-high laptop screen.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QWidget


def add_dock(window: QMainWindow, key: str, title: str, panel: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
    """Add ``panel`` as dock ``key`` (``window.docks[key]``), inside a frameless scroll area."""
    scroll = QScrollArea()
    scroll.setObjectName(f"scroll_{key}")
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # vertical only: the panel
    scroll.setWidget(panel)  # keeps its width (no clipped labels), only its height may scroll
    scroll.setMinimumWidth(panel.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
    dock = QDockWidget(title, window)
    dock.setObjectName(f"dock_{key}")
    dock.setWidget(scroll)
    window.addDockWidget(area, dock)
    window.docks[key] = dock
    return dock
