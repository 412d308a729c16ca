"""Shared fixtures. Environment is fixed before anything imports Qt or torch."""

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Never touch the user's store: sidecar fallbacks and settings go to a temp folder."""
    home = tmp_path_factory.mktemp("cvhome")
    monkeypatch.setenv("CELLVIEWER_HOME", str(home))
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
