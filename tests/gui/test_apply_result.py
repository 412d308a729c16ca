"""Applying a segmentation result: no synchronous save (the sidecar is written by the autosave
thread after a journal barrier), and undo/redo keep exact states without copying up front."""

import threading

import numpy as np

from cellviewer.core import edits, journal, sidecar
from cellviewer.gui.commands import EditCommand


def _state(doc):
    return {c: doc.labels[c].copy() for c in doc.labels}, doc.parts.copy(), sorted(
        (m.cls, m.x, m.y) for m in doc.markers.values())


def _same(a, b):
    assert a[0].keys() == b[0].keys()
    for c in a[0]:
        np.testing.assert_array_equal(a[0][c], b[0][c])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]


def test_the_result_is_saved_off_the_gui_thread_after_a_barrier(segmented, qtbot, monkeypatch):
    win = segmented
    qtbot.waitUntil(lambda: not win.session.dirty and not win.session.saver.is_running, timeout=10000)
    writes = []
    real = sidecar.write_snapshot

    def spy(snap, path):
        writes.append(threading.current_thread() is threading.main_thread())
        return real(snap, path)

    monkeypatch.setattr(sidecar, "write_snapshot", spy)
    doc = win.session.doc
    jpath = doc.journal.path
    with qtbot.waitSignal(win.segmentation.runner.finished, timeout=30000):
        win.segmentation.run(confirm=False)
    # right after the result: the barrier is journaled (a crash now recovers nothing past it)
    kinds = [k for k, _, _ in journal._parse(jpath.read_bytes())[0]] if jpath.exists() else []
    assert writes or kinds[-1:] == ["barrier"]
    qtbot.waitUntil(lambda: bool(writes) and not win.session.dirty, timeout=10000)
    assert writes == [False]  # written once, by the autosave thread
    assert not win.session.saver.is_running and not jpath.exists()  # the save covered the journal


def test_undo_and_redo_of_a_resegmentation_restore_exact_states(segmented, qtbot):
    win = segmented
    doc = win.session.doc
    stack = win.session.stack
    rbc = int(np.unique(doc.labels["rbc"][doc.labels["rbc"] > 0])[0])
    stack.push(EditCommand(doc, edits.delete_cell(doc, "rbc", rbc)))  # a manual correction
    before = _state(doc)
    with qtbot.waitSignal(win.segmentation.runner.finished, timeout=30000):
        win.segmentation.run(confirm=False)
    after = _state(doc)
    assert not np.array_equal(before[0]["rbc"], after[0]["rbc"])  # the corrected cell is back
    # an edit of the new maps (in place), undone, redone: the states kept for undo must not change
    stack.push(EditCommand(doc, edits.delete_cell(doc, "rbc", int(doc.labels["rbc"].max()))))
    edited = _state(doc)
    stack.undo()
    _same(_state(doc), after)
    stack.undo()  # the re-segmentation
    _same(_state(doc), before)
    stack.redo()
    _same(_state(doc), after)
    stack.redo()  # the edit again, on the restored copy
    _same(_state(doc), edited)
    stack.undo()
    stack.undo()
    _same(_state(doc), before)
    stack.redo()
    _same(_state(doc), after)
    qtbot.waitUntil(lambda: not win.session.dirty and not win.session.saver.is_running, timeout=10000)


def test_a_resegmentation_keeps_its_undo_state_packed(segmented, qtbot):
    from cellviewer.gui.commands import SegmentationCommand

    win = segmented
    doc = win.session.doc
    with qtbot.waitSignal(win.segmentation.runner.finished, timeout=30000):
        win.segmentation.run(confirm=False)
    cmd = win.session.stack.command(win.session.stack.index() - 1)
    assert isinstance(cmd, SegmentationCommand)
    full = sum(a.nbytes for a in doc.labels.values()) + doc.parts.nbytes  # what it kept before: 13 B/px
    assert cmd.kept_bytes() < full / 10
    qtbot.waitUntil(lambda: not win.session.dirty and not win.session.saver.is_running, timeout=10000)
