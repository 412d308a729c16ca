"""GUI fixtures: isolated settings, dialogs that record instead of block, a synthetic smear, the main window."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from tests.gui.smear import write_smear  # noqa: E402


class FakeMessageBox:
    """Stands in for QMessageBox in cellviewer.gui.notifications: records, never blocks."""

    Icon = None
    StandardButton = None
    shown: list = []
    questions: list = []
    answer_yes = True

    def __init__(self, parent=None):
        self.icon = self.text = self.informative = self.details = None

    def setIcon(self, icon):
        self.icon = icon

    def setWindowTitle(self, title):
        pass

    def setText(self, text):
        self.text = text

    def setInformativeText(self, text):
        self.informative = text

    def setDetailedText(self, text):
        self.details = text

    def exec(self):
        FakeMessageBox.shown.append(self)
        return 0

    @classmethod
    def question(cls, parent, title, text, buttons=None, default=None):
        cls.questions.append((title, text))
        return cls.StandardButton.Yes if cls.answer_yes else cls.StandardButton.No

    @classmethod
    def information(cls, parent, title, text):
        cls.shown.append(("info", title, text))


@pytest.fixture(autouse=True)
def dialogs(monkeypatch):
    """Every test: message boxes recorded (``dialogs.shown``); settings are isolated by tests/conftest.py."""
    from PySide6.QtWidgets import QMessageBox

    from cellviewer.gui import notifications

    FakeMessageBox.Icon = QMessageBox.Icon
    FakeMessageBox.StandardButton = QMessageBox.StandardButton
    FakeMessageBox.shown, FakeMessageBox.questions, FakeMessageBox.answer_yes = [], [], True
    monkeypatch.setattr(notifications, "QMessageBox", FakeMessageBox)
    monkeypatch.setattr(notifications, "_dialog_open", False)
    yield FakeMessageBox


@pytest.fixture
def smear_path(tmp_path):
    """A 260×190 synthetic smear PNG (12 RBC, 1 WBC, 2 platelets) in its own folder."""
    folder = tmp_path / "images"
    folder.mkdir()
    return write_smear(folder / "smear.png")


@pytest.fixture
def make_window(qtbot):
    """Factory for real main windows (closed at teardown)."""
    from cellviewer.gui.main_window import MainWindow

    made = []

    def make(auto_run: bool = True):
        win = MainWindow()
        win.seg_params.update(auto_run=auto_run, model="classical", counting="watershed", diameter_px=0.0)
        qtbot.addWidget(win)
        win.resize(900, 700)
        win.show()
        qtbot.waitExposed(win)
        made.append(win)
        return win

    yield make
    for win in made:
        if win.isVisible():
            win.close()


@pytest.fixture
def crash():
    """``crash(win)``: the window "crashes" — its autosave stops and its journal is nobody's any more, as
    when its process dies (a journal another window still writes is never offered for recovery)."""

    def do(win):
        s = win.session
        s.timer.stop()
        s.doc.unsubscribe(s._on_change)
        j, s.doc.journal = s.doc.journal, None
        if j is not None:
            j.close()

    return do


@pytest.fixture
def window(make_window):
    return make_window()


@pytest.fixture
def segmented(window, smear_path, qtbot):
    """The main window with the smear open and segmented by the classical segmenter."""
    with qtbot.waitSignal(window.segmentation.runner.finished, timeout=30000):
        assert window.open_image(smear_path)
    qtbot.waitUntil(lambda: window.counts_panel.counts.get("rbc", 0) > 0, timeout=5000)
    return window
