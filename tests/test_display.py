"""`cellviewer gui` without a display: one clear line and exit code 9, not a Qt abort."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cellviewer.display import display_problem

REPO = Path(__file__).resolve().parents[1]


def test_display_problem_reads_the_environment():
    assert display_problem({}, "linux") is not None
    assert display_problem({"DISPLAY": ":0"}, "linux") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None  # the tests' headless Qt
    assert display_problem({"QT_QPA_PLATFORM": "wayland;xcb"}, "linux") is not None
    assert display_problem({"QT_QPA_PLATFORM": "xcb:foo;offscreen"}, "linux") is None
    assert display_problem({}, "darwin") is None and display_problem({}, "win32") is None


def test_gui_without_a_display_exits_with_one_line():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    code = ("import sys; from cellviewer import cli; rc = cli.main(['gui']); "
            "print('qt imported' if 'PySide6' in sys.modules else 'no qt'); sys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    if not sys.platform.startswith("linux"):
        return
    assert p.returncode == 9, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cellviewer: error: Cannot open the review window"), p.stderr
    assert "DISPLAY" in lines[0] and "analyze" in lines[0]  # why, and what works instead
    assert p.stdout.strip() == "no qt"  # checked before Qt could abort the process
