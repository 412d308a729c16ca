"""One image open in two copies (windows or processes): each journals to its own file, a save trims only
its own, only the journals of copies that are gone are offered, and nothing journaled is lost
(core.journalfiles), without Qt."""

from __future__ import annotations

import json
import os
import socket

from cellviewer.core import edits, journal, journalfiles, openlock, sidecar
from cellviewer.core.edits import Edit, MarkerChange
from cellviewer.core.killcycles import synthetic_document

DEAD_PID = 2 ** 22 + 12345  # no such process on this host


def _image(tmp_path):
    doc = synthetic_document(120, 180, tmp_path / "img.png", seed=1)
    sidecar.save_sidecar(doc)
    return tmp_path / "img.png"


def _open(image):
    """A copy of the image opened as the GUI does: sidecar, recovery of what copies that are gone left, own journal."""
    doc = sidecar.load_document(image)
    journal.replay(doc, doc.pending_journal)
    sidecar.attach_journal(doc)
    return doc, edits.History(doc)


def _has_marker(doc, x, y) -> bool:
    return any(abs(m.x - x) < 1e-6 and abs(m.y - y) < 1e-6 for m in doc.markers.values())


def _stale(jpath, pid=DEAD_PID, host=None) -> None:
    """The lock of ``jpath`` as a crashed process (or another host) left it."""
    journalfiles.owner_path(jpath).write_text(json.dumps(
        {"pid": pid, "host": host or socket.gethostname(), "user": "ann", "since": "2026-12-07T02:00:00"}))


def test_a_second_copy_journals_to_its_own_file_and_its_save_trims_only_that(tmp_path):
    image = _image(tmp_path)
    one, h1 = _open(image)
    two, h2 = _open(image)
    assert one.journal.path == journal.journal_path(sidecar.find_sidecar(image))  # the first opener: <sidecar>.journal
    assert two.journal.path != one.journal.path and two.journal.path.name.startswith(one.journal.path.name + "-")
    h1.push(edits.add_marker(one, "platelet", 11.0, 12.0))  # E1: journaled, not saved
    h2.push(edits.add_marker(two, "platelet", 31.0, 32.0))  # F1
    sidecar.save_sidecar(two)  # the second copy saves ...
    assert [e.name for _, e in journal.read_entries(one.journal.path)] == ["Add marker"]  # ... E1 is still journaled
    assert not two.journal.path.exists()
    assert sidecar.load_document(image).pending_journal == []  # the first copy still runs: nothing to recover
    one.journal.close()  # ... and now it is gone without saving (a crash)
    three, _ = _open(image)
    assert _has_marker(three, 11.0, 12.0) and _has_marker(three, 31.0, 32.0)  # E1 recovered onto F1's save
    assert not one.journal.path.exists() or one.journal.path == three.journal.path


def test_a_live_copys_journal_is_not_offered_nor_set_aside(tmp_path):
    image = _image(tmp_path)
    one, h1 = _open(image)
    h1.push(edits.add_marker(one, "platelet", 11.0, 12.0))
    data = one.journal.path.read_bytes()
    doc = sidecar.load_document(image)
    assert doc.pending_journal == [] and doc.left_over.paths == []
    assert journalfiles.set_aside(journalfiles.LeftOver([one.journal.path])) == []  # even when asked to
    assert one.journal.path.read_bytes() == data


def test_journals_of_crashed_processes_are_offered_live_and_other_hosts_ones_are_not(tmp_path):
    image = _image(tmp_path)
    side = sidecar.find_sidecar(image)
    primary = journal.journal_path(side)
    rec = journal.encode("apply", edits.add_marker(sidecar.load_document(image), "platelet", 5.0, 5.0), "r1")
    primary.write_bytes(rec)
    for pid, host, offered in ((DEAD_PID, None, True), (os.getppid(), None, False), (4242, "another-lab-pc", False)):
        _stale(primary, pid, host)
        assert bool(sidecar.load_document(image).pending_journal) is offered, (pid, host)
    journalfiles.owner_path(primary).unlink()  # no lock at all: a journal of an older version
    assert len(sidecar.load_document(image).pending_journal) == 1


