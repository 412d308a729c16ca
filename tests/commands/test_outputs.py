"""``--json FILE`` / ``--csv FILE`` of evaluate, bench and review: a bad path fails before the run (exit 5,
one line), and the file is written atomically (an interrupted write leaves the old file, never half)."""

import os

import pytest

from cellviewer import cli
from cellviewer.core import atomic
from cellviewer.core.atomic import check_writable, write_output
from cellviewer.core.errors import SaveError


def test_check_writable_says_what_is_wrong_and_leaves_nothing(tmp_path):
    assert check_writable(tmp_path / "r.json") == tmp_path / "r.json"
    assert os.listdir(tmp_path) == []  # the probe is gone
    with pytest.raises(SaveError, match="does not exist") as e:
        check_writable(tmp_path / "missing" / "r.json", "--csv")
    assert e.value.exit_code == 5 and "--csv" in str(e.value)
    with pytest.raises(SaveError, match="is a folder"):
        check_writable(tmp_path)


def test_write_output_is_atomic(tmp_path, monkeypatch):
    p = tmp_path / "r.json"
    write_output(p, "old")

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(SaveError, match="No space left"):
        write_output(p, "new half-written")
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["r.json"]


def test_bench_refuses_a_bad_json_path_before_measuring(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    from cellviewer.core import bench

    monkeypatch.setattr(bench, "peak_gflops", lambda *a: pytest.fail("measured before checking --json"))
    assert cli.main(["bench", "--quick", "--skip-gui", "--json", str(tmp_path / "no" / "b.json")]) == 5
    err = capsys.readouterr().err
    assert "Cannot write --json" in err and len([ln for ln in err.splitlines() if "error" in ln]) == 1


def test_review_refuses_a_bad_csv_path_before_reading(tmp_path, capsys):
    assert cli.main(["review", str(tmp_path / "nope.png"), "--csv", str(tmp_path / "no" / "q.csv")]) == 5
    assert "Cannot write --csv" in capsys.readouterr().err  # not the unreadable image: the path came first
