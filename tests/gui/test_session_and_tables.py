"""Session recovery from the journal, the shortcut table, state persistence helpers."""

from __future__ import annotations

from cellviewer.gui import settings
from cellviewer.gui.shortcuts import SHORTCUTS, check_unique
from cellviewer.gui.state import Observable, ToolState


def test_unsaved_edits_are_recovered_after_a_crash(make_window, smear_path, dialogs, qtbot, crash):
    win = make_window(auto_run=False)
    win.session.autosave_ms = 10 ** 6  # no autosave: simulate a crash before it
    win.open_image(smear_path)
    win.tools.stroke([(20.0, 120.0), (60.0, 120.0)])
    assert win.session.dirty
    crash(win)  # the first window never saved
    win2 = make_window(auto_run=False)
    assert win2.open_image(smear_path)
    assert len(dialogs.questions) == 1 and "Recover" in dialogs.questions[0][0]
    assert "1 correction." in dialogs.questions[0][1]
    assert win2.session.doc.labels["rbc"][120, 40] > 0
    qtbot.waitUntil(lambda: not win2.session.dirty, timeout=3000)  # recovered edits are saved soon


def _state(doc):
    return {k: v.copy() for k, v in doc.labels.items()}, sorted((m.cls, m.x, m.y) for m in doc.markers.values())


def _same(doc, state) -> bool:
    labels, markers = _state(doc)
    return all((labels[k] == state[0][k]).all() for k in labels) and markers == state[1]


def _crashed_window(make_window, smear_path):
    """A window that opens the image after the last one "crashed" (never saved; its autosave off too)."""
    win = make_window(auto_run=False)
    win.session.autosave_ms = 10 ** 6
    assert win.open_image(smear_path)
    return win


def _forget(win):
    """The window "crashes" (see the ``crash`` fixture)."""
    win.session.timer.stop()
    win.session.doc.unsubscribe(win.session._on_change)
    j, win.session.doc.journal = win.session.doc.journal, None
    j.close()


def test_recovered_edits_are_undone_and_redone_one_original_edit_at_a_time(make_window, smear_path, dialogs):
    win = _crashed_window(make_window, smear_path)  # (nothing saved yet: no sidecar, no segmentation)
    empty = _state(win.session.doc)
    win.tools.stroke([(20.0, 120.0), (60.0, 120.0)])
    one = _state(win.session.doc)
    win.tools.stroke([(100.0, 20.0), (130.0, 20.0)])
    two = _state(win.session.doc)
    win.tools.set_tool("marker_add")
    win.tools.click(200.0, 170.0)
    three = _state(win.session.doc)
    win.actions_by_id["edit.undo"].trigger()  # the marker is undone: a redo step when the app "crashes"
    _forget(win)
    win2 = _crashed_window(make_window, smear_path)
    doc, stack = win2.session.doc, win2.session.stack
    assert len(dialogs.questions) == 1 and "Recover" in dialogs.questions[0][0]
    assert _same(doc, two)
    assert (stack.count(), stack.index(), stack.undoText(), stack.redoText()) == (3, 2, "Brush", "Add marker")
    assert "Ctrl+Z" in win2.statusBar().currentMessage()
    undo, redo = win2.actions_by_id["edit.undo"], win2.actions_by_id["edit.redo"]
    assert undo.isEnabled() and redo.isEnabled()
    undo.trigger()
    assert _same(doc, one)
    undo.trigger()
    assert _same(doc, empty) and not undo.isEnabled()  # the history starts where the recovered edits do
    for state in (one, two, three):  # Ctrl+Shift+Z: each original edit again, in order
        redo.trigger()
        assert _same(doc, state)
    assert not redo.isEnabled()
    for _ in range(3):
        undo.trigger()
    redo.trigger()  # state "one", with "Brush" and "Add marker" to redo
    assert _same(doc, one)
    _forget(win2)
    # the undos and redos after the recovery are journaled as well: a second crash brings back just that
    win3 = _crashed_window(make_window, smear_path)
    stack = win3.session.stack
    assert _same(win3.session.doc, one)
    assert (stack.count(), stack.index(), stack.redoText()) == (3, 1, "Brush")
    win3.actions_by_id["edit.redo"].trigger()
    win3.actions_by_id["edit.redo"].trigger()
    assert _same(win3.session.doc, three)
    assert win3.save()
    from cellviewer.core.sidecar import load_document

    assert _same(load_document(smear_path), three)  # and saved as every other edit


