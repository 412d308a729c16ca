"""QUndoCommand wrappers: one user action = one undo step.

* :class:`EditCommand` wraps a :class:`cellviewer.core.edits.Edit` (an unapplied
  builder edit is applied by the first ``redo``; an already applied brush stroke
  is left as it is — ``Edit.apply`` is a no-op then).
* :class:`SegmentationCommand` replaces the whole automatic content of the
  document by a ``SegmentationResult`` and keeps the previous state so that even a
  re-segmentation over manual corrections is undoable. No copy is made when it is
  applied: the document's maps are *replaced* (never written into) by ``set_result``
  and :func:`restore_state`, so the command simply keeps the replaced arrays
  (:func:`detach_state`); the state after it is taken the same way when it is undone
  (the stack is linear: every later edit has been undone by then).

One ``QUndoStack`` per document, unlimited (``make_stack``); :func:`push_recovered` puts the edits a
crash recovery replayed back on it, one step per edit, done or undone as they were. The maps a
segmentation command keeps are packed in a background thread (:mod:`cellviewer.core.packstate`:
smallest integer type + zlib), so running the model again on a large field costs a few MB of undo memory, not
13 bytes per pixel each time. An undo or redo does not wait for that on the GUI thread: a redo soon after the
undo takes the state after back as the detached arrays themselves (the packing is dropped); a packed state
(or one the undo has to wait for) is unpacked ahead in a worker thread
(:meth:`SegmentationCommand.prepare_undo` / ``prepare_redo``, run by :meth:`cellviewer.gui.session.Session.undo`
/ ``redo`` while the window paints), so the GUI thread only swaps the maps in.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Callable

import numpy as np
from PySide6.QtGui import QUndoCommand, QUndoStack

from cellviewer.core.document import CELL_CLASSES, Document
from cellviewer.core.edits import Edit

_PROV_FIELDS = ("model_name", "model_version", "params", "segmented_at", "device")


def make_stack(parent=None) -> QUndoStack:
    stack = QUndoStack(parent)
    stack.setUndoLimit(0)  # unlimited
    return stack


class EditCommand(QUndoCommand):
    def __init__(self, doc: Document, edit: Edit):
        super().__init__(edit.name)
        self.doc = doc
        self.edit = edit

    def redo(self) -> None:
        self.edit.apply(self.doc)

    def undo(self) -> None:
        self.edit.revert(self.doc)


def push_recovered(stack: QUndoStack, doc: Document, done: list[Edit], undone: list[Edit]) -> None:
    """Put the edits a crash recovery replayed (:func:`cellviewer.core.journal.replay`) on ``stack`` as
    they were: ``done`` (applied, oldest first) as undo steps, ``undone`` (reverted, the last one the
    next redo) as redo steps. The document shows them already: nothing is applied, reverted or
    journaled again here (``Edit.apply`` / ``revert`` are no-ops on an edit in that state)."""
    for edit in done:
        stack.push(EditCommand(doc, edit))  # applied already: the push's redo does nothing
    redo_steps = undone[::-1]
    for edit in redo_steps:
        edit.applied = True  # so the push's redo does nothing either ...
        stack.push(EditCommand(doc, edit))
        edit.applied = False  # ... it is undone in the document
    for _ in redo_steps:
        stack.undo()  # reverting an undone edit does nothing: only the stack's index moves back


def detach_state(doc: Document) -> dict:
    """What segmentation replaces, by reference: only valid when the document's maps are replaced
    right after (``set_result``, :func:`restore_state`), which leaves these arrays to the caller."""
    return {
        "labels": {c: doc.labels[c] for c in CELL_CLASSES},
        "parts": doc.parts,
        "markers": doc.markers,
        "prov": {k: getattr(doc.provenance, k) for k in _PROV_FIELDS},
        "um_per_px": doc.um_per_px,
    }


def restore_state(doc: Document, state: dict, owned: bool = False) -> None:
    """Put ``state`` (:func:`detach_state`) back; ``owned``: its maps are fresh arrays nobody else holds
    (:meth:`_Packed.get`), taken as they are — no second 13-bytes-per-pixel copy on the GUI thread."""
    for c in CELL_CLASSES:
        lab = state["labels"][c]
        doc.labels[c] = np.asarray(lab, np.int32) if owned else lab.astype(np.int32)
    doc.parts = state["parts"] if owned else state["parts"].copy()
    doc.markers = {k: replace(m) for k, m in state["markers"].items()}
    for k, v in state["prov"].items():
        setattr(doc.provenance, k, v)
    doc.um_per_px = state.get("um_per_px")
    doc.notify_all()


class _Packed:
    """A detached state (:func:`detach_state`), packed in a background thread at lowered priority.

    :meth:`take` hands the state back, its maps arrays nobody else holds: once packed, fresh unpacked arrays
    (the packed state is kept for the next time); before, with ``give_back`` (a state detached anew each
    time it is replaced: the state after a segmentation, at each undo), the detached arrays themselves (no
    waiting, no unpacking; the packing is dropped and this object is :attr:`spent`), else after waiting for
    the packing. :meth:`ahead` gives the unpacking as work for
    another thread, done before the undo/redo that takes it (:meth:`cellviewer.gui.session.Session.undo`:
    the window paints meanwhile), so that the GUI thread only swaps the arrays in."""

    def __init__(self, state: dict, give_back: bool = False):
        self._give_back = give_back  # take() may hand back the detached arrays (else it waits for the packing)
        self._lock = threading.Lock()
        self._raw: dict | None = state  # until packed (or taken)
        self._packed: dict | None = None
        self._ahead: dict | None = None  # unpacked ahead of a take (ahead())
        self.spent = False  # the raw state was taken: nothing is kept here any more
        self._thread = threading.Thread(target=self._pack, name="cellviewer-undo-pack", daemon=True)
        self._thread.start()

    def _pack(self) -> None:
        from cellviewer.core.memory import release
        from cellviewer.core.packstate import pack
        from cellviewer.gui.workers import lower_priority

        lower_priority()
        raw = self._raw
        if raw is None:
            return
        maps = [raw["labels"][c] for c in CELL_CLASSES] + [raw["parts"]]
        packed_maps = []
        for a in maps:  # the arrays are detached: nothing else writes them — until take() gives them back,
            if self._raw is None:  # then this work is dropped (what it read meanwhile may be half-written)
                return
            packed_maps.append(pack(a))
        rest = pack({k: v for k, v in raw.items() if k not in ("labels", "parts")})
        rest["labels"], rest["parts"] = dict(zip(CELL_CLASSES, packed_maps[:-1])), packed_maps[-1]
        with self._lock:
            if self._raw is not raw:  # taken meanwhile
                return
            self._packed, self._raw = rest, None
        del raw, maps
        release()  # the unpacked maps' memory back to the OS (glibc keeps freed large blocks otherwise)

    def _unpacked(self) -> dict:
        from concurrent.futures import ThreadPoolExecutor

        from cellviewer.core.packstate import unpack, unpack_array

        kept = self._packed
        maps = [kept["labels"][c] for c in CELL_CLASSES] + [kept["parts"]]
        with ThreadPoolExecutor(len(maps), thread_name_prefix="cellviewer-unpack") as pool:  # zlib and numpy
            out = list(pool.map(unpack_array, maps))  # let go of the interpreter lock: the maps in parallel
        out = [a.copy() if a is m else a for a, m in zip(out, maps)]  # (too small to pack: kept as it was)
        state = unpack({k: v for k, v in kept.items() if k not in ("labels", "parts")})
        state["labels"], state["parts"] = dict(zip(CELL_CLASSES, out[:-1])), out[-1]
        return state

    def ahead(self) -> Callable[[], None] | None:
        """The work of unpacking (waiting for the packing first), for a worker thread, so that the next
        :meth:`take` does none; None when there is none (:meth:`take` hands back the detached arrays, or
        unpacked already)."""
        with self._lock:
            if (self._raw is not None and self._give_back) or self._ahead is not None or self.spent:
                return None

        def work() -> None:
            self._thread.join()  # (a state kept for good, still being packed: it is waited for here)
            state = self._unpacked()
            with self._lock:
                self._ahead = state

        return work

    def drop_ahead(self) -> None:
        """Let go of a state unpacked ahead and not taken (e.g. the stack changed while it was unpacked)."""
        with self._lock:
            self._ahead = None

    def take(self) -> dict:
        """The state, its maps arrays nobody else holds (see the class docstring)."""
        with self._lock:
            if self.spent:
                raise RuntimeError("undo state taken already")
            ahead, self._ahead = self._ahead, None
            if self._raw is not None and self._give_back:
                raw, self._raw = self._raw, None
                self.spent = True
                return raw  # (the packing thread sees it taken and drops its work)
        if ahead is not None:
            return ahead
        self._thread.join()  # (packed already, unless prepare_undo was not asked first)
        return self._unpacked()

    def nbytes(self) -> int:
        from cellviewer.core.packstate import packed_bytes

        self._thread.join()  # (packing, unless taken: it stops at the next map)
        with self._lock:
            return 0 if self.spent else packed_bytes(self._packed if self._packed is not None else self._raw)


class SegmentationCommand(QUndoCommand):
    """Apply a segmentation result; undo restores the labels, parts and markers before it."""

    def __init__(self, doc: Document, result, on_replaced: Callable[[], None] | None = None):
        super().__init__(f"Segmentation ({result.model_name or 'model'})")
        self.doc = doc
        self._result = result
        self._old = _Packed(detach_state(doc))  # set_result replaces these arrays: no copy needed
        self._new: _Packed | None = None
        self._on_replaced = on_replaced
        self.after_undo: Callable[[], None] | None = None  # e.g. clear the warning that spoke of what it replaced

    def redo(self) -> None:
        if self._result is not None:
            self.doc.set_result(self._result)
            self._result = None  # keep one copy only
        else:
            restore_state(self.doc, self._new.take(), owned=True)  # (the state before stays packed in _old)
        if self._on_replaced:
            self._on_replaced()

    def undo(self) -> None:
        new = detach_state(self.doc)  # restore_state replaces them (by the state before)
        restore_state(self.doc, self._old.take(), owned=True)
        self._new = _Packed(new, give_back=True)  # packed after: not competing with the unpacking for the CPU;
        # detached again at every undo, so a redo may take these very arrays back while they are being packed
        if self._on_replaced:
            self._on_replaced()
        if self.after_undo is not None:
            self.after_undo()

    def prepare_undo(self) -> Callable[[], None] | None:
        """Work for another thread before :meth:`undo`: unpacking the state before (None: nothing to do)."""
        return self._old.ahead()

    def prepare_redo(self) -> Callable[[], None] | None:
        """Work for another thread before :meth:`redo`: unpacking the state after (None: nothing to do)."""
        return self._new.ahead() if self._result is None and self._new is not None else None

    def drop_prepared(self) -> None:
        """Let go of what :meth:`prepare_undo` / :meth:`prepare_redo` unpacked and undo/redo did not take."""
        for kept in (self._old, self._new):
            if kept is not None:
                kept.drop_ahead()

    def kept_bytes(self) -> int:
        """Memory the command keeps for undo/redo (after packing)."""
        return self._old.nbytes() + (self._new.nbytes() if self._new is not None else 0)
