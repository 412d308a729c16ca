"""Whole-image work on big fields goes a slice per turn of the event loop (cellviewer.gui.slices): the same
results as done at once — the saved sidecar, the red cells' sizes, the overlay — and nothing lost when an edit
comes in between. A small smear stands in for a big field by lowering ``SYNC_PX``."""

from __future__ import annotations

import numpy as np
import pytest

from cellviewer.core.sidecar import find_sidecar, read_sidecar, snapshot
from cellviewer.gui import slices


@pytest.fixture
def big(monkeypatch):
    """Every image counts as big, in slices of a few rows."""
    monkeypatch.setattr(slices, "SYNC_PX", 100)
    monkeypatch.setattr(slices, "SLICE_PX", 260 * 7)


def run_all(gen):
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def test_sliced_copies_and_areas_equal_the_whole_image_ones(segmented, big):
    from cellviewer.core.report import whole_rbc_areas

    doc = segmented.session.doc
    doc.labels["wbc"][0, 0] = 70000  # an id past uint16: that map is kept as int32, as snapshot() does
    arrays = run_all(slices.copy_maps(doc))
    for name, a in snapshot(doc).arrays.items():
        assert arrays[name].dtype == a.dtype and np.array_equal(arrays[name], a), name
    own = run_all(slices.copy_maps(doc, as_saved=False))
    assert all(own[f"labels/{c}.npy"].dtype == np.int32 for c in doc.labels)
    assert run_all(slices.rbc_areas(doc)) == whole_rbc_areas(doc)


def test_a_sliced_copy_takes_in_the_edits_made_in_between(segmented, big):
    """An edit between two steps does not start the copy again: where it changed the maps is copied once
    more, so the copy is the document as it is when the copy returns."""
    from cellviewer.core import edits

    doc = segmented.session.doc
    gen = slices.copy_maps(doc)
    next(gen)  # the red cells' map is copied (one slice here), the others are not yet
    rbc = int(doc.labels["rbc"].max())
    segmented.tools.push(edits.delete_cell(doc, "rbc", rbc))  # in rows copied already
    next(gen)
    segmented.tools.push(edits.add_marker(doc, "platelet", 5.0, 5.0))  # markers only
    segmented.tools.stroke([(100.0, 15.0), (140.0, 25.0)])  # a brush stroke, whole
    arrays = run_all(gen)
    assert arrays is not None
    for name, a in snapshot(doc).arrays.items():
        assert arrays[name].dtype == a.dtype and np.array_equal(arrays[name], a), name


def test_a_sliced_copy_gives_up_when_a_map_is_replaced(segmented, big):
    from cellviewer.gui.commands import detach_state, restore_state

    doc = segmented.session.doc
    gen = slices.copy_maps(doc)
    next(gen)
    restore_state(doc, detach_state(doc))  # the maps replaced (as by a segmentation, its undo or redo)
    assert run_all(gen) is None


def test_a_sliced_copy_never_holds_half_a_brush_stroke(segmented, big):
    from cellviewer.core.brush import BrushStroke

    doc = segmented.session.doc
    gen = slices.copy_maps(doc)
    stroke = BrushStroke(doc, "rbc", 6)
    stroke.dab(100.0, 15.0)  # painting: doc.open_stroke
    assert run_all(gen) is None  # (without wait_stroke: given up, as before)

    gen = slices.copy_maps(doc, wait_stroke=True)
    waits = []
    while True:
        try:
            w = next(gen)
        except StopIteration as stop:
            arrays = stop.value
            break
        if w:  # waiting for the stroke to end: it goes on painting meanwhile, then ends
            waits.append(w)
            if len(waits) < 3:
                stroke.line_to(100.0 + 10 * len(waits), 15.0 + 3 * len(waits))
            else:
                segmented.tools.push(stroke.finish())
    assert len(waits) == 3 and doc.open_stroke is None
    for name, a in snapshot(doc).arrays.items():
        assert np.array_equal(arrays[name], a), name


