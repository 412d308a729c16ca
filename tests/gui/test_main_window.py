"""The real main window: open, segment, edit with the mouse, undo/redo, save, reopen, export."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, Qt
from PySide6.QtTest import QTest

from cellviewer.core.sidecar import find_sidecar
from tests.gui.mouse import _mouse, mouse_drag  # noqa: F401 (mouse_drag: also imported from here)
from tests.gui.smear import RBC_CENTRES, RBC_R, WBC_CENTRE


def test_open_segments_automatically_and_counts(segmented):
    win = segmented
    doc = win.session.doc
    assert doc.counts() == {"rbc": 12, "wbc": 1, "platelet": 2}
    assert win.session.stack.count() == 1 and win.session.stack.undoText().startswith("Segmentation")
    assert "RBC: 12" in win.counts_panel.text()
    assert "RBC 12" in win.counts_label.text()
    d = doc.provenance.params["diameter_px"]  # the red-cell size used, so a wrong estimate is seen
    assert win.size_label.text() == f"260 × 190 px · red cell {float(d):.0f} px (estimated)"
    # segmentation saves at once, and is undoable
    assert find_sidecar(win.session.path) is not None
    win.session.stack.undo()
    assert doc.counts()["rbc"] == 0 and not doc.labels["rbc"].any()
    win.session.stack.redo()
    assert doc.counts()["rbc"] == 12 and doc.labels["rbc"].max() == 12


def test_brush_with_real_mouse_events_is_one_undo_step(segmented, qtbot):
    win = segmented
    doc = win.session.doc
    win.canvas.zoom_to_fit()
    qtbot.wait(50)
    win.actions_by_id["tool.brush"].trigger()
    win.tool_state.update(cls="rbc", brush_radius=4)
    before = doc.labels["rbc"].copy()
    n_before = win.session.stack.count()
    path = [(100.0, 15.0), (110.0, 15.0), (120.0, 15.0), (130.0, 15.0)]  # background between cells
    mouse_drag(qtbot, win.canvas, path)
    after = doc.labels["rbc"].copy()
    painted = after != before
    assert painted.sum() > 50
    assert after[15, 110] > 0 and after[15, 125] == after[15, 110]  # one new cell along the drag
    assert win.session.stack.count() == n_before + 1  # one drag = one undo step
    assert win.session.stack.undoText() == "Brush"
    qtbot.waitUntil(lambda: "RBC: 13" in win.counts_panel.text(), timeout=2000)  # new cell, new marker
    # the overlay shows it
    assert win.canvas.overlay_rgba()[15, 115, 3] > 0
    win.actions_by_id["edit.undo"].trigger()
    np.testing.assert_array_equal(doc.labels["rbc"], before)
    assert win.canvas.overlay_rgba()[15, 115, 3] == 0
    qtbot.waitUntil(lambda: "RBC: 12" in win.counts_panel.text(), timeout=2000)
    win.actions_by_id["edit.redo"].trigger()
    np.testing.assert_array_equal(doc.labels["rbc"], after)


def test_keyboard_shortcuts_switch_tool_and_class(segmented, qtbot):
    win = segmented
    win.activateWindow()
    win.canvas.setFocus()
    QTest.keyClick(win.canvas, Qt.Key.Key_B)
    assert win.tool_state.value.tool == "brush"
    QTest.keyClick(win.canvas, Qt.Key.Key_2)
    assert win.tool_state.value.cls == "wbc"
    r = win.tool_state.value.brush_radius
    QTest.keyClick(win.canvas, Qt.Key.Key_BracketRight)
    assert win.tool_state.value.brush_radius > r
    QTest.keyClick(win.canvas, Qt.Key.Key_O)
    assert win.view_state.value.outline
    QTest.keyClick(win.canvas, Qt.Key.Key_Escape)
    QTest.keyClick(win.canvas, Qt.Key.Key_Escape)
    assert win.tool_state.value.tool == "navigate"


def test_merge_split_and_marker_through_tools(segmented, qtbot):
    win = segmented
    doc, tools = win.session.doc, win.tools
    lab = doc.labels["rbc"]
    (ax, ay), (bx, by) = RBC_CENTRES[4], RBC_CENTRES[5]  # the touching pair
    a, b = int(lab[ay, ax]), int(lab[by, bx])
    assert a and b and a != b
    tools.set_tool("merge")
    tools.click(ax, ay)
    tools.click(bx, by)
    assert doc.labels["rbc"][ay, ax] == doc.labels["rbc"][by, bx]
    qtbot.waitUntil(lambda: "RBC: 11" in win.counts_panel.text(), timeout=2000)
    assert win.session.stack.undoText() == "Merge cells"
    # split it again along the line where they touched
    tools.set_tool("split")
    x_cut = (ax + bx) / 2
    tools.drag_start(x_cut, ay - RBC_R - 4)
    tools.drag_move(x_cut, ay)
    tools.drag_end(x_cut, ay + RBC_R + 4)
    assert doc.labels["rbc"][ay, ax] != doc.labels["rbc"][by, bx]
    qtbot.waitUntil(lambda: "RBC: 12" in win.counts_panel.text(), timeout=2000)
    # add a marker by hand: counts follow
    tools.set_class("platelet")
    tools.set_tool("marker_add")
    tools.click(250, 180)
    qtbot.waitUntil(lambda: "Platelets: 3" in win.counts_panel.text(), timeout=2000)
    # remove it again
    tools.set_tool("marker_remove")
    tools.click(250.5, 180.5)
    qtbot.waitUntil(lambda: "Platelets: 2" in win.counts_panel.text(), timeout=2000)
    # delete the WBC, reclassify an RBC to WBC
    tools.set_tool("delete")
    tools.click(*WBC_CENTRE)
    assert doc.counts()["wbc"] == 0 and not doc.parts.any()
    tools.set_class("wbc")
    tools.set_tool("reclassify")
    tools.click(*RBC_CENTRES[0])
    assert doc.counts()["wbc"] == 1 and doc.labels["wbc"][RBC_CENTRES[0][1], RBC_CENTRES[0][0]] > 0
    # every action is one undo step; undoing all of them restores the segmentation
    while win.session.stack.index() > 1:
        win.session.stack.undo()
    assert doc.counts() == {"rbc": 12, "wbc": 1, "platelet": 2}


def test_refused_edit_is_a_status_line_not_a_dialog(segmented, dialogs):
    win = segmented
    win.tools.set_tool("merge")
    win.tools.click(*RBC_CENTRES[0])
    win.tools.click(*RBC_CENTRES[0])  # the same cell twice
    assert dialogs.shown == []
    assert "different cells" in win.statusBar().currentMessage()


def test_close_saves_and_reopen_restores_edits(make_window, smear_path, qtbot):
    win = make_window(auto_run=False)
    assert win.open_image(smear_path)
    assert win.session.stack.count() == 0  # auto-run off: nothing ran
    win.tools.stroke([(20.0, 120.0), (60.0, 120.0)])
    win.tools.set_tool("marker_add")
    win.tools.click(40, 120)
    assert win.session.doc.labels["rbc"][120, 40] > 0
    win.close()
    assert find_sidecar(smear_path) is not None
    win2 = make_window(auto_run=True)
    assert win2.open_image(smear_path)
    assert not win2.segmentation.runner.is_running  # a sidecar exists: no auto-segmentation
    doc = win2.session.doc
    assert doc.labels["rbc"][120, 40] > 0
    assert doc.counts()["rbc"] == 2  # the painted cell's marker + the manual one
    assert [e.action for e in doc.provenance.edits] == ["Brush", "Add marker"]


def test_autosave_within_two_seconds(make_window, smear_path, qtbot):
    win = make_window(auto_run=False)
    win.open_image(smear_path)
    assert find_sidecar(smear_path) is None
    win.tools.stroke([(20.0, 120.0), (40.0, 120.0)])
    qtbot.waitUntil(lambda: find_sidecar(smear_path) is not None, timeout=2500)
    qtbot.waitUntil(lambda: not win.session.dirty, timeout=2500)
    assert win.files_panel.list.item(0).text().startswith("✔")
    # marking the image reviewed (one undoable edit) is saved and shown as a star in the folder list
    assert win.human_loop.review_panel.set_image_reviewed(True)
    qtbot.waitUntil(lambda: win.files_panel.list.item(0).text().startswith("★"), timeout=2500)
    win.session.stack.undo()
    qtbot.waitUntil(lambda: win.files_panel.list.item(0).text().startswith("✔"), timeout=2500)


def test_export_report_writes_pdf_and_csv(segmented, qtbot, tmp_path):
    win = segmented
    out = tmp_path / "report.pdf"
    with qtbot.waitSignal(win.exporter.done, timeout=30000):
        assert win.export_report(out)
    assert out.read_bytes()[:5] == b"%PDF-"
    counts = (tmp_path / "report_counts.csv").read_text().splitlines()
    assert counts[0] == "image,rbc,wbc,platelets" and counts[1] == "smear.png,12,1,2"
    assert len((tmp_path / "report_cells.csv").read_text().splitlines()) == 1 + 15


def test_next_previous_in_folder(make_window, smear_path, qtbot):
    from tests.gui.smear import write_smear

    write_smear(smear_path.parent / "smear2.png", seed=1)
    win = make_window(auto_run=False)
    win.open_image(smear_path)
    assert win.files_panel.paths and len(win.files_panel.paths) == 2
    win.actions_by_id["file.next"].trigger()
    assert win.session.path.name == "smear2.png"
    win.actions_by_id["file.previous"].trigger()
    assert win.session.path.name == "smear.png"


def test_broken_image_gives_one_dialog(window, tmp_path, dialogs):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert not window.open_image(bad)
    assert len(dialogs.shown) == 1
    assert "broken.jpg" in dialogs.shown[0].text
    assert window.session.doc is None


def test_settings_persist_in_isolated_file(make_window, qtbot):
    import os

    win = make_window(auto_run=False)
    win.view_state.update(opacity=0.3)
    win.tool_state.update(brush_radius=17)
    win.close()
    assert os.path.exists(os.environ["CELLVIEWER_SETTINGS"])
    win2 = make_window(auto_run=False)
    assert abs(win2.view_state.value.opacity - 0.3) < 1e-6
    assert win2.tool_state.value.brush_radius == 17
    assert win2.layers_panel.opacity.value() == 30


def mouse_click(qtbot, canvas, x, y):
    """A real left-button click at image point (x, y) on the canvas viewport."""
    vp = canvas.viewport()
    pos = canvas.map_to_view(x, y)
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    _mouse(vp, QEvent.Type.MouseMove, pos, none, none)
    qtbot.wait(20)
    _mouse(vp, QEvent.Type.MouseButtonPress, pos, left, left)
    qtbot.wait(20)
    _mouse(vp, QEvent.Type.MouseButtonRelease, pos, left, none)
    qtbot.wait(20)


def test_a_click_right_on_a_marker_dot_reaches_the_tool(segmented, qtbot):
    """The marker dots are drawn over the image; a click on a dot is the tool's, not the dot's."""
    win = segmented
    doc = win.session.doc
    win.canvas.zoom_to_fit()
    qtbot.wait(50)
    m = next(m for m in doc.markers.values() if m.cls == "rbc")
    win.actions_by_id["tool.marker_remove"].trigger()
    mouse_click(qtbot, win.canvas, m.x, m.y)
    assert m.id not in doc.markers
    m2 = next(m for m in doc.markers.values() if m.cls == "rbc" and m.cell)
    cell = m2.cell
    win.actions_by_id["tool.delete"].trigger()
    mouse_click(qtbot, win.canvas, m2.x, m2.y)  # delete cell: clicked where its marker sits
    assert not (doc.labels["rbc"] == cell).any()


def test_the_window_fits_a_laptop_screen(window, qtbot):
    """Docked panels scroll: the window's minimum size fits a 1366×768 screen (with a task bar)."""
    window.showNormal()
    qtbot.wait(50)
    hint = window.minimumSizeHint()
    assert hint.height() <= 700 and hint.width() <= 1300, (hint.width(), hint.height())
    assert window.minimumHeight() <= 700


