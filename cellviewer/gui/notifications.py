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
* A line shown with ``until_edit=True`` (a refused tool's warning, a tool's prompt, "Nothing to
  undo") speaks of the state before the next edit: :func:`edit_done` (a user's edit went
  through) clears it.
* :func:`lasting` — a warning that stays (a status-bar widget, :class:`cellviewer.gui.statusbits.LastingWarning`)
  until the user dismisses it or makes the next successful edit (:func:`edit_done`), or its caller
  clears it (:func:`clear_lasting` with the token ``lasting`` returned); other lines never replace it.
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
_lasting = None  # the window's LastingWarning widget


def set_status_bar(bar, lasting=None) -> None:
    """Where status lines go; ``lasting``: where :func:`lasting` warnings go (see :func:`set_lasting_widget`)."""
    global _status_bar
    if bar is not _status_bar:
        _forget_lines()
    _status_bar = bar
    if lasting is not None:
        set_lasting_widget(lasting)


def _forget_lines() -> None:
    """Another window's status bar (or none): the line ranks, timers and pending lines of the last one do not
    carry over (a warning there must not hold back, nor its delayed line turn up in, the new window)."""
    global _shown, _line
    _shown, _line = (NOTE, 0.0), (0, False)
    _pending[0] += 1


def set_parent(widget) -> None:
    """The window dialogs are centred on."""
    global _parent
    _parent = widget


def set_lasting_widget(widget) -> None:
    """Where :func:`lasting` warnings go (``show_text(str)``, ``dismiss()``, ``text()``)."""
    global _lasting
    _lasting = widget


def detach(parent, bar) -> None:
    """A window closes: forget its status bar, parent and lasting-warning widget (if they are the current ones)."""
    global _status_bar, _parent, _lasting
    if _status_bar is bar:
        _status_bar = None
        _forget_lines()
    if _parent is parent:
        _parent = None
    try:
        if _lasting is not None and _lasting.window() is parent:
            _lasting = None
    except RuntimeError:  # already deleted
        _lasting = None


NOTE, STATUS, WARNING = 0, 1, 2  # ranks of status-bar lines
_shown = (NOTE, 0.0)  # rank and monotonic end time of the line on the status bar
_pending = [0]  # generation of the latest status line waiting for a warning to end
_seq = [0]  # bumps with every line (and lasting warning) shown: see mark() / edit_done()
_line = (0, False)  # (seq, until_edit) of the line on the status bar
_lasting_seq = [0]  # seq of the lasting warning showing


def mark() -> int:
    """Taken when an edit begins; :func:`edit_done` clears only what was shown before it."""
    return _seq[0]


def edit_done(since: int) -> None:
    """A user's edit went through (``since``: :func:`mark` when it began): the status-bar line shown before
    it with ``until_edit`` (it spoke of the state before the edit) and the lasting warning are cleared."""
    global _shown, _line
    if _lasting is not None and _lasting_seq[0] <= since:
        clear_lasting()
    if _status_bar is None or not _line[1] or _line[0] > since:
        return
    try:
        if _status_bar.currentMessage():
            _status_bar.clearMessage()
    except RuntimeError:
        return
    _shown, _line = (NOTE, 0.0), (0, False)


def lasting(message: str, tooltip: str = "") -> int:
    """A warning that stays until dismissed or until the user's next successful edit (:func:`edit_done`);
    ``tooltip``: the details (default: the message). Returns a token for :func:`clear_lasting`."""
    log.warning(message + (f" ({tooltip})" if tooltip else ""))
    _seq[0] += 1
    _lasting_seq[0] = _seq[0]
    try:
        if _lasting is not None:
            _lasting.show_text(message, tooltip)
            return _seq[0]
    except RuntimeError:  # the window is gone
        pass
    warn(message, 0)
    return _seq[0]


def lasting_text() -> str:
    """The lasting warning showing ('' when none)."""
    try:
        return _lasting.text() if _lasting is not None else ""
    except RuntimeError:
        return ""


def clear_lasting(token: int | None = None) -> None:
    """Clear the lasting warning; with ``token`` (from :func:`lasting`) only if that warning is still the one shown."""
    if token is not None and token != _lasting_seq[0]:
        return
    try:
        if _lasting is not None:
            _lasting.dismiss()
    except RuntimeError:
        pass


def _show(message: str, timeout_ms: int, rank: int, until_edit: bool = False) -> None:
    global _shown, _line
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
                                  lambda: gen == _pending[0] and _show(message, timeout_ms, rank, until_edit))
            return  # a more important line is still showing
        _status_bar.showMessage(message, timeout_ms)
    except RuntimeError:  # the window is gone (shutdown)
        return
    _shown = (rank, now + timeout_ms / 1000.0 if timeout_ms > 0 else float("inf"))
    _seq[0] += 1
    _line = (_seq[0], until_edit)


def status(message: str, timeout_ms: int = 5000, until_edit: bool = False) -> None:
    log.info(message)
    _show(message, timeout_ms, STATUS, until_edit)


def note(message: str, timeout_ms: int = 2000) -> None:
    """A routine confirmation (e.g. an autosave): shown unless a status line or warning is showing."""
    log.info(message)
    _show(message, timeout_ms, NOTE)


def progress(message: str, timeout_ms: int = 2000) -> None:
    """A job's progress line: shown like a note (a warning or status line still showing stays), not logged."""
    _show(message, timeout_ms, NOTE)


def warn(message: str, timeout_ms: int = 10000, until_edit: bool = False) -> None:
    log.warning(message)
    _show("⚠ " + message, timeout_ms, WARNING, until_edit)


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
