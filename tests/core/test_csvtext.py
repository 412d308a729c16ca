"""Data-CSV text cells: formula-like names are quoted for spreadsheets and read back exactly, through an
export, a merge into it and the readers of the shared layout."""

import csv

import numpy as np

from cellviewer.core.csvtext import quote_cell, read_rows, unquote_cell
from cellviewer.core.export_dataset import export_training_set
from cellviewer.core.export_read import load_exported
from cellviewer.core.jobs import run_job
from cellviewer.core.report import spreadsheet_safe
from tests.synthdocs import disc_doc


def test_quote_cases_by_hand():
    assert quote_cell("=1+1.png") == "'=1+1.png" and quote_cell("@SUM(A1).jpg") == "'@SUM(A1).jpg"
    assert quote_cell("-x.png") == "'-x.png" and quote_cell("+1 cell") == "'+1 cell"
    assert quote_cell("\tq") == "'\tq" and quote_cell("\rq") == "'\rq"
    assert quote_cell("'quoted.png") == "''quoted.png"  # a leading quote is doubled: never ambiguous
    assert quote_cell("-3.5") == "-3.5" and quote_cell("+2") == "+2"  # plain numbers stay numbers
    assert quote_cell("img_1.png") == "img_1.png" and quote_cell("") == "" and quote_cell(7) == 7
    assert unquote_cell("''quoted.png") == "'quoted.png" and unquote_cell("'=1") == "=1" and unquote_cell("a'b") == "a'b"
    assert spreadsheet_safe("=x") == "'=x" and spreadsheet_safe("'x") == "''x"  # the reports quote the same way


def test_unquote_undoes_quote_for_any_text():
    rng = np.random.default_rng(0)
    alphabet = list("'=+-@\t\r.0123456789ae ,\"")
    for _ in range(3000):
        s = "".join(rng.choice(alphabet, size=int(rng.integers(0, 7))))
        q = quote_cell(s)
        assert unquote_cell(q) == s, repr(s)
        assert not q.startswith(("=", "+", "@", "\t", "\r")) or _number(q), repr(q)


def _number(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def _doc(name, seed):
    discs = [("rbc", 20, 20, 8, 0.9), ("rbc", 60, 30, 8, 0.8), ("wbc", 40, 70, 12, 0.9), ("platelet", 90, 80, 3, 0.7)]
    return disc_doc(discs, (96, 128), name, True, seed)


def test_formula_like_names_survive_an_export_and_a_merge(tmp_path):
    out = tmp_path / "x"
    names = ["=HYPERLINK(1)", "'quoted", "-minus", "plain"]
    run_job(export_training_set([_doc(n + ".png", k) for k, n in enumerate(names)], out, merge=True))
    with open(out / "images.csv", newline="", encoding="utf-8") as f:
        raw = {r["image"]: r for r in csv.DictReader(f)}
    assert set(raw) == {"'=HYPERLINK(1).png", "''quoted.png", "'-minus.png", "plain.png"}  # as a spreadsheet sees text
    assert {r["source"] for r in raw.values()} == {"'=HYPERLINK(1).png", "''quoted.png", "'-minus.png", "plain.png"}
    with open(out / "annotations.csv", newline="", encoding="utf-8") as f:
        assert not any(r["image"].startswith("=") for r in csv.DictReader(f))
    rows = read_rows(out / "images.csv")
    assert sorted(r["image"] for r in rows) == sorted(n + ".png" for n in names)
    assert all((out / "images" / r["image"]).is_file() for r in rows)  # the names are the files' names again
    loaded = load_exported(out)
    assert len(loaded) == 4 and all(s.path.is_file() for s in loaded)
    assert all(sum(len(b) for b in s.boxes.values()) == 4 for s in loaded)  # annotations.csv matched its images
    again = run_job(export_training_set([_doc("=HYPERLINK(1).png", 0)], out, merge=True))
    assert (again.added, again.replaced, again.kept) == (0, 1, 3)  # the earlier export's names were recognised
    assert sorted(r["image"] for r in read_rows(out / "images.csv")) == sorted(n + ".png" for n in names)


def test_a_name_utf8_cannot_encode_gets_one_readable_escaped_form():
    import os

    from cellviewer.core.csvtext import readable

    name = os.fsdecode(b"caf\xe9.png")  # a Latin-1 file name on Linux: 'caf\udce9.png'
    assert readable(name) == "caf\\xe9.png"
    assert readable(name).encode("utf-8") == b"caf\\xe9.png"
    assert readable("x\ud800y") == "x\\ud800y"  # a lone surrogate that is no file-name byte
    plain = "Zürich 血液.png"
    assert readable(plain) is plain and readable(3) == 3
