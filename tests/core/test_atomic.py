import os

import pytest

from cellviewer.core import atomic
from cellviewer.core.atomic import atomic_write_bytes


def test_writes_and_replaces(tmp_path):
    p = tmp_path / "a.json"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.json"]


def test_failure_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    p = tmp_path / "a.json"
    atomic_write_bytes(p, b"good")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"good"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.json"]
    assert os.path.exists(p)