def test_on_first_start_the_image_gets_the_room(window, qtbot):
    """The docks' widest texts are short (full names in the tooltips): on a 1400-px window the image view is not
    squeezed to a third (before: 461 px)."""
    from cellviewer.gui.docks import first_layout

    window.showNormal()
    window.resize(1400, 900)
    qtbot.wait(50)
    first_layout(window)
    qtbot.wait(50)
    assert window.canvas.width() >= 0.42 * window.width(), window.canvas.width()
    assert window.edit_panel.tool_buttons["marker_reclassify"].toolTip().startswith("Reclassify marker")


def test_the_cursor_readout_follows_edits_and_images(segmented, qtbot):
    win = segmented
    doc = win.session.doc
    m = next(m for m in doc.markers.values() if m.cls == "rbc" and m.cell)
    win._on_hover(m.x, m.y)
    assert f"RBC #{m.cell}" in win.cursor_label.text()
    win.actions_by_id["tool.delete"].trigger()
    win.tools.click(m.x, m.y)  # the cell under the mouse is deleted
    qtbot.waitUntil(lambda: f"RBC #{m.cell}" not in win.cursor_label.text(), timeout=2000)
    assert win.cursor_label.text().startswith("x ")
    win.session.close_document()
    assert win.cursor_label.text() == ""


