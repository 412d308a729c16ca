"""Test helpers: real mouse events on the canvas viewport."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication


def _mouse(widget, kind, pos, button, buttons):
    ev = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons,
                     Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def mouse_drag(qtbot, canvas, points, before_release=None):
    """A real left-button drag over image points (press, moves, release) on the canvas viewport;
    ``before_release()`` is called with the button still down (to look at the screen mid-drag)."""
    vp = canvas.viewport()
    pos = [canvas.map_to_view(x, y) for x, y in points]
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    _mouse(vp, QEvent.Type.MouseMove, pos[0], none, none)
    qtbot.wait(20)
    _mouse(vp, QEvent.Type.MouseButtonPress, pos[0], left, left)
    for p in pos[1:]:
        qtbot.wait(20)  # pyqtgraph drops moves closer than 10 ms
        _mouse(vp, QEvent.Type.MouseMove, p, none, left)
    qtbot.wait(20)
    if before_release is not None:
        qtbot.wait(30)
        before_release()
    _mouse(vp, QEvent.Type.MouseButtonRelease, pos[-1], left, none)
    qtbot.wait(20)