def test_shortcut_table_has_no_duplicates_and_every_action_exists(window):
    assert check_unique() == []
    for s in SHORTCUTS:
        assert s.action in window.actions_by_id, s.action
        assert window.actions_by_id[s.action].shortcut().toString() != ""


def test_shortcuts_dialog_lists_the_table(window, qtbot):
    from cellviewer.gui.actions import ShortcutsDialog

    d = ShortcutsDialog(window)
    qtbot.addWidget(d)
    assert d.table.rowCount() == len(SHORTCUTS)


def test_dataclass_settings_round_trip_and_ignore_garbage():
    settings.save_dataclass("tools", ToolState(tool="brush", cls="wbc", brush_radius=5))
    assert settings.load_dataclass("tools", ToolState) == ToolState("brush", "wbc", 5)
    settings.put("tools", "{not json")
    assert settings.load_dataclass("tools", ToolState) == ToolState()


def test_observable_reports_changed_fields(qtbot):
    o = Observable(ToolState())
    seen = []
    o.changed.connect(seen.append)
    o.update(tool="brush", cls="rbc")
    assert seen == [frozenset({"tool"})]
    o.update(tool="brush")
    assert len(seen) == 1


def test_an_image_open_in_another_window_is_not_opened_without_asking(make_window, smear_path, dialogs):
    """Two windows saving the same image would drop each other's corrections: the second one asks first."""
    import json
    import os
    import socket

    from cellviewer.core import openlock

    other = smear_path.with_name("other.png")
    other.write_bytes(smear_path.read_bytes())
    win = make_window(auto_run=False)
    assert win.open_image(other)
    lock = openlock.lock_path(smear_path)
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "user": "bob", "since": "now"}))
    dialogs.answer_yes = False
    assert not win.open_image(smear_path)
    assert win.session.path == other and "open for correcting by bob" in dialogs.questions[-1][1]
    assert openlock.lock_path(other).is_file()  # the shown image is still ours
    dialogs.answer_yes = True
    assert win.open_image(smear_path)
    assert win.session.path == smear_path
    assert not openlock.lock_path(other).exists()  # released when it was closed
    # opened beside the other window: the lock stays the other's, also after this window closes it
    assert openlock.holder(smear_path).user == "bob"
    win.session.close_document()
    assert lock.exists() and openlock.holder(smear_path).user == "bob"
    # opened beside bob again; bob closes (his lock goes): this window's next save takes the lock
    assert win.open_image(smear_path)
    lock.unlink()
    from cellviewer.core import edits

    edits.History(win.session.doc).push(edits.add_marker(win.session.doc, "rbc", 5.0, 5.0))
    assert win.session.save_now()
    assert lock.exists() and openlock.holder(smear_path) is None  # ours now: a third window is asked


def test_a_sidecar_saved_by_another_window_is_kept_not_overwritten(make_window, smear_path, dialogs, qtbot):
    """Opened anyway in two windows: before this window saves over the other's save, that version is put aside."""
    from cellviewer.core import edits
    from cellviewer.core.sidecar import find_sidecar, load_document, save_sidecar

    win = make_window(auto_run=True)
    with qtbot.waitSignal(win.segmentation.runner.finished, timeout=30000):
        assert win.open_image(smear_path)
    qtbot.waitUntil(lambda: find_sidecar(smear_path) is not None and not win.session.dirty, timeout=10000)
    win.session.saver.wait()
    # the other window: reads the sidecar, deletes a cell, saves
    other = load_document(smear_path)
    edits.History(other).push(edits.delete_cell(other, "rbc", int(other.labels["rbc"].max())))
    theirs = save_sidecar(other).read_bytes()
    # this window: an edit of its own, then a save: theirs is kept beside it, and the user is told
    doc = win.session.doc
    edits.History(doc).push(edits.delete_cell(doc, "rbc", 1))
    assert win.session.save_now()
    kept = sorted(smear_path.parent.glob(smear_path.name + ".cellviewer.replaced-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == theirs
    qtbot.waitUntil(lambda: any("also saved by another window" in str(getattr(m, "text", ""))
                                for m in dialogs.shown), timeout=3000)
    # this window's own saves after that are no conflict
    edits.History(doc).push(edits.delete_cell(doc, "rbc", 2))
    assert win.session.save_now()
    win.session.autosave()
    win.session.saver.wait()
    assert len(list(smear_path.parent.glob(smear_path.name + ".cellviewer.replaced-*"))) == 1
