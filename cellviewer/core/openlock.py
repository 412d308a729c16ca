"""Who has an image open for correcting: a small lock file beside its sidecar.

Two windows (or two annotators on a shared folder) correcting the same image would each
autosave their own state, and the later save would silently drop the other's corrections.
So opening an image for editing writes ``<sidecar>.lock`` (JSON: process id, host, user,
since when); closing it removes the file. Before opening, :func:`holder` says whether
someone else holds it; the GUI then asks before opening it too.

A lock whose process is gone (same host, the process id no longer runs: a crash) is stale
and is taken over. A lock from another host cannot be checked and counts as held.

When the user opens the image anyway, a second line of defence: :func:`stamp` records the sidecar as
this window last read or wrote it; before saving over a sidecar that changed since (another window or
user saved), :func:`keep_copy` puts that version aside (``<sidecar>.replaced-<time>``), so neither
side's corrections are lost.

The same record names the writer of each crash-recovery journal (``<journal>.lock``; see
:mod:`cellviewer.core.journalfiles`): :func:`take` creates one only where there is none,
:func:`live` tells whether its process still runs, :func:`drop` removes it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from cellviewer.core.document import now_iso, os_user

SUFFIX = ".lock"


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    user: str
    since: str

    def describe(self) -> str:
        return f"{self.user or 'someone'} on {self.host or 'another computer'} (process {self.pid}, since {self.since})"


def lock_path(image_path) -> Path:
    """Where the lock of ``image_path`` is: beside its sidecar (wherever that is saved)."""
    from cellviewer.core.sidecar import sidecar_path

    side = sidecar_path(Path(image_path))
    return side.with_name(side.name + SUFFIX)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (another user's process), or we cannot tell: assume it runs
    return True


def _read(path: Path) -> Holder | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        return Holder(int(d["pid"]), str(d.get("host", "")), str(d.get("user", "")), str(d.get("since", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable or half-written: not a lock anyone can rely on


def _mine(h: Holder) -> bool:
    return h.pid == os.getpid() and h.host == socket.gethostname()


def holder(image_path) -> Holder | None:
    """The other process that has ``image_path`` open (None: nobody, this process, or a stale lock)."""
    h = _read(lock_path(image_path))
    if h is None or _mine(h):
        return None
    if h.host == socket.gethostname() and not _alive(h.pid):
        return None  # its process is gone (a crash): stale
    return h


def _record() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "user": os_user(), "since": now_iso()})


def live(path) -> bool:
    """The lock file at ``path`` names a process that runs: this one, a running one on this host, or one
    on another host (that cannot be checked: it counts as running). False: no file, an unreadable one
    (older than a few seconds), or the lock of a process that is gone (a crash)."""
    h = _read(Path(path))
    if h is None:  # (unreadable: one being written right now by :func:`take` is someone's)
        try:
            return time.time() - os.stat(path).st_mtime < 10
        except OSError:
            return False
    return h.host != socket.gethostname() or _alive(h.pid)


def take(path) -> bool:
    """Create the lock file ``path`` for this process where there is none (never over another one, live
    or stale: two processes can never both take it); whether it is ours now. Raises :class:`OSError`
    when it cannot be written (a read-only folder, a name too long)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, _record().encode("utf-8"))
    except OSError:
        os.close(fd)
        Path(path).unlink(missing_ok=True)
        raise
    os.close(fd)
    return True


def drop(path, stale: bool = False) -> None:
    """Remove the lock file ``path`` if it is this process's (``stale``: only if its process is gone)."""
    path = Path(path)
    h = _read(path)
    if (not live(path)) if stale else (h is not None and _mine(h)):
        try:
            path.unlink()
        except OSError:
            pass


def acquire(image_path) -> Path | None:
    """Write this process's lock for ``image_path``; the lock file, or None when it cannot be written
    (a read-only folder and store: editing still works, only without the warning to others)."""
    path = lock_path(image_path)
    data = _record()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        return None
    return path


def release(image_path) -> None:
    """Remove the lock of ``image_path`` if it is this process's (never another's)."""
    path = lock_path(image_path)
    h = _read(path)
    if h is not None and _mine(h):
        try:
            path.unlink()
        except OSError:
            pass


def stamp(path) -> tuple[int, int] | None:
    """``(mtime_ns, size)`` of a file, None when it does not exist: whether it changed since."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def keep_copy(path) -> Path | None:
    """Copy the file at ``path`` to ``<path>.replaced-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3`` ... when that
    exists: never over an earlier copy) before it is overwritten; the copy, or None when it could not be made."""
    path = Path(path)
    base = f"{path.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
    dst, n = path.with_name(base), 1
    while dst.exists():
        n += 1
        dst = path.with_name(f"{base}-{n}")
    try:
        shutil.copy2(path, dst)
    except OSError:
        return None
    return dst
