"""Start the GUI: ``run_gui(image_path=None) -> exit code``."""

from __future__ import annotations

import logging
import os
import sys


def _prepare_env() -> None:
    # before pyqtgraph is imported anywhere
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from cellviewer.core.memory import tune_for_batch

    tune_for_batch()  # before the first convolution: re-segmenting large fields must not pile up heap


def create_app(argv=None):
    """The QApplication (existing one reused), named for QSettings."""
    _prepare_env()
    from PySide6.QtWidgets import QApplication

    from cellviewer import __version__
    from cellviewer.gui.settings import APP, ORG

    app = QApplication.instance() or QApplication(list(argv if argv is not None else sys.argv[:1]))
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    app.setApplicationVersion(__version__)
    _set_icon(app)
    from cellviewer.gui import gcguard

    gcguard.install()
    return app


def _set_icon(app) -> None:
    """The window / taskbar icon (``resources/icon.png``, drawn by packaging/make_icon.py), when present."""
    from cellviewer.core.resources import icon_path

    path = icon_path()
    if path is not None and app.windowIcon().isNull():
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(path)))
    app.setDesktopFileName("cellviewer")  # matches packaging/cellviewer.desktop (Wayland/GNOME app grouping)


def create_window(image_path=None, auto_open_sample: bool = True, opened: bool = True):
    """The main window, with ``image_path`` (or the bundled sample) opened (``opened=False``: the
    caller opens it, with :func:`_open_first`)."""
    _prepare_env()
    from PySide6.QtWidgets import QApplication

    from cellviewer.gui.main_window import MainWindow

    win = MainWindow()
    app = QApplication.instance()
    if app is not None:  # a quit that skips closeEvent (app.quit(), logout) still saves and joins the jobs
        app.aboutToQuit.connect(win.shutdown)
    if opened:
        _open_first(win, image_path, auto_open_sample)
    return win


def _open_first(win, image_path=None, auto_open_sample: bool = True) -> None:
    """Open ``image_path`` (a file or folder), else the bundled sample's working copy."""
    from cellviewer.gui.paths import sample_working_copy

    path = image_path if image_path is not None else (sample_working_copy() if auto_open_sample else None)
    if path is not None:
        if os.path.isdir(path):
            win.open_folder(path)
        else:
            win.open_image(path)


def run_gui(image_path=None) -> int:
    from cellviewer.display import check_display

    check_display()
    _prepare_env()
    logging.basicConfig(level=os.environ.get("CELLVIEWER_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app()
    from cellviewer.gui import notifications

    notifications.install_excepthooks()
    try:
        win = create_window(image_path, opened=False)
        win.show()
        restore = close_on_signals(win)  # before anything opens: a kill during its dialogs closes the window
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, lambda: _open_first(win, image_path))
        try:
            return int(app.exec())
        finally:
            restore()
    finally:
        notifications.uninstall_excepthooks()


def _close(win) -> None:
    """Close ``win``; a modal dialog open on top (an error, a question) is dismissed first and the
    window closes once its event loop has returned."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    win.closing_by_signal = True  # no question before closing (gui.humanloop asks one while retraining)
    modal = QApplication.activeModalWidget()
    if modal is not None:
        modal.reject() if hasattr(modal, "reject") else modal.close()
        QTimer.singleShot(0, lambda: _close(win))
        return
    win.close()


def close_on_signals(win, signums=None):
    """Ctrl+C in the terminal (SIGINT) or a polite kill (SIGTERM) closes ``win`` the normal way
    — settings saved, running jobs cancelled and joined, the open image's sidecar flushed —
    instead of dying mid-write. Returns a function that puts the old handlers back."""
    import signal

    from PySide6.QtCore import QTimer

    signums = signums if signums is not None else [signal.SIGINT, signal.SIGTERM]
    old = {}
    for sig in signums:
        try:
            old[sig] = signal.signal(sig, lambda *_: QTimer.singleShot(0, lambda: _close(win)))
        except (ValueError, OSError):  # not the main thread / not supported here
            pass
    # Python runs signal handlers only between bytecodes: wake the interpreter a few times a second
    tick = QTimer(win)
    tick.timeout.connect(lambda: None)
    tick.start(250)

    def restore() -> None:
        try:
            tick.stop()
        except RuntimeError:  # the window (its parent) is already deleted
            pass
        for sig, handler in old.items():
            signal.signal(sig, handler)

    return restore
