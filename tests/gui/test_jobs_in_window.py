"""Segmentation in the window: cancel, close during a run, errors -> one dialog, refusal."""

from __future__ import annotations

import time

from cellviewer.core import segment
from cellviewer.core.errors import SegmentationError
from cellviewer.core.jobs import Progress


class SlowSegmenter:
    """A fake segmenter: many small steps (so cancel is quick), optionally failing."""

    name = "slow"
    version = "0"
    log: list = []

    def __init__(self, fail: Exception | None = None, steps: int = 400):
        self.fail, self.steps = fail, steps

    def segment(self, image, cancel=None):
        try:
            for i in range(self.steps):
                if cancel is not None:
                    cancel.check()
                if self.fail is not None and i == 3:
                    raise self.fail
                time.sleep(0.01)
                yield Progress(i / self.steps, f"step {i}")
            raise AssertionError("the test should have stopped this job")
        finally:
            SlowSegmenter.log.append("closed")


def use_fake(monkeypatch, **kw):
    SlowSegmenter.log = []
    monkeypatch.setattr(segment, "create_segmenter", lambda name=None, **opts: SlowSegmenter(**kw))


def test_cancel_during_segmentation(make_window, smear_path, qtbot, monkeypatch, dialogs):
    win = make_window(auto_run=False)
    win.open_image(smear_path)
    use_fake(monkeypatch)
    with qtbot.waitSignal(win.segmentation.runner.progress, timeout=5000):
        assert win.segmentation.run()
    assert not win.segment_panel.run_button.isEnabled() and win.segment_panel.cancel_button.isEnabled()
    assert not win.segmentation.run()  # a second run is refused ...
    assert "already running" in win.statusBar().currentMessage()  # ... and the status bar says so
    with qtbot.waitSignal(win.segmentation.runner.cancelled, timeout=5000):
        win.escape()  # Esc cancels the running job
    assert SlowSegmenter.log == ["closed"]
    assert win.session.stack.count() == 0 and not win.session.doc.labels["rbc"].any()
    assert win.segment_panel.run_button.isEnabled()
    assert dialogs.shown == []


def test_close_during_run_leaves_no_thread(make_window, smear_path, qtbot, monkeypatch):
    win = make_window(auto_run=False)
    win.open_image(smear_path)
    use_fake(monkeypatch)
    with qtbot.waitSignal(win.segmentation.runner.progress, timeout=5000):
        win.segmentation.run()
    thread = win.segmentation.runner._thread
    win.close()
    assert not thread.isRunning()
    assert SlowSegmenter.log == ["closed"]
    assert not win.segmentation.runner.is_running
    assert not win.session.saver.is_running


def test_error_in_job_shows_one_dialog(make_window, smear_path, qtbot, monkeypatch, dialogs):
    win = make_window(auto_run=False)
    win.open_image(smear_path)
    use_fake(monkeypatch, fail=SegmentationError("Out of memory on the GPU.", hint="use the CPU"))
    with qtbot.waitSignal(win.segmentation.runner.failed, timeout=5000):
        win.segmentation.run()
    assert len(dialogs.shown) == 1
    box = dialogs.shown[0]
    assert "Out of memory" in box.text and box.informative == "use the CPU"
    assert box.icon == dialogs.Icon.Warning
    assert not win.segmentation.runner.is_running


def test_bug_in_job_shows_one_critical_dialog_with_traceback(make_window, smear_path, qtbot, monkeypatch, dialogs):
    win = make_window(auto_run=False)
    win.open_image(smear_path)
    use_fake(monkeypatch, fail=ZeroDivisionError("oops"))
    with qtbot.waitSignal(win.segmentation.runner.failed, timeout=5000):
        win.segmentation.run()
    assert len(dialogs.shown) == 1
    box = dialogs.shown[0]
    assert box.icon == dialogs.Icon.Critical and "ZeroDivisionError" in box.text
    assert "Traceback" in box.details


def test_rerun_over_manual_edits_asks_first(segmented, qtbot, dialogs, monkeypatch):
    win = segmented
    win.tools.stroke([(100.0, 15.0), (120.0, 15.0)])
    dialogs.answer_yes = False
    assert not win.segmentation.run()
    assert len(dialogs.questions) == 1
    dialogs.answer_yes = True
    with qtbot.waitSignal(win.segmentation.runner.finished, timeout=30000):
        assert win.segmentation.run()
    assert win.session.stack.count() == 3  # segmentation, brush, segmentation
    win.session.stack.undo()  # the re-run is undoable: the brushed cell is back
    assert win.session.doc.labels["rbc"][15, 110] > 0


def test_thread_exception_routed_to_one_dialog(qtbot, dialogs):
    import sys
    import threading

    from cellviewer.gui import notifications

    old = sys.excepthook, threading.excepthook
    notifications.install_excepthooks()
    try:
        t = threading.Thread(target=lambda: 1 / 0)
        t.start()
        t.join()
        qtbot.waitUntil(lambda: len(dialogs.shown) == 1, timeout=2000)
        assert "ZeroDivisionError" in dialogs.shown[0].text
    finally:
        sys.excepthook, threading.excepthook = old


def test_a_result_already_on_its_way_when_cancelled_is_not_applied(make_window, smear_path, qtbot):
    """Cancel (or opening the next image) after the job ended but before its result was delivered: the result
    is dropped like a cancelled run's, not applied over the user's corrections."""
    win = make_window(auto_run=False)
    assert win.open_image(smear_path)
    doc = win.session.doc
    assert win.segmentation.run()
    thread = win.segmentation.runner._thread
    assert thread.wait(30000)  # the job has ended; its result is queued, not delivered (no events processed)
    assert win.segmentation.cancel()
    qtbot.waitUntil(lambda: not win.segmentation.runner.is_running, timeout=5000)
    assert doc.counts()["rbc"] == 0 and win.session.stack.count() == 0  # nothing applied
    note = win.segmentation._cancel_note  # what the status bar and the next run's start line say
    assert note is not None and "cancelled" in note[0]
    assert win.segmentation.run()  # the next run is applied as usual
    qtbot.waitUntil(lambda: doc.counts()["rbc"] > 0, timeout=30000)
