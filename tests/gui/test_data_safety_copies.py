"""Crash recovery with the image open twice, on an image without a sidecar, and what the question says:
each window journals to its own file (a save trims only its own; a live window's edits are never offered
to another), a recovered border rule is kept, no automatic segmentation replaces recovered corrections,
and the question counts edits, not journal records."""

from __future__ import annotations

from cellviewer.core import journal
from cellviewer.core.sidecar import find_sidecar, load_document


def _marker_at(doc, x, y) -> bool:
    return any(abs(m.x - x) < 1 and abs(m.y - y) < 1 for m in doc.markers.values())


def _window(make_window, path, auto_run=False):
    win = make_window(auto_run=auto_run)
    win.session.autosave_ms = 10 ** 6  # no autosave: what is not saved by hand is only in the journal
    assert win.open_image(path)
    return win


def test_two_windows_on_one_image_keep_their_own_journals(make_window, smear_path, dialogs, crash):
    one = _window(make_window, smear_path)
    one.tools.stroke([(20.0, 120.0), (60.0, 120.0)])  # E1, journaled only
    jpath = one.session.doc.journal.path
    data = jpath.read_bytes()
    two = _window(make_window, smear_path)  # the same image in a second window
    assert not [q for q in dialogs.questions if "Recover" in q[0]]  # the first window's edit is not "unsaved"
    assert two.session.doc.labels["rbc"][120, 40] == 0 and two.session.doc.journal.path != jpath
    assert jpath.read_bytes() == data and not list(jpath.parent.glob("*.declined-*"))  # never set aside
    two.tools.set_tool("marker_add")
    two.tools.click(200.0, 175.0)  # F1
    assert two.save()
    assert jpath.read_bytes() == data  # the second window's save trimmed only its own journal
    crash(one)  # ... and now the first window crashes
    three = _window(make_window, smear_path)
    assert ["Recover" in q[0] for q in dialogs.questions] == [True]
    doc = three.session.doc
    assert doc.labels["rbc"][120, 40] > 0 and _marker_at(doc, 200.0, 175.0)  # E1 recovered, F1 kept
    assert three.save()
    assert _marker_at(load_document(smear_path), 200.0, 175.0)
    # E1 was made on another version of the sidecar than the one saved over: that version is kept too
    assert len(list(smear_path.parent.glob(smear_path.name + ".cellviewer.replaced-*"))) == 1


def test_a_recovered_border_rule_is_kept_on_an_image_without_a_sidecar(make_window, smear_path, dialogs, crash):
    one = _window(make_window, smear_path)
    box = one.counts_panel.border
    box.setCurrentIndex(box.findData("inside"))
    assert one.session.doc.border_rule == "inside" and find_sidecar(smear_path) is None
    crash(one)
    two = make_window(auto_run=False)
    two.count_settings.value.border_rule = "all"  # the rule this window gives new images
    assert two.open_image(smear_path)
    assert "Recover" in dialogs.questions[-1][0]
    assert two.session.doc.border_rule == "inside" and two.counts_panel.border.currentData() == "inside"
    assert two.save()
    assert load_document(smear_path).border_rule == "inside"


def test_no_automatic_segmentation_replaces_recovered_corrections(make_window, smear_path, dialogs, crash, qtbot):
    one = _window(make_window, smear_path)
    one.tools.set_tool("marker_add")
    one.tools.click(200.0, 175.0)
    crash(one)
    two = _window(make_window, smear_path, auto_run=True)  # no sidecar: auto-run would segment it
    assert "Recover" in dialogs.questions[-1][0]
    assert not two.segmentation.runner.is_running
    assert "not segmented automatically" in two.statusBar().currentMessage().lower()
    qtbot.wait(200)
    assert not two.segmentation.runner.is_running and _marker_at(two.session.doc, 200.0, 175.0)
    assert two.session.stack.count() == 1


def test_the_recovery_question_counts_edits_not_journal_records(make_window, smear_path, dialogs, crash):
    one = _window(make_window, smear_path)
    one.tools.set_tool("marker_add")
    one.tools.click(200.0, 175.0)
    one.tools.click(100.0, 60.0)
    for _ in range(2):  # 2 edits, 6 journal records
        one.session.undo()
        one.session.redo()
    one.session.undo()
    assert len(journal.read_entries(one.session.doc.journal.path)) == 7
    crash(one)
    two = _window(make_window, smear_path)
    text = dialogs.questions[-1][1]
    assert "2 corrections (1 of them undone)." in text and "7" not in text
    assert "Recovered 2 corrections (1 of them undone)" in two.statusBar().currentMessage()
