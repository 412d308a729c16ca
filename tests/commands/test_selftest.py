"""``cellviewer --selftest`` / ``cellviewer selftest``: passes on the real sample, fails with one line."""

import re
import subprocess
import sys
from pathlib import Path

from cellviewer import cli
from cellviewer.commands import selftest

REPO = Path(__file__).resolve().parents[2]


def test_check_counts_ranges():
    ok = {"rbc": 26, "wbc": 1, "platelet": 2}
    assert selftest.check_counts(ok) == []
    problems = selftest.check_counts({"rbc": 0, "wbc": 1, "platelet": 200})
    assert len(problems) == 2
    assert problems[0].startswith("0 RBC") and "200 platelets" in problems[1]
    # the ranges cover the sample's annotations (BCCD 15 RBC; TXL-PBC 26 RBC, 1 WBC, 2 platelets)
    assert selftest.check_counts({"rbc": 15, "wbc": 1, "platelet": 2}) == []


def test_selftest_flag_passes_on_the_bundled_sample(capsys):
    rc = cli.main(["--selftest"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "self-test passed" in out and "BloodImage_00095.jpg" in out
    assert "ops ok" in out and "report.pdf" in out and "(removed)" in out
    # every shipped model is loaded; the parts model gives the sample's white cell both parts
    line = next(ln for ln in out.splitlines() if "model: wbc-nucleus-cytoplasm" in ln)
    nuc, cyto = (int(re.search(rf"{k} (\d+) px", line).group(1)) for k in ("nucleus", "cytoplasm"))
    assert nuc > 5000 and cyto > 5000 and "nucleus split ok" in line


def test_broken_nucleus_split_fails_with_one_line(monkeypatch, capsys):
    from cellviewer.core import instances

    monkeypatch.setattr(instances, "split_by_nuclei", lambda wbc, parts, diameter, **kw: wbc)
    rc = cli.main(["--selftest"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and "not split by their nuclei" in lines[0]


def test_selftest_command_keeps_a_checked_report(capsys):
    rc = cli.main(["selftest", "--model", "classical", "--device", "cpu", "--keep"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("report:"))
    folder = Path(line.rsplit(" in ", 1)[1].strip())
    try:
        assert (folder / "report.pdf").read_bytes().startswith(b"%PDF")
        counts = (folder / "counts.csv").read_text().splitlines()
        assert counts[0] == "image,rbc,wbc,platelets" and counts[1].startswith("BloodImage_00095.jpg,")
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def test_implausible_counts_fail_with_one_line(monkeypatch, capsys):
    monkeypatch.setitem(selftest.EXPECTED, "rbc", (1000, 2000))
    rc = cli.main(["selftest", "--model", "classical", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cellviewer: error: self-test failed: implausible counts")
    assert "RBC (expected 1000-2000)" in lines[0]


def test_missing_sample_fails(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CELLVIEWER_RESOURCES", str(tmp_path))
    rc = cli.main(["--selftest"])
    err = capsys.readouterr().err
    assert rc == 1 and "sample smear is missing" in err


def test_unknown_model_keeps_its_exit_code(capsys):
    rc = cli.main(["selftest", "--model", "no-such-model"])
    assert rc == 6
    assert "Unknown model 'no-such-model'" in capsys.readouterr().err


def test_selftest_help_imports_neither_torch_nor_qt():
    code = ("import sys; from cellviewer.cli import main; rc = main(['selftest', '--help']);"
            "print('RESULT', rc, [m for m in ('torch', 'PySide6') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "RESULT 0 []" in r.stdout and "--keep" in r.stdout
