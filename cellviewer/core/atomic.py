"""Atomic file writes: temp file beside the target, fsync, rename (never a half-written file)."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically; on failure the old file is kept and the temp file removed.

    ``fsync=False`` skips the flush to the disk (still never a half file after a crash of the process;
    for the many small files of an export). Raises the underlying :class:`OSError`; callers turn it into
    their own error type.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
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


def check_writable(path: str | os.PathLike, flag: str = "--json") -> Path:
    """Fail now, not after a long run, when the output file ``path`` (given as ``flag FILE``) could not be
    written: its folder is missing or read-only, or the path is a folder. A probe file is made beside it
    and removed; nothing else is touched. Raises :class:`~cellviewer.core.errors.SaveError` (exit code 5), or
    :class:`~cellviewer.core.errors.OptionError` (exit code 2) for an empty file name."""
    import tempfile

    from cellviewer.core.errors import SaveError

    from cellviewer.core.errors import OptionError

    hint = f"give {flag} a file in an existing, writable folder"
    if not str(path).strip():  # --json "": an empty name is a usage error (exit 2), not a file to write
        ext = "csv" if "csv" in flag else "json"
        raise OptionError(f"{flag} was given an empty file name.", hint=f"give {flag} a file name, e.g. {flag} out.{ext}")
    p = Path(path)
    if p.is_dir():
        raise SaveError(f"Cannot write {flag} '{p}': it is a folder.", hint=hint)
    folder = p.parent if str(p.parent) else Path(".")
    above = next((a for a in [folder, *folder.parents] if a.exists()), None)
    if above is not None and not above.is_dir():  # 'afile/e.json' where afile is a regular file
        raise SaveError(f"Cannot write {flag} '{p}': '{above}' is a file, not a folder.", hint=hint)
    if not folder.is_dir():
        raise SaveError(f"Cannot write {flag} '{p}': the folder '{folder}' does not exist.", hint=hint)
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise SaveError(f"Cannot write {flag} '{p}': {e.strerror or e}.", hint=hint) from e
    return p


def write_output(path: str | os.PathLike, text: str, flag: str = "--json") -> Path:
    """Write a command's output file (``flag FILE``) atomically: a crash or a full disk leaves the old file
    (or none), never half of the new one. Raises :class:`~cellviewer.core.errors.SaveError` (exit code 5)."""
    from cellviewer.core.errors import SaveError

    try:
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as e:
        raise SaveError(f"Cannot write {flag} '{path}': {e.strerror or e}.",
                        hint="free some disk space or choose another file") from e
    return Path(path)
