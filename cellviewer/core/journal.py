"""Edit journal: every applied/undone edit is appended (and fsync'ed) at once, so
a crash between two autosaves loses nothing.

The journal lives beside the sidecar (``<sidecar>.journal``). Saving the
sidecar empties it. On the next open, :func:`pending_entries` finds what was
not saved and :func:`recover` replays it onto the restored document.

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
from pathlib import Path
from typing import Callable

from cellviewer.core.atomic import atomic_write_bytes
from cellviewer.core.document import Document
from cellviewer.core.edits import Edit, LabelPatch, MarkerChange
from cellviewer.core.errors import SaveError
# the record format lives in journalcodec; re-exported here (callers and tests use journal.encode / _parse)
from cellviewer.core.journalcodec import (FLAGS, KINDS, MAGIC, _decode, _parse, decode,  # noqa: F401
                                          encode)

SUFFIX = ".journal"
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


def recover(doc: Document, entries: list[tuple[str, Edit]]) -> int:
    """Replay journal entries onto ``doc``; returns how many were replayed."""
    n = 0
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
        n += 1
    return n
