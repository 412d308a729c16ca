"""Panels write to the state dataclasses; the canvas and the segmenter request follow them."""

from __future__ import annotations

import sys

import pytest

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from cellviewer.gui.segmentation import device_text, segmenter_request
from cellviewer.gui.state import SegmentParams


def test_segmenter_request_from_params():
    assert segmenter_request(SegmentParams(model="classical", counting="hough")) == ("classical-hough",
                                                                                   {"device": "auto"})
    name, opts = segmenter_request(SegmentParams(model="classical", diameter_px=42.0))
    assert name == "classical" and opts["diameter_px"] == 42.0
    name, opts = segmenter_request(SegmentParams(model="classical", use_um=True, diameter_um=7.0, um_per_px=0.1))
    assert opts["um_per_px"] == 0.1 and opts["diameter_um"] == 7.0 and "diameter_px" not in opts
    # a calibration alone: a trained net measures red cells in µm (morphology size prior), the classical
    # segmenter does not get it (it would take its red-cell size from it)
    name, opts = segmenter_request(SegmentParams(model="blood-cells", um_per_px=0.17))
    assert opts["um_per_px"] == 0.17 and "diameter_um" not in opts and "diameter_px" not in opts
    name, opts = segmenter_request(SegmentParams(model="classical", um_per_px=0.17))
    assert "um_per_px" not in opts
    assert "CPU" in device_text(SegmentParams(model="classical"))


def test_segment_panel_edits_params_and_status_bar_shows_device(window):
    p = window.segment_panel
    p.counting.setCurrentIndex(p.counting.findData("distance_peaks"))
    assert window.seg_params.value.counting == "distance_peaks"
    p.diameter_px.setValue(33)
    assert window.seg_params.value.diameter_px == 33
    assert not p.use_um.isEnabled()  # a diameter in µm needs the calibration first
    p.um_per_px.setValue(0.1)
    assert p.use_um.isEnabled()
    p.use_um.setChecked(True)
    assert window.seg_params.value.use_um and not p.diameter_px.isEnabled() and p.diameter_um.isEnabled()
    assert window.segmentation.segmenter_request()[0] == "classical-distance"
    assert "CPU" in window.device_label.text()


def test_layers_panel_drives_the_canvas(segmented):
    win = segmented
    rgba = win.canvas.overlay_rgba()
    from tests.gui.smear import RBC_CENTRES

    x, y = RBC_CENTRES[0]
    assert rgba[y, x, 3] > 0
    win.layers_panel.outline.setChecked(True)
    assert win.view_state.value.outline and win.canvas.overlay_rgba()[y, x, 3] == 0
    assert win.actions_by_id["view.outline"].isChecked()
    win.layers_panel.outline.setChecked(False)
    win.layers_panel.classes["rbc"].setChecked(False)
    assert win.canvas.overlay_rgba()[y, x, 3] == 0 and not win.canvas.markers["rbc"].isVisible()
    win.layers_panel.opacity.setValue(20)
    assert abs(win.canvas.overlay_group.opacity() - 0.2) < 1e-6
    win.layers_panel.image.setChecked(False)
    assert not win.canvas.image_item.isVisible()


def test_typing_in_a_spin_box_does_not_trigger_single_key_shortcuts(segmented, qtbot):
    win = segmented
    win.activateWindow()
    box = win.edit_panel.radius
    box.setFocus()
    box.selectAll()
    QTest.keyClicks(box, "23")
    assert box.value() == 23 and win.tool_state.value.brush_radius == 23
    assert win.tool_state.value.cls == "rbc"  # "2" went to the spin box, not to "select WBC"
    QTest.keyClick(win.canvas, Qt.Key.Key_2)
    assert win.tool_state.value.cls == "wbc"


def test_edit_panel_buttons_select_tools(window):
    window.edit_panel.tool_buttons["split"].click()
    assert window.tool_state.value.tool == "split"
    assert window.actions_by_id["tool.split"].isChecked()
    window.edit_panel.class_buttons["platelet"].click()
    assert window.tool_state.value.cls == "platelet"


def test_emit_does_not_wear_out_true(qtbot):
    """PySide6 6.12.0 drops a reference to True on every emit; the gui package guards against it."""
    import cellviewer.gui  # noqa: F401  (applies the guard)
    from PySide6.QtCore import QObject, Signal

    class O(QObject):
        sig = Signal()

    o = O()
    for _ in range(20000):
        o.sig.emit()
    assert sys.getrefcount(True) > 10000