def test_the_save_after_a_barrier_lands_while_brush_strokes_keep_coming(segmented, smear_path, qtbot, big):
    """The save a journal barrier waits for (undo of a segmentation) is copied a slice per turn, not at once
    on the GUI thread; strokes painted meanwhile neither put it off nor end up half in it."""
    win = segmented
    s, doc = win.session, win.session.doc
    qtbot.waitUntil(lambda: not s.dirty and not s.saver.is_running, timeout=5000)
    win.undo()  # a barrier: a save must land
    assert s._must_save
    qtbot.wait(1)
    assert s._copier.busy  # in slices (before: copied at once)
    for k in range(40):
        win.tools.set_class("rbc")
        win.tools.stroke([(20.0 + 5 * k, 40.0), (24.0 + 5 * k, 60.0)])
        qtbot.wait(30)
        if not s._must_save and not s.saver.is_running:
            break
    assert k < 39
    qtbot.waitUntil(lambda: not s.dirty and not s.saver.is_running, timeout=10000)
    _, arrays = read_sidecar(find_sidecar(smear_path))
    assert all(np.array_equal(arrays[f"labels/{c}.npy"], doc.labels[c]) for c in doc.labels)


def test_autosave_of_a_big_image_with_edits_in_between_loses_nothing(segmented, smear_path, qtbot, big):
    win = segmented
    s, doc = win.session, win.session.doc
    qtbot.waitUntil(lambda: not s.dirty and not s.saver.is_running, timeout=5000)
    win.tools.stroke([(100.0, 15.0), (120.0, 15.0)])
    s.autosave()  # the copy starts (a slice per turn of the event loop) ...
    assert s._copier.busy
    win.tools.set_tool("marker_add")
    win.tools.click(30.0, 170.0)  # ... an edit comes in between: it starts again later
    qtbot.waitUntil(lambda: not s.dirty and not s.saver.is_running, timeout=10000)
    meta, arrays = read_sidecar(find_sidecar(smear_path))
    assert len(meta["markers"]) == len(doc.markers)
    assert np.array_equal(arrays["labels/rbc.npy"], doc.labels["rbc"])


def test_ctrl_s_on_a_big_image_saves_in_the_background_and_says_so(segmented, smear_path, qtbot, big):
    win = segmented
    s = win.session
    qtbot.waitUntil(lambda: not s.dirty and not s.saver.is_running, timeout=5000)
    win.tools.stroke([(100.0, 15.0), (120.0, 15.0)])
    assert win.save()
    assert s.dirty  # not written yet: the window goes on
    found = find_sidecar(smear_path)
    qtbot.waitUntil(lambda: win.statusBar().currentMessage() == f"Saved {found.name}", timeout=10000)
    assert not s.dirty
    _, arrays = read_sidecar(found)
    assert np.array_equal(arrays["labels/rbc.npy"], s.doc.labels["rbc"])


def test_close_right_after_an_edit_on_a_big_image_saves_it(segmented, smear_path, qtbot, big):
    win = segmented
    win.tools.stroke([(100.0, 15.0), (120.0, 15.0)])
    win.session.autosave()  # a copy going on when the window closes
    labels = win.session.doc.labels["rbc"].copy()
    win.close()
    _, arrays = read_sidecar(find_sidecar(smear_path))
    assert np.array_equal(arrays["labels/rbc.npy"], labels)


def test_the_whole_overlay_of_a_big_image_is_drawn_tile_by_tile_and_complete(segmented, qtbot, monkeypatch, big):
    from cellviewer.gui import canvas as C
    from cellviewer.gui import overlay

    monkeypatch.setattr(C, "TILE", 64)
    canvas = segmented.canvas
    doc = segmented.session.doc
    canvas.set_document(doc)  # 64-px tiles
    assert canvas._overlay_steps.busy  # not all at once
    qtbot.waitUntil(lambda: not canvas._overlay_steps.busy, timeout=5000)
    h, w = doc.shape
    whole = overlay.render(doc.labels, doc.parts, (0, 0, h, w), canvas.view.overlay_visible, canvas.view.outline,
                           canvas._hollow)
    assert np.array_equal(canvas._rgba, whole)
    canvas.refresh_overlay()
    assert canvas._overlay_steps.busy
    assert np.array_equal(canvas.overlay_rgba(), whole)  # asked for, it is finished at once


def test_red_cell_sizes_of_a_big_image_are_measured_in_slices(segmented, qtbot, big):
    from cellviewer.core import edits

    win = segmented
    panel, doc = win.counts_panel, win.session.doc
    panel.set_document(doc)
    qtbot.waitUntil(lambda: "RBC diameter (whole cells)" in panel.diff, timeout=5000)
    cell = int(doc.labels["rbc"].max())
    win.tools.push(edits.delete_cell(doc, "rbc", cell))
    qtbot.waitUntil(lambda: panel._sizes_key == id(doc), timeout=5000)
    assert cell not in panel._sizes


