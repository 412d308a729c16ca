"""SIGKILL at random moments while a process edits and autosaves a document (1000×750 here,
2000×1500 in the long run).

After every kill: the sidecar loads and equals the last completed save (or the one in
flight), and sidecar + journal recovery equals the last journaled state (or the edit in
flight). The long run: ``python -m cellviewer.core.fuzz --kill-cycles 100``.
"""

import os
import sys

import pytest

from cellviewer.core.killcycles import kill_cycles

CYCLES = int(os.environ.get("CELLVIEWER_KILL_CYCLES", "10"))


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_cycles_lose_nothing(tmp_path):
    rep = kill_cycles(CYCLES, tmp_path / "kill", shape=(750, 1000), seed=1, min_s=0.2, max_s=1.0, save_every=0.1)
    assert rep.failures == [], "\n".join(rep.failures)
    assert rep.survived == rep.cycles == CYCLES
    assert rep.saves > 0 and rep.edits > 0, rep.summary()  # the child really worked between kills
