"""Replaying journal records (see :mod:`cellviewer.core.journal`) and the undo history they describe.

:func:`replay` applies the records to a restored document and rebuilds the history (``apply`` = a new
edit or a redo, ``revert`` = an undo), so a GUI can put each recovered edit back on its undo stack as one
step, done or undone as it was; :func:`history` reads the same history without a document (to say what a
recovery would bring back). A redo is told from an identical new edit by the edit's id (:attr:`Edit.uid`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from cellviewer.core.document import Document
from cellviewer.core.edits import Edit, FlagChange, LabelPatch, MarkerChange

OUTSIDE_HISTORY = {"border_rule"}  # flags journaled but set outside the undo history (Document.set_border_rule)


def _fits(doc: Document, edit: Edit) -> bool:
    """Every patch and every new marker lies inside ``doc``'s image."""
    h, w = doc.shape
    for a in edit.atoms:
        if isinstance(a, LabelPatch) and not (a.bbox[2] <= h and a.bbox[3] <= w):
            return False
        if isinstance(a, MarkerChange) and any(m is not None and not (0 <= m.x < w and 0 <= m.y < h)
                                               for m in (a.old, a.new)):
            return False
    return True


@dataclass
class Recovered:
    """What :func:`replay` replayed (or :func:`history` read): ``n`` records, and the undo history they
    describe. ``done``: the edits now applied, oldest first (undo steps); ``undone``: the edits now undone,
    the last one the next redo (redo steps; an undo of an edit the sidecar already held is one too);
    ``settings``: the settings changed outside the undo history (e.g. ``"border_rule"``)."""

    n: int = 0
    done: list[Edit] = field(default_factory=list)
    undone: list[Edit] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)

    @property
    def edits(self) -> int:
        """How many distinct edits the records describe (however often each was undone and redone)."""
        return len(self.done) + len(self.undone)

    def describe(self) -> str:
        """In words: ``"4 corrections (1 of them undone)"``, ``"a change of the border-cell rule"`` ..."""
        n, parts = self.edits, []
        if n:
            u = len(self.undone)
            parts.append(f"{n} correction{'s' if n != 1 else ''}" + (
                "" if not u else " (undone)" if n == 1 else " (all undone)" if u == n else f" ({u} of them undone)"))
        if self.settings:
            parts.append("a change of the border-cell rule" if self.settings == ["border_rule"]
                         else f"a change of {', '.join(self.settings)}")
        return " and ".join(parts) or f"{self.n} journal record{'s' if self.n != 1 else ''}"


def _same_atom(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, LabelPatch):
        return a.layer == b.layer and a.bbox == b.bbox and all(
            np.array_equal(getattr(a, k), getattr(b, k)) for k in ("rows", "cols", "old", "new"))
    return a == b  # MarkerChange, FlagChange: plain values


def same_edit(a: Edit, b: Edit) -> bool:
    """``a`` and ``b`` are records of the same edit (its apply and its undo, or a redo): the same edit id;
    for records without one (older journals), same name, audit record (with its time) and atoms."""
    if a.uid is not None and b.uid is not None:
        return a.uid == b.uid
    return (a.name == b.name and a.record == b.record and len(a.atoms) == len(b.atoms)
            and all(_same_atom(x, y) for x, y in zip(a.atoms, b.atoms)))


def _outside_history(edit: Edit) -> bool:
    return bool(edit.atoms) and all(isinstance(a, FlagChange) and a.attr in OUTSIDE_HISTORY for a in edit.atoms)


def _step(out: Recovered, kind: str, edit: Edit) -> None:
    """Count one replayed record into the undo history ``out`` describes (see :func:`replay`)."""
    out.n += 1
    if _outside_history(edit):
        out.settings += [a.attr for a in edit.atoms if a.attr not in out.settings]
        return
    if kind == "apply":
        if out.undone and same_edit(out.undone[-1], edit):
            out.undone.pop()  # a redo
        else:
            out.undone.clear()  # a new edit: what was undone cannot be redone any more
        out.done.append(edit)
    elif out.done and same_edit(out.done[-1], edit):
        out.done.pop()
        out.undone.append(edit)
    elif not out.done:
        out.undone.append(edit)
    else:
        out.done.clear()
        out.undone.clear()


def history(entries: list[tuple[str, Edit]]) -> Recovered:
    """The undo history journal entries describe, as :func:`replay` would rebuild it, without a document
    (what a recovery would bring back: e.g. for the question that offers it)."""
    out = Recovered()
    for kind, edit in entries:
        if kind == "barrier":
            break
        _step(out, kind, edit)
    return out


def _renumber_markers(doc: Document, kind: str, edit: Edit, new_ids: dict[int, int]) -> None:
    """A marker the record adds under an id that another marker of ``doc`` has (one added by another copy
    of the image, whose save the records are replayed on) gets a free id, and so does every later record
    of it (``new_ids``); the edit is changed in place (its undo step and journal record follow)."""
    for a in edit.atoms:
        if not isinstance(a, MarkerChange):
            continue
        a.old = a.old if a.old is None or a.old.id not in new_ids else replace(a.old, id=new_ids[a.old.id])
        a.new = a.new if a.new is None or a.new.id not in new_ids else replace(a.new, id=new_ids[a.new.id])
        if kind == "apply" and a.old is None and a.new is not None and doc.markers.get(a.new.id, a.new) != a.new:
            new_ids[a.new.id] = doc.next_marker_id()
            a.new = replace(a.new, id=new_ids[a.new.id])


def replay(doc: Document, entries: list[tuple[str, Edit]]) -> Recovered:
    """Replay journal entries onto ``doc`` (as :func:`recover`) and rebuild the undo history they
    record: an ``apply`` pushes an edit (or redoes the next undone one, when it is that edit: the
    redo steps above stay), a ``revert`` undoes the last applied edit (or, with none left, an edit
    the sidecar holds: it becomes redoable). Records that do not follow one history (never written
    so by the GUI) keep the state they replay but start the history afresh after them. A marker added
    under an id another marker has by now gets a free one (:func:`_renumber_markers`)."""
    out, new_ids = Recovered(), {}
    for kind, edit in entries:
        if kind == "barrier" or not _fits(doc, edit):
            break  # recorded on another image size: stop before changing anything
        _renumber_markers(doc, kind, edit, new_ids)
        try:
            if kind == "apply":
                edit.apply(doc)
            else:
                edit.applied = True
                edit.revert(doc)
        except (IndexError, KeyError, ValueError, TypeError):
            break  # the document does not match the journal any more: stop, keep what fits
        _step(out, kind, edit)
    return out


def recover(doc: Document, entries: list[tuple[str, Edit]]) -> int:
    """Replay journal entries onto ``doc``; returns how many were replayed."""
    return replay(doc, entries).n
