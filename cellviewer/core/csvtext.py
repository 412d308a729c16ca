"""Text cells of the data CSVs (``images.csv``, ``annotations.csv``, ``markers.csv``) safe in a spreadsheet
and read back exactly.

An image named ``=HYPERLINK("http://…").png`` written as it is into ``images.csv`` runs as a formula when
the file is opened in a spreadsheet. The exported data CSVs are also read back by cellviewer (merging
exports, training, fine-tuning, evaluating), so the quoting must be undone exactly:

* :func:`quote_cell` puts a ``'`` before a text cell that starts like a formula (``=``, ``+``, ``-``, ``@``,
  tab, CR) — a spreadsheet then shows it as text — and also before one that already starts with ``'``,
  so that the quote is never ambiguous. Plain numbers (``-3.5``) and non-text values pass unchanged.
* :func:`unquote_cell` removes that one leading ``'``; :func:`read_rows` reads a CSV with every cell
  unquoted. ``unquote_cell(quote_cell(s)) == s`` for every string.

So in these files a cell's leading ``'`` is a quote, never data (a name that starts with ``'`` is written
``''name``). The report CSVs (``cells.csv``, ``counts.csv``) quote the same way but are not read back.
"""

from __future__ import annotations

import csv
from pathlib import Path

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def quote_cell(value):
    """``value`` for a data CSV: text that starts like a formula, or with ``'``, gets a leading ``'``."""
    if not isinstance(value, str) or not value:
        return value
    if value[0] == "'" or (value.startswith(FORMULA_START) and not _is_number(value)):
        return "'" + value
    return value


def unquote_cell(value):
    """The text :func:`quote_cell` was given: one leading ``'`` removed."""
    if isinstance(value, str) and value.startswith("'"):
        return value[1:]
    return value


def quote_row(row: dict) -> dict:
    return {k: quote_cell(v) for k, v in row.items()}


def unquote_rows(reader):
    """The rows of a :class:`csv.DictReader` with every cell unquoted."""
    for row in reader:
        yield {k: unquote_cell(v) for k, v in row.items()}


def read_rows(path, encoding: str | None = "utf-8") -> list[dict]:
    """Every row of the CSV at ``path`` as a dict, cells unquoted (:func:`unquote_cell`)."""
    with open(Path(path), newline="", encoding=encoding) as f:
        return list(unquote_rows(csv.DictReader(f)))
