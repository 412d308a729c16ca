"""Dock panels of the main window: each panel scrolls inside its dock; the window layout saved and restored.

Without the scroll area a dock's minimum height is its panel's, and the docks stacked on one
side add up (about 1000 px), so the window did not fit a 768- or 900-px-high laptop screen.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer
from PySide6.QtWidgets import (QAbstractSpinBox, QComboBox, QDockWidget, QDoubleSpinBox, QFrame, QMainWindow,
                               QScrollArea, QSlider, QWidget)

from cellviewer.gui import settings


_PAGE_KEYS = (Qt.Key.Key_PageUp, Qt.Key.Key_PageDown)


class _WheelGuard(QObject):
    """Scrolling a panel must not change the combo box, spin box or slider that passes under the mouse
    (a Device combo turned from auto to mps): the wheel reaches such a control only once it has focus.
    A spin box or slider with the focus keeps its Page Up / Page Down (steps of 10) instead of the window's
    next / previous image (PgDown in the brush radius opened the next image)."""

    def eventFilter(self, obj, ev) -> bool:
        if ev.type() == QEvent.Type.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            ev.ignore()
            return True
        if (ev.type() == QEvent.Type.ShortcutOverride and isinstance(obj, (QAbstractSpinBox, QSlider))
                and ev.key() in _PAGE_KEYS):
            ev.accept()  # the key goes to the control, not to a window shortcut
            return True
        return False


_GUARD = _WheelGuard()


def guard_wheel(panel: QWidget) -> None:
    """Install the wheel guard on ``panel``'s value controls; decimal spin boxes also commit a typed value
    only on Enter or on leaving the field (else each key press went to the state, which wrote it back
    reformatted: typing 0.17 gave 0.1000)."""
    for w in panel.findChildren(QWidget):
        if isinstance(w, (QComboBox, QAbstractSpinBox, QSlider)):
            w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            w.installEventFilter(_GUARD)
        if isinstance(w, QDoubleSpinBox):  # decimals: a value written back mid-typing is reformatted
            w.setKeyboardTracking(False)


def add_dock(window: QMainWindow, key: str, title: str, panel: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
    """Add ``panel`` as dock ``key`` (``window.docks[key]``), inside a frameless scroll area."""
    scroll = QScrollArea()
    scroll.setObjectName(f"scroll_{key}")
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # vertical only: the panel
    scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # no invisible Tab stop per dock (a focused control is
    # still scrolled into view)
    guard_wheel(panel)
    scroll.setWidget(panel)  # keeps its width (no clipped labels), only its height may scroll
    scroll.setMinimumWidth(panel.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
    dock = QDockWidget(title, window)
    dock.setObjectName(f"dock_{key}")
    dock.setWidget(scroll)
    window.addDockWidget(area, dock)
    window.docks[key] = dock
    return dock


def first_layout(window: QMainWindow) -> None:
    """First start (no saved layout): the panels' size hints are wide, so give the image the room; on the
    right, the Counts and Segmentation panels get the height and the file list the least."""
    for area, width in ((Qt.DockWidgetArea.LeftDockWidgetArea, 250), (Qt.DockWidgetArea.RightDockWidgetArea, 400)):
        docks = [d for d in window.findChildren(QDockWidget) if window.dockWidgetArea(d) == area and d.isVisible()]
        if docks:
            window.resizeDocks(docks[:1], [width], Qt.Orientation.Horizontal)
    right = [window.docks[k] for k in ("counts", "segment", "files") if k in window.docks]
    window.resizeDocks(right, [int(window.height() * f) for f in (0.4, 0.4, 0.2)][:len(right)], Qt.Orientation.Vertical)


def restore_layout(window: QMainWindow) -> None:
    """The window's saved geometry and dock layout; on first start 1400×900 (or the screen's free area when
    smaller, a 1366×768 laptop) and :func:`first_layout`."""
    geo, state = settings.get("window/geometry"), settings.get("window/state")
    if geo is not None:
        window.restoreGeometry(geo)
    else:
        free = window.screen().availableGeometry().size() if window.screen() is not None else QSize(1400, 900)
        window.resize(min(1400, free.width()), min(900, free.height()))
    if state is not None:
        window.restoreState(state)
    else:
        QTimer.singleShot(0, lambda: first_layout(window))


def save_layout(window: QMainWindow) -> None:
    settings.put("window/geometry", window.saveGeometry())
    settings.put("window/state", window.saveState())
