"""The parts brush in the real window: W / X keys, the Edit panel, a real mouse drag = one undo step, saved."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from cellviewer.core.sidecar import load_document
from cellviewer.gui.shortcuts import check_unique
from tests.gui.smear import WBC_CENTRE
from tests.gui.mouse import mouse_drag


def test_keys_panel_and_menu_choose_the_parts_brush_and_its_part(segmented):
    win = segmented
    win.activateWindow()
    win.canvas.setFocus()
    QTest.keyClick(win.canvas, Qt.Key.Key_W)
    assert win.tool_state.value.tool == "parts" and win.edit_panel.tool_buttons["parts"].isChecked()
    assert "Parts brush" in win.statusBar().currentMessage() and "nucleus" in win.statusBar().currentMessage()
    QTest.keyClick(win.canvas, Qt.Key.Key_X)
    assert win.tool_state.value.part == "cytoplasm" and win.edit_panel.part_buttons["cytoplasm"].isChecked()
    win.edit_panel.part_buttons["nucleus"].click()
    assert win.tool_state.value.part == "nucleus"
    QTest.keyClick(win.canvas, Qt.Key.Key_B)  # X from another tool: the parts brush again, the other part
    QTest.keyClick(win.canvas, Qt.Key.Key_X)
    assert (win.tool_state.value.tool, win.tool_state.value.part) == ("parts", "cytoplasm")
    edit_menu = next(a.menu() for a in win.menuBar().actions() if a.text() == "&Edit")
    assert {"tool.parts", "parts.switch"} <= {a.objectName() for a in edit_menu.actions()}
    assert check_unique() == []


def test_a_real_drag_paints_the_nucleus_in_one_undo_step_and_is_saved(segmented, qtbot):
    win = segmented
    doc = win.session.doc
    cx, cy = WBC_CENTRE
    assert doc.labels["wbc"][cy, cx] > 0
    doc.parts[:] = 0  # as a model without parts leaves a white cell
    doc.notify_all()
    cells = {k: v.copy() for k, v in doc.labels.items()}
    win.resize(1400, 900)  # a canvas wide enough that the drag's steps are several screen px
    qtbot.wait(50)
    win.canvas.zoom_to_fit()
    qtbot.wait(50)
    shown = win.canvas.overlay_rgba()[cy, cx].copy()
    win.actions_by_id["tool.parts"].trigger()
    win.tool_state.update(part="nucleus", brush_radius=3)
    n = win.session.stack.count()
    mouse_drag(qtbot, win.canvas, [(cx - 4.0, cy), (cx, cy), (cx + 4.0, cy)])
    wbc = doc.labels["wbc"] == doc.labels["wbc"][cy, cx]
    assert doc.parts[cy, cx] == 1 and ((doc.parts != 0) == wbc).all()  # nucleus, the rest of the cell cytoplasm
    for k in cells:
        np.testing.assert_array_equal(doc.labels[k], cells[k])
    assert win.session.stack.count() == n + 1 and win.session.stack.undoText() == "Parts brush"
    assert (win.canvas.overlay_rgba()[cy, cx] != shown).any()  # the overlay shows the nucleus
    assert win.save()
    saved = load_document(win.session.path)
    np.testing.assert_array_equal(saved.parts, doc.parts)
    assert saved.provenance.edits[-1].action == "Parts brush" and saved.n_manual_edits == 1
    win.actions_by_id["edit.undo"].trigger()
    assert not doc.parts.any() and (win.canvas.overlay_rgba()[cy, cx] == shown).all()


def test_a_parts_stroke_off_white_cells_says_so_and_adds_no_step(segmented):
    win = segmented
    n = win.session.stack.count()
    win.tools.paint_parts([(100.0, 15.0), (120.0, 15.0)], "nucleus")  # background
    assert win.session.stack.count() == n and win.session.doc.open_stroke is None
    assert "white cell" in win.statusBar().currentMessage()


def test_picking_the_parts_brush_shows_the_hidden_parts_layer_and_says_so(segmented, qtbot):
    from cellviewer.core.document import PART_COLORS

    win = segmented
    cx, cy = WBC_CENTRE
    win.layers_panel.parts.setChecked(False)  # the user hides the layer (Layers panel)
    assert not win.view_state.value.show_parts
    assert tuple(win.canvas.overlay_rgba()[cy, cx, :3]) != PART_COLORS[1]  # the nucleus is not drawn
    win.activateWindow()
    win.canvas.setFocus()
    QTest.keyClick(win.canvas, Qt.Key.Key_W)
    assert win.tool_state.value.tool == "parts"
    assert win.view_state.value.show_parts and win.layers_panel.parts.isChecked()  # the state, the panel follows
    assert tuple(win.canvas.overlay_rgba()[cy, cx, :3]) == PART_COLORS[1]  # and the canvas draws it again
    msg = win.statusBar().currentMessage()
    assert "Parts brush" in msg and "layer shown" in msg


def test_a_parts_stroke_shows_the_layer_hidden_since_the_tool_was_picked(segmented, qtbot):
    from cellviewer.core.document import PART_COLORS

    win = segmented
    doc = win.session.doc
    cx, cy = WBC_CENTRE
    x = cx - 15  # cytoplasm, between the nucleus (radius 11) and the cell's edge (radius 18)
    assert doc.parts[cy, x] == 2
    win.actions_by_id["tool.parts"].trigger()
    win.tool_state.update(brush_radius=2)
    win.view_state.update(show_parts=False)  # hidden after picking the tool
    n = win.session.stack.count()
    win.tools.paint_parts([(x - 1.0, cy), (x + 1.0, cy)], "nucleus")
    assert win.session.stack.count() == n + 1 and doc.parts[cy, x] == 1
    assert win.view_state.value.show_parts and win.layers_panel.parts.isChecked()
    assert "layer shown" in win.statusBar().currentMessage()
    assert tuple(win.canvas.overlay_rgba()[cy, x, :3]) == PART_COLORS[1]  # the painted nucleus is on screen


def test_the_parts_brush_undoes_hide_all_overlays_and_leaves_a_visible_layer_alone(segmented, qtbot):
    win = segmented
    win.actions_by_id["view.hide_overlays"].trigger()  # H
    assert win.view_state.value.hide_overlays
    win.actions_by_id["tool.parts"].trigger()
    assert not win.view_state.value.hide_overlays and win.view_state.value.show_parts
    assert not win.actions_by_id["view.hide_overlays"].isChecked() and not win.layers_panel.hide_all.isChecked()
    assert "overlays shown" in win.statusBar().currentMessage()
    win.actions_by_id["tool.brush"].trigger()
    seen = []
    win.view_state.changed.connect(seen.append)
    win.actions_by_id["tool.parts"].trigger()  # already visible: nothing changes, no note
    assert seen == [] and "shown" not in win.statusBar().currentMessage()
