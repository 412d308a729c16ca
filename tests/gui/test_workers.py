"""JobRunner: progress, result, errors, cancel, refusal of a second run, shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from cellviewer.core.errors import SegmentationError
from cellviewer.core.jobs import Progress
from cellviewer.gui.workers import JobRunner


def counting_job(n=5, delay=0.0, fail_at=None, log=None):
    def make(token):
        if log is not None:
            log.append(("thread", threading.current_thread() is not threading.main_thread()))
        try:
            for i in range(n):
                token.check()
                if fail_at == i:
                    raise SegmentationError("bad parameters", hint="try others")
                time.sleep(delay)
                yield Progress(i / n, f"step {i}")
            return "result"
        finally:
            if log is not None:
                log.append("closed")

    return make


def test_progress_and_result_off_the_gui_thread(qtbot):
    r = JobRunner("test")
    seen, log = [], []
    r.progress.connect(lambda f, m: seen.append((f, m)))
    with qtbot.waitSignal(r.finished, timeout=5000) as blocker:
        assert r.start(counting_job(log=log))
    assert blocker.args == ["result"]
    assert [m for _, m in seen] == [f"step {i}" for i in range(5)]
    assert ("thread", True) in log and "closed" in log
    assert not r.is_running


def test_error_is_forwarded(qtbot):
    r = JobRunner("test")
    with qtbot.waitSignal(r.failed, timeout=5000) as blocker:
        r.start(counting_job(fail_at=2))
    assert isinstance(blocker.args[0], SegmentationError)
    assert not r.is_running


def test_cancel_and_second_run_refused(qtbot):
    r = JobRunner("test")
    log = []
    with qtbot.waitSignal(r.progress, timeout=5000):
        assert r.start(counting_job(n=200, delay=0.01, log=log))
    assert not r.start(counting_job())  # refused while running
    with qtbot.waitSignal(r.cancelled, timeout=5000):
        assert r.cancel()
    assert not r.is_running
    assert "closed" in log
    with qtbot.waitSignal(r.finished, timeout=5000):
        assert r.start(counting_job())  # free again


@pytest.mark.parametrize("delay", [0.01])
def test_shutdown_joins_the_thread(qtbot, delay):
    r = JobRunner("test")
    log = []
    with qtbot.waitSignal(r.progress, timeout=5000):
        r.start(counting_job(n=500, delay=delay, log=log))
    t = r._thread
    r.shutdown()
    assert not t.isRunning()
    assert not r.is_running and "closed" in log
    assert not r.start(counting_job())  # closed for good


def test_the_next_image_is_segmented_even_while_the_last_run_is_still_stopping(window, smear_path, qtbot, monkeypatch):
    """Opening an image cancels the running segmentation; the new image's own run waits for it to stop
    (it used to be refused: 'already running', and the new image stayed unsegmented)."""
    import shutil
    import time

    from cellviewer.core import segment

    real = segment.create_segmenter

    class Slow:  # a long prediction step: the cancel is only seen after it
        def __init__(self, inner):
            self.inner = inner

        def segment(self, pixels, token=None):
            time.sleep(0.6)
            return (yield from self.inner.segment(pixels, token))

    monkeypatch.setattr(segment, "create_segmenter", lambda name=None, **o: Slow(real(name, **o)))
    other = smear_path.with_name("other.png")
    shutil.copy(smear_path, other)
    assert window.open_image(smear_path)
    qtbot.waitUntil(lambda: window.segmentation.runner.is_running, timeout=3000)
    assert window.open_image(other)  # cancels the first run while it is inside its slow step
    qtbot.waitUntil(lambda: window.session.doc.counts().get("rbc", 0) > 0, timeout=15000)
    assert window.session.path == other
    qtbot.waitUntil(lambda: not window.segmentation.runner.is_running, timeout=15000)


def test_a_jobs_note_becomes_a_warning_once(qtbot, monkeypatch):
    from cellviewer.gui import notifications

    warned = []
    monkeypatch.setattr(notifications, "warn", lambda msg, *a, **k: warned.append(msg))

    def make(token):
        yield Progress(0.0, "start", note="red cells of 4.0 px are enlarged 8.0×")
        yield Progress(0.5, "half")
        return "ok"

    r = JobRunner("segmentation")
    with qtbot.waitSignal(r.finished, timeout=5000):
        assert r.start(make)
    assert warned == ["Segmentation: red cells of 4.0 px are enlarged 8.0×"]
