"""CSV writing for reports: ``cells.csv`` / ``counts.csv`` columns, streamed and atomic.

:class:`CsvStream` writes rows as they come to a temporary file beside the target that
replaces it on close (after an error or Ctrl-C too when ``keep_partial``, the rows of a batch done so far;
a table written whole leaves the earlier file untouched instead); :func:`write_csvs` writes both tables
at once. Text cells that a spreadsheet would run as a formula are quoted
(:func:`spreadsheet_safe`); a name UTF-8 cannot encode is written in its :func:`~cellviewer.core.csvtext.readable`
form. The rows themselves come from :mod:`cellviewer.core.report`
(:func:`~cellviewer.core.report.cell_rows`, :func:`~cellviewer.core.report.count_row`), which
describes the columns and re-exports everything here.
"""

from __future__ import annotations

import csv
import os
import uuid
from pathlib import Path

from cellviewer.core.csvtext import quote_cell, readable
from cellviewer.core.errors import SaveError

CELL_COLUMNS = ("image", "cell_id", "cls", "x", "y", "area_px", "xmin", "ymin", "xmax", "ymax", "score",
                "morphology", "morphology_p")
COUNT_COLUMNS = ("image", "rbc", "wbc", "platelets")


def _tmp_beside(path: Path) -> Path:
    """A fresh temporary name in the same folder (same file system, so ``os.replace`` is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def spreadsheet_safe(value):
    """``value`` as a CSV cell that a spreadsheet shows as text (:func:`cellviewer.core.csvtext.quote_cell`):
    a string that starts like a formula (``=``, ``+``, ``-``, ``@``, tab, CR; e.g. an image named
    ``=HYPERLINK(...).png``) or with ``'`` gets a leading ``'`` — unless it is a plain number such as
    ``-3.5``. Numbers and other values pass unchanged. A string UTF-8 cannot encode (a file name that is
    not valid UTF-8) is written in its :func:`~cellviewer.core.csvtext.readable` form (``caf\\xe9.png``)."""
    return quote_cell(readable(value))


class CsvStream:
    """Write rows to a CSV as they come (flushed per call); the file appears at ``path`` on close.

    Text cells that would start a spreadsheet formula are quoted (:func:`spreadsheet_safe`).
    The rows go to a temporary file beside ``path`` that replaces ``path`` when the
    stream is closed. Used as a context manager, an error or Ctrl-C inside the ``with``:

    * ``keep_partial=True`` (rows streamed over a batch): ``path`` is still replaced, so the rows of
      the images processed so far are kept (every row written is complete);
    * ``keep_partial=False`` (a table written whole): the temporary file is removed and an earlier
      ``path`` stays as it was (:meth:`discard`).
    """

    def __init__(self, path, columns=CELL_COLUMNS, keep_partial: bool = True):
        self.path = Path(path)
        self.columns = tuple(columns)
        self.keep_partial = keep_partial
        self._tmp = _tmp_beside(self.path)
        try:
            self._f = open(self._tmp, "x", newline="", encoding="utf-8")
        except OSError as e:
            raise SaveError(f"Cannot write '{self.path}': {e.strerror or e}", hint="choose a writable folder") from e
        self._w = csv.DictWriter(self._f, fieldnames=self.columns, extrasaction="ignore")
        self._w.writeheader()

    def write(self, rows) -> None:
        if isinstance(rows, dict):
            rows = [rows]
        rows = [{k: spreadsheet_safe(v) for k, v in r.items()} for r in rows]
        try:
            self._w.writerows(rows)
            self._f.flush()
        except OSError as e:  # disk full ...
            raise SaveError(f"Cannot write '{self.path}': {e.strerror or e}",
                            hint="free some disk space or choose another folder") from e

    def close(self) -> Path:
        if not self._f.closed:
            try:
                try:
                    self._f.close()
                finally:
                    os.replace(self._tmp, self.path)
            except OSError as e:
                try:
                    os.unlink(self._tmp)
                except OSError:
                    pass
                raise SaveError(f"Cannot write '{self.path}': {e.strerror or e}",
                                hint="free some disk space or choose another folder") from e
        return self.path

    def discard(self) -> None:
        """Drop the rows written: the temporary file goes, ``path`` stays as it was."""
        if not self._f.closed:
            try:
                self._f.close()
            except OSError:
                pass
            try:
                os.unlink(self._tmp)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not self.keep_partial:
            self.discard()
        else:
            self.close()


def write_csvs(out_dir, count_rows, cell_rows_) -> tuple[Path, Path]:
    """Write ``counts.csv`` and ``cells.csv`` (rows as dicts) in ``out_dir``, atomically (a table that fails
    leaves its earlier file as it was)."""
    for name, columns, rows in (("counts.csv", COUNT_COLUMNS, count_rows), ("cells.csv", CELL_COLUMNS, cell_rows_)):
        with CsvStream(Path(out_dir) / name, columns, keep_partial=False) as s:
            s.write(list(rows))
    return Path(out_dir) / "counts.csv", Path(out_dir) / "cells.csv"
