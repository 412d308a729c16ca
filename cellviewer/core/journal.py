"""Edit journal: every applied/undone edit is appended (and fsync'ed) at once, so
a crash between two autosaves loses nothing.

The journal lives beside the sidecar. Saving the sidecar empties it. On the next open,
``load_document`` finds what was not saved and :func:`recover` replays it onto the restored document.
:func:`replay` does the same and also rebuilds the undo history the records describe, so a GUI can put
each recovered edit back on its undo stack as one step, done or undone as it was (settings changed
outside the undo history, the border rule, are replayed but are no step); both live in
:mod:`cellviewer.core.journalreplay`.

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
(:func:`set_aside`: ``<journal>.declined-<time>``), never deleted.

One journal per open copy (:mod:`cellviewer.core.journalfiles`): the copy that opens an image first
journals to ``<sidecar>.journal``, a copy opened beside it (another window or process) to
``<sidecar>.journal-<id>``; each names its writer in ``<journal>.lock`` (process id and host, as
:mod:`cellviewer.core.openlock` records them), removed when the copy closes. A save trims only its own
copy's journal. Opening offers only the journals whose writer is gone (a crash, or a close whose save
failed; a journal without a lock, as older versions wrote, counts as such); the journal of a copy still
open is never read, renamed or trimmed by another. The records offered move into the opener's own
journal (recovered) or are set aside (declined) before their file goes, so nothing journaled is lost.

Every edit carries a unique id (:attr:`Edit.uid`), journaled with each apply and undo of it: a recovery
tells a redo from a new, identical edit by it (records written before edits had one: by their content).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from cellviewer.core.atomic import atomic_write_bytes
from cellviewer.core.edits import Edit
from cellviewer.core.errors import SaveError
# the record format lives in journalcodec; re-exported here (callers and tests use journal.encode / _parse)
from cellviewer.core.journalcodec import (FLAGS, KINDS, MAGIC, _decode, _parse, decode,  # noqa: F401
                                          encode)
# replaying records lives in journalreplay; re-exported here
from cellviewer.core.journalreplay import (OUTSIDE_HISTORY, Recovered, history, recover, replay,  # noqa: F401
                                           same_edit)

SUFFIX = ".journal"
DECLINED = ".declined-"  # a journal whose recovery the user declined is kept as <journal>.declined-<time>


def journal_path(sidecar_file) -> Path:
    p = Path(sidecar_file)
    return p.with_name(p.name + SUFFIX)


class Journal:
    """Append-only log attached to a document (``doc.journal``). ``owner``: its lock file, this copy's
    (see :func:`cellviewer.core.journalfiles.claim`; None: a journal nobody claimed, e.g. in a test);
    ``suffix``: what its name adds to ``<sidecar>.journal`` (``""`` or ``"-<id>"``), kept when it moves."""

    def __init__(self, path, owner=None, suffix: str = ""):
        self.path = Path(path)
        self.owner: Path | None = Path(owner) if owner is not None else None
        self.suffix = suffix
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
            self._append(data)
            self._last_id = rid

    def append(self, data: bytes) -> None:
        """Append whole records (``data``, e.g. recovered from a left-over journal) and fsync them.
        Raises :class:`SaveError` (the file is left as it was)."""
        with self._lock:
            self._append(data)
            self._checked = False  # (the last record's id: read again when asked)

    def replace(self, data: bytes) -> None:
        """Make ``data`` (whole records) the journal's content, atomically (none: no file). Raises OSError."""
        with self._lock:
            if data:
                atomic_write_bytes(self.path, data)
            else:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
            self._checked = False

    def _append(self, data: bytes) -> None:
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
        """Continue beside a sidecar that was saved elsewhere (e.g. in the user store): ``path`` is that
        sidecar's ``<sidecar>.journal``; this copy's name (its suffix) and lock move along with the records
        not yet saved, replacing a journal there that nobody holds (a stale one)."""
        from cellviewer.core import journalfiles, openlock

        path = Path(path)
        with self._lock:
            if path.with_name(path.name + self.suffix) == self.path:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            owner = None
            if self.owner is not None:
                path, self.suffix, owner = journalfiles.free_name(path, self.suffix)
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                data = b""
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
            if self.owner is not None:
                openlock.drop(self.owner)
            self.path, self.owner = path, owner

    def set_aside(self) -> Path | None:
        """Keep the records (the user declined to recover them) as ``<journal>.declined-<YYYYmmdd-HHMMSS>``
        instead of deleting them, and start afresh; where they went (None: no journal, or the rename failed)."""
        with self._lock:
            self._last_id, self._checked = None, False
            return set_aside(self.path)

    def close(self) -> None:
        """This copy is closed: its journal is nobody's any more (what a failed last save left in it is
        offered at the next open)."""
        from cellviewer.core import openlock

        with self._lock:
            if self.owner is not None:
                openlock.drop(self.owner)
                self.owner = None

    def clear(self) -> None:
        with self._lock:
            self._last_id = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def set_aside(path) -> Path | None:
    """Rename the journal ``path`` to ``<journal>.declined-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3`` ... when that
    exists); where it went (None: no journal, or the rename failed)."""
    path = Path(path)
    base, n = f"{path.name}{DECLINED}{time.strftime('%Y%m%d-%H%M%S')}", 1
    try:  # (a name too long for the file system fails here, not in the caller: None)
        dst = path.with_name(base)
        while dst.exists():
            n += 1
            dst = path.with_name(f"{base}-{n}")
        os.rename(path, dst)  # (a file of that name made since the check: the rename replaces it)
    except OSError:
        return None
    return dst


def read_records(path, after: str | None = None) -> list[tuple[str, Edit, str | None]]:
    """Every complete, intact record as ``(kind, edit, record id)``; stops at the first torn or corrupt
    one. With ``after`` (a sidecar's ``journal_last``), only the records written after that one (when
    present); none from a barrier on (see :meth:`Journal.barrier`)."""
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
    return entries


def read_entries(path, after: str | None = None) -> list[tuple[str, Edit]]:
    """:func:`read_records` without the record ids."""
    return [(kind, edit) for kind, edit, _ in read_records(path, after)]
