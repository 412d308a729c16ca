"""Resource paths: source tree, PyInstaller bundle (``sys._MEIPASS``) and the override."""

import sys
from pathlib import Path

from cellviewer.core import resources

REPO = Path(__file__).resolve().parents[2]


def test_source_tree_paths():
    assert not resources.is_frozen()
    assert resources.resources_dir() == REPO / "resources"
    sample = resources.sample_image()
    assert sample == REPO / "resources" / "sample" / resources.SAMPLE_NAME and sample.is_file()
    assert resources.icon_path() == REPO / "resources" / "icon.png"


def test_frozen_bundle_uses_meipass(monkeypatch, tmp_path):
    (tmp_path / "resources" / "sample").mkdir(parents=True)
    (tmp_path / "resources" / "sample" / "other.jpg").write_bytes(b"jpg")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert resources.is_frozen()
    assert resources.app_root() == tmp_path
    assert resources.sample_image() == tmp_path / "resources" / "sample" / "other.jpg"  # first JPG as fallback
    assert resources.icon_path() is None


def test_override_and_missing_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("CELLVIEWER_RESOURCES", str(tmp_path / "nowhere"))
    assert resources.resources_dir() == tmp_path / "nowhere"
    assert resources.sample_image() is None
