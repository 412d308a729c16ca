"""Undo and redo of a segmentation never wait on the GUI thread (cellviewer.gui.commands._Packed): a kept
state not packed yet is taken back as the detached arrays themselves, a packed one is unpacked ahead in a
worker thread (Session.undo / redo) — with exactly the states a plain undo/redo gives."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cellviewer.core import packstate
from cellviewer.core.document import Document, ImageData, ImageInfo, Marker
from cellviewer.core.segment import SegmentationResult
from cellviewer.gui.commands import SegmentationCommand, make_stack


def _state(doc):
    return ({c: doc.labels[c].copy() for c in doc.labels}, doc.parts.copy(),
            sorted((m.id, m.cls, m.x, m.y, m.cell) for m in doc.markers.values()))


def _same(a, b):
    for c in a[0]:
        assert np.array_equal(a[0][c], b[0][c]) and a[0][c].dtype == b[0][c].dtype, c
    assert np.array_equal(a[1], b[1]) and a[1].dtype == b[1].dtype
    assert a[2] == b[2]


def _doc(side=300):
    doc = Document(ImageData(np.zeros((side, side, 3), np.uint8), ImageInfo(None, side, side)))
    doc.labels["rbc"][5:10, 5:10] = 1
    doc.labels["wbc"][50:80, 50:90] = 3
    doc.parts[50:80, 50:70] = 1
    doc.markers = {1: Marker(1, "rbc", 7.0, 7.0, cell=1), 2: Marker(2, "wbc", 60.0, 60.0, cell=3)}
    return doc


def _result(side=300):
    lab = np.zeros((side, side), np.int32)
    lab[20:30, 20:30] = 1
    lab[100:140, 100:150] = 2
    parts = np.zeros((side, side), np.uint8)
    parts[200:220, 200:230] = 2
    return SegmentationResult({"rbc": lab, "wbc": np.zeros((side, side), np.int32)},
                              [Marker(0, "rbc", 25.0, 25.0, cell=1), Marker(0, "rbc", 120.0, 120.0, cell=2)],
                              parts=parts, model_name="m")


@pytest.fixture
def held_packing(monkeypatch):
    """Packing waits until ``.set()``: the states are 'not packed yet' for as long as a test wants."""
    gate = threading.Event()
    real = packstate.pack

    def slow(obj):
        gate.wait(30)
        return real(obj)

    monkeypatch.setattr(packstate, "pack", slow)
    yield gate
    gate.set()


def _segmented():
    """A document, its undo stack with one segmentation pushed, and the states before and after it."""
    doc = _doc()
    before = _state(doc)
    stack = make_stack()
    cmd = SegmentationCommand(doc, _result())
    stack.push(cmd)
    return doc, stack, cmd, before, _state(doc)


def test_a_redo_before_packing_takes_the_detached_arrays_back(qapp, held_packing):
    doc, stack, cmd, before, after = _segmented()
    replaced = {c: doc.labels[c] for c in doc.labels}
    held_packing.set()
    cmd._old._thread.join(10)
    held_packing.clear()

    stack.undo()
    _same(_state(doc), before)
    assert cmd.prepare_redo() is None  # nothing to unpack: ...
    stack.redo()  # ... the state after is still being packed: its own arrays come back, no waiting
    _same(_state(doc), after)
    assert all(doc.labels[c] is replaced[c] for c in doc.labels)

    held_packing.set()  # the packing thread ends now: its work (of arrays given back) is dropped
    cmd._new._thread.join(10)
    assert not cmd._new._thread.is_alive() and cmd._new.spent and cmd._new._packed is None
    for _ in range(3):  # and from here on, with edits in place in between, as with a plain undo/redo
        stack.undo()
        _same(_state(doc), before)
        doc.labels["rbc"][0, 0] = 7  # written into in place: the kept state before stays as it was
        stack.redo()
        _same(_state(doc), after)
        doc.labels["wbc"][1, 1] = 9  # (the state after is detached at the next undo: this edit is part of it)
        after[0]["wbc"][1, 1] = 9
    cmd._new._thread.join(10)
    assert 0 < cmd.kept_bytes() < sum(a.nbytes for a in doc.labels.values())


def test_an_undo_before_packing_waits_for_it_in_the_worker(qapp, held_packing):
    doc, stack, cmd, before, _after = _segmented()
    work = cmd.prepare_undo()  # the state before is kept for good: not handed back, waited for ...
    assert work is not None
    t = threading.Thread(target=work)
    t.start()
    t.join(0.2)
    assert t.is_alive()  # (still packing)
    held_packing.set()
    t.join(10)
    assert cmd._old._ahead is not None
    stack.undo()  # ... in the worker: the undo takes what it unpacked
    assert cmd._old._ahead is None and not cmd._old.spent
    _same(_state(doc), before)


def test_a_redo_right_after_the_undo_equals_one_after_packing(qapp, held_packing):
    """Redo soon after the undo (the state after not packed yet) and redo after packing give the same."""
    doc = _doc()
    stack = make_stack()
    stack.push(SegmentationCommand(doc, _result()))
    held_packing.set()
    after = _state(doc)
    stack.undo()
    cmd = stack.command(0)
    cmd._new._thread.join(10)  # packed now
    stack.redo()
    packed_redo = _state(doc)
    held_packing.clear()
    stack.undo()
    stack.redo()  # not packed yet
    _same(_state(doc), packed_redo)
    _same(packed_redo, after)


def test_a_state_unpacked_ahead_is_what_the_step_takes(qapp, monkeypatch):
    from cellviewer.gui import commands

    doc, stack, cmd, before, after = _segmented()
    cmd._old._thread.join(10)
    where = []
    real = commands._Packed._unpacked

    def spy(self):
        where.append(threading.current_thread() is threading.main_thread())
        return real(self)

    monkeypatch.setattr(commands._Packed, "_unpacked", spy)
    work = cmd.prepare_undo()
    assert work is not None
    t = threading.Thread(target=work)
    t.start()
    t.join(10)
    stack.undo()
    assert where == [False]  # unpacked in the worker, not by the undo
    _same(_state(doc), before)
    cmd._new._thread.join(10)
    work = cmd.prepare_redo()
    work()
    cmd.drop_prepared()  # not taken (e.g. the stack changed meanwhile): let go of
    assert cmd._new._ahead is None
    stack.redo()  # unpacks itself then
    _same(_state(doc), after)


def test_the_session_unpacks_ahead_while_the_window_paints(segmented, qtbot, monkeypatch, held_packing):
    from cellviewer.gui import workers

    win = segmented
    s, doc = win.session, win.session.doc
    cmd = s.stack.command(s.stack.index() - 1)
    assert isinstance(cmd, SegmentationCommand)
    after = _state(doc)
    calls = []
    real = workers.run_painting

    def spy(fn, *args):
        calls.append(fn)
        return real(fn, *args)

    monkeypatch.setattr(workers, "run_painting", spy)
    held_packing.set()
    cmd._old._thread.join(10)
    held_packing.clear()  # the state after, packed at the undo, is not packed yet at the redo
    win.undo()
    assert len(calls) == 1 and cmd._old._ahead is None
    assert not any(doc.labels[c].any() for c in doc.labels)  # the state before the first segmentation
    win.redo()  # right after: the state after is taken back as it is (nothing to unpack)
    assert len(calls) == 1
    _same(_state(doc), after)
    win.undo()
    assert len(calls) == 2
    held_packing.set()
    cmd._new._thread.join(10)
    win.redo()
    assert len(calls) == 3 and cmd._new._ahead is None
    _same(_state(doc), after)
    qtbot.waitUntil(lambda: not s.dirty and not s.saver.is_running, timeout=10000)
