"""Saving when the disk says no: a read-only image folder (autosave to the per-user store, and the
status bar says where) and a journal that cannot be written (the edit is kept, one dialog)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cellviewer.core import journal, sidecar


def _autosaved(win, qtbot, edit) -> str:
    """Run ``edit()`` and return the path the next autosave wrote."""
    with qtbot.waitSignal(win.session.saved, timeout=5000) as blocker:
        edit()
    return blocker.args[0]


def _check_user_store_save(win, qtbot, smear_path, dialogs):
    win.session.autosave_ms = 50
    assert win.open_image(smear_path)
    where = Path(_autosaved(win, qtbot, lambda: win.tools.stroke([(20.0, 120.0), (60.0, 120.0)])))
    assert sidecar.user_store() in where.parents
    assert not (smear_path.parent / (smear_path.name + sidecar.SUFFIX)).exists()
    assert str(where) in win.statusBar().currentMessage() and "not writable" in win.statusBar().currentMessage()
    assert dialogs.shown == [] and not win.session.dirty
    painted = win.session.doc.labels["rbc"][120, 40]
    assert painted > 0
    win.session.close_document()  # reopening finds the corrections in the user store
    assert win.open_image(smear_path)
    assert win.session.doc.labels["rbc"][120, 40] == painted


def test_autosave_in_a_read_only_folder_goes_to_the_user_store(make_window, smear_path, qtbot, dialogs):
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    win = make_window(auto_run=False)
    smear_path.parent.chmod(0o555)
    try:
        _check_user_store_save(win, qtbot, smear_path, dialogs)
    finally:
        smear_path.parent.chmod(0o755)


def test_autosave_when_the_folder_refuses_goes_to_the_user_store(make_window, smear_path, qtbot, dialogs,
                                                                  monkeypatch):
    """The same as root (which ignores chmod): the image folder refuses every new file."""
    real_mkstemp = sidecar.tempfile.mkstemp

    def refuse(*a, dir=None, **k):
        if Path(dir) == smear_path.parent:
            raise PermissionError(errno.EROFS, "Read-only file system", str(dir))
        return real_mkstemp(*a, dir=dir, **k)

    monkeypatch.setattr(sidecar.tempfile, "mkstemp", refuse)
    _check_user_store_save(make_window(auto_run=False), qtbot, smear_path, dialogs)


def test_journal_failure_keeps_the_edit_and_says_so_once(make_window, smear_path, qtbot, dialogs, monkeypatch):
    win = make_window(auto_run=False)
    win.session.autosave_ms = 10 ** 6  # saved by hand below
    assert win.open_image(smear_path)
    doc = win.session.doc

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal.os, "write", full)
    win.tools.stroke([(20.0, 120.0), (60.0, 120.0)])  # no exception, no crash
    assert doc.labels["rbc"][120, 40] > 0 and win.session.stack.count() == 1 and win.session.dirty
    qtbot.waitUntil(lambda: len(dialogs.shown) == 1, timeout=2000)
    box = dialogs.shown[0]
    assert "Crash-recovery log" in box.text and "No space left" in box.text and "kept" in box.text
    assert box.informative  # what to do
    win.tools.stroke([(20.0, 135.0), (60.0, 135.0)])  # still working; no second dialog
    win.actions_by_id["edit.undo"].trigger()
    win.actions_by_id["edit.redo"].trigger()
    qtbot.wait(50)
    assert len(dialogs.shown) == 1 and doc.labels["rbc"][135, 40] > 0
    monkeypatch.undo()  # space again: the save holds everything and the journal logs again
    assert win.save()
    assert not doc.journal.suspended
    win.tools.stroke([(200.0, 8.0), (230.0, 8.0)])
    assert len(journal.read_entries(doc.journal.path)) == 1
    assert len(dialogs.shown) == 1


def test_disk_full_autosave_warns_then_one_dialog_and_loses_nothing(make_window, smear_path, qtbot, dialogs,
                                                                     monkeypatch):
    from cellviewer.core.robustness import state_hash
    from cellviewer.gui.session import FAILURES_BEFORE_DIALOG

    win = make_window(auto_run=False)
    win.session.autosave_ms = 20
    assert win.open_image(smear_path)
    doc = win.session.doc

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sidecar.os, "replace", full)  # beside the image and in the user store alike
    win.tools.stroke([(20.0, 120.0), (60.0, 120.0)])
    qtbot.waitUntil(lambda: win.session._save_failures >= FAILURES_BEFORE_DIALOG + 1, timeout=10000)
    assert len(dialogs.shown) == 1  # warnings first, then one dialog — not one per attempt
    assert "Saving keeps failing" in dialogs.shown[0].text and "disk is full" in dialogs.shown[0].text
    assert doc.labels["rbc"][120, 40] > 0 and win.session.dirty  # the edit is kept ...
    expected = state_hash(doc)
    reopened = sidecar.load_document(smear_path)  # ... and a crash now would recover it from the journal
    assert reopened.pending_journal == []  # (offered only once this window is gone)
    journal.recover(reopened, journal.read_entries(doc.journal.path))
    assert state_hash(reopened) == expected
    monkeypatch.undo()  # space again
    qtbot.waitUntil(lambda: not win.session.dirty, timeout=5000)
    assert not doc.journal.path.exists() and len(dialogs.shown) == 1


def test_saving_after_the_image_was_renamed_says_where_the_corrections_went(make_window, smear_path, qtbot):
    win = make_window(auto_run=False)
    assert win.open_image(smear_path)
    smear_path.rename(smear_path.with_name("renamed.png"))  # in a file manager, while it is open
    win.tools.set_tool("brush")
    win.tools.set_class("rbc")
    win.tools.stroke([(60.0, 60.0), (70.0, 60.0)])
    assert win.save()
    msg = win.statusBar().currentMessage()
    assert "smear.png is no longer there" in msg and "smear.png.cellviewer" in msg