def test_a_new_window_starts_with_navigate_whatever_tool_was_last(make_window):
    from cellviewer.gui import settings
    from cellviewer.gui.state import ToolState

    settings.save_dataclass("tools", ToolState(tool="delete", cls="wbc", brush_radius=5))
    win = make_window(auto_run=False)
    assert win.tool_state.value == ToolState(tool="navigate", cls="wbc", brush_radius=5)


def test_the_device_label_names_the_model_of_the_open_images_masks(segmented, tmp_path, qtbot):
    import shutil

    from cellviewer.core.sidecar import load_document, save_sidecar

    win = segmented
    assert "(classical-watershed)" in win.device_label.text()
    other = tmp_path / "other.png"
    shutil.copy(win.session.path, other)
    doc = load_document(other)  # an image segmented earlier by another model (its sidecar says so)
    doc.provenance.model_name, doc.provenance.device = "blood-cells", "cuda:0"
    save_sidecar(doc)
    win.seg_params.update(auto_run=False)
    assert win.open_image(other)
    assert win.device_label.text() == "Device: cuda:0 (blood-cells)"  # before: the last run's, on the last image


def test_actions_on_the_open_image_are_disabled_while_none_is_open(make_window, smear_path):
    from cellviewer.gui.shortcuts import DOCUMENT_ACTIONS

    win = make_window(auto_run=False)
    assert win.session.doc is None
    assert not any(win.actions_by_id[a].isEnabled() for a in DOCUMENT_ACTIONS)
    assert win.actions_by_id["file.open"].isEnabled() and win.actions_by_id["file.report_folder"].isEnabled()
    assert win.open_image(smear_path)
    assert all(win.actions_by_id[a].isEnabled() for a in DOCUMENT_ACTIONS)


def test_how_the_file_was_read_is_in_the_size_tooltip(make_window, tmp_path, qtbot):
    """Notes that are no caution (16-bit scaled, EXIF orientation, alpha on white) were only in the PDF."""
    import cv2

    from tests.gui.smear import write_smear

    rgb = cv2.imread(str(write_smear(tmp_path / "s.png")))
    path = tmp_path / "cam12.png"
    cv2.imwrite(str(path), rgb.astype(np.uint16) * 16)  # 12-bit camera values in 16 bits
    win = make_window(auto_run=False)
    assert win.open_image(path)
    tip = win.size_label.toolTip()
    assert "How the file was read:" in tip and "12 bits used" in tip
