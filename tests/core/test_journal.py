"""The edit journal: edits made after the last save survive a crash."""

import numpy as np

from cellviewer.core import edits, journal, sidecar
from tests.core.test_edits import assert_same, seeded_doc, snapshot
from tests.core.test_sidecar import doc_at


def test_unsaved_edits_are_recovered_after_a_crash(tmp_path):
    doc = doc_at(tmp_path)
    sidecar.save_sidecar(doc)
    sidecar.attach_journal(doc)
    h = edits.History(doc)
    s = edits.BrushStroke(doc, "platelet", 3)
    s.dab(10, 100)
    s.line_to(20, 100)
    h.push(s.finish())
    h.push(edits.merge_cells(doc, "rbc", 1, 2))
    h.push(edits.add_marker(doc, "wbc", 150, 5))
    h.undo()  # undo is journaled too
    h.push(edits.set_image_reviewed(doc))
    expected = snapshot(doc)
    n_audit = len(doc.provenance.edits)
    # "crash": nothing saved since; a fresh process restores sidecar + journal
    fresh = seeded_doc()
    fresh.image.info = doc.image.info
    meta, arrays = sidecar.read_sidecar(sidecar.find_sidecar(doc.image.info.path))
    sidecar.apply_sidecar(fresh, meta, arrays)
    entries = journal.read_entries(doc.journal.path)
    assert [k for k, _ in entries] == ["apply", "apply", "apply", "revert", "apply"]
    assert journal.recover(fresh, entries) == 5
    assert_same(fresh, expected)
    assert fresh.reviewed and len(fresh.provenance.edits) == n_audit


def test_saving_empties_the_journal_and_a_torn_record_is_ignored(tmp_path):
    doc = doc_at(tmp_path)
    sidecar.attach_journal(doc)
    edits.History(doc).push(edits.delete_cell(doc, "rbc", 1))
    path = doc.journal.path
    assert path.exists()
    sidecar.save_sidecar(doc)
    assert not path.exists()
    h = edits.History(doc)
    h.push(edits.delete_cell(doc, "rbc", 2))
    h.push(edits.delete_cell(doc, "wbc", 1))
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # the process died while writing the second record
    entries = journal.read_entries(path)
    assert len(entries) == 1 and entries[0][1].name == "Delete cell"


def test_snapshot_only_drops_what_it_covers(tmp_path):
    doc = doc_at(tmp_path)
    sidecar.attach_journal(doc)
    h = edits.History(doc)
    h.push(edits.delete_cell(doc, "rbc", 1))
    snap = sidecar.snapshot(doc)  # e.g. taken on the GUI thread ...
    h.push(edits.delete_cell(doc, "rbc", 2))  # ... an edit lands while the writer thread runs
    sidecar.write_snapshot(snap, sidecar.sidecar_path(doc.image.info.path))
    left = journal.read_entries(doc.journal.path)
    assert len(left) == 1 and left[0][1].record.detail == "cell 2"
    assert np.all(doc.labels["rbc"] == 0)
