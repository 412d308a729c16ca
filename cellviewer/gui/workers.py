"""Run core long jobs (generators yielding ``Progress``) off the GUI thread.

:class:`JobRunner` owns at most one :class:`QThread` at a time. ``start``
takes ``make_job(cancel_token) -> generator``; the factory itself runs in the
worker thread too (loading a model is slow as well). Results and errors come
back as queued signals on the GUI thread:

* ``progress(float, str)`` — fraction 0..1 and a message;
* ``finished(object)`` — the job's return value;
* ``failed(object)`` — the exception (a ``BaseException``), for ``notifications``;
* ``cancelled()`` — the job stopped because :meth:`cancel` was called.

A second ``start`` while a job runs is refused (and said in the status bar).
:meth:`shutdown` cancels and joins the thread (used on window close). :func:`lower_priority` (called in
a job) makes its thread yield the CPU to the GUI thread.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Callable

from PySide6.QtCore import QObject, QThread, Signal

from cellviewer.core.errors import Cancelled
from cellviewer.core.jobs import CancelToken
from cellviewer.gui import notifications

log = logging.getLogger(__name__)


def lower_priority(nice: int = 10) -> None:
    """From a worker thread: let the GUI thread have the CPU first (Linux: this thread's own nice value; a
    no-op elsewhere). For background work nobody waits for (a review queue, packing undo states, an autosave
    write): on a two-core machine it no longer slows the window down."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(nice, os.getpriority(os.PRIO_PROCESS, tid)))
    except (AttributeError, OSError):
        pass


def run_painting(fn: Callable, *args):
    """``fn(*args)`` in a plain worker thread while this (the GUI) thread goes on painting and running its
    timers — user input waits, so nothing can start another action meanwhile; for a short piece of pure work
    the caller must wait for anyway (reading a big image, the last save when a window closes). Returns or
    raises what ``fn`` does; called from another thread (or without an application) it just calls it."""
    from PySide6.QtCore import QCoreApplication, QEventLoop

    app = QCoreApplication.instance()
    if app is None or QThread.currentThread() is not app.thread():
        return fn(*args)
    out: dict = {}

    def work():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - raised again in the calling thread
            out["exc"] = exc

    t = threading.Thread(target=work, name="cellviewer-wait", daemon=True)
    t.start()
    while t.is_alive():
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents, 20)
        t.join(0.01)
    if "exc" in out:
        raise out["exc"]
    return out["value"]


class _JobThread(QThread):
    progressed = Signal(float, str)
    noted = Signal(str)
    done = Signal(object)
    error = Signal(object)
    stopped = Signal()

    def __init__(self, make_job: Callable, token: CancelToken, parent=None):
        super().__init__(parent)
        self._make_job = make_job
        self._token = token

    def run(self) -> None:  # the worker thread
        job = None
        try:
            job = self._make_job(self._token)
            while True:
                self._token.check()
                try:
                    p = next(job)
                except StopIteration as stop:
                    result = stop.value
                    break
                if getattr(p, "note", ""):
                    self.noted.emit(str(p.note))
                self.progressed.emit(float(p.fraction), str(p.message))
            self._token.check()
            self.done.emit(result)
        except Cancelled:
            self.stopped.emit()
        except BaseException as exc:  # noqa: BLE001 - forwarded to the GUI thread -> notifications
            self.error.emit(exc)
        finally:
            if job is not None and hasattr(job, "close"):
                try:
                    job.close()
                except (Cancelled, RuntimeError, ValueError):
                    pass


class JobRunner(QObject):
    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    running_changed = Signal(bool)

    cancel_hint = "Esc"  # how the user cancels it, for the status line when a second start is refused

    def __init__(self, name: str = "job", parent=None):
        super().__init__(parent)
        from cellviewer.gui import gcguard

        gcguard.install()  # no garbage collection in the worker thread (it can deadlock with Qt)
        self.name = name
        self._thread: _JobThread | None = None
        self._token: CancelToken | None = None
        self._closed = False

    @property
    def is_running(self) -> bool:
        return self._thread is not None

    def start(self, make_job: Callable, name: str | None = None) -> bool:
        """Run ``make_job(token)`` in a thread; False (and a status line) if one is still running."""
        if self._closed:
            return False
        if self._thread is not None:
            notifications.status(f"{self.name.capitalize()} is still running — wait for it or cancel it "
                                 f"({self.cancel_hint}).")
            return False
        if name:
            self.name = name
        self._token = CancelToken()
        t = _JobThread(make_job, self._token)
        t.progressed.connect(self.progress)
        t.noted.connect(self._on_note)
        t.done.connect(self._on_done)
        t.error.connect(self._on_error)
        t.stopped.connect(self._on_stopped)
        self._thread = t
        t.start()
        self.running_changed.emit(True)
        return True

    def _on_note(self, text: str) -> None:
        """A job's note (``Progress.note``, e.g. a tiny red-cell size makes the run slow): a warning now."""
        notifications.warn(f"{self.name.capitalize()}: {text}", 30000)

    @property
    def cancelling(self) -> bool:
        """A job runs but was asked to stop (it ends at its next step)."""
        return self._token is not None and self._thread is not None and self._token.cancelled

    def cancel(self) -> bool:
        """Ask the running job to stop (it stops at its next step); False when idle."""
        if self._token is None or self._thread is None:
            return False
        self._token.cancel()
        notifications.status(f"Cancelling {self.name}…")
        return True

    def wait(self, timeout_ms: int = 30000) -> bool:
        t = self._thread
        return True if t is None else t.wait(timeout_ms)

    def wait_painting(self, timeout_ms: int = 30000) -> bool:
        """:meth:`wait`, the window painting and its timers running meanwhile (user input waits)."""
        from PySide6.QtCore import QCoreApplication, QDeadlineTimer, QEventLoop

        deadline = QDeadlineTimer(timeout_ms)
        while True:
            t = self._thread
            try:
                if t is None or t.wait(10):
                    return True
            except RuntimeError:  # (released and deleted meanwhile: it has ended)
                return True
            if deadline.hasExpired():
                return False
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents, 20)

    def _release(self) -> None:
        t, self._thread, self._token = self._thread, None, None
        if t is not None:
            t.wait()  # run() has returned or is about to
            t.deleteLater()
        self.running_changed.emit(False)

    def _on_done(self, result) -> None:
        self._release()
        self.finished.emit(result)

    def _on_error(self, exc) -> None:
        self._release()
        self.failed.emit(exc)

    def _on_stopped(self) -> None:
        self._release()
        self.cancelled.emit()

    def shutdown(self, timeout_ms: int = 60000) -> None:
        """Cancel, join the thread and drop its pending signals (window close)."""
        self._closed = True
        t = self._thread
        if t is None:
            return
        if self._token is not None:
            self._token.cancel()
        for sig in (t.progressed, t.noted, t.done, t.error, t.stopped):
            try:
                sig.disconnect()
            except (RuntimeError, TypeError):
                pass
        if not t.wait(timeout_ms):
            log.error("%s did not stop within %.0f s", self.name, timeout_ms / 1000)
            return
        self._thread, self._token = None, None
        t.deleteLater()
        self.running_changed.emit(False)
