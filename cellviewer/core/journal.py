"""Edit journal: every applied/undone edit is appended (and fsync'ed) at once, so
a crash between two autosaves loses nothing.

The journal lives beside the sidecar (``<sidecar>.journal``). Saving the
sidecar empties it. On the next open, :func:`pending_entries` finds what was
not saved and :func:`recover` replays it onto the restored document. :func:`replay` does the same
and also rebuilds the undo history the records describe (``apply`` = a new edit or a redo,
``revert`` = an undo), so a GUI can put each recovered edit back on its undo stack as one step,
done or undone as it was (settings changed outside the undo history, the border rule, are replayed
but are no step).

The record format (magic, length, ``.npz`` payload, CRC32) and its validation live in
:mod:`cellviewer.core.journalcodec`. A torn last record (the process died while writing it)
is ignored, and cut off before the next record is appended (otherwise everything after it
would be unreachable).

Every record carries a unique ``id``; a sidecar stores the id of the last record
it covers (``journal_last``), so records that a crash left in the journal after
they were already saved are not replayed twice. Records are validated on read:
a hostile or corrupt journal yields the intact prefix, never an exception.

Edits log through :meth:`Journal.log`, which never raises: when a record cannot be
written (disk full, read-only) the edit stays applied, ``on_error`` is told once, and
the journal is suspended until a save holds every edit it skipped (a replay must
never jump over an edit). Besides cell edits, document flags are logged (``reviewed``,
``um_per_px``, the ``border_rule``). Records the user declined to recover are kept aside
(:meth:`Journal.set_aside`: ``<journal>.declined-<time>``), never deleted.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cellviewer.core.atomic import atomic_write_bytes
from cellviewer.core.document import Document
from cellviewer.core.edits import Edit, FlagChange, LabelPatch, MarkerChange
from cellviewer.core.errors import SaveError
# the record format lives in journalcodec; re-exported here (callers and tests use journal.encode / _parse)
from cellviewer.core.journalcodec import (FLAGS, KINDS, MAGIC, _decode, _parse, decode,  # noqa: F401
                                          encode)

SUFFIX = ".journal"
OUTSIDE_HISTORY = {"border_rule"}  # flags journaled but set outside the undo history (Document.set_border_rule)
DECLINED = ".declined-"  # a journal whose recovery the user declined is kept as <journal>.declined-<time>


def journal_path(sidecar_file) -> Path:
    p = Path(sidecar_file)
    return p.with_name(p.name + SUFFIX)


class Journal:
    """Append-only log attached to a document (``doc.journal``)."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._checked = False  # the file's tail was checked (torn records cut) and _last_id read
        self._last_id: str | None = None  # id of the last record in the file
        self.suspended = False  # a record failed: nothing is logged until a save covers everything
        self.skipped = 0  # records not written because the journal was suspended
        self.on_error: Callable[[SaveError], None] | None = None  # told when logging fails (see log)

    def _check(self) -> None:
        """Once, under the lock: cut a torn/corrupt tail (left by a crash) so that new records
        stay reachable, and learn the id of the last intact record."""
        if self._checked:
            return
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        entries, end = _parse(data)
        if end < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        self._last_id = entries[-1][2] if entries else None
        self._checked = True

    def record(self, kind: str, edit: Edit) -> None:
        """Append one record and fsync it. Raises :class:`SaveError` (the file is left as it was)."""
        rid = uuid.uuid4().hex
        data = encode(kind, edit, rid)
        with self._lock:
            try:
                self._check()
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as e:
                raise SaveError(f"Cannot log the edit to '{self.path}': {e.strerror or e}",
                                hint="free some disk space or check the folder's permissions; save soon") from e
            try:
                start = os.lseek(fd, 0, os.SEEK_END)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                except OSError as e:
                    try:  # no torn record: later records must stay readable
                        os.ftruncate(fd, start)
                    except OSError:
                        pass
                    raise SaveError(f"Cannot log the edit to '{self.path}': {e.strerror or e}",
                                    hint="free some disk space; the edit is kept in memory, save soon") from e
            finally:
                os.close(fd)
            self._last_id = rid

    def log(self, kind: str, edit: Edit) -> None:
        """:meth:`record` that never raises: the edit stays applied in memory (the autosave keeps
        it). A failure (disk full, read-only folder) suspends the journal — a replay must never
        skip an edit in the middle — until a save covers every skipped edit (:meth:`resume`), and
        is passed to :attr:`on_error` once per suspension."""
        with self._lock:
            if self.suspended:
                self.skipped += 1
                return
        try:
            self.record(kind, edit)
        except SaveError as e:
            with self._lock:
                self.suspended = True
                self.skipped += 1
            if self.on_error is not None:
                self.on_error(e)

    def barrier(self) -> None:
        """The whole document was replaced by something not journaled (a segmentation result, its
        undo/redo) and a save of it is on its way: records after this one apply to that new state, so
        a recovery from an older sidecar stops here (:func:`read_entries`). Never raises (:meth:`log`)."""
        self.log("barrier", Edit("replaced", []))

    def resume(self, skipped: int) -> None:
        """A save that holds everything up to a snapshot taken when :attr:`skipped` was ``skipped``
        went through: log again, unless more edits were skipped since."""
        with self._lock:
            if self.suspended and self.skipped == skipped:
                self.suspended = False

    def mark(self) -> int:
        """The journal's current length: what a snapshot taken now covers."""
        return self.position()[0]

    def position(self) -> tuple[int, str | None]:
        """(length, id of the last record): what a snapshot taken now covers."""
        with self._lock:
            try:
                self._check()
            except OSError:
                pass
            try:
                return self.path.stat().st_size, self._last_id
            except FileNotFoundError:
                return 0, None

    def drop_until(self, mark: int) -> None:
        """Forget the first ``mark`` bytes (they are saved in the sidecar now)."""
        with self._lock:
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                return
            rest = data[mark:]
            if not rest:
                os.unlink(self.path)
                return
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(rest)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)

    def move_to(self, path) -> None:
        """Continue in ``path`` (beside a sidecar that was saved elsewhere, e.g. in the user store):
        the records not yet saved move along, replacing whatever stale journal was there."""
        path = Path(path)
        with self._lock:
            if path == self.path:
                return
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                data = b""
            path.parent.mkdir(parents=True, exist_ok=True)
            if data:
                atomic_write_bytes(path, data)
            else:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = path

    def set_aside(self) -> Path | None:
        """Keep the records (the user declined to recover them) as ``<journal>.declined-<YYYYmmdd-HHMMSS>``
        instead of deleting them, and start afresh; where they went (None: no journal, or the rename failed)."""
        with self._lock:
            self._last_id, self._checked = None, False
            base, n = f"{self.path.name}{DECLINED}{time.strftime('%Y%m%d-%H%M%S')}", 1
            dst = self.path.with_name(base)
            while dst.exists():
                n += 1
                dst = self.path.with_name(f"{base}-{n}")
            try:
                os.rename(self.path, dst)  # (a file of that name made since the check: the rename replaces it)
            except OSError:
                return None
            return dst

    def clear(self) -> None:
        with self._lock:
            self._last_id = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def read_entries(path, after: str | None = None) -> list[tuple[str, Edit]]:
    """Every complete, intact record; stops at the first torn or corrupt one. With ``after``
    (a sidecar's ``journal_last``), only the records written after that one (when present)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    entries, _ = _parse(data)
    ids = [rid for _, _, rid in entries]
    if after is not None and after in ids:
        entries = entries[ids.index(after) + 1 :]
    kinds = [kind for kind, _, _ in entries]
    if "barrier" in kinds:  # the save that held the replaced document never landed: nothing after applies
        entries = entries[: kinds.index("barrier")]
    return [(kind, edit) for kind, edit, _ in entries]


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
    """What :func:`replay` replayed: ``n`` records, and the undo history they describe. ``done``: the
    edits now applied, oldest first (undo steps); ``undone``: the edits now undone, the last one the
    next redo (redo steps; an undo of an edit the sidecar already held is one too)."""

    n: int = 0
    done: list[Edit] = field(default_factory=list)
    undone: list[Edit] = field(default_factory=list)


def _same_atom(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, LabelPatch):
        return a.layer == b.layer and a.bbox == b.bbox and all(
            np.array_equal(getattr(a, k), getattr(b, k)) for k in ("rows", "cols", "old", "new"))
    return a == b  # MarkerChange, FlagChange: plain values


def same_edit(a: Edit, b: Edit) -> bool:
    """``a`` and ``b`` are records of the same edit (its apply and its undo, or a redo): same name,
    audit record (with its time) and atoms."""
    return (a.name == b.name and a.record == b.record and len(a.atoms) == len(b.atoms)
            and all(_same_atom(x, y) for x, y in zip(a.atoms, b.atoms)))


def _outside_history(edit: Edit) -> bool:
    return bool(edit.atoms) and all(isinstance(a, FlagChange) and a.attr in OUTSIDE_HISTORY for a in edit.atoms)


def replay(doc: Document, entries: list[tuple[str, Edit]]) -> Recovered:
    """Replay journal entries onto ``doc`` (as :func:`recover`) and rebuild the undo history they
    record: an ``apply`` pushes an edit (or redoes the next undone one, when it is that edit: the
    redo steps above stay), a ``revert`` undoes the last applied edit (or, with none left, an edit
    the sidecar holds: it becomes redoable). Records that do not follow one history (never written
    so by the GUI) keep the state they replay but start the history afresh after them."""
    out = Recovered()
    for kind, edit in entries:
        if kind == "barrier" or not _fits(doc, edit):
            break  # recorded on another image size: stop before changing anything
        try:
            if kind == "apply":
                edit.apply(doc)
            else:
                edit.applied = True
                edit.revert(doc)
        except (IndexError, KeyError, ValueError, TypeError):
            break  # the document does not match the journal any more: stop, keep what fits
        out.n += 1
        if _outside_history(edit):
            continue
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
    return out


def recover(doc: Document, entries: list[tuple[str, Edit]]) -> int:
    """Replay journal entries onto ``doc``; returns how many were replayed."""
    return replay(doc, entries).n
