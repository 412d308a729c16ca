"""Keyboard-only use of the main window (wiring, added by :func:`install`).

* Zoom in / out (the shortcut table's ``view.zoom_in`` / ``view.zoom_out``: Ctrl++ / Ctrl+=, Ctrl+-), about
  the centre of the view, in the View menu after Zoom to fit.
* The arrow keys pan the image while the image view has the focus (Shift: a larger step). They are not
  window shortcuts: lists, tables, sliders and radio buttons in the panels keep their arrow keys.
* Esc (:func:`escape`) also cancels Classify again, a folder report and a report export, which had no
  other Cancel; in a panel it gives the focus back to the image view (:func:`leave_panel`): typing a value
  into a spin box no longer leaves every single-key shortcut (B, N, Y, 1–3, …) going into it.
* :func:`focus_first`: a dock opened from the keyboard (Models ▸ Retrain…, Ctrl+Shift+T) takes the focus.
* :func:`arrows_open_list`: Up / Down on a combo box whose choices are edits open its list (Enter applies).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QApplication, QWidget

from cellviewer.gui.actions import make_action

ZOOM_STEP = 1.25  # one key press
PAN_STEP = 0.1  # of the visible width / height per arrow key press (Shift: three times that)
_ARROWS = {Qt.Key.Key_Left: (-1, 0), Qt.Key.Key_Right: (1, 0), Qt.Key.Key_Up: (0, -1), Qt.Key.Key_Down: (0, 1)}


def zoom(canvas, factor: float) -> None:
    """Zoom the image view by ``factor`` (> 1: closer) about the centre of the view."""
    if canvas.doc is not None:
        canvas.vb.scaleBy((1.0 / factor, 1.0 / factor))


def pan(canvas, dx: float, dy: float) -> None:
    """Move the view by ``dx``, ``dy`` visible widths / heights (positive: right / further down the image)."""
    if canvas.doc is None:
        return
    (x0, x1), (y0, y1) = canvas.vb.viewRange()
    canvas.vb.translateBy(x=dx * (x1 - x0), y=dy * (y1 - y0))


class _ArrowPan(QObject):
    """On the image view: the arrow keys pan (without Ctrl / Alt / Meta, which stay free for others)."""

    def eventFilter(self, obj, ev) -> bool:
        if ev.type() != QEvent.Type.KeyPress or ev.key() not in _ARROWS:
            return False
        mods = ev.modifiers() & ~(Qt.KeyboardModifier.KeypadModifier | Qt.KeyboardModifier.ShiftModifier)
        if mods != Qt.KeyboardModifier.NoModifier:
            return False
        step = PAN_STEP * (3 if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1)
        dx, dy = _ARROWS[ev.key()]
        pan(obj, dx * step, dy * step)
        return True


class _ArrowsOpenList(QObject):
    """On a combo box whose every choice is an edit: Up / Down open its list instead of applying the next
    item at each press (each press was an undo step); the list is then walked and Enter applies one."""

    def eventFilter(self, obj, ev) -> bool:
        if (ev.type() == QEvent.Type.KeyPress and ev.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down)
                and not ev.modifiers() & ~Qt.KeyboardModifier.KeypadModifier):
            obj.showPopup()
            return True
        return False


def arrows_open_list(combo) -> None:
    """See :class:`_ArrowsOpenList` (e.g. the review queue's red-cell morphology)."""
    combo._arrows_open_list = _ArrowsOpenList(combo)
    combo.installEventFilter(combo._arrows_open_list)


def leave_panel(window) -> bool:
    """Esc: when the focus is in a panel (a dock), give it back to the image view; True when it was there."""
    focus = QApplication.focusWidget()
    canvas = window.canvas
    if focus is None or focus is canvas or focus.window() is not window or canvas.isAncestorOf(focus):
        return False
    canvas.setFocus(Qt.FocusReason.ShortcutFocusReason)
    return True


def cancel_jobs(window) -> bool:
    """Esc: cancel the first running job the user started and has no Cancel button for in sight — Classify
    again, a folder report, a report export (the status line of a second start says "cancel it (Esc)")."""
    for runner in (window.segmentation.classes_runner, window.folder_reporter.runner, window.exporter.runner):
        if runner.cancel():
            return True
    return False


def escape(window) -> None:
    """Esc (the shortcut table's ``cancel``): cancel a half-done tool action, else a running segmentation,
    else another running job (:func:`cancel_jobs`); the focus goes back to the image from a panel; with
    nothing of that, the Navigate tool."""
    in_panel = leave_panel(window)  # (the tool stays: Esc only left the spin box)
    if not (window.tools.cancel() or window.segmentation.cancel() or cancel_jobs(window) or in_panel):
        window.tool_state.update(tool="navigate")


def focus_first(panel: QWidget) -> bool:
    """Give the focus to the first control of ``panel`` that Tab would reach (True when there was one)."""
    w = panel.nextInFocusChain()
    while w is not None and w is not panel:
        if (panel.isAncestorOf(w) and w.isVisibleTo(panel) and w.isEnabled()
                and w.focusPolicy() & Qt.FocusPolicy.TabFocus):
            w.setFocus(Qt.FocusReason.TabFocusReason)
            return True
        w = w.nextInFocusChain()
        if w is panel.nextInFocusChain():  # once round the chain
            break
    return False


def _view_menu(window):
    for a in window.menuBar().actions():
        if a.menu() is not None and a.text().replace("&", "") == "View":
            return a.menu()
    return None


def install(window) -> None:
    A, canvas = window.actions_by_id, window.canvas
    A["view.zoom_in"] = make_action(window, "view.zoom_in", lambda: zoom(canvas, ZOOM_STEP))
    A["view.zoom_out"] = make_action(window, "view.zoom_out", lambda: zoom(canvas, 1.0 / ZOOM_STEP))
    menu = _view_menu(window)
    if menu is not None:
        acts = menu.actions()
        anchor = acts.index(A["view.fit"]) + 1 if A.get("view.fit") in acts else len(acts)
        before = acts[anchor] if anchor < len(acts) else None
        menu.insertActions(before, [A["view.zoom_in"], A["view.zoom_out"]])
    retrain = getattr(getattr(window, "human_loop", None), "retrain", None)
    for runner in (getattr(retrain, "runner", None), getattr(retrain, "gate_runner", None)):
        if runner is not None:  # Esc does not throw a training run away: its panel's button does
            runner.cancel_hint = "the Retrain panel's Cancel"
    window._arrow_pan = _ArrowPan(window)
    canvas.installEventFilter(window._arrow_pan)
