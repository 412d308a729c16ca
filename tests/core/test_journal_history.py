"""Crash recovery rebuilds the undo history the journal records (core.journal.replay): each recovered
edit is one undo step, done or undone as it was, without Qt."""

from __future__ import annotations

from cellviewer.core import edits, journal, sidecar
from tests.core.test_edits import assert_same, seeded_doc, snapshot
from tests.core.test_sidecar import doc_at


def _after_crash(doc):
    """A fresh document restored from ``doc``'s sidecar (as a new process would), and the journal's entries."""
    fresh = seeded_doc()
    fresh.image.info = doc.image.info
    meta, arrays = sidecar.read_sidecar(sidecar.find_sidecar(doc.image.info.path))
    sidecar.apply_sidecar(fresh, meta, arrays)
    last = meta.get("journal_last")
    return fresh, journal.read_entries(doc.journal.path, after=last)


def _journaled(tmp_path):
    doc = doc_at(tmp_path)
    sidecar.save_sidecar(doc)
    sidecar.attach_journal(doc)
    return doc, edits.History(doc)


def test_each_recovered_edit_is_one_undo_step_in_order(tmp_path):
    doc, h = _journaled(tmp_path)
    states = [snapshot(doc)]
    s = edits.BrushStroke(doc, "platelet", 3)
    s.dab(10, 100)
    s.line_to(20, 100)
    h.push(s.finish())  # a brush drag: applied while painting
    states.append(snapshot(doc))
    h.push(edits.merge_cells(doc, "rbc", 1, 2))
    states.append(snapshot(doc))
    h.push(edits.add_marker(doc, "wbc", 150, 5))
    states.append(snapshot(doc))
    fresh, entries = _after_crash(doc)
    rec = journal.replay(fresh, entries)
    assert rec.n == 3 and [e.name for e in rec.done] == ["Brush", "Merge cells", "Add marker"] and rec.undone == []
    assert all(e.applied for e in rec.done)
    for e, state in zip(reversed(rec.done), reversed(states[:-1])):  # undo walks back one original edit at a time
        e.revert(fresh)
        assert_same(fresh, state)
    for e, state in zip(rec.done, states[1:]):  # and redo walks forward again
        e.apply(fresh)
        assert_same(fresh, state)


def test_undo_and_redo_in_the_journal_leave_the_redo_steps_as_they_were(tmp_path):
    doc, h = _journaled(tmp_path)
    h.push(edits.delete_cell(doc, "rbc", 1))
    after_a = snapshot(doc)
    h.push(edits.delete_cell(doc, "rbc", 2))
    h.push(edits.delete_cell(doc, "wbc", 1))
    everything = snapshot(doc)
    h.undo()
    h.undo()
    h.redo()  # journal: apply A, B, C, revert C, revert B, apply B
    now = snapshot(doc)
    fresh, entries = _after_crash(doc)
    assert [k for k, _ in entries] == ["apply", "apply", "apply", "revert", "revert", "apply"]
    rec = journal.replay(fresh, entries)
    assert_same(fresh, now)
    assert [e.record.detail for e in rec.done] == ["cell 1", "cell 2"]
    assert [e.record.detail for e in rec.undone] == ["cell 1"] and rec.undone[0].record.cls == "wbc"
    assert not rec.undone[0].applied
    rec.undone[-1].apply(fresh)  # the redo step: the white cell deleted again
    assert_same(fresh, everything)
    rec.undone[-1].revert(fresh)
    rec.done[-1].revert(fresh)  # the undo step before it: cell 2 back
    assert_same(fresh, after_a)


def test_undoing_edits_the_sidecar_holds_makes_them_redoable(tmp_path):
    doc, h = _journaled(tmp_path)
    h.push(edits.delete_cell(doc, "rbc", 1))
    h.push(edits.add_marker(doc, "wbc", 150, 5))
    sidecar.save_sidecar(doc)  # both saved: the journal is emptied
    saved = snapshot(doc)
    h.undo()
    h.undo()
    fresh, entries = _after_crash(doc)
    assert [k for k, _ in entries] == ["revert", "revert"]
    rec = journal.replay(fresh, entries)
    assert rec.done == [] and [e.name for e in rec.undone] == ["Add marker", "Delete cell"]  # next redo: last
    for e in reversed(rec.undone):  # redo, in the order they were undone back
        e.apply(fresh)
    assert_same(fresh, saved)


def test_a_new_edit_after_an_undo_drops_the_redo_step(tmp_path):
    doc, h = _journaled(tmp_path)
    h.push(edits.delete_cell(doc, "rbc", 1))
    h.undo()
    h.push(edits.delete_cell(doc, "rbc", 2))
    fresh, entries = _after_crash(doc)
    rec = journal.replay(fresh, entries)
    assert rec.n == 3 and [e.record.detail for e in rec.done] == ["cell 2"] and rec.undone == []


def test_the_border_rule_is_replayed_but_is_no_undo_step(tmp_path):
    doc, h = _journaled(tmp_path)
    h.push(edits.delete_cell(doc, "rbc", 1))
    doc.set_border_rule("inside")  # journaled, never on the undo stack
    h.push(edits.delete_cell(doc, "rbc", 2))
    fresh, entries = _after_crash(doc)
    assert fresh.border_rule == "all"
    rec = journal.replay(fresh, entries)
    assert rec.n == 3 and fresh.border_rule == "inside"
    assert [e.record.detail for e in rec.done] == ["cell 1", "cell 2"]


def test_records_that_follow_no_history_keep_their_state_and_start_it_afresh(tmp_path):
    doc, h = _journaled(tmp_path)
    a = edits.delete_cell(doc, "rbc", 1)
    h.push(a)
    h.push(edits.delete_cell(doc, "rbc", 2))
    a.revert(doc)  # an undo out of order (no GUI writes this): B is applied, A reverted
    now = snapshot(doc)
    fresh, entries = _after_crash(doc)
    rec = journal.replay(fresh, entries)
    assert rec.n == 3 and rec.done == [] and rec.undone == []
    assert_same(fresh, now)