def test_counts_panel_border_rule_goes_into_the_document(segmented, qtbot):
    from cellviewer.core.document import Marker

    win = segmented
    doc, panel = win.counts_panel.doc, win.counts_panel
    cell = doc.next_label("rbc")
    doc.labels["rbc"][0:6, 0:12] = cell  # a sliver of a red cell cut by the top-left corner
    mid = doc.next_marker_id()
    doc.markers[mid] = Marker(mid, "rbc", 5.0, 2.0, cell=cell)
    doc.notify_all()
    qtbot.waitUntil(lambda: panel.counts["rbc"] == doc.counts()["rbc"], timeout=3000)
    before = panel.counts["rbc"]
    panel.border.setCurrentIndex(panel.border.findData("inside"))
    assert doc.border_rule == "inside"  # the document holds the choice, the panel only shows it
    qtbot.waitUntil(lambda: panel.counts["rbc"] < before, timeout=3000)
    assert mid in doc.uncounted() and "not counted" in panel.label.text()
    spots = win.canvas.markers["rbc"].points()
    alpha = {int(p.data()): p.brush().color().alpha() for p in spots}
    assert alpha[mid] < 100 and max(alpha.values()) > 200  # the uncounted cell's marker is hollow
    doc.set_border_rule("all")
    qtbot.waitUntil(lambda: panel.counts["rbc"] == before, timeout=3000)
    assert panel.border.currentData() == "all"


def test_a_border_rule_change_is_one_undo_step(segmented, qtbot):
    """Ctrl+Z right after choosing "Cells on the edge" undoes that choice (it undid the edit before it — on a
    freshly segmented image the segmentation, every count dropping to 0); redo chooses it again."""
    win = segmented
    doc, panel, stack = win.session.doc, win.counts_panel, win.session.stack
    steps, counts = stack.count(), doc.counts()
    panel.border.setCurrentIndex(panel.border.findData("inside"))
    assert doc.border_rule == "inside" and stack.count() == steps + 1 and stack.undoText() == "Border rule"
    win.undo()
    assert doc.border_rule == "all" and doc.counts() == counts
    assert sum(doc.counts().values()) > 0  # the segmentation is still there
    qtbot.waitUntil(lambda: panel.border.currentData() == "all", timeout=3000)
    win.redo()
    assert doc.border_rule == "inside"
    qtbot.waitUntil(lambda: panel.border.currentData() == "inside", timeout=3000)
    assert not any(e.action == "Border rule" for e in doc.corrections())  # not a correction of cells


def test_the_chosen_border_rule_is_the_default_for_images_without_saved_corrections(window, smear_path, qtbot):
    from tests.gui.smear import write_smear

    other = write_smear(smear_path.parent / "other.png", seed=3)
    window.seg_params.update(auto_run=False)
    assert window.open_image(smear_path)
    panel = window.counts_panel
    panel.border.setCurrentIndex(panel.border.findData("frame"))
    assert window.count_settings.value.border_rule == "frame" and panel.doc.border_rule == "frame"
    assert window.open_image(other)
    assert panel.doc.border_rule == "frame" and panel.border.currentData() == "frame"


def test_red_cell_morphology_is_shown_set_by_hand_and_undone(segmented, qtbot):
    """The review queue shows and sets a red cell's morphology class (one undo step); Counts lists it."""
    win = segmented
    panel, doc, stack = win.human_loop.review_panel, win.session.doc, win.session.stack
    qtbot.waitUntil(lambda: len(panel.queue) > 0 and not panel.runner.is_running, timeout=15000)
    row = next(i for i, it in enumerate(panel.queue) if it.cls == "rbc")
    assert panel.go_to(row) and panel.morph.isEnabled()
    assert panel.morph.currentData() == ""  # the classical segmenter gives no morphology
    it = panel.queue[row]
    assert panel.set_morphology("target_cell")
    m = doc.markers_of_cell("rbc", it.cell)[0]
    assert (m.morph, m.morph_p) == ("target_cell", 1.0)
    assert panel.table.item(row, 1).text().endswith("· target cell")
    assert panel.morph.currentData() == "target_cell" and panel.morph_p.text() == "set by hand"
    qtbot.waitUntil(lambda: "RBC morphology: target cell" in win.counts_panel.diff, timeout=3000)
    stack.undo()
    assert doc.markers_of_cell("rbc", it.cell)[0].morph == ""
    assert panel.morph.currentData() == "" and not panel.table.item(row, 1).text().endswith("target cell")
    win.segment_panel.morphology.setChecked(False)
    assert win.seg_params.value.morphology is False
    assert segmenter_request(SegmentParams(model="blood-cells", morphology=False))[1]["morphology"] is False


