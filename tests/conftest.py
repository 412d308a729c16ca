"""Shared fixtures. Environment is fixed before anything imports Qt or torch."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# a floor under the per-test settings file below: widgets pytest-qt closes after a test's own
# fixtures are undone still save their settings somewhere other than the user's own file
_SESSION_DIR = tempfile.mkdtemp(prefix="cellviewer-tests-")
atexit.register(shutil.rmtree, _SESSION_DIR, True)
os.environ.setdefault("CELLVIEWER_SETTINGS", os.path.join(_SESSION_DIR, "settings.ini"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def _user_settings_file() -> Path:
    """Where QSettings("cellviewer", "cellviewer") keeps the user's GUI settings on Linux / macOS."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "cellviewer" / "cellviewer.conf"


def _fingerprint(path: Path):
    return path.read_bytes() if path.is_file() else None


@pytest.fixture(autouse=True)
def _collect_in_the_main_thread():
    """Once a GUI test has moved garbage collection to the GUI thread (cellviewer.gui.gcguard), it
    runs only while an event loop does: collect after every test so no test inherits cycles."""
    import gc

    yield
    if not gc.isenabled():
        gc.collect()


@pytest.fixture(scope="session", autouse=True)
def _user_settings_untouched():
    """The suite must leave the user's own GUI settings exactly as it found them: a test that
    wrote there once left the GUI on a test's model with auto-run off and temp files in Recent."""
    path = _user_settings_file()
    before = _fingerprint(path)
    yield
    assert _fingerprint(path) == before, f"the tests changed the user's settings file {path}"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Never touch the user's store or settings: models, sidecar fallbacks and GUI settings go to a
    temp folder (subprocesses inherit both variables)."""
    home = tmp_path_factory.mktemp("cvhome")
    monkeypatch.setenv("CELLVIEWER_HOME", str(home))
    monkeypatch.setenv("CELLVIEWER_SETTINGS", str(home / "settings.ini"))
    yield


@pytest.fixture
def data_dir():
    if not DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return DATA


def make_doc(h=120, w=160):
    from cellviewer.core.document import Document, ImageData, ImageInfo

    px = np.full((h, w, 3), 220, np.uint8)
    return Document(ImageData(px, ImageInfo(None, w, h)))


@pytest.fixture
def blank_doc():
    return make_doc()
