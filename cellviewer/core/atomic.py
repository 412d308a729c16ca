"""Atomic file writes: temp file beside the target, fsync, rename (never a half-written file)."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; on failure the old file is kept and the temp file removed.

    Raises the underlying :class:`OSError`; callers turn it into their own error type.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def share_mode(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Give a ``mkstemp`` file (mode 0600) the mode the finished file should have: the replaced file's own
    mode when there is one, else 0644 (readable by the lab's other users, like the reports beside it)."""
    try:
        mode = os.stat(target).st_mode & 0o777
    except OSError:
        mode = 0o644
    os.chmod(tmp, mode)
