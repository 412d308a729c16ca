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

:func:`readable` is the one form in which a name that cannot be written as UTF-8 is shown and written
(report CSVs and PDFs, ``run.json``, messages): a file name that is not valid UTF-8 (bytes ``caf\\xe9.png``
on Linux become the Python string ``'caf\\udce9.png'``) is written ``caf\\xe9.png``.
"""

from __future__ import annotations

import csv
from pathlib import Path

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def readable(text: str) -> str:
    """``text`` with every character UTF-8 cannot encode (a lone surrogate) as a backslash escape: an undecodable
    byte of a file name (``'\\udce9'``, Python's ``surrogateescape``) as ``\\xe9``, any other lone surrogate as
    ``\\uXXXX``. Text that UTF-8 can encode comes back unchanged (the same object)."""
    if not isinstance(text, str):
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for ch in text:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # an undecodable byte of a file name
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


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
