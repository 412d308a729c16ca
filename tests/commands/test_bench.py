"""``cellviewer bench`` options: bad values are usage errors before anything is measured."""

import pytest

from cellviewer import cli


@pytest.mark.parametrize("args, says", [(["--threads", "-2"], "--threads: must be 1 or more"),
                                        (["--threads", "0"], "--threads: must be 1 or more"),
                                        (["--threads", "two"], "expected a whole number"),
                                        (["--batch-images", "-1"], "--batch-images: must be 0 or more")])
def test_bad_thread_and_batch_counts_are_usage_errors(args, says, capsys, monkeypatch):
    from cellviewer.core import bench

    monkeypatch.setattr(bench, "peak_gflops", lambda *a: pytest.fail("measured despite a bad option"))
    assert cli.main(["bench", "--quick", "--skip-gui", *args]) == 2
    assert says in capsys.readouterr().err
