"""Reading the data CSVs of the shared layout (``images.csv``, ``annotations*.csv``, ``points.csv``) and of
an export, strictly: UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8"); a missing column, a cell
that is not a number, a label that is no cell class or a file that is not UTF-8 text is an
:class:`~cellviewer.core.errors.OptionError` (exit 2) naming the file, the line and what is wrong — never a
silent drop or an unexpected ``KeyError``. Boxes are clipped to their image (:func:`clip_boxes`); what was read
differently from the file becomes a note (:func:`box_notes`, :func:`print_notes`).
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from cellviewer.core.csvtext import unquote_rows
from cellviewer.core.errors import OptionError
from cellviewer.core.weaklabels import CLASS_INDEX


def read_rows(path: Path, required: tuple[str, ...] = ("image",)) -> list[dict]:
    """The rows of a data CSV (UTF-8, a byte-order mark allowed; cells unquoted), each with its line number
    in the file as ``"_line"``; a missing file, a header without a ``required`` column or a file that is not
    UTF-8 text is an :class:`OptionError` (exit 2) naming the file and what is wrong."""
    if not path.is_file():
        raise OptionError(f"Missing annotation file '{path}'.", hint="point --data at shared/data")
    fix = "save it again as CSV UTF-8 (comma delimited) with the header " + ",".join(required)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            reader.fieldnames = [(h or "").strip() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in reader.fieldnames]
            if missing:
                sep = " (its fields seem to be separated by ';', not ',')" if ";" in ",".join(reader.fieldnames) else ""
                raise OptionError(f"'{path}' line 1: missing column(s) {', '.join(missing)} in the header "
                                  f"'{','.join(reader.fieldnames)[:120]}'{sep}.", hint=fix)
            out = []
            for row in unquote_rows(reader):
                row["_line"] = reader.line_num
                out.append(row)
            return out
    except UnicodeDecodeError as e:
        raise OptionError(f"'{path}' is not a UTF-8 text CSV (undecodable byte at offset {e.start}).", hint=fix) from e
    except csv.Error as e:  # e.g. NUL bytes: a binary file under a .csv name
        raise OptionError(f"'{path}' is not a readable CSV: {e}.", hint=fix) from e


def number(row: dict, key: str, path: Path, kind=float, least: float | None = None):
    """``row[key]`` as a finite number (``kind`` int: a whole one, at least ``least``); else an OptionError
    naming the file, the line and the value."""
    text = (row.get(key) or "").strip()
    try:
        v = float(text)
        if not np.isfinite(v) or (kind is int and v != int(v)) or (least is not None and v < least):
            raise ValueError
    except ValueError:
        what = "is empty" if not text else f"'{text[:40]}' is not a {'whole number' if kind is int else 'number'}"
        what += "" if least is None or not text else f" of at least {least:g}"
        raise OptionError(f"'{path}' line {row.get('_line', '?')}: column {key} {what}.",
                          hint="correct that row (numbers with '.' as the decimal point)") from None
    return int(v) if kind is int else v


#: the box labels read (any letter case): the shared layout's RBC / WBC / Platelets and their obvious variants
CELL_LABELS = {"rbc": "rbc", "rbcs": "rbc", "wbc": "wbc", "wbcs": "wbc", "platelet": "platelet",
               "platelets": "platelet", "plt": "platelet"}
BOX_COLUMNS = ("image", "cls", "xmin", "ymin", "xmax", "ymax")


def cell_class(label: str | None) -> str | None:
    """The cell class of a box label (``'RBC'``, ``'rbc'``, ``'Platelets'`` …), None when it is none of them."""
    return CELL_LABELS.get((label or "").strip().lower())


def boxes_by_image(path: Path) -> dict[str, dict[str, list]]:
    """``{image: {cls: [[xmin, ymin, xmax, ymax], …]}}`` of an ``annotations*.csv``; a label that is no cell
    class (:data:`CELL_LABELS`) is an OptionError naming the labels, not a box silently left out."""
    out: dict[str, dict[str, list]] = defaultdict(lambda: {c: [] for c in CLASS_INDEX})
    unknown: dict[str, int] = defaultdict(int)
    for r in read_rows(path, BOX_COLUMNS):
        cls = cell_class(r["cls"])
        if cls is None:
            unknown[r["cls"] or ""] += 1
            continue
        out[r["image"]][cls].append([number(r, k, path) for k in BOX_COLUMNS[2:]])
    if unknown:
        shown = ", ".join(f"'{k}' ({n} rows)" for k, n in sorted(unknown.items())[:8])
        raise OptionError(f"'{path}': unknown cell label(s) in column cls: {shown}.",
                          hint="use RBC, WBC or Platelets (any letter case; platelet, plt also read)")
    return out


def clip_boxes(b: np.ndarray, width: int, height: int) -> tuple[np.ndarray, int, int]:
    """Boxes (N×4, xmin, ymin, xmax, ymax) clipped to the ``width`` × ``height`` image; returns ``(kept,
    clipped, dropped)``. Dropped — no marker could ever match them — are boxes wholly outside the image and
    inverted ones (xmin > xmax or ymin > ymax). A box one pixel wide (xmin = xmax: inclusive pixel indices,
    as an export writes them) is kept."""
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ok = (b[:, 0] <= b[:, 2]) & (b[:, 1] <= b[:, 3])
    ok &= (b[:, 2] >= 0) & (b[:, 3] >= 0) & (b[:, 0] < width) & (b[:, 1] < height)
    c = np.clip(b, 0, [width, height, width, height])
    return c[ok], int((ok & (c != b).any(1)).sum()), int((~ok).sum())


def box_notes(path: Path, clipped: int, dropped: int, strays: dict[str, int]) -> list[str]:
    """The notes of one annotation file: boxes clipped / left out, rows of images not in ``images.csv``."""
    out = []
    if dropped:
        out.append(f"{path}: {dropped} box(es) outside their image or inverted (xmin > xmax or ymin > ymax) "
                   "left out")
    if clipped:
        out.append(f"{path}: {clipped} box(es) reaching past the image edge clipped to it")
    if strays:
        eg = ", ".join(sorted(strays)[:3])
        out.append(f"{path}: {sum(strays.values())} row(s) of {len(strays)} image(s) not in images.csv "
                   f"left out (e.g. {eg})")
    return out


def print_notes(notes: list[str]) -> None:
    """Each note once, as a ``cellviewer: note:`` line on stderr (not an error: the command goes on)."""
    for n in dict.fromkeys(notes):
        sys.stderr.write(f"cellviewer: note: {n}\n")
