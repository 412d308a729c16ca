"""CSV writing for reports: ``cells.csv`` / ``counts.csv`` columns, streamed and atomic.

:class:`CsvStream` writes rows as they come to a temporary file beside the target that
replaces it on close (also after an error or Ctrl-C); :func:`write_csvs` writes both tables
at once. Text cells that a spreadsheet would run as a formula are quoted
(:func:`spreadsheet_safe`). The rows themselves come from :mod:`cellviewer.core.report`
(:func:`~cellviewer.core.report.cell_rows`, :func:`~cellviewer.core.report.count_row`), which
describes the columns and re-exports everything here.
"""

from __future__ import annotations

import csv
import os
import uuid
from pathlib import Path

from cellviewer.core.csvtext import quote_cell
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
    ``-3.5``. Numbers and other values pass unchanged."""
    return quote_cell(value)


class CsvStream:
    """Write rows to a CSV as they come (flushed per call); the file appears at ``path`` on close.

    Text cells that would start a spreadsheet formula are quoted (:func:`spreadsheet_safe`).
    The rows go to a temporary file beside ``path`` that replaces ``path`` when the
    stream is closed — also after an error or Ctrl-C, so the rows of the images
    processed so far are kept (every row written is complete).
    """

    def __init__(self, path, columns=CELL_COLUMNS):
        self.path = Path(path)
        self.columns = tuple(columns)
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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_csvs(out_dir, count_rows, cell_rows_) -> tuple[Path, Path]:
    """Write ``counts.csv`` and ``cells.csv`` (rows as dicts) in ``out_dir``, atomically."""
    for name, columns, rows in (("counts.csv", COUNT_COLUMNS, count_rows), ("cells.csv", CELL_COLUMNS, cell_rows_)):
        with CsvStream(Path(out_dir) / name, columns) as s:
            s.write(list(rows))
    return Path(out_dir) / "counts.csv", Path(out_dir) / "cells.csv"
