"""File ▸ Recent files: most recent first, no duplicates, survives a restart, reopens the image."""

from __future__ import annotations

from cellviewer.gui import settings
from tests.gui.smear import write_smear


def test_recent_files_menu_lists_and_reopens(make_window, tmp_path, qtbot):
    a, b = write_smear(tmp_path / "a.png"), write_smear(tmp_path / "b.png", seed=1)
    win = make_window(auto_run=False)
    for p in (a, b, a):
        assert win.open_image(p)
    assert settings.recent_files()[:2] == [str(a), str(b)]  # most recent first, once each
    win.close()
    win2 = make_window(auto_run=False)  # a new window (as after a restart) reads them back
    win2.recent_menu.aboutToShow.emit()
    entries = [act for act in win2.recent_menu.actions() if act.text() in (str(a), str(b))]
    assert [act.text() for act in entries] == [str(a), str(b)]
    entries[1].trigger()
    assert win2.session.path == b
