"""Journal barriers: a document replaced outside the journal (a segmentation result) whose save
had not landed when the process died must not get later edits replayed onto the older state."""

from cellviewer.core import edits, journal, sidecar
from tests.core.test_edits import assert_same, seeded_doc, snapshot
from tests.core.test_sidecar import doc_at


def _reopen(doc):
    fresh = seeded_doc()
    fresh.image.info = doc.image.info
    found = sidecar.find_sidecar(doc.image.info.path)
    meta, arrays = sidecar.read_sidecar(found)
    sidecar.apply_sidecar(fresh, meta, arrays)
    return fresh, journal.read_entries(journal.journal_path(found), after=meta.get("journal_last"))


def _edit_then_replace(tmp_path):
    """A saved, journaled document with one edit, then replaced outside the journal (as a
    segmentation result is) and a barrier written; returns (doc, history, snapshot before the replace)."""
    doc = doc_at(tmp_path)
    sidecar.save_sidecar(doc)
    sidecar.attach_journal(doc)
    h = edits.History(doc)
    h.push(edits.delete_cell(doc, "rbc", 1))
    before = snapshot(doc)  # the last save + journaled edits
    doc.labels["rbc"][doc.labels["rbc"] == 2] = 0  # "segmentation": replaced, not journaled
    doc.journal.barrier()
    return doc, h, before


def test_a_crash_before_the_save_of_the_replaced_document_recovers_up_to_the_barrier(tmp_path):
    doc, h, expected = _edit_then_replace(tmp_path)  # what a crash may fall back to: `expected`
    h.push(edits.add_marker(doc, "platelet", 30, 90))  # an edit of the new state
    fresh, entries = _reopen(doc)  # crash: the background save never landed
    assert [k for k, _ in entries] == ["apply"]
    assert journal.recover(fresh, entries) == 1
    assert_same(fresh, expected)


def test_after_the_save_lands_edits_past_the_barrier_are_recovered(tmp_path):
    doc, h, _ = _edit_then_replace(tmp_path)
    snap = sidecar.snapshot(doc)  # taken on the GUI thread right after the barrier ...
    h.push(edits.add_marker(doc, "platelet", 30, 90))  # ... an edit while the writer runs
    sidecar.save_snapshot(snap, doc.image.info.path)
    expected = snapshot(doc)
    fresh, entries = _reopen(doc)
    assert [k for k, _ in entries] == ["apply"] and entries[0][1].name == "Add marker"
    assert journal.recover(fresh, entries) == 1
    assert_same(fresh, expected)


def test_recover_stops_at_a_barrier_it_is_given(tmp_path):
    doc = doc_at(tmp_path)
    sidecar.attach_journal(doc)
    h = edits.History(doc)
    doc.journal.barrier()
    h.push(edits.delete_cell(doc, "rbc", 1))
    data = journal._parse(doc.journal.path.read_bytes())[0]
    assert [k for k, _, _ in data] == ["barrier", "apply"]
    assert journal.recover(seeded_doc(), [(k, e) for k, e, _ in data]) == 0
