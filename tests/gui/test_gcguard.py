"""gui.gcguard: garbage collection happens in the GUI thread only, on its timer."""

import gc
import threading

from cellviewer.gui import gcguard
from cellviewer.gui.workers import JobRunner


def test_cycles_made_in_a_worker_are_collected_in_the_gui_thread(qtbot):
    JobRunner("job")  # making a runner installs the guard
    assert not gc.isenabled() and gcguard.install()
    seen: list[str] = []

    def on_gc(phase, info):
        if phase == "start":
            seen.append(threading.current_thread().name)

    def make_cycles():
        for _ in range(50_000):  # far past the generation-0 threshold (700)
            a: list = []
            a.append(a)

    gc.callbacks.append(on_gc)
    try:
        t = threading.Thread(target=make_cycles, name="worker")
        t.start()
        t.join()
        assert "worker" not in seen  # automatic collection would have run there dozens of times
        qtbot.waitUntil(lambda: threading.main_thread().name in seen, timeout=3 * gcguard.INTERVAL_MS + 2000)
        assert set(seen) == {threading.main_thread().name}
    finally:
        gc.callbacks.remove(on_gc)
