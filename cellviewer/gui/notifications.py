"""The one place where an exception becomes a dialog or a status line.

* :func:`show_error` — one clear dialog for a :class:`CellviewerError` (its
  message and hint), a generic one for a bug (traceback in the log and in the
  dialog's details). ``Cancelled`` is a status line, never a dialog. While a
  dialog is open, further errors go to the status bar and the log, so a failing
  job cannot pile dialogs on the user.
* :func:`status` / :func:`warn` / :func:`note` / :func:`progress` — non-modal status-bar lines. A line does not
  replace one of higher rank that is still within its time (warning > status > note), so the
  routine "Saved …" note right after a segmentation does not wipe its summary or an
  out-of-memory warning; every line still goes to the log.
* :func:`ask` — a yes/no question (the only confirmation helper).
* :func:`install_excepthooks` — ``sys.excepthook`` and ``threading.excepthook``
  route here (errors from other threads are marshalled to the GUI thread).

Tests replace :data:`QMessageBox` in this module to record instead of block.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox

from cellviewer.core.errors import Cancelled, CellviewerError

log = logging.getLogger("cellviewer.gui")

_status_bar = None
_dialog_open = False
_parent = None


def set_status_bar(bar) -> None:
    global _status_bar
    _status_bar = bar


def set_parent(widget) -> None:
    """The window dialogs are centred on."""
    global _parent
    _parent = widget


def detach(parent, bar) -> None:
    """A window closes: forget its status bar and parent (if they are the current ones)."""
    global _status_bar, _parent
    if _status_bar is bar:
        _status_bar = None
    if _parent is parent:
        _parent = None


NOTE, STATUS, WARNING = 0, 1, 2  # ranks of status-bar lines
_shown = (NOTE, 0.0)  # rank and monotonic end time of the line on the status bar
_pending = [0]  # generation of the latest status line waiting for a warning to end


def _show(message: str, timeout_ms: int, rank: int) -> None:
    global _shown
    if _status_bar is None:
        return
    now = time.monotonic()
    try:
        if rank < _shown[0] and now < _shown[1] and _status_bar.currentMessage():
            if rank == STATUS and _shown[1] != float("inf"):  # e.g. a segmentation's summary: shown after it
                from PySide6.QtCore import QTimer

                _pending[0] += 1
                gen = _pending[0]
                QTimer.singleShot(int((_shown[1] - now) * 1000) + 50,
                                  lambda: gen == _pending[0] and _show(message, timeout_ms, rank))
            return  # a more important line is still showing
        _status_bar.showMessage(message, timeout_ms)
    except RuntimeError:  # the window is gone (shutdown)
        return
    _shown = (rank, now + timeout_ms / 1000.0 if timeout_ms > 0 else float("inf"))


def status(message: str, timeout_ms: int = 5000) -> None:
    log.info(message)
    _show(message, timeout_ms, STATUS)


def note(message: str, timeout_ms: int = 2000) -> None:
    """A routine confirmation (e.g. an autosave): shown unless a status line or warning is showing."""
    log.info(message)
    _show(message, timeout_ms, NOTE)


def progress(message: str, timeout_ms: int = 2000) -> None:
    """A job's progress line: shown like a note (a warning or status line still showing stays), not logged."""
    _show(message, timeout_ms, NOTE)


def warn(message: str, timeout_ms: int = 10000) -> None:
    log.warning(message)
    _show("⚠ " + message, timeout_ms, WARNING)


def describe(exc: BaseException) -> tuple[str, str]:
    """(headline, detail) for a user-facing message."""
    if isinstance(exc, CellviewerError):
        return exc.message, (exc.hint or "")
    return f"An unexpected error occurred: {type(exc).__name__}: {exc}", \
        "This is a bug in cellviewer; the details were written to the log. Your saved work is safe."


def show_error(exc: BaseException, context: str = "", parent=None) -> None:
    """Report ``exc`` once: a dialog (or a status line for minor cases), and the log."""
    global _dialog_open
    if isinstance(exc, Cancelled):
        status(f"{context + ': ' if context else ''}cancelled")
        return
    headline, hint = describe(exc)
    if context:
        headline = f"{context}: {headline}"
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, CellviewerError):
        log.warning("%s (%s)", headline, hint)
        log.debug(tb)
    else:
        log.error("%s\n%s", headline, tb)
    if _dialog_open or QApplication.instance() is None:
        warn(headline)
        return
    _dialog_open = True
    try:
        box = QMessageBox(parent or _parent)
        box.setIcon(QMessageBox.Icon.Warning if isinstance(exc, CellviewerError) else QMessageBox.Icon.Critical)
        box.setWindowTitle("cellviewer")
        box.setText(headline)
        if hint:
            box.setInformativeText(hint)
        if not isinstance(exc, CellviewerError):
            box.setDetailedText(tb)
        box.exec()
    finally:
        _dialog_open = False
    warn(headline)


def ask(title: str, text: str, parent=None, default_yes: bool = False) -> bool:
    """A yes/no question; True for yes."""
    buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
    default = QMessageBox.StandardButton.Yes if default_yes else QMessageBox.StandardButton.No
    answer = QMessageBox.question(parent or _parent, title, text, buttons, default)
    return answer == QMessageBox.StandardButton.Yes


def info(title: str, text: str, parent=None) -> None:
    QMessageBox.information(parent or _parent, title, text)


class _Bridge(QObject):
    """Carries exceptions from any thread to the GUI thread."""

    error = Signal(object)

    @Slot(object)
    def _show(self, exc) -> None:
        show_error(exc)


_bridge: _Bridge | None = None


def _excepthook(exc_type, exc, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    if exc.__traceback__ is None:
        exc = exc.with_traceback(tb)
    if _bridge is not None:
        _bridge.error.emit(exc)  # direct call on the GUI thread, queued from others
    else:
        log.error("Uncaught exception", exc_info=(exc_type, exc, tb))


def _thread_excepthook(args) -> None:
    if args.exc_type is SystemExit:
        return
    _excepthook(args.exc_type, args.exc_value, args.exc_traceback)


def install_excepthooks() -> None:
    """Route uncaught exceptions (GUI thread and worker threads) to :func:`show_error`."""
    global _bridge
    if _bridge is None:
        _bridge = _Bridge()
        _bridge.error.connect(_bridge._show, Qt.ConnectionType.AutoConnection)
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook


def uninstall_excepthooks() -> None:
    sys.excepthook = sys.__excepthook__
    threading.excepthook = threading.__excepthook__