def test_left_over_journals_move_into_the_openers_journal_once(tmp_path):
    image = _image(tmp_path)
    side = sidecar.find_sidecar(image)
    primary = journal.journal_path(side)
    base = sidecar.load_document(image)
    a, b = edits.add_marker(base, "platelet", 5.0, 5.0), edits.add_marker(base, "wbc", 9.0, 7.0)
    primary.write_bytes(journal.encode("apply", a, "r1"))
    _stale(primary)  # a crashed first copy
    other = primary.with_name(primary.name + "-0123abcd")
    other.write_bytes(journal.encode("apply", b, "r2") + journal.encode("apply", a, "r1"))  # (r1 twice: counted once)
    doc, _ = _open(image)
    assert _has_marker(doc, 5.0, 5.0) and _has_marker(doc, 9.0, 7.0) and len(doc.markers) == len(base.markers) + 2
    assert not other.exists() and not journalfiles.owner_path(other).exists()
    assert journalfiles.owner_path(primary).exists() == (doc.journal.path == primary)
    assert [rid for *_, rid in journal.read_records(doc.journal.path)] == ["r1", "r2"]  # moved, ids kept
    doc.journal.close()  # this copy crashes before saving: the records are offered again, once
    again = sidecar.load_document(image)
    assert len(again.pending_journal) == 2


def test_a_save_after_recovering_empties_the_journal_and_declined_ones_are_kept_aside(tmp_path):
    image = _image(tmp_path)
    primary = journal.journal_path(sidecar.find_sidecar(image))
    base = sidecar.load_document(image)
    primary.write_bytes(journal.encode("apply", edits.add_marker(base, "platelet", 5.0, 5.0), "r1"))
    _stale(primary)
    doc, _ = _open(image)
    sidecar.save_sidecar(doc)
    assert journalfiles.journals(sidecar.find_sidecar(image)) == []
    assert _has_marker(sidecar.load_document(image), 5.0, 5.0)
    doc.journal.close()
    # declined: renamed aside, never deleted
    primary.write_bytes(journal.encode("apply", edits.add_marker(base, "wbc", 9.0, 7.0), "r2"))
    _stale(primary)
    doc = sidecar.load_document(image)
    kept = journalfiles.set_aside(doc.left_over)
    assert len(kept) == 1 and kept[0].name.startswith(primary.name + ".declined-")
    assert not primary.exists() and not journalfiles.owner_path(primary).exists()
    assert len(journal.read_entries(kept[0])) == 1


def test_records_from_a_copy_that_did_not_save_last_are_foreign(tmp_path):
    image = _image(tmp_path)
    one, h1 = _open(image)
    two, h2 = _open(image)
    h1.push(edits.add_marker(one, "platelet", 11.0, 12.0))
    sidecar.save_sidecar(one)
    h1.push(edits.add_marker(one, "platelet", 21.0, 22.0))
    one.journal.close()
    assert not sidecar.load_document(image).left_over.foreign  # its own save: the records follow it
    h2.push(edits.add_marker(two, "wbc", 31.0, 32.0))
    sidecar.save_sidecar(two)  # another copy saved since
    assert sidecar.load_document(image).left_over.foreign


def test_a_marker_id_another_copy_used_meanwhile_is_renumbered_on_replay(tmp_path):
    image = _image(tmp_path)
    one, h1 = _open(image)
    two, h2 = _open(image)
    h1.push(edits.add_marker(one, "platelet", 11.0, 12.0))  # both get the same new marker id
    h2.push(edits.add_marker(two, "platelet", 31.0, 32.0))
    h1.undo()
    h1.redo()
    sidecar.save_sidecar(two)
    one.journal.close()
    doc = sidecar.load_document(image)
    rec = journal.replay(doc, doc.pending_journal)
    assert _has_marker(doc, 11.0, 12.0) and _has_marker(doc, 31.0, 32.0)
    assert rec.edits == 1 and len(rec.done) == 1  # the undo and redo still pair with their edit


def test_a_journal_moved_beside_a_sidecar_saved_elsewhere_keeps_its_own_name_and_lock(tmp_path):
    image = _image(tmp_path)
    one, _ = _open(image)
    two, h2 = _open(image)
    h2.push(edits.add_marker(two, "platelet", 31.0, 32.0))
    suffix = two.journal.suffix
    assert suffix
    elsewhere = tmp_path / "store" / "img.png.cellviewer"
    snap = sidecar.snapshot(two)
    h2.push(edits.add_marker(two, "platelet", 41.0, 42.0))  # not in that save: it moves along
    sidecar.write_snapshot(snap, elsewhere)
    assert two.journal.path == journal.journal_path(elsewhere).with_name(journal.journal_path(elsewhere).name + suffix)
    assert openlock.live(two.journal.owner) and len(journal.read_entries(two.journal.path)) == 1
    assert not journalfiles.owner_path(journal.journal_path(image.with_name("img.png.cellviewer")).with_name(
        "img.png.cellviewer.journal" + suffix)).exists()


