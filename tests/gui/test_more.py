"""App start on the sample, drag and drop, save failures, marker move, eraser + fill, brush preview."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from cellviewer.core import sidecar
from cellviewer.core.errors import SaveError
from cellviewer.gui import paths
from tests.gui.smear import RBC_CENTRES


def test_sample_is_resolved_and_copied_out_of_resources():
    s = paths.sample_image()
    assert s is not None and s.is_file() and s.parent == paths.resources_dir() / "sample"
    copy = paths.sample_working_copy()
    assert copy.is_file() and Path(os.environ["CELLVIEWER_HOME"]) in copy.parents


def test_create_window_opens_the_sample_and_segments_it(qtbot):
    from cellviewer.gui import settings
    from cellviewer.gui.app import create_app, create_window
    from cellviewer.gui.state import SegmentParams

    create_app()
    settings.save_dataclass("segment", SegmentParams(model="classical"))  # quick, whatever models/ holds
    win = create_window(None)
    qtbot.addWidget(win)
    try:
        assert win.session.doc is not None
        assert win.session.path == paths.sample_working_copy()
        with qtbot.waitSignal(win.segmentation.runner.finished, timeout=30000):
            pass
        assert sum(win.session.doc.counts().values()) > 0
    finally:
        win.close()
    assert not list((paths.resources_dir() / "sample").glob("*.cellviewer*"))


def test_drop_a_folder_opens_its_first_image(window, smear_path, qtbot):
    window.seg_params.update(auto_run=False)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(smear_path.parent))])
    ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    window.dropEvent(ev)
    assert window.session.path == smear_path
    assert window.files_panel.folder == smear_path.parent


def test_save_keeps_failing_gives_one_dialog(make_window, smear_path, monkeypatch, dialogs):
    win = make_window(auto_run=False)
    win.open_image(smear_path)

    def refuse(doc, path=None):
        raise SaveError("Cannot save corrections: the disk is full.", hint="free some disk space")

    monkeypatch.setattr(sidecar, "save_sidecar", refuse)
    for i in range(6):
        win.tools.stroke([(20.0, 100.0 + 10 * i), (40.0, 100.0 + 10 * i)])
        assert not win.save()
    assert len(dialogs.shown) == 1 and "disk is full" in dialogs.shown[0].text
    assert "Not saved" in win.statusBar().currentMessage() or "disk is full" in win.statusBar().currentMessage()
    monkeypatch.undo()
    assert win.save()


def test_move_marker_by_dragging_in_navigate_mode(segmented):
    win = segmented
    doc, tools = win.session.doc, win.tools
    tools.set_tool("navigate")
    m = min(doc.markers.values(), key=lambda m: (m.x - 30) ** 2 + (m.y - 30) ** 2)
    assert tools.drag_start(m.x + 1, m.y + 1)  # on a marker: the tool takes the drag
    tools.drag_move(m.x + 5, m.y + 5)
    tools.drag_end(m.x + 6, m.y + 6)
    assert abs(doc.markers[m.id].x - (m.x + 6)) < 1e-6
    assert win.session.stack.undoText() == "Move marker"
    h, w = doc.shape  # the place farthest from every marker (the pick radius follows the canvas size)
    ys, xs = np.mgrid[0:h:2, 0:w:2]
    far = np.min([(xs - k.x) ** 2 + (ys - k.y) ** 2 for k in doc.markers.values()], axis=0)
    y, x = np.unravel_index(int(np.argmax(far)), far.shape)
    assert not tools.drag_start(float(xs[y, x]), float(ys[y, x]))  # empty place: the view pans


def test_eraser_then_fill_the_hole(segmented):
    win = segmented
    doc, tools = win.session.doc, win.tools
    x, y = RBC_CENTRES[0]
    cell = int(doc.labels["rbc"][y, x])
    tools.state.update(brush_radius=3)
    tools.stroke([(x, y), (x + 1, y)], erase=True)
    assert doc.labels["rbc"][y, x] == 0
    tools.set_class("rbc")
    tools.set_tool("fill")
    tools.click(x, y)
    assert doc.labels["rbc"][y, x] == cell
    assert win.session.stack.undoText() == "Fill"


def test_brush_preview_follows_the_cursor(segmented):
    win = segmented
    win.tools.set_tool("brush")
    win.tools.state.update(brush_radius=6)
    win.tools.hover(50, 60)
    r = win.canvas.brush_preview.rect()
    assert win.canvas.brush_preview.isVisible() and (r.center().x(), r.center().y(), r.width()) == (50, 60, 12)
    win.tools.set_tool("navigate")
    assert not win.canvas.brush_preview.isVisible()


def test_window_starts_without_torch_for_the_classical_model(tmp_path):
    import subprocess
    import sys

    code = ("import sys\n"
            "from cellviewer.gui import settings\n"
            "from cellviewer.gui.state import SegmentParams\n"
            "from cellviewer.gui.app import create_app, create_window\n"
            "app = create_app()\n"
            "settings.save_dataclass('segment', SegmentParams(model='classical'))\n"
            "w = create_window(None, auto_open_sample=False)\n"
            "w.close()\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n")
    env = dict(os.environ, CELLVIEWER_SETTINGS=str(tmp_path / "s.ini"), QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                       cwd=str(Path(__file__).resolve().parents[2]))
    assert "NO-TORCH" in r.stdout, r.stdout + r.stderr


def test_a_signal_closes_the_window_the_normal_way(make_window, qtbot):
    """SIGINT / SIGTERM (here SIGUSR1, same handler) close the window through closeEvent: settings saved."""
    import signal

    from cellviewer.gui import settings
    from cellviewer.gui.app import close_on_signals

    win = make_window(auto_run=False)
    win.view_state.update(opacity=0.25)
    restore = close_on_signals(win, [signal.SIGUSR1])
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        qtbot.waitUntil(lambda: not win.isVisible(), timeout=5000)
    finally:
        restore()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    assert abs(settings.load_dataclass("view", type(win.view_state.value)).opacity - 0.25) < 1e-6


def test_a_signal_during_a_modal_dialog_closes_it_then_the_window(make_window, qtbot):
    """A kill while an error dialog is up (e.g. at start-up, the image could not be read) still closes."""
    import signal

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QDialog

    from cellviewer.gui.app import close_on_signals

    win = make_window(auto_run=False)
    restore = close_on_signals(win, [signal.SIGUSR1])
    try:
        dlg = QDialog(win)
        dlg.setModal(True)
        QTimer.singleShot(50, lambda: os.kill(os.getpid(), signal.SIGUSR1))
        assert dlg.exec() == 0  # dismissed by the signal's handler
        qtbot.waitUntil(lambda: not win.isVisible(), timeout=5000)
    finally:
        restore()


def test_quit_without_close_still_shuts_down_once(qtbot):
    """app.quit() skips closeEvent; aboutToQuit runs the same shutdown (settings saved, jobs joined)."""
    from cellviewer.gui import settings
    from cellviewer.gui.app import create_app, create_window
    from cellviewer.gui.state import SegmentParams

    app = create_app()
    settings.save_dataclass("segment", SegmentParams(model="classical"))
    win = create_window(None)  # the sample opens and starts segmenting
    qtbot.addWidget(win)
    win.seg_params.update(counting="components")
    app.aboutToQuit.emit()
    assert not win.segmentation.runner.is_running
    assert settings.load_dataclass("segment", SegmentParams).counting == "components"
    win.close()  # closing afterwards (the usual last step) finds nothing left to stop
    assert not win.isVisible()


@pytest.fixture
def status_bar(qtbot, monkeypatch):
    """A status bar the notifications write to, nothing showing yet."""
    from PySide6.QtWidgets import QStatusBar

    from cellviewer.gui import notifications

    bar = QStatusBar()
    qtbot.addWidget(bar)
    monkeypatch.setattr(notifications, "_status_bar", bar)
    monkeypatch.setattr(notifications, "_shown", (notifications.NOTE, 0.0))
    return bar


def test_status_lines_keep_the_more_important_one(status_bar, qtbot):
    from cellviewer.gui import notifications

    bar = status_bar
    notifications.warn("out of memory: used the CPU", 10000)
    notifications.note("Saved a.png.cellviewer")  # routine: does not replace the warning
    notifications.status("Segmentation done")  # nor does a plain status line
    assert bar.currentMessage() == "⚠ out of memory: used the CPU"
    notifications.warn("another warning")  # a warning replaces a warning
    assert bar.currentMessage() == "⚠ another warning"
    bar.clearMessage()  # expired (or cleared): anything shows again
    notifications.note("Saved a.png.cellviewer")
    assert bar.currentMessage() == "Saved a.png.cellviewer"
    notifications.status("Segmentation done", 50)
    notifications.note("Saved b.png.cellviewer")
    assert bar.currentMessage() == "Segmentation done"
    qtbot.wait(80)  # the status line's time is over
    notifications.note("Saved b.png.cellviewer")
    assert bar.currentMessage() == "Saved b.png.cellviewer"


def test_a_status_line_held_back_by_a_warning_shows_when_it_ends(status_bar, qtbot):
    from cellviewer.gui import notifications

    bar = status_bar
    notifications.warn("greyscale image", 150)
    notifications.progress("Segmentation 40%: tiles")  # progress never hides the warning
    notifications.status("Segmentation done: 12 RBC", 5000)
    assert bar.currentMessage() == "⚠ greyscale image"
    qtbot.waitUntil(lambda: bar.currentMessage() == "Segmentation done: 12 RBC", timeout=2000)  # not lost


def test_a_line_held_back_in_one_window_does_not_turn_up_in_the_next(status_bar, qtbot):
    """A warning's rank and the line waiting for it belong to its window's status bar: another window's bar
    (a new image window, the next test's) neither waits for that warning nor receives the held-back line."""
    from PySide6.QtWidgets import QStatusBar

    from cellviewer.gui import notifications

    notifications.warn("greyscale image", 300)
    notifications.status("and more", 100)  # held back until the warning ends
    other = QStatusBar()
    qtbot.addWidget(other)
    notifications.set_status_bar(other)
    notifications.status("Segmentation of a.png cancelled")  # not held back by the first bar's warning
    assert other.currentMessage() == "Segmentation of a.png cancelled"
    qtbot.wait(500)
    assert other.currentMessage() == "Segmentation of a.png cancelled" and status_bar.currentMessage() != "and more"
    notifications.detach(None, other)


def test_a_damaged_jpeg_keeps_a_caution_on_the_status_bar(window, tmp_path, qtbot, dialogs):
    import cv2

    from tests.gui.smear import write_smear

    png = write_smear(tmp_path / "s.png")
    ok, enc = cv2.imencode(".jpg", cv2.imread(str(png)))
    data = enc.tobytes()
    bad = tmp_path / "damaged.jpg"
    bad.write_bytes(data[: len(data) // 2] + b"\xff\xd9")  # the second half lost: it still decodes
    window.seg_params.update(auto_run=False)
    assert window.open_image(bad)
    label = window.caution_label
    assert label.isVisible() and label.text() == "⚠ damaged JPEG" and "copy the file again" in label.toolTip()
    qtbot.mouseClick(label, __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.MouseButton.LeftButton)
    assert dialogs.shown and dialogs.shown[-1][0] == "info" and "damaged JPEG" in dialogs.shown[-1][2]
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), cv2.imread(str(png)))
    assert window.open_image(good)
    assert not label.isVisible()  # the next, whole image: no caution


def test_the_status_bar_shows_a_running_segmentation_and_a_click_cancels_it(window, smear_path, qtbot):
    from PySide6.QtCore import Qt

    bar = window.job_bar
    assert not bar.isVisible()
    window.runner_seen = []
    window.segmentation.runner.progress.connect(lambda f, m: window.runner_seen.append(f))
    with qtbot.waitSignal(window.segmentation.runner.finished, timeout=30000):
        assert window.open_image(smear_path)
        qtbot.waitUntil(bar.isVisible, timeout=5000)  # shown while it runs, whichever panel is in front
    assert window.runner_seen and not bar.isVisible()
    window.segmentation.run(confirm=False)
    qtbot.waitUntil(bar.isVisible, timeout=5000)
    with qtbot.waitSignal(window.segmentation.runner.running_changed, timeout=30000):
        qtbot.mouseClick(bar, Qt.MouseButton.LeftButton)  # cancels (or it finished first)
    assert not bar.isVisible()


def test_hovering_without_a_status_tip_keeps_the_last_status_line(window, qtbot):
    from PySide6.QtGui import QStatusTipEvent
    from PySide6.QtWidgets import QApplication

    from cellviewer.gui import notifications

    notifications.status("Segmentation done (blood-cells, cpu): rbc 19", 8000)
    QApplication.sendEvent(window.files_panel, QStatusTipEvent(""))  # the mouse crosses a list without a tip
    assert window.statusBar().currentMessage().startswith("Segmentation done")
    QApplication.sendEvent(window.files_panel, QStatusTipEvent("Open an image file"))  # a real tip still shows
    assert window.statusBar().currentMessage() == "Open an image file"
