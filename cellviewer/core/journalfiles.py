"""Which journal each open copy of an image writes, and which journals are left over from a crash.

An image can be open in two windows or two processes at once (the user agreed to open it "here as
well"). Each open copy journals to its own file, so that one's save, which trims its journal, never
touches another's records:

* :func:`claim` (at open): the first copy gets ``<sidecar>.journal``, a copy opened while that one's
  lock exists gets ``<sidecar>.journal-<id>``; either way its writer is recorded in ``<journal>.lock``
  (process id, host: :func:`cellviewer.core.openlock.take`, which never writes over an existing lock,
  so two copies never claim one journal), removed when the copy closes (:meth:`Journal.close`).
* :func:`left_over` (at open): the journals whose writer is gone — no lock (a copy closed while its
  last save failed, or a journal of an older version), or the lock of a process that no longer runs (a
  crash) — and their records not yet saved. A live copy's journal is not read, renamed or trimmed.
* The opener either recovers those records, and :func:`claim` moves them into its own journal
  (written and fsync'ed before their files are removed; their ids stay, so a crash in between never
  replays a record twice), or declines them and :func:`set_aside` renames the files
  (``<journal>.declined-<time>``). Nothing journaled by anybody is lost.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cellviewer.core import openlock
from cellviewer.core.errors import SaveError
from cellviewer.core.journal import Journal, encode, journal_path, read_records
from cellviewer.core.journal import set_aside as _set_aside_file

OWNER = ".lock"  # <journal>.lock names the process that writes <journal>
_ID = re.compile(r"-[0-9a-f]{8}")  # <sidecar>.journal-<id>: a copy opened beside another


def owner_path(jpath) -> Path:
    p = Path(jpath)
    return p.with_name(p.name + OWNER)


def journals(sidecar_file) -> list[Path]:
    """The journals beside ``sidecar_file``: ``<sidecar>.journal`` first, then ``<sidecar>.journal-<id>``
    ones, oldest first."""
    primary = journal_path(sidecar_file)
    try:
        names = os.listdir(primary.parent)
    except OSError:
        names = []
    extra = []
    for name in names:
        if name.startswith(primary.name) and _ID.fullmatch(name[len(primary.name):]):
            try:
                extra.append((os.stat(primary.with_name(name)).st_mtime_ns, name))
            except OSError:
                pass
    return ([primary] if primary.is_file() else []) + [primary.with_name(n) for _, n in sorted(extra)]


def live(jpath) -> bool:
    """Someone still writes ``jpath``: its lock names a process that runs (this one included: another
    window)."""
    return openlock.live(owner_path(jpath))


@dataclass
class LeftOver:
    """Journals whose writer is gone (``paths``) and their records not yet saved, in replay order
    (``records``: ``(kind, edit, record id)``). ``foreign``: some records come from a copy other than
    the one that saved the sidecar last: they were made on another version of it (which a recovery
    should keep aside before saving over it, as :func:`cellviewer.core.openlock.keep_copy` does)."""

    paths: list[Path] = field(default_factory=list)
    records: list[tuple] = field(default_factory=list)
    foreign: bool = False  # some of the records were journaled by a copy that did not save the sidecar last

    @property
    def entries(self) -> list[tuple]:
        """``(kind, edit)`` pairs, for :func:`cellviewer.core.journal.replay`."""
        return [(kind, edit) for kind, edit, _ in self.records]


def left_over(sidecar_file, after: str | None = None, saved_by: str | None = None) -> LeftOver:
    """The journals beside ``sidecar_file`` that nobody writes any more, and their records after ``after``
    (the sidecar's ``journal_last``; see :func:`cellviewer.core.journal.read_records`). A record id seen
    twice (a crash while :func:`claim` moved records) counts once. ``saved_by``: the sidecar's
    ``journal_suffix`` (None: not known) — which copy saved it, for :attr:`LeftOver.foreign`."""
    out, seen = LeftOver(), set()
    primary = journal_path(sidecar_file).name
    for p in journals(sidecar_file):
        if live(p):
            continue
        out.paths.append(p)
        records = [r for r in read_records(p, after) if r[2] is None or r[2] not in seen]
        seen.update(r[2] for r in records)
        out.records += records
        out.foreign = out.foreign or bool(records and saved_by is not None and p.name[len(primary):] != saved_by)
    return out


def _take(jpath) -> bool | None:
    """Claim ``jpath`` (True), it is someone else's (False), or its lock cannot be written (None)."""
    try:
        return openlock.take(owner_path(jpath))
    except OSError:
        return None


def free_name(primary: Path, suffix: str = "") -> tuple[Path, str, Path | None]:
    """A journal name beside ``primary`` (``<sidecar>.journal``) for this copy, claimed: ``primary`` +
    ``suffix`` when nobody holds that, else a new ``-<id>`` one; ``(path, suffix, lock)`` (lock None: it
    cannot be written — the journal is used unclaimed, as older versions did)."""
    path = primary.with_name(primary.name + suffix)
    got = _take(path)
    while got is False:
        suffix = f"-{uuid.uuid4().hex[:8]}"
        path = primary.with_name(primary.name + suffix)
        if not path.exists():  # (never a left-over journal of that name)
            got = _take(path)
    return path, suffix, owner_path(path) if got else None


def claim(sidecar_file, left: LeftOver | None = None) -> Journal:
    """This copy's journal beside ``sidecar_file`` (see the module docstring). ``left``: the left-over
    journals found at open and not set aside (their records recovered, or none pending): their records
    become the start of this journal, then their files and stale locks are removed."""
    primary = journal_path(sidecar_file)
    _drop_orphan_locks(primary)
    path, suffix, owner = free_name(primary)
    j = Journal(path, owner, suffix)
    if left is not None and (left.paths or left.records):
        _move_into(j, left)
    return j


def _drop_orphan_locks(primary: Path) -> None:
    """Remove the locks that crashed copies left without a journal (it was empty): they hold nothing."""
    try:
        names = os.listdir(primary.parent)
    except OSError:
        return
    for name in names:
        jname = name[: -len(OWNER)]
        if name.endswith(OWNER) and (jname == primary.name or (
                jname.startswith(primary.name) and _ID.fullmatch(jname[len(primary.name):]))):
            if not primary.with_name(jname).exists():
                openlock.drop(primary.with_name(name), stale=True)


def _move_into(j: Journal, left: LeftOver) -> None:
    data = b"".join(encode(kind, edit, rid) for kind, edit, rid in left.records)
    try:
        if j.path in left.paths:  # (the left-over <sidecar>.journal this copy claimed: its records are these)
            j.replace(data)
        elif data:
            j.append(data)
    except (OSError, SaveError):  # (a full disk): the files are kept aside, never replayed twice
        for p in left.paths:
            if p != j.path and not live(p) and _set_aside_file(p) is not None:
                openlock.drop(owner_path(p), stale=True)
        return
    for p in left.paths:
        if p != j.path and not live(p):
            try:
                os.unlink(p)
            except OSError:
                pass
            openlock.drop(owner_path(p), stale=True)


def set_aside(left: LeftOver) -> list[Path]:
    """The user declined to recover ``left``: rename each of its journals (unless someone writes it
    again by now) to ``<journal>.declined-<time>``; where they went. One that cannot be renamed is
    removed (never replayed later over newer edits)."""
    kept = []
    for p in left.paths:
        if live(p):
            continue
        dst = _set_aside_file(p)
        if dst is not None:
            kept.append(dst)
        else:
            try:
                os.unlink(p)
            except OSError:
                pass
        openlock.drop(owner_path(p), stale=True)
    return kept
