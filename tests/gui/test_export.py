"""File ▸ Export report (the job, off the GUI thread): a failed export leaves earlier files as they were; a
file name that is not valid UTF-8 is written readable."""

from __future__ import annotations

import csv
import os

import pytest

from cellviewer.core.jobs import CancelToken, run_job
from cellviewer.core.segment import create_segmenter
from cellviewer.core.sidecar import load_document
from tests.gui.smear import write_smear


def _doc(tmp_path, name="a.png"):
    doc = load_document(write_smear(tmp_path / name))
    doc.set_result(run_job(create_segmenter("classical").segment(doc.image.pixels)))
    return doc


def test_export_of_an_image_named_in_latin1(tmp_path):
    from cellviewer.gui.export import export_job

    name = os.fsdecode(b"caf\xe9.png")
    doc = _doc(tmp_path, name)
    pdf = run_job(export_job(doc, name, tmp_path / "r.pdf")(CancelToken()))
    assert pdf.read_bytes().startswith(b"%PDF")
    with open(tmp_path / "r_counts.csv", newline="", encoding="utf-8") as f:
        assert [r["image"] for r in csv.DictReader(f)] == ["caf\\xe9.png"]


@pytest.mark.parametrize("failing", ["pdf", "cells csv"])
def test_a_failed_export_leaves_the_earlier_files(tmp_path, monkeypatch, failing):
    from cellviewer.core import report, reportcsv
    from cellviewer.core.errors import SaveError
    from cellviewer.gui.export import export_job

    doc = _doc(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    run_job(export_job(doc, "a.png", out / "r.pdf")(CancelToken()))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"r.pdf", "r_counts.csv", "r_cells.csv"}

    def full_disk(*_a, **_k):
        raise SaveError("Cannot write: No space left on device")

    if failing == "pdf":
        monkeypatch.setattr(report, "write_pdf_report", full_disk)
    else:
        real = reportcsv.CsvStream.write
        monkeypatch.setattr(reportcsv.CsvStream, "write",
                            lambda self, rows: full_disk() if self.path.name == "r_cells.csv" else real(self, rows))
    with pytest.raises(SaveError):
        run_job(export_job(doc, "other.png", out / "r.pdf")(CancelToken()))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no half report, no temp file