def test_arrow_keys_on_the_morphology_box_open_its_list_instead_of_classing_at_each_press(segmented, qtbot):
    """Up / Down on the closed red-cell morphology box set a class (and an undo step) at every press; they
    open its list now, where Enter applies the class walked to: one undo step."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    win = segmented
    panel, stack = win.human_loop.review_panel, win.session.stack
    qtbot.waitUntil(lambda: len(panel.queue) > 0 and not panel.runner.is_running, timeout=15000)
    assert panel.go_to(next(i for i, it in enumerate(panel.queue) if it.cls == "rbc"))
    steps = stack.count()
    panel.morph.setFocus()
    QTest.keyClick(panel.morph, Qt.Key.Key_Down)
    QTest.keyClick(panel.morph, Qt.Key.Key_Down)
    assert stack.count() == steps and panel.morph.currentData() == ""  # nothing applied while walking
    qtbot.waitUntil(lambda: panel.morph.view().isVisible(), timeout=2000)
    view = panel.morph.view()
    view.setCurrentIndex(view.model().index(panel.morph.findData("target_cell"), 0))
    QTest.keyClick(view, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: stack.count() == steps + 1, timeout=2000)
    assert panel.morph.currentData() == "target_cell"


def test_going_to_a_queued_cell_shows_the_whole_cell(segmented, qtbot):
    win = segmented
    panel = win.human_loop.review_panel
    qtbot.waitUntil(lambda: len(panel.queue) > 0 and not panel.runner.is_running, timeout=15000)
    assert all(it.box is not None for it in panel.queue)
    row = 0
    x0, y0, x1, y1 = panel.queue[row].box = (10, 20, 250, 180)  # as large as a merged clump can be
    assert panel.go_to(row)
    r = win.canvas.vb.viewRect()
    assert r.left() <= x0 and r.top() <= y0 and r.right() >= x1 and r.bottom() >= y1
    it = panel.queue[row]  # and the cell is ringed, at its marker, so it is found among its neighbours
    xs, ys = win.canvas.highlight.getData()
    assert list(xs) == [it.x] and list(ys) == [it.y]
    # the Down arrow in the table shows the next row's cell, as a click does (Y marks the cell shown)
    from PySide6.QtCore import Qt

    panel.table.setFocus()
    qtbot.keyClick(panel.table, Qt.Key.Key_Down)
    assert panel.current == 1 and list(win.canvas.highlight.getData()[0]) == [panel.queue[1].x]


def test_next_goes_past_a_file_that_cannot_be_opened(make_window, smear_path, dialogs):
    import shutil

    win = make_window(auto_run=False)
    folder = smear_path.parent
    shutil.copy(smear_path, folder / "a.png")
    (folder / "b.png").write_bytes(b"")  # an empty file: a failed copy
    shutil.copy(smear_path, folder / "c.png")
    assert win.open_image(folder / "a.png")
    fp = win.files_panel
    fp.step(+1)  # b.png fails: a message, a.png stays shown
    assert dialogs.shown and win.session.path.name == "a.png"
    fp.step(+1)  # Next again: on to c.png, not b.png once more
    assert win.session.path.name == "c.png" and len(dialogs.shown) == 1
    fp.step(-1)  # Previous from c.png: b.png again (it is still broken), then a.png is one more step back
    assert win.session.path.name == "c.png" and len(dialogs.shown) == 2
    fp.step(-1)
    assert win.session.path.name == "a.png"


def test_typing_a_calibration_keeps_what_was_typed(window, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    box = window.segment_panel.um_per_px
    for typed, want in (("0.17", 0.17), ("0.069", 0.069)):
        box.setFocus()
        box.selectAll()
        QTest.keyClicks(box, typed)
        QTest.keyClick(box, Qt.Key.Key_Return)
        assert window.seg_params.value.um_per_px == pytest.approx(want), box.text()
    d = window.segment_panel.diameter_px
    d.setFocus()
    d.selectAll()
    QTest.keyClicks(d, "40.5")
    QTest.keyClick(d, Qt.Key.Key_Return)
    assert window.seg_params.value.diameter_px == pytest.approx(40.5)


def test_the_wheel_over_a_panel_control_without_focus_changes_nothing(segmented, qtbot):
    window = segmented
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    combo = window.counts_panel.border  # "cells on the edge": changes the counts
    before = window.count_settings.value.border_rule
    assert combo.isEnabled()
    window.canvas.setFocus()
    ev = QWheelEvent(QPointF(5, 5), QPointF(combo.mapToGlobal(QPoint(5, 5))), QPoint(0, 0), QPoint(0, -120),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(combo, ev)
    assert window.count_settings.value.border_rule == before and combo.currentData() == before


def test_red_cell_sizes_are_measured_again_only_when_red_cell_masks_change(segmented, qtbot, monkeypatch):
    from cellviewer.core import edits
    from cellviewer.core import report as R

    win = segmented
    panel, doc = win.counts_panel, win.session.doc
    calls = []
    real = R.whole_rbc_areas
    monkeypatch.setattr(R, "whole_rbc_areas", lambda d: calls.append(1) or real(d))
    win.tools.push(edits.add_marker(doc, "platelet", 5.0, 5.0))  # markers only
    qtbot.waitUntil(lambda: panel.counts.get("platelet") == 3, timeout=3000)
    assert calls == [] and "RBC diameter (whole cells)" in panel.diff
    cell = int(doc.labels["rbc"].max())
    win.tools.push(edits.delete_cell(doc, "rbc", cell))  # a red-cell mask changed: measured again
    qtbot.waitUntil(lambda: calls == [1], timeout=3000)
    doc.um_per_px = 0.2
    win.tools.push(edits.add_marker(doc, "platelet", 7.0, 7.0))
    qtbot.waitUntil(lambda: "µm" in panel.diff["RBC diameter (whole cells)"], timeout=3000)  # a new calibration
    n = lambda: int(panel.diff["RBC diameter (whole cells)"].split("(n ")[1].rstrip(")"))  # noqa: E731
    before, whole = n(), [c for c in R.whole_rbc_areas(doc) if doc.markers_of_cell("rbc", c)]
    calls.clear()
    win.tools.push(edits.remove_marker(doc, doc.markers_of_cell("rbc", whole[0])[0].id))  # no longer counted
    qtbot.waitUntil(lambda: n() == before - 1, timeout=3000)  # it leaves the size statistics ...
    assert calls == []  # ... without the masks being measured again


def test_deleting_the_current_queued_cell_lets_next_go_on_from_where_it_was(segmented, qtbot):
    from cellviewer.core import operations as ops

    win = segmented
    panel, doc = win.human_loop.review_panel, win.session.doc
    qtbot.waitUntil(lambda: len(panel.queue) > 3 and not panel.runner.is_running, timeout=15000)
    assert panel.go_to(1)
    gone = (panel.queue[1].cls, panel.queue[1].cell)
    following = (panel.queue[2].cls, panel.queue[2].cell)
    win.tools.push(ops.delete_cell(doc, *gone))
    qtbot.waitUntil(lambda: gone not in [(it.cls, it.cell) for it in panel.queue] and not panel.runner.is_running,
                    timeout=15000)
    assert panel.current == -1  # nothing is "current" (Y never marks a cell the user has not been shown) ...
    assert panel.step(+1)  # ... and N goes on with the cell after the deleted one, not from the top
    it = panel.queue[panel.current]
    assert (it.cls, it.cell) == following


def test_a_folder_whose_first_image_cannot_be_read_opens_the_next_one(make_window, tmp_path, smear_path, dialogs):
    import shutil

    win = make_window(auto_run=False)
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")  # an empty file: a failed copy
    shutil.copy(smear_path, folder / "b.png")
    assert win.open_folder(folder)
    assert win.session.path.name == "b.png" and len(dialogs.shown) == 1  # a.png said why, b.png is shown


def test_the_device_text_never_waits_for_a_torch_import_in_progress(monkeypatch):
    """A worker importing torch puts it in sys.modules at once; an `import torch` in the GUI thread then waits
    for that whole import on the module lock (Open folder froze ~1 s)."""
    import sys
    import types

    from cellviewer.gui.segmentation import torch_ready

    half = types.ModuleType("torch")
    half.__spec__ = types.SimpleNamespace(_initializing=True)  # what importlib marks while it runs the module
    monkeypatch.setitem(sys.modules, "torch", half)
    assert not torch_ready()
    assert "checked when the model runs" in device_text(SegmentParams(model="blood-cells", device="auto"))
    half.__spec__ = types.SimpleNamespace(_initializing=False)
    assert torch_ready()
