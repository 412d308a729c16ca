"""A brush / eraser stroke or a Fill on a hidden class layer shows that layer (as the parts brush does): an
edit that no one sees is a mistake no one sees (found by a mouse QA pass: a red cell painted with the RBC
layer unticked changed the counts with nothing on screen)."""

from __future__ import annotations

from tests.gui.mouse import mouse_drag
from tests.gui.smear import RBC_CENTRES


def test_a_real_brush_drag_on_the_hidden_rbc_layer_shows_it(segmented, qtbot):
    win = segmented
    doc = win.session.doc
    win.layers_panel.classes["rbc"].setChecked(False)  # the user hides the red cells (Layers panel)
    assert not win.view_state.value.classes["rbc"]
    win.actions_by_id["tool.brush"].trigger()
    win.tool_state.update(cls="rbc", brush_radius=3)
    n, before = win.session.stack.count(), doc.counts()["rbc"]
    mouse_drag(qtbot, win.canvas, [(110.0, 160.0), (114.0, 160.0), (118.0, 160.0)])  # empty ground
    assert win.session.stack.count() == n + 1 and doc.counts()["rbc"] == before + 1
    assert win.view_state.value.classes["rbc"] and win.layers_panel.classes["rbc"].isChecked()
    assert "RBC layer shown" in win.statusBar().currentMessage()
    assert doc.labels["rbc"][160, 110] > 0 and win.canvas.overlay_rgba()[160, 110, 3] > 0  # drawn


def test_the_eraser_undoes_hide_all_overlays_and_a_visible_layer_is_left_alone(segmented, qtbot):
    win = segmented
    x, y = RBC_CENTRES[0]
    win.actions_by_id["view.hide_overlays"].trigger()  # H
    win.actions_by_id["tool.eraser"].trigger()
    win.tool_state.update(brush_radius=2)
    win.tools.stroke([(x - 1.0, y), (x + 1.0, y)], erase=True)
    assert not win.view_state.value.hide_overlays and not win.layers_panel.hide_all.isChecked()
    assert "Overlays shown" in win.statusBar().currentMessage()
    seen = []
    win.view_state.changed.connect(seen.append)
    win.tools.stroke([(x - 1.0, y + 4), (x + 1.0, y + 4)], erase=True)  # visible now: no change, no note
    assert seen == []


def test_a_fill_on_the_hidden_layer_shows_it_and_a_refused_one_does_not(segmented, qtbot):
    win = segmented
    doc = win.session.doc
    x, y = RBC_CENTRES[1]
    win.actions_by_id["tool.eraser"].trigger()
    win.tool_state.update(brush_radius=2, cls="rbc")
    win.tools.stroke([(x, y), (x + 0.5, y)], erase=True)  # a hole in the middle of a red cell
    assert doc.labels["rbc"][y, x] == 0
    win.layers_panel.classes["rbc"].setChecked(False)
    win.actions_by_id["tool.fill"].trigger()
    win.tools.click(5.0, 185.0)  # open background: refused, the layer stays hidden
    assert not win.view_state.value.classes["rbc"]
    win.tools.click(float(x), float(y))
    assert doc.labels["rbc"][y, x] > 0 and win.view_state.value.classes["rbc"]
    assert "RBC layer shown" in win.statusBar().currentMessage()


def test_esc_during_a_real_brush_drag_takes_the_stroke_back(segmented, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    win = segmented
    doc = win.session.doc
    win.actions_by_id["tool.brush"].trigger()
    win.tool_state.update(cls="rbc", brush_radius=3)
    before, n = doc.labels["rbc"].copy(), win.session.stack.count()
    painted = []

    def esc():
        painted.append(int((doc.labels["rbc"] != before).sum()))
        QTest.keyClick(win.canvas, Qt.Key.Key_Escape)

    win.canvas.setFocus()
    mouse_drag(qtbot, win.canvas, [(100.0, 140.0), (100.0, 150.0), (100.0, 160.0), (100.0, 175.0)], esc)
    assert painted[0] > 0  # it was painting ...
    assert (doc.labels["rbc"] == before).all() and win.session.stack.count() == n  # ... and is gone, no step
    assert win.tool_state.value.tool == "brush" and doc.open_stroke is None  # the tool stays
    assert "Brush: cancelled" in win.statusBar().currentMessage()