@pytest.mark.parametrize("side", [40, 300])  # maps too small to pack (kept as they are), and packed ones
def test_undo_and_redo_of_a_segmentation_give_the_document_maps_of_its_own(qapp, side):
    from cellviewer.core.document import Document, ImageData, ImageInfo, Marker
    from cellviewer.core.segment import SegmentationResult
    from cellviewer.gui.commands import SegmentationCommand, make_stack

    doc = Document(ImageData(np.zeros((side, side, 3), np.uint8), ImageInfo(None, side, side)))
    doc.labels["rbc"][5:10, 5:10] = 1
    before = doc.labels["rbc"].copy()
    lab = np.zeros((side, side), np.int32)
    lab[20:30, 20:30] = 1
    stack = make_stack()
    stack.push(SegmentationCommand(doc, SegmentationResult({"rbc": lab}, [Marker(0, "rbc", 25.0, 25.0, cell=1)])))
    after = doc.labels["rbc"].copy()
    for _ in range(2):
        stack.undo()
        assert np.array_equal(doc.labels["rbc"], before) and doc.labels["rbc"].dtype == np.int32
        doc.labels["rbc"][0, 0] = 7  # written into in place, as an edit does: the kept state stays as it was
        stack.redo()
        assert np.array_equal(doc.labels["rbc"], after) and doc.parts.dtype == np.uint8
        doc.labels["rbc"][1, 1] = 9
        after[1, 1] = 9  # (the redo state is detached at the next undo: this edit is part of it)


def test_a_big_image_file_is_read_in_a_thread_with_the_same_outcome(window, smear_path, tmp_path, dialogs, monkeypatch):
    from cellviewer.gui import session

    monkeypatch.setattr(session, "BACKGROUND_OPEN_BYTES", 0)  # every file counts as big
    assert window.open_image(smear_path)
    assert window.session.doc is not None and window.session.path == smear_path
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    assert not window.open_image(bad)  # the error comes back to the GUI thread: one dialog, the image stays
    assert len(dialogs.shown) == 1 and window.session.path == smear_path


def test_edits_right_after_undoing_a_segmentation_do_not_put_its_save_off(segmented, smear_path, qtbot, big):
    """After a change the journal cannot hold (undo of a segmentation: a barrier), the save is not debounced
    by the edits that follow — before, edits < 1 s apart put it off for ever and a crash lost them all."""
    from cellviewer.core import edits

    win = segmented
    s, doc = win.session, win.session.doc
    qtbot.waitUntil(lambda: not s.dirty and not s.saver.is_running, timeout=5000)
    win.undo()  # the segmentation is undone: a barrier in the journal, a save must land
    assert s._must_save
    undone = {c: doc.labels[c].copy() for c in doc.labels}
    for k in range(60):  # edits 50 ms apart for up to 3 s: the save must land while they keep coming
        win.tools.push(edits.add_marker(doc, "platelet", 10.0 + 2 * k, 10.0))
        qtbot.wait(50)
        if not s._must_save and not s.saver.is_running:
            break
    assert not s._must_save and k < 59  # before: each edit restarted the 1-s debounce, the save never came
    _, arrays = read_sidecar(find_sidecar(smear_path))
    assert all(np.array_equal(arrays[f"labels/{c}.npy"], undone[c]) for c in undone)  # the undone state is on disk


def test_a_background_ctrl_s_is_covered_by_the_save_of_an_image_switch(segmented, smear_path, tmp_path, qtbot, big):
    import shutil

    win = segmented
    s = win.session
    qtbot.waitUntil(lambda: not s.dirty and not s.saver.is_running, timeout=5000)
    win.tools.stroke([(100.0, 15.0), (120.0, 15.0)])
    assert win.save() and s._user_save  # "Saving…" in the background
    other = tmp_path / "other.png"
    shutil.copy(smear_path, other)
    win.segmentation.params.update(auto_run=False)
    assert win.open_image(other)
    assert not s._user_save  # the switch's save covered it: the next image's autosave is no "Saved" answer
    assert win.statusBar().currentMessage() != "Saving…"
