"""Keyboard-only use: keys typed into the control that has the focus, as a user types them (QA pass)."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QScrollArea

from cellviewer.gui.shortcuts import check_unique


@pytest.fixture
def kb_window(make_window, smear_path, qtbot):
    """A window on the smear (not segmented: nothing runs), active, with a second image in the folder."""
    shutil.copy(smear_path, smear_path.with_name("smear2.png"))
    win = make_window(auto_run=False)
    assert win.open_image(smear_path)
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win)
    return win


def focus(qtbot, widget):
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus)


def key(qtbot, k, mods=Qt.KeyboardModifier.NoModifier):
    """Press ``k`` where the focus is (shortcuts are matched as for real input)."""
    QTest.keyClick(QApplication.focusWidget(), k, mods)
    qtbot.wait(20)


def test_page_keys_in_a_spin_box_step_it_instead_of_opening_the_next_image(kb_window, qtbot):
    win = kb_window
    radius = win.edit_panel.radius
    win.tool_state.update(brush_radius=30)
    focus(qtbot, radius)
    key(qtbot, Qt.Key.Key_PageDown)
    assert win.session.path.name == "smear.png"  # was: smear2.png opened
    assert win.tool_state.value.brush_radius == 20
    key(qtbot, Qt.Key.Key_PageUp)
    assert win.tool_state.value.brush_radius == 30
    focus(qtbot, win.canvas)  # elsewhere PgDown is still the next image
    key(qtbot, Qt.Key.Key_PageDown)
    qtbot.waitUntil(lambda: win.session.path is not None and win.session.path.name == "smear2.png")


def test_esc_in_a_panel_gives_the_focus_back_to_the_image_and_keeps_the_tool(kb_window, qtbot):
    win = kb_window
    win.tool_state.update(tool="brush")
    focus(qtbot, win.edit_panel.radius)
    key(qtbot, Qt.Key.Key_N)  # typed into the spin box: no shortcut
    key(qtbot, Qt.Key.Key_Escape)
    assert win.canvas.hasFocus()
    assert win.tool_state.value.tool == "brush"  # Esc left the panel only
    key(qtbot, Qt.Key.Key_E)  # single-key shortcuts work again
    assert win.tool_state.value.tool == "eraser"
    key(qtbot, Qt.Key.Key_Escape)  # on the image: as before, back to Navigate
    assert win.tool_state.value.tool == "navigate"


def test_zoom_keys_and_arrow_keys_move_the_view(kb_window, qtbot):
    win = kb_window
    vb = win.canvas.vb
    focus(qtbot, win.canvas)
    key(qtbot, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    (x0, x1), _ = vb.viewRange()
    key(qtbot, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    (a0, a1), (b0, b1) = vb.viewRange()
    assert a1 - a0 == pytest.approx((x1 - x0) / 1.25, rel=0.02)
    key(qtbot, Qt.Key.Key_Right)
    (c0, c1), (d0, d1) = vb.viewRange()
    assert c0 > a0 and (d0, d1) == pytest.approx((b0, b1))
    key(qtbot, Qt.Key.Key_Down)
    assert vb.viewRange()[1][0] > d0  # further down the image
    key(qtbot, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    (e0, e1), _ = vb.viewRange()
    assert e1 - e0 == pytest.approx(x1 - x0, rel=0.02)
    # the arrow keys are no window shortcut: a radio group in a panel keeps them
    win.tool_state.update(cls="rbc")
    focus(qtbot, win.edit_panel.class_buttons["rbc"])
    key(qtbot, Qt.Key.Key_Right)
    assert win.tool_state.value.cls == "wbc"


def test_tab_does_not_stop_on_the_docks_scroll_areas(kb_window, qtbot):
    win = kb_window
    focus(qtbot, win.canvas)
    stops = []
    for _ in range(60):
        key(qtbot, Qt.Key.Key_Tab)
        w = QApplication.focusWidget()
        if w is win.canvas:
            break
        stops.append(w)
    assert w is win.canvas and stops  # round the window and back
    assert stops[0] is win.edit_panel.tool_buttons["navigate"]  # the first control, not an invisible frame
    assert not [w for w in stops if isinstance(w, QScrollArea) and w.objectName().startswith("scroll_")]


def test_zoom_is_in_the_shortcut_table_the_view_menu_and_the_help(kb_window):
    from cellviewer.gui.actions import ShortcutsDialog

    win = kb_window
    assert check_unique() == []
    view = [a for a in win.menuBar().actions() if a.text().replace("&", "") == "View"][0].menu()
    names = [a.objectName() for a in view.actions()]
    assert names.index("view.zoom_in") == names.index("view.fit") + 1
    assert names.index("view.zoom_out") == names.index("view.fit") + 2
    dlg = ShortcutsDialog(win)
    texts = [dlg.table.item(i, 2).text() for i in range(dlg.table.rowCount())]
    assert "Zoom in" in texts and "Zoom out" in texts
    dlg.close()


def test_a_dock_opened_from_the_keyboard_takes_the_focus(kb_window, qtbot):
    win = kb_window
    focus(qtbot, win.canvas)
    key(qtbot, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    dock = win.docks["training"]
    assert dock.isVisible()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None and dock.isAncestorOf(QApplication.focusWidget()))
    key(qtbot, Qt.Key.Key_Escape)
    assert win.canvas.hasFocus()


def _endless(token):
    """A job that runs until it is cancelled."""
    import time

    from cellviewer.core.jobs import Progress

    while True:
        time.sleep(0.01)
        yield Progress(0.0, "working")


@pytest.mark.parametrize("which", ["folder report", "report export", "red-cell classes"])
def test_esc_cancels_the_jobs_that_have_no_cancel_button(kb_window, qtbot, which):
    """"cancel it (Esc)" said the status line, but Esc cancelled only a segmentation."""
    win = kb_window
    runner = {"folder report": win.folder_reporter.runner, "report export": win.exporter.runner,
              "red-cell classes": win.segmentation.classes_runner}[which]
    win.tool_state.update(tool="brush")
    assert runner.start(_endless, which)
    focus(qtbot, win.canvas)
    key(qtbot, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not runner.is_running)
    assert win.tool_state.value.tool == "brush"  # the first Esc cancelled the job only


def test_a_refused_training_start_names_the_panels_cancel_not_esc(kb_window, monkeypatch):
    from cellviewer.gui import notifications

    lines = []
    monkeypatch.setattr(notifications, "status", lambda text, *a, **k: lines.append(text))
    runner = kb_window.human_loop.retrain.runner
    assert runner.start(_endless, "fine-tuning")
    try:
        assert not runner.start(_endless, "fine-tuning")
        assert lines and "(Esc)" not in lines[-1] and "Retrain panel" in lines[-1]
    finally:
        runner.cancel()
        runner.wait(5000)
