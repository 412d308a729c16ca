"""The Files list's ✔ / ★ follows the sidecar that was written, also when that save lands after the user
switched to the next image (an autosave in flight when Next is pressed)."""

from __future__ import annotations


def test_star_shows_when_the_autosave_lands_after_next(make_window, smear_path, qtbot):
    from tests.gui.smear import write_smear

    write_smear(smear_path.parent / "smear2.png", seed=1)
    win = make_window(auto_run=False)
    win.open_image(smear_path)
    win.tools.stroke([(20.0, 120.0), (40.0, 120.0)])
    qtbot.waitUntil(lambda: not win.session.dirty, timeout=2500)
    fp = win.files_panel
    assert fp.list.item(0).text().startswith("✔")
    assert win.human_loop.review_panel.set_image_reviewed(True)
    win.session.autosave()  # the autosave is being written in the background ...
    win.actions_by_id["file.next"].trigger()  # ... when Next is pressed
    assert win.session.path.name == "smear2.png"
    qtbot.waitUntil(lambda: fp.list.item(0).text().startswith("★"), timeout=2500)
    assert not fp.list.item(1).text().startswith(("★", "✔"))


def test_refresh_saved_marks_the_image_of_that_sidecar(make_window, smear_path, qtbot):
    from cellviewer.core.sidecar import sidecar_path
    from tests.gui.smear import write_smear

    write_smear(smear_path.parent / "smear2.png", seed=1)
    win = make_window(auto_run=False)
    win.open_image(smear_path)
    win.tools.stroke([(20.0, 120.0), (40.0, 120.0)])
    assert win.session.save_now()
    fp = win.files_panel
    fp.list.item(0).setText("  smear.png")  # (stale)
    win.actions_by_id["file.next"].trigger()  # another image is open now
    fp.refresh_saved(str(sidecar_path(smear_path)))
    assert fp.list.item(0).text().startswith("✔")
    fp.refresh_saved("/nowhere/else.png.cellviewer")  # a sidecar of no listed image: nothing changes, no error
