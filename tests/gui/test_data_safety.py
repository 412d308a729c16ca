"""GUI data safety: undo across image switches, backups before a re-segmentation replaces corrections,
declined recovery keeps the journal, no autosave mid-drag, edits during a run, the border rule journaled,
stale status lines, uncounted cells drawn untinted."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cellviewer.core import journal, segment
from cellviewer.core.jobs import Progress, run_job
from cellviewer.core.sidecar import find_sidecar, load_document, read_sidecar, save_sidecar
from cellviewer.gui import notifications, statusbits


def _copy(smear_path, name):
    p = smear_path.with_name(name)
    p.write_bytes(smear_path.read_bytes())
    return p


# -- 1. undo across image switches ------------------------------------------------------------------
def test_undo_history_comes_back_with_the_image(make_window, smear_path):
    other = _copy(smear_path, "other.png")
    win = make_window(auto_run=False)
    assert win.open_image(smear_path)
    win.tools.stroke([(20.0, 120.0), (60.0, 120.0)])
    win.tools.set_tool("marker_add")
    win.tools.click(200, 20)
    assert win.session.stack.count() == 2
    assert win.open_image(other)
    assert win.session.stack.count() == 0 and not win.actions_by_id["edit.undo"].isEnabled()
    assert smear_path in win.session.undo_cache
    assert win.open_image(smear_path)
    doc = win.session.doc
    assert win.session.stack.count() == 2 and win.actions_by_id["edit.undo"].isEnabled()
    assert all(win.session.stack.command(i).doc is doc for i in range(2))
    n = len(doc.markers)
    win.undo()  # the marker goes
    assert len(doc.markers) == n - 1
    win.undo()  # the brush stroke goes
    assert doc.labels["rbc"][120, 40] == 0 and doc.provenance.edits == []
    win.redo()
    assert doc.labels["rbc"][120, 40] > 0
    win.undo()
    assert win.session.save_now()
    assert load_document(smear_path).labels["rbc"][120, 40] == 0  # what undo did is saved too


def test_a_kept_history_holds_no_document_and_is_dropped_when_the_sidecar_changed(make_window, smear_path):
    other = _copy(smear_path, "other.png")
    win = make_window(auto_run=False)
    assert win.open_image(smear_path)
    win.tools.stroke([(20.0, 120.0), (60.0, 120.0)])
    assert win.open_image(other)
    stack = win.session.undo_cache._items[str(smear_path.resolve())][0]
    assert stack.command(0).doc is None  # the closed image's maps and pixels are not kept alive
    # another program saves the image's corrections meanwhile: the kept history no longer fits them
    theirs = load_document(smear_path)
    theirs.set_border_rule("inside")
    save_sidecar(theirs)
    assert win.open_image(smear_path)
    assert win.session.stack.count() == 0 and win.session.doc.border_rule == "inside"


def test_the_undo_cache_is_bounded(qtbot, tmp_path):
    from PySide6.QtGui import QUndoStack

    from cellviewer.core import edits
    from cellviewer.gui.commands import EditCommand
    from cellviewer.gui.undocache import UndoCache, stack_bytes
    from tests.core.test_edits import seeded_doc

    def stack_with_edit():
        doc = seeded_doc()
        st = QUndoStack()
        st.push(EditCommand(doc, edits.delete_cell(doc, "rbc", 1)))
        return st

    cache = UndoCache(max_images=2)
    for name in ("a", "b", "c"):
        assert cache.put(tmp_path / name, stack_with_edit(), (1, 2))
    assert len(cache) == 2 and tmp_path / "a" not in cache and tmp_path / "c" in cache  # the oldest went first
    one = stack_bytes(stack_with_edit())
    assert one > 0
    cache = UndoCache(max_bytes=int(one * 1.5))
    cache.put(tmp_path / "a", stack_with_edit(), (1, 2))
    cache.put(tmp_path / "b", stack_with_edit(), (1, 2))
    assert len(cache) == 1 and tmp_path / "b" in cache and cache.nbytes <= cache.max_bytes
    assert not cache.put(tmp_path / "x", QUndoStack(), (1, 2))  # nothing to keep
    assert not cache.put(tmp_path / "y", stack_with_edit(), None)  # never saved: it would not fit a reload
    assert cache.take(tmp_path / "b", None, (9, 9)) is None and len(cache) == 0  # the sidecar changed


# -- 2. a backup before re-segmentation replaces corrections -----------------------------------------
def test_rerun_over_saved_corrections_keeps_a_copy_first(segmented, smear_path, qtbot, dialogs):
    win = segmented
    pattern = smear_path.name + ".cellviewer.replaced-*"
    assert list(smear_path.parent.glob(pattern)) == []  # the first segmentation replaced no corrections
    win.tools.stroke([(100.0, 15.0), (120.0, 15.0)])
    assert win.save()
    with qtbot.waitSignal(win.segmentation.runner.finished, timeout=30000):
        assert win.segmentation.run()
    kept = list(smear_path.parent.glob(pattern))
    assert len(kept) == 1
    meta, arrays = read_sidecar(kept[0])
    assert [e["action"] for e in meta["provenance"]["edits"]] == ["Brush"]
    assert arrays["labels/rbc.npy"][15, 110] > 0
    assert kept[0].name in win.statusBar().currentMessage()
    # the backup's place lasts, readable in the status bar: its name and folder, the full path in the tooltip
    lasting = win.lasting_warning
    assert lasting.isVisible() and kept[0].name in lasting.label.text()
    assert len(lasting.label.text()) <= 2 + statusbits.MAX_CHARS and str(kept[0]) in lasting.toolTip()
    qtbot.waitUntil(lambda: not win.session.dirty, timeout=5000)
    assert load_document(smear_path).labels["rbc"][15, 110] == 0  # the sidecar itself holds the new result


# -- 3. declined crash recovery keeps the journal ------------------------------------------------------
def test_declined_recovery_keeps_the_journal_aside(make_window, smear_path, dialogs, crash):
    win = make_window(auto_run=False)
    win.session.autosave_ms = 10 ** 6  # no autosave: a "crash" before it
    win.open_image(smear_path)
    win.tools.stroke([(20.0, 120.0), (60.0, 120.0)])
    jpath = win.session.doc.journal.path
    data = jpath.read_bytes()
    crash(win)
    win2 = make_window(auto_run=False)
    dialogs.answer_yes = False
    assert win2.open_image(smear_path)
    assert "Recover" in dialogs.questions[-1][0]
    assert win2.session.doc.labels["rbc"][120, 40] == 0
    kept = list(jpath.parent.glob(jpath.name + ".declined-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == data
    assert [k for k, _ in journal.read_entries(kept[0])] == ["apply"]  # still readable by hand
    assert str(kept[0]) in win2.statusBar().currentMessage()


# -- 4. no autosave in the middle of a brush drag -------------------------------------------------------
def test_autosave_waits_for_the_end_of_a_brush_drag(make_window, smear_path, qtbot):
    win = make_window(auto_run=False)
    win.open_image(smear_path)
    win.session.autosave_ms = 40
    win.tools.set_tool("brush")
    assert win.tools.drag_start(20.0, 120.0)
    win.tools.drag_move(40.0, 120.0)
    assert win.session.dirty
    win.session.autosave()  # the timer fires while the button is still down
    qtbot.wait(250)  # ... and again
    assert not win.session.saver.is_running and find_sidecar(smear_path) is None
    win.tools.drag_end(60.0, 120.0)
    qtbot.waitUntil(lambda: find_sidecar(smear_path) is not None and not win.session.dirty, timeout=5000)
    saved = load_document(smear_path)
    assert [e.action for e in saved.provenance.edits] == ["Brush"]  # one drag, one saved state
    assert saved.labels["rbc"][120, 40] > 0 and saved.labels["rbc"][120, 60] > 0
    assert saved.counts()["rbc"] == 1  # with the new cell's marker
    assert win.session.stack.count() == 1


# -- 5. edits made during a run -------------------------------------------------------------------------
class GatedSegmenter:
    """Waits for ``gate`` (progress meanwhile), then returns ``result``."""

    def __init__(self, result, gate):
        self.result, self.gate = result, gate

    def segment(self, image, cancel=None):
        while not self.gate.is_set():
            if cancel is not None:
                cancel.check()
            time.sleep(0.01)
            yield Progress(0.5, "waiting")
        return self.result


def start_gated_run(win, qtbot, monkeypatch) -> threading.Event:
    """Start a segmentation of the open image that holds its (classical) result until the returned gate is set."""
    result = run_job(segment.create_segmenter("classical").segment(win.session.doc.image.pixels))
    gate = threading.Event()
    monkeypatch.setattr(segment, "create_segmenter", lambda name=None, **opts: GatedSegmenter(result, gate))
    with qtbot.waitSignal(win.segmentation.runner.progress, timeout=5000):
        assert win.segmentation.run()
    return gate


def test_edits_during_a_run_are_replaced_with_a_lasting_warning_and_undo_brings_them_back(
        segmented, smear_path, qtbot, monkeypatch):
    win = segmented
    doc = win.session.doc
    gate = start_gated_run(win, qtbot, monkeypatch)
    win.tools.stroke([(100.0, 15.0), (120.0, 15.0)])  # an edit while it runs
    assert doc.labels["rbc"][15, 110] > 0
    with qtbot.waitSignal(win.segmentation.runner.finished, timeout=10000):
        gate.set()
    qtbot.waitUntil(lambda: win.session.stack.undoText().startswith("Segmentation"), timeout=5000)
    assert doc.labels["rbc"][15, 110] == 0  # replaced by the result
    lasting = win.lasting_warning
    assert lasting.isVisible() and "replaced" in lasting.text() and "Ctrl+Z brings them back" in lasting.text()
    assert lasting.label.text() == "⚠ " + lasting.text()  # shown whole, not cut
    assert smear_path.name in lasting.toolTip() and "Undo" in lasting.toolTip()
    notifications.warn("something else")  # other lines come and go; the lasting warning stays
    notifications.status("and more", 100)
    qtbot.wait(200)
    assert lasting.isVisible()
    win.undo()  # Undo really brings the edit back
    assert doc.labels["rbc"][15, 110] > 0
    assert not lasting.isVisible() and notifications.lasting_text() == ""  # what it spoke of is undone


def test_the_edits_replaced_warning_also_clears_on_the_next_edit(segmented, qtbot, monkeypatch):
    win = segmented
    gate = start_gated_run(win, qtbot, monkeypatch)
    win.tools.stroke([(100.0, 15.0), (120.0, 15.0)])
    with qtbot.waitSignal(win.segmentation.runner.finished, timeout=10000):
        gate.set()
    qtbot.waitUntil(lambda: win.lasting_warning.isVisible(), timeout=5000)
    win.tools.set_tool("marker_add")
    win.tools.click(200, 20)  # the user's next successful edit clears it
    assert not win.lasting_warning.isVisible() and notifications.lasting_text() == ""
    notifications.lasting("another warning")
    win.undo()  # undoing the marker: not the segmentation, the other warning stays
    win.undo()  # undoing the segmentation does not clear a later, unrelated warning
    assert notifications.lasting_text() == "another warning"


def test_elide_middle_and_where_kept():
    assert statusbits.elide_middle("short", 10) == "short"
    e = statusbits.elide_middle("abcdefghijklmnopqrstuvwxyz", 9)
    assert len(e) == 9 and e.startswith("abcd") and e.endswith("wxyz") and "…" in e
    w = statusbits.where_kept("/very/long/folder/" + "x" * 60 + "/img.png.cellviewer.replaced-20260101-120000")
    assert w.startswith("img.png.cellviewer.replaced-20260101-120000 in /very") and len(w) < 80


def test_a_lasting_warning_is_dismissed_with_its_button(window, qtbot):
    notifications.lasting("look here")
    assert window.lasting_warning.isVisible() and notifications.lasting_text() == "look here"
    qtbot.mouseClick(window.lasting_warning.close_button, __import__("PySide6.QtCore").QtCore.Qt.MouseButton.LeftButton)
    assert not window.lasting_warning.isVisible() and notifications.lasting_text() == ""


# -- 6. border rule journaled -----------------------------------------------------------------------
def test_the_border_rule_chosen_in_the_panel_survives_a_crash(segmented, smear_path, make_window, qtbot, dialogs,
                                                               crash):
    win = segmented
    qtbot.waitUntil(lambda: find_sidecar(smear_path) is not None and not win.session.dirty, timeout=5000)
    win.session.saver.wait()
    win.session.autosave_ms = 10 ** 6  # the crash comes before the next save
    box = win.counts_panel.border
    box.setCurrentIndex(box.findData("inside"))
    assert win.session.doc.border_rule == "inside"
    assert [e.name for _, e in journal.read_entries(win.session.doc.journal.path)] == ["Border rule"]
    crash(win)
    win2 = make_window(auto_run=False)
    dialogs.answer_yes = True
    assert win2.open_image(smear_path)
    assert win2.session.doc.border_rule == "inside"
    assert win2.counts_panel.border.currentData() == "inside"


# -- 7. a successful edit clears stale lines --------------------------------------------------------------
def test_a_successful_edit_clears_stale_warnings_and_prompts(segmented, qtbot):
    win = segmented
    bar = win.statusBar()
    win.tools.set_tool("delete")
    win.tools.click(5.0, 5.0)  # no cell there: a warning about this click
    assert "No cell here" in bar.currentMessage()
    win.tools.click(70.0, 80.0)  # a red cell: deleted
    assert bar.currentMessage() == ""
    win.tools.set_tool("merge")
    win.tools.click(150.0, 40.0)
    assert "Merge: " in bar.currentMessage()  # a prompt ...
    win.tools.click(171.0, 40.0)
    assert bar.currentMessage() == ""  # ... gone once the merge went through
    win.session.stack.setIndex(0)
    win.redo()
    win.session.stack.setIndex(win.session.stack.count())
    win.redo()
    assert "Nothing to redo" in bar.currentMessage()
    win.tools.set_tool("delete")
    win.tools.click(30.0, 30.0)
    assert "Nothing to redo" not in bar.currentMessage()
    notifications.warn("Calibration: check it")  # not about the edit state: an edit does not clear it
    win.tools.click(30.0, 75.0)
    assert "Calibration" in bar.currentMessage()


def test_a_warning_the_edit_itself_gives_stays(segmented, qtbot):
    win = segmented
    win.tools.set_tool("marker_add")
    win.tools.click(30.0, 30.0)  # inside a red cell that already has its marker: "counts twice"
    assert "counts twice" in win.statusBar().currentMessage()


# -- 9. uncounted cells are untinted outlines ---------------------------------------------------------------
def test_cells_the_border_rule_leaves_out_are_drawn_as_outlines_only(segmented, qtbot):
    from cellviewer.gui.overlay import EDGE_ALPHA, FILL_ALPHA

    win = segmented
    win.tools.set_tool("brush")
    win.tools.set_class("rbc")
    win.tools.stroke([(2.0, 100.0), (6.0, 100.0)])  # a cell cut by the left edge
    rgba = win.canvas.overlay_rgba()
    assert rgba[100, 6, 3] == FILL_ALPHA and rgba[80, 70, 3] == FILL_ALPHA
    box = win.counts_panel.border
    box.setCurrentIndex(box.findData("inside"))
    rgba = win.canvas.overlay_rgba()
    assert rgba[100, 6, 3] == 0  # not counted: no tint inside ...
    assert rgba[100, 0, 3] == EDGE_ALPHA  # ... its outline stays
    assert rgba[80, 70, 3] == FILL_ALPHA  # a counted cell keeps its tint
    box.setCurrentIndex(box.findData("all"))
    assert win.canvas.overlay_rgba()[100, 6, 3] == FILL_ALPHA


def test_a_cell_whose_marker_was_removed_by_hand_is_drawn_untinted_as_in_the_report(segmented, qtbot):
    from cellviewer.gui.overlay import EDGE_ALPHA, FILL_ALPHA

    win = segmented
    doc = win.canvas.doc
    m = next(m for m in doc.markers.values() if m.cls == "rbc" and m.cell)
    ys, xs = np.nonzero(doc.labels["rbc"] == m.cell)
    inside = next((y, x) for y, x in zip(ys, xs) if doc.labels["rbc"][y - 2:y + 3, x - 2:x + 3].min() == m.cell)
    assert win.canvas.overlay_rgba()[inside][3] == FILL_ALPHA
    win.tools.set_tool("marker_remove")
    win.tools.click(m.x, m.y)
    assert m.id not in doc.markers
    rgba = win.canvas.overlay_rgba()
    assert rgba[inside][3] == 0  # not counted: no tint, as in the PDF's overview ...
    assert rgba[ys.min(), xs[ys == ys.min()][0], 3] == EDGE_ALPHA  # ... the outline stays
    win.undo()
    assert win.canvas.overlay_rgba()[inside][3] == FILL_ALPHA


def test_a_new_cell_drawn_by_hand_then_its_marker_removed_is_untinted(segmented, qtbot):
    from cellviewer.gui.overlay import FILL_ALPHA

    win = segmented
    doc = win.canvas.doc
    win.canvas.overlay_rgba()  # the highest cell id is known from here on: the new cell's comes edit by edit
    top = int(doc.labels["rbc"].max())
    win.tools.set_tool("brush")
    win.tools.set_class("rbc")
    y, x = next((y, x) for y in range(8, doc.shape[0] - 8, 4) for x in range(8, doc.shape[1] - 8, 4)
                if not any(lab[y - 8:y + 9, x - 8:x + 9].any() for lab in doc.labels.values()))
    win.tools.stroke([(float(x), float(y)), (float(x) + 1, float(y))])
    assert doc.labels["rbc"][y, x] == top + 1 and win.canvas.overlay_rgba()[y, x, 3] == FILL_ALPHA
    m = next(m for m in doc.markers.values() if m.cell == top + 1 and m.cls == "rbc")
    win.tools.set_tool("marker_remove")
    win.tools.click(m.x, m.y)
    assert win.canvas.overlay_rgba()[y, x, 3] == 0


def test_render_leaves_hollow_cells_and_their_parts_untinted():
    from cellviewer.gui.overlay import EDGE_ALPHA, FILL_ALPHA, PART_ALPHA, render

    lab = np.zeros((20, 30), np.int32)
    lab[2:10, 2:10] = 1
    lab[2:10, 15:25] = 2
    wbc = np.zeros_like(lab)
    wbc[12:19, 2:12] = 1
    parts = np.zeros((20, 30), np.uint8)
    parts[12:19, 2:12] = 2
    labels = {"rbc": lab, "wbc": wbc, "platelet": np.zeros_like(lab)}
    rgba = render(labels, parts, (0, 0, 20, 30), lambda k: True, False, {"rbc": np.array([1]), "wbc": np.array([1])})
    assert rgba[5, 5, 3] == 0 and rgba[2, 5, 3] == EDGE_ALPHA  # hollow red cell
    assert rgba[5, 20, 3] == FILL_ALPHA  # counted red cell
    assert rgba[15, 6, 3] == 0 and rgba[12, 6, 3] == EDGE_ALPHA  # hollow white cell: parts untinted too
    full = render(labels, parts, (0, 0, 20, 30), lambda k: True, False)
    assert full[5, 5, 3] == FILL_ALPHA and full[15, 6, 3] == PART_ALPHA


@pytest.fixture(autouse=True)
def _no_lasting_left():
    yield
    notifications.clear_lasting()


def test_ctrl_s_says_saved_with_the_sidecar_name(segmented, smear_path, qtbot):
    win = segmented
    notifications.status("Segmentation done: a line of the same rank that is still showing", 20000)
    win.tools.stroke([(100.0, 15.0), (120.0, 15.0)])
    win.actions_by_id["file.save"].trigger()
    found = find_sidecar(smear_path)
    assert win.statusBar().currentMessage() == f"Saved {found.name}"
    notifications.status("something else", 20000)
    win.actions_by_id["file.save"].trigger()  # nothing new: it still answers
    assert win.statusBar().currentMessage().startswith(f"Saved {found.name}")


@pytest.mark.parametrize("auto_run", [False, True])
def test_switching_images_during_a_run_says_it_was_cancelled(make_window, smear_path, qtbot, monkeypatch, auto_run):
    from tests.gui.conftest import write_smear

    win = make_window(auto_run=False)
    assert win.open_image(smear_path)
    gate = start_gated_run(win, qtbot, monkeypatch)
    win.seg_params.update(auto_run=auto_run)
    other = write_smear(smear_path.parent / "other.png")
    with qtbot.waitSignal(win.segmentation.runner.cancelled, timeout=10000):
        assert win.open_image(other)
    qtbot.wait(100)  # the queued run (auto_run) starts meanwhile
    msg = win.statusBar().currentMessage()
    assert "Segmentation of smear.png cancelled" in msg, msg
    if auto_run:
        assert "segmenting other.png" in msg
        gate.set()
        qtbot.waitUntil(lambda: not win.segmentation.runner.is_running, timeout=10000)


def test_the_review_panels_queue_copy_keeps_the_border_rule(segmented):
    from cellviewer.gui.panels.review import document_copy

    doc = segmented.session.doc
    doc.set_border_rule("inside")
    assert document_copy(doc).border_rule == "inside"  # the queue leaves out what the rule does not count


def test_an_edit_reaching_the_field_stop_redraws_which_cells_count(make_window, tmp_path, qtbot):
    """A brush stroke that takes a cell to the edge of the field of view inside the image (here a black band,
    as outside a field stop) makes it a cut cell: under "only whole cells" it is drawn untinted at once."""
    import cv2

    from cellviewer.gui.overlay import FILL_ALPHA
    from tests.gui.smear import make_smear

    img = make_smear(seed=3)
    img[:, 200:] = 0  # the field ends at column 200
    path = tmp_path / "stopped.png"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    win = make_window(auto_run=False)
    assert win.open_image(path)
    win.session.doc.set_border_rule("inside")
    win.tools.set_tool("brush")
    win.tools.set_class("rbc")
    win.tools.stroke([(150.0, 95.0), (160.0, 95.0)])  # a whole cell inside the field
    assert win.canvas.overlay_rgba()[95, 155, 3] == FILL_ALPHA
    win.tools.stroke([(160.0, 95.0), (199.0, 95.0)])  # ... grown up to the field's edge
    rgba = win.canvas.overlay_rgba()
    assert win.session.doc.counts()["rbc"] == 0 and rgba[95, 155, 3] == 0
