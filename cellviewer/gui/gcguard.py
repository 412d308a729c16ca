"""Python's cyclic garbage collector runs only in the GUI thread.

A collection runs in whichever thread happens to allocate past the collector's threshold. When a
worker thread (segmentation, training, an autosave writer, undo packing) collects a reference
cycle that holds Qt wrappers of the GUI thread (a closed dialog, a rebuilt menu), the C++
destructor runs in the worker: it takes a Qt mutex and then waits for the interpreter lock,
while the GUI thread, holding the lock, waits for that mutex — the window freezes for good
(seen as a rare hang of the GUI tests; a stack dump showed exactly these two threads).

:func:`install` (idempotent; called when the application, a session and a job runner are made)
switches automatic collection off and collects on a timer in the GUI thread instead, generation
by generation with the collector's own thresholds, as pyqtgraph's ``GarbageCollector`` does:
cycles are freed within :data:`INTERVAL_MS` while the event loop runs, never in a worker.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer

INTERVAL_MS = 500
_GUARD: list = []  # the one installed guard (kept alive here)


class _MainThreadCollector(QObject):
    def __init__(self, parent: QObject):
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        gc.disable()
        self.timer.start(INTERVAL_MS)

    def check(self) -> None:
        """Collect the generations whose counts passed the thresholds (as automatic collection would)."""
        n0, n1, n2 = gc.get_count()
        if n0 > self.threshold[0]:
            gc.collect(0)
            if n1 > self.threshold[1]:
                gc.collect(1)
                if n2 > self.threshold[2]:
                    gc.collect(2)


def install() -> bool:
    """From the GUI thread, once a QApplication exists: collect there only. True when it is in place."""
    app = QCoreApplication.instance()
    if app is None or QThread.currentThread() is not app.thread():
        return False
    if _GUARD and _GUARD[0].parent() is app:
        gc.disable()  # (someone may have switched it on again)
        return True
    _GUARD[:] = [_MainThreadCollector(app)]
    return True
