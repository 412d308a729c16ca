"""Folder report: saved corrections where they exist, a segmentation elsewhere, bad files skipped."""

from __future__ import annotations

import csv

import pytest

from cellviewer.core import edits, sidecar
from cellviewer.core.errors import Cancelled
from cellviewer.core.folder_report import folder_report
from cellviewer.core.jobs import CancelToken, run_job
from cellviewer.core.segment import create_segmenter
from tests.gui.smear import write_smear


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def folder(tmp_path):
    """a.png (corrected and saved: one extra manual platelet), b.png (never opened), c.png (truncated)."""
    d = tmp_path / "smears"
    d.mkdir()
    a, b = write_smear(d / "a.png"), write_smear(d / "b.png", seed=1)
    (d / "c.png").write_bytes(a.read_bytes()[:200])
    doc = sidecar.load_document(a)
    doc.set_result(run_job(create_segmenter("classical").segment(doc.image.pixels)))
    edits.History(doc).push(edits.add_marker(doc, "platelet", 5.0, 5.0))
    sidecar.save_sidecar(doc)
    return d, doc.counts()


def _report(d, out, cancel=None):
    made = []

    def make():
        made.append(1)
        return create_segmenter("classical")

    images = sorted(d.glob("*.png"))
    job = folder_report(images, out / "r.pdf", out / "r_counts.csv", out / "r_cells.csv", make, cancel=cancel)
    return run_job(job), made


def test_sidecars_are_used_the_rest_segmented_bad_files_skipped(folder, tmp_path):
    d, saved_counts = folder
    out = tmp_path / "out"
    out.mkdir()
    rep, made = _report(d, out)
    assert rep.from_sidecar == ["a.png"] and rep.segmented == ["b.png"] and made == [1]
    assert [name for name, _ in rep.skipped] == ["c.png"] and rep.skipped[0][1]  # a reason
    counts = {r["image"]: r for r in _rows(rep.counts_csv)}
    assert set(counts) == {"a.png", "b.png"}
    assert int(counts["a.png"]["platelets"]) == saved_counts["platelet"]  # the manual marker counts
    assert int(counts["b.png"]["rbc"]) == 12  # the synthetic smear, segmented
    cells = _rows(rep.cells_csv)
    assert {r["image"] for r in cells} == {"a.png", "b.png"}
    assert sum(r["image"] == "a.png" for r in cells) == sum(saved_counts.values())
    data = rep.pdf.read_bytes()
    assert data.startswith(b"%PDF") and rep.n_images == 2
    assert not (d / "b.png.cellviewer").exists()  # nothing is saved beside the images


def test_cancel_writes_nothing(folder, tmp_path):
    d, _ = folder
    out = tmp_path / "out"
    out.mkdir()
    tok = CancelToken()
    job = folder_report(sorted(d.glob("*.png")), out / "r.pdf", out / "r_counts.csv", out / "r_cells.csv",
                        lambda: create_segmenter("classical"), cancel=tok)
    next(job)
    tok.cancel()
    with pytest.raises(Cancelled):
        run_job(job)
    assert list(out.iterdir()) == []


class _EdgeCells:
    """Two red cells: one cut by the bottom edge, one inside."""

    def segment(self, image, cancel=None):
        import numpy as np

        from cellviewer.core.document import Marker
        from cellviewer.core.segment import SegmentationResult

        h, w = image.shape[:2]
        lab = np.zeros((h, w), np.int32)
        lab[h - 6:h, 10:20], lab[40:50, 40:50] = 1, 2
        yield from ()
        return SegmentationResult({"rbc": lab}, [Marker(0, "rbc", 15.0, h - 3.0, cell=1),
                                                 Marker(0, "rbc", 45.0, 45.0, cell=2)], model_name="edge")


@pytest.mark.parametrize("rule, n", [("all", 2), ("frame", 1), ("inside", 1)])
def test_segmented_images_follow_the_given_border_rule_saved_ones_their_own(folder, tmp_path, rule, n):
    d, saved_counts = folder
    out = tmp_path / "out"
    out.mkdir()
    images = sorted(d.glob("*.png"))
    rep = run_job(folder_report(images, out / "r.pdf", out / "r_counts.csv", out / "r_cells.csv", _EdgeCells,
                                border_rule=rule))
    counts = {r["image"]: r for r in _rows(rep.counts_csv)}
    assert int(counts["b.png"]["rbc"]) == n
    assert int(counts["a.png"]["platelets"]) == saved_counts["platelet"]  # its sidecar's rule: all


def test_a_report_that_fails_leaves_the_earlier_files_as_they_were(folder, tmp_path, monkeypatch):
    from cellviewer.core import report
    from cellviewer.core.errors import SaveError

    d, _ = folder
    out = tmp_path / "out"
    out.mkdir()
    rep, _ = _report(d, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"r.pdf", "r_counts.csv", "r_cells.csv"}

    def full_disk(*_a, **_k):
        raise SaveError("Cannot write the report: No space left on device")

    monkeypatch.setattr(report, "write_pdf_report", full_disk)
    (d / "b.png").unlink()  # (the new report would differ)
    with pytest.raises(SaveError):
        _report(d, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no header-only CSV, no temp file


def test_a_file_name_that_is_not_utf8_is_reported_readable(tmp_path):
    import os

    d = tmp_path / "smears"
    d.mkdir()
    name = os.fsdecode(b"caf\xe9.png")
    write_smear(d / name)
    out = tmp_path / "out"
    out.mkdir()
    rep, _ = _report(d, out)
    assert rep.segmented == [name] and rep.skipped == []
    assert [r["image"] for r in _rows(rep.counts_csv)] == ["caf\\xe9.png"]
    assert {r["image"] for r in _rows(rep.cells_csv)} == {"caf\\xe9.png"}
    assert rep.pdf.read_bytes().startswith(b"%PDF")
