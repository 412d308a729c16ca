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


def test_a_child_python_module_runs_from_source_and_from_the_bundle(monkeypatch):
    """In the bundle ``sys.executable`` is the app: ``-m`` would be read as a cellviewer command (the bench's GUI
    and batch rows failed there)."""
    import sys

    from cellviewer.core import resources

    monkeypatch.setattr(resources, "is_frozen", lambda: False)
    assert resources.module_command("cellviewer.gui.bench", "--quick") == [sys.executable, "-m",
                                                                           "cellviewer.gui.bench", "--quick"]
    monkeypatch.setattr(resources, "is_frozen", lambda: True)
    assert resources.module_command("cellviewer.gui.bench", "--quick") == [sys.executable, "--run-module",
                                                                           "cellviewer.gui.bench", "--quick"]
    assert resources.module_command("cellviewer", "analyze", "x") == [sys.executable, "analyze", "x"]


def test_the_bundle_entry_runs_a_module_as_python_m_would(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    entry = Path(__file__).resolve().parents[2] / "packaging" / "cellviewer_main.py"
    p = subprocess.run([sys.executable, str(entry), "--run-module", "cellviewer.core.killcycles", "bad"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "usage: python -m cellviewer.core.killcycles child" in p.stderr
    p = subprocess.run([sys.executable, str(entry), "--version"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("cellviewer")
