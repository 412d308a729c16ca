"""The output folder of one ``cellviewer analyze`` run: who writes into it, and what an earlier run left there.

* :func:`lock_folder` / :func:`unlock_folder`: ``DIR/.cellviewer-analyze.lock`` (created only where there is
  none; JSON: process id, host, user, since — :mod:`cellviewer.core.openlock`'s record) is held for the whole
  run, so a second run into the same folder is refused (exit 2) instead of silently mixing its files with the
  first's. The lock of a run that is gone (same host, its process no longer runs: ``kill -9``, a crash) is
  taken over, with a note;
* :class:`EarlierRun`: an earlier run's ``run.json``, ``counts.csv``, ``cells.csv``, ``report.pdf`` and
  ``remaining.txt`` are set aside *together* when a run starts — ``run-earlier-run.json``,
  ``counts-earlier-run.csv`` ... (then ``-2``, ``-3`` ...: no earlier run's files are lost) — so a run killed
  hard leaves the earlier run's files as one set beside its own ``run.json`` (``"running"``); a run that
  analyses no image puts them back (:meth:`EarlierRun.restore`). Dead CSV temp files are swept first;
* :class:`LazyCsv`: a CSV stream opened at its first row.
"""

from __future__ import annotations

import json
import os
import re

from cellviewer.cli import UsageError
from cellviewer.core.errors import SaveError

LOCK = ".cellviewer-analyze.lock"
#: the files of a run that are set aside together (``masks/`` and ``classes.json`` stay: see the README)
RUN_FILES = ("run.json", "counts.csv", "cells.csv", "report.pdf", "remaining.txt")
_CSV_TEMP = re.compile(r"^\.(counts|cells)\.csv\.(\d+)\.[0-9a-f]+\.tmp$")


def _holder_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return f"process {int(d['pid'])} on {d.get('host') or 'another computer'}, since {d.get('since') or '?'}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that is just starting"


def lock_folder(out: str, note) -> str:
    """Take ``out``'s analyze lock for this process (taking over a stale one, said through ``note``); its
    path. :class:`UsageError` (exit 2) when another run holds it; :class:`SaveError` when it cannot be written."""
    from cellviewer.core import openlock

    path = os.path.join(out, LOCK)
    try:
        if openlock.take(path):
            return path
        if not openlock.live(path):  # its process is gone (kill -9, a crash): stale
            who = _holder_text(path)
            openlock.drop(path, stale=True)
            if openlock.take(path):
                note(f"took over the lock of an earlier run in {out} that ended without releasing it ({who}, "
                     "no longer running)")
                return path
    except OSError as e:
        raise SaveError(f"Cannot write the lock file '{path}': {e.strerror or e}",
                        hint="choose a writable folder with --out") from e
    raise UsageError(f"Another 'cellviewer analyze' run is writing into '{out}' ({_holder_text(path)}).",
                     hint=f"wait until it ends or choose another folder with --out; if no such run is going on "
                          f"(e.g. it ran on another computer and was killed), remove {path}")


def unlock_folder(path: str | None) -> None:
    """Remove this process's lock (never another's)."""
    if path is not None:
        from cellviewer.core import openlock

        openlock.drop(path)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process (or no way to tell): leave its files
        return True
    return True


def sweep_stale_temps(out: str) -> list[str]:
    """Remove the ``.counts.csv.PID.*.tmp`` / ``.cells.csv.PID.*.tmp`` files of runs whose process is
    gone (killed hard before it could clean up); the names removed."""
    removed = []
    try:
        names = os.listdir(out)
    except OSError:
        return removed
    for name in sorted(names):
        hit = _CSV_TEMP.match(name)
        if hit and not _pid_alive(int(hit.group(2))):
            try:
                os.unlink(os.path.join(out, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def aside_name(name: str, k: int = 1) -> str:
    """``report.pdf`` -> ``report-earlier-run.pdf`` (k=1), ``report-earlier-run-2.pdf`` (k=2) ..."""
    stem, ext = os.path.splitext(name)
    return f"{stem}-earlier-run{'' if k == 1 else f'-{k}'}{ext}"


class EarlierRun:
    """What an earlier run left in ``out`` when this one starts: its dead temp files are swept and its
    :data:`RUN_FILES` set aside together under the first number ``k`` free for all of them (``kept``: the
    original name -> the name it has now)."""

    def __init__(self, out: str, note):
        self.out = out
        for name in sweep_stale_temps(out):
            note(f"removed {name}, a temporary file of an earlier run that was killed")
        present = [n for n in RUN_FILES if os.path.isfile(os.path.join(out, n))]
        k = 1
        while any(os.path.lexists(os.path.join(out, aside_name(n, k))) for n in RUN_FILES):
            k += 1
        self.kept: dict[str, str] = {}
        try:
            for n in present:
                os.replace(os.path.join(out, n), os.path.join(out, aside_name(n, k)))
                self.kept[n] = aside_name(n, k)
        except OSError as e:
            try:
                self._put_back()
            except OSError:
                pass
            raise SaveError(f"Cannot set the earlier run's {n} aside in '{out}': {e.strerror or e}",
                            hint="move its files away yourself, or choose another folder with --out") from e
        if self.kept:
            note(f"{out} holds an earlier run: its files are set aside together ("
                 + ", ".join(f"{a} kept as {b}" for a, b in self.kept.items())
                 + "), and put back if this run analyses no image; classes.json is rewritten and masks of images "
                   "not in this run stay (run.json lists this run's)")

    def _put_back(self) -> None:
        for n, a in self.kept.items():
            os.replace(os.path.join(self.out, a), os.path.join(self.out, n))

    def restore(self, run: dict) -> None:
        """Put the earlier run's files back as they were (this run analysed nothing); this run's ``run.json``
        is written instead where the earlier run had none."""
        from cellviewer.commands.analyze_run import write_json

        try:
            self._put_back()
            if "run.json" not in self.kept:
                write_json(os.path.join(self.out, "run.json"), run)
        except OSError as e:
            raise SaveError(f"Cannot put back the earlier run's files in '{self.out}': {e.strerror or e}",
                            hint="rename its *-earlier-run files yourself; check the folder is writable") from e


class LazyCsv:
    """A :class:`~cellviewer.core.report.CsvStream` opened at its first row, so a run that analyses nothing
    need not write a CSV (``close(create=False)``)."""

    def __init__(self, path: str, columns, stream):
        self.path, self.columns, self._make, self._s = path, columns, stream, None

    def write(self, rows) -> None:
        if self._s is None:
            self._s = self._make(self.path, self.columns)
        self._s.write(rows)

    def close(self, create: bool = True) -> None:
        if self._s is None and create:
            self._s = self._make(self.path, self.columns)
        if self._s is not None:
            self._s.close()
