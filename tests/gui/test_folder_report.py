"""File ▸ Report for folder…: runs in a worker, uses the open image's latest corrections."""

from __future__ import annotations

import csv

from tests.gui.smear import write_smear


def test_report_for_folder_from_the_window(make_window, tmp_path, qtbot, dialogs):
    d = tmp_path / "smears"
    d.mkdir()
    a, _ = write_smear(d / "a.png"), write_smear(d / "b.png", seed=1)
    win = make_window(auto_run=False)
    win.session.autosave_ms = 10 ** 6  # the report itself must save the open image first
    assert win.open_folder(d)
    win.tools.set_tool("marker_add")
    win.tools.set_class("platelet")
    win.tools.click(5.0, 5.0)  # one manual platelet on a.png, not yet saved
    assert win.session.dirty and win.session.path == a
    action = win.actions_by_id["file.report_folder"]
    assert action in win.menuBar().actions()[0].menu().actions()
    with qtbot.waitSignal(win.folder_reporter.done, timeout=30000) as blocker:
        assert win.report_folder(tmp_path / "folder.pdf")
        assert win.folder_reporter.runner.is_running  # off the GUI thread
    rep = blocker.args[0]
    assert rep.from_sidecar == ["a.png"] and rep.segmented == ["b.png"] and rep.skipped == []
    with open(tmp_path / "folder_counts.csv", newline="", encoding="utf-8") as f:
        rows = {r["image"]: r for r in csv.DictReader(f)}
    assert rows["a.png"]["platelets"] == "1" and int(rows["b.png"]["rbc"]) == 12
    assert (tmp_path / "folder.pdf").read_bytes().startswith(b"%PDF")
    assert "Folder report written" in win.statusBar().currentMessage()
    assert dialogs.shown == []
