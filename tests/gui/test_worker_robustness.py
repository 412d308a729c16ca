"""Workers under stress: cancel training, close the window during a folder report, two reports at
once, an out-of-memory fallback noticed in the status bar. No crash, no orphan thread, no half output."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cellviewer.core import segment
from cellviewer.core.jobs import Progress
from cellviewer.core.segment import SegmentationResult
from cellviewer.gui import notifications
from cellviewer.gui.workers import JobRunner
from tests.gui.smear import write_smear


class SlowSegmenter:
    """Many small cancellable steps; records that its generator was closed."""

    name, version, log = "slow", "0", []

    def segment(self, image, cancel=None):
        try:
            for i in range(6000):  # a minute: far longer than any test waits
                if cancel is not None:
                    cancel.check()
                time.sleep(0.01)
                yield Progress(i / 6000, f"step {i}")
            raise AssertionError("the test should have stopped this job")
        finally:
            SlowSegmenter.log.append("closed")


class FallbackSegmenter:
    """Returns at once, as the net segmenter does after an out-of-memory fallback."""

    name, version = "oom", "1"

    def segment(self, image, cancel=None):
        yield Progress(0.5, "CUDA out of memory with 1024 px tiles; retried with 512 px tiles")
        h, w = image.shape[:2]
        z = np.zeros((h, w), np.int32)
        return SegmentationResult({"rbc": z, "wbc": z, "platelet": z}, [], model_name="oom", device="cpu",
                                  params={"fallback": ["CUDA out of memory with 1024 px tiles; retried on the CPU "
                                                       "(slower)"]})


def _folder(tmp_path, n=2):
    d = tmp_path / "smears"
    d.mkdir()
    for i in range(n):
        write_smear(d / f"s{i}.png", seed=i)
    return d


def test_close_during_a_folder_report_leaves_no_thread_and_no_files(make_window, tmp_path, qtbot, monkeypatch,
                                                                     dialogs):
    win = make_window(auto_run=False)
    assert win.open_folder(_folder(tmp_path))
    SlowSegmenter.log = []
    monkeypatch.setattr(segment, "create_segmenter", lambda name=None, **opts: SlowSegmenter())
    runner = win.folder_reporter.runner
    with qtbot.waitSignal(runner.progress, timeout=5000):
        assert win.report_folder(tmp_path / "r.pdf")
    assert not win.report_folder(tmp_path / "other.pdf")  # two reports at once: the second is refused ...
    assert "still running" in win.statusBar().currentMessage()  # ... and the status bar says so
    thread = runner._thread
    win.close()
    assert not thread.isRunning() and not runner.is_running
    assert SlowSegmenter.log == ["closed"]
    assert not list(tmp_path.glob("r*")) and not list(tmp_path.glob("other*"))  # nothing half-written
    assert dialogs.shown == []


def test_segmentation_and_a_folder_report_can_run_side_by_side(make_window, tmp_path, qtbot, monkeypatch):
    win = make_window(auto_run=False)
    assert win.open_folder(_folder(tmp_path, 1))
    SlowSegmenter.log = []
    monkeypatch.setattr(segment, "create_segmenter", lambda name=None, **opts: SlowSegmenter())
    with qtbot.waitSignal(win.segmentation.runner.progress, timeout=5000):
        assert win.segmentation.run()
    with qtbot.waitSignal(win.folder_reporter.runner.progress, timeout=5000):
        assert win.report_folder(tmp_path / "r.pdf")
    said = []
    monkeypatch.setattr(notifications, "status", lambda msg, *a: said.append(msg))
    with qtbot.waitSignal(win.folder_reporter.runner.cancelled, timeout=5000):
        win.folder_reporter.runner.cancel()
    assert any("nothing was written" in m for m in said) and not (tmp_path / "r.pdf").exists()
    assert win.segmentation.runner.is_running  # the other job goes on
    with qtbot.waitSignal(win.segmentation.runner.cancelled, timeout=5000):
        win.escape()
    assert SlowSegmenter.log == ["closed", "closed"]


def test_out_of_memory_fallback_is_noticed_in_the_status_bar(make_window, smear_path, qtbot, monkeypatch, dialogs):
    win = make_window(auto_run=False)
    win.open_image(smear_path)
    monkeypatch.setattr(segment, "create_segmenter", lambda name=None, **opts: FallbackSegmenter())
    with qtbot.waitSignal(win.session.saved, timeout=10000):  # the result is autosaved right after ...
        with qtbot.waitSignal(win.segmentation.applied, timeout=5000):
            assert win.segmentation.run()
    msg = win.statusBar().currentMessage()  # ... and the "Saved" note does not wipe the warning
    assert "out of memory" in msg and "on the CPU" in msg
    assert dialogs.shown == []  # a notice, not an error


def test_cancel_during_training_stops_cleanly(qtbot, tmp_path):
    pytest.importorskip("torch")
    from cellviewer.core.training import TrainConfig, train

    cfg = TrainConfig(name="tiny", datasets=["synthetic"], net_config={"base": 4, "depth": 2}, epochs=1,
                      steps_per_epoch=500, batch_size=2, augment={"crop": 64}, working_scale=16, synthetic_n=4,
                      out=str(tmp_path / "tiny"), threads=1)
    r = JobRunner("training")
    messages = []
    r.progress.connect(lambda f, m: messages.append(m))
    assert r.start(lambda token: train(cfg, cancel=token))
    qtbot.waitUntil(lambda: any(" step " in m for m in messages), timeout=60000)  # in the training loop
    thread = r._thread
    with qtbot.waitSignal(r.cancelled, timeout=30000):
        assert r.cancel()
    assert not thread.isRunning() and not r.is_running
    assert not any("done" in m for m in messages)
    written = {p.name for p in tmp_path.iterdir()}
    for w in written:  # no weights without their card, no temp files
        assert not w.endswith(".tmp"), written
        if w.endswith(".safetensors"):
            assert w.replace(".safetensors", ".json") in written, written