# -- edit ids (a redo is told from an identical new edit) -------------------------------------------------
def test_an_identical_new_edit_after_undos_is_no_redo():
    from tests.core.test_edits import seeded_doc

    doc = seeded_doc()
    a = edits.add_marker(doc, "platelet", 5.0, 5.0)
    b = edits.add_marker(doc, "wbc", 9.0, 9.0)
    again = Edit(a.name, [MarkerChange(None, a.atoms[0].new)], a.record)  # same marker id, same audit time
    entries = [("apply", a), ("apply", b), ("revert", b), ("revert", a), ("apply", again)]
    rec = journal.replay(seeded_doc(), entries)
    assert rec.done == [again] and rec.undone == []  # b cannot be redone: the user made a new edit
    # records of an older journal carry no edit id: compared by their content, as before
    for e in (a, b, again):
        e.uid, e.applied = None, False
    assert len(journal.replay(seeded_doc(), entries).undone) == 1


def test_the_edit_id_is_journaled_and_read_back(tmp_path):
    from tests.core.test_edits import seeded_doc

    e = edits.add_marker(seeded_doc(), "platelet", 5.0, 5.0)
    p = tmp_path / "x.journal"
    old = Edit(e.name, e.atoms, e.record, uid=None)
    p.write_bytes(journal.encode("apply", e, "r1") + journal.encode("revert", old, "r2"))
    (_, got), (_, got_old) = journal.read_entries(p)
    assert got.uid == e.uid and got_old.uid is None


# -- what a recovery would bring back, in words --------------------------------------------------------------
def test_the_history_counts_distinct_edits_not_records():
    from tests.core.test_edits import seeded_doc

    doc = seeded_doc()
    h = edits.History(doc)
    log = []

    class Rec:
        def log(self, kind, edit):
            log.append((kind, edit))

    doc.journal = Rec()
    for x in (5.0, 15.0, 25.0, 35.0):
        h.push(edits.add_marker(doc, "platelet", x, 5.0))
    for _ in range(3):
        h.undo()
        h.undo()
        h.redo()
        h.redo()
    h.undo()
    doc.set_border_rule("inside")
    rec = journal.history(log)
    assert rec.n == len(log) == 18 and rec.edits == 4 and len(rec.undone) == 1
    assert rec.describe() == "4 corrections (1 of them undone) and a change of the border-cell rule"
    assert journal.history(log[:1]).describe() == "1 correction"


def test_an_image_with_a_long_name_still_gets_one_journal_per_copy(tmp_path):
    name = "s" * 216 + ".png"  # 220 bytes: a sidecar beside it fits, a second copy's set-aside journal would not
    doc = synthetic_document(120, 180, tmp_path / name, seed=1)
    sidecar.save_sidecar(doc)
    side = sidecar.find_sidecar(tmp_path / name)
    assert sidecar.user_store() in side.parents  # placed where every file named after it fits
    one, h1 = _open(tmp_path / name)
    two, h2 = _open(tmp_path / name)
    assert one.journal.owner is not None and two.journal.owner is not None  # both claimed, with locks
    assert two.journal.path != one.journal.path
    h2.push(edits.add_marker(two, "platelet", 31.0, 32.0))
    two.journal.close()  # the second copy is gone without saving
    left = journalfiles.left_over(side)
    aside = journalfiles.set_aside(left)
    assert aside and all(p.exists() and len(os.fsencode(p.name)) <= 255 for p in aside)  # kept, not lost


def test_a_sidecar_an_earlier_version_put_beside_a_long_named_image_is_still_used(tmp_path):
    name = "s" * 216 + ".png"
    doc = synthetic_document(120, 180, tmp_path / name, seed=1)
    legacy = tmp_path / (name + sidecar.SUFFIX)  # where versions with the shorter reserve saved it
    sidecar.write_snapshot(sidecar.snapshot(doc), legacy)
    assert sidecar.find_sidecar(tmp_path / name) == legacy and sidecar.sidecar_path(tmp_path / name) == legacy
    assert sidecar.load_document(tmp_path / name).counts() == doc.counts()
