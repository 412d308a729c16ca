"""``cellviewer analyze`` batch runs: a missing input is skipped like a bad file, run.json says complete only
once the report is written, the two-stage WBC model's tta and morphology are recorded as done, a reused
folder's earlier run is set aside as one set, the output-folder lock, and names that remaining.txt cannot hold."""

import json
import os

import pytest
from PIL import Image

from cellviewer import cli
from tests.test_cli import (_FakeSegmenter, _read_csv, _smear, _write_inputs, ctrl_c, fakes,  # noqa: F401
                            interrupt_on_image)

LOCK = ".cellviewer-analyze.lock"  # (the README names it)


@pytest.fixture
def fake_model(monkeypatch):
    """The fake segmenter with the real image reading (core.io's list_images and read_image)."""
    from cellviewer.core import segment

    monkeypatch.setattr(segment, "_load_builtin", lambda: None)
    monkeypatch.setattr(segment, "default_segmenter_name", lambda: "fake")
    monkeypatch.setitem(segment._FACTORIES, "fake", _FakeSegmenter)


def _run_json(out):
    return json.loads((out / "run.json").read_text())


# -- 1. a missing input ------------------------------------------------------------------------------------
def test_a_missing_list_entry_is_skipped_and_the_rest_analysed(fake_model, tmp_path, monkeypatch, capsys):
    from cellviewer.core import report

    inputs = _write_inputs(tmp_path / "in")
    lst = tmp_path / "l.txt"
    lst.write_text(f"{inputs / 'one.png'}\n{inputs / 'missing.png'}\n{inputs / 'two.png'}\n")
    tables, real = [], report.write_pdf_report
    monkeypatch.setattr(report, "write_pdf_report", lambda *a, **k: (tables.append(k["skipped"]), real(*a, **k))[1])
    out = tmp_path / "out"
    assert cli.main(["analyze", "--from-list", str(lst), "--out", str(out)]) == 1  # as for any skipped file
    err = capsys.readouterr().err
    assert f"cellviewer: skipped {inputs / 'missing.png'}: file not found" in err
    assert [r[0] for r in _read_csv(out / "counts.csv")[1:]] == ["one.png", "two.png"]
    run = _run_json(out)
    assert run["status"] == "complete" and run["images_given"] == 3
    assert run["skipped"] == [{"file": str(inputs / "missing.png"), "reason": "file not found"}]
    assert tables == [[(str(inputs / "missing.png"), "file not found")]]  # the report's skipped table
    # typed on the command line beside files that exist: the same
    assert cli.main(["analyze", str(inputs / "nope.png"), str(inputs / "one.png"), "--out", str(tmp_path / "o2"),
                     "-q"]) == 1
    assert _run_json(tmp_path / "o2")["skipped"] == [{"file": str(inputs / "nope.png"), "reason": "file not found"}]


def test_when_no_input_exists_the_run_is_refused_as_before(fake_model, tmp_path, capsys):
    lst = tmp_path / "l.txt"
    lst.write_text(f"{tmp_path / 'a.png'}\n{tmp_path / 'b.png'}\n")
    out = tmp_path / "out"
    assert cli.main(["analyze", str(tmp_path / "c.png"), "--from-list", str(lst), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "c.png" in err and "no such file or folder" in err and "other 2 paths" in err
    assert not out.exists()  # nothing written


# -- 2. run.json says complete only once the report is written ----------------------------------------------
def test_run_json_is_complete_only_once_the_report_is_written(fakes, tmp_path, monkeypatch, capsys):  # noqa: F811
    from cellviewer.core import report

    inputs = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    seen, real = [], report.write_pdf_report

    def during(*a, **k):  # what a kill -9 while the report is written leaves
        seen.append(_run_json(out))
        return real(*a, **k)

    monkeypatch.setattr(report, "write_pdf_report", during)
    assert cli.main(["analyze", str(inputs), "--out", str(out), "-q"]) == 1
    assert seen[0]["status"] == "running" and [i["name"] for i in seen[0]["images"]] == ["one.png", "two.png"]
    assert _run_json(out)["status"] == "complete" and (out / "report.pdf").is_file()


def test_an_interruption_while_the_report_is_written_says_interrupted(fakes, tmp_path, monkeypatch, capsys):  # noqa: F811
    from cellviewer.core import report

    inputs = _write_inputs(tmp_path / "in")
    monkeypatch.setattr(report, "write_pdf_report", lambda *a, **k: ctrl_c())
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs), "--out", str(out)]) == 130
    line = next(ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("cellviewer: interrupted"))
    assert "2 of 3 images analyzed" in line and "report.pdf was not written" in line
    assert "run the same command again to write the report" in line
    run = _run_json(out)
    assert run["status"] == "interrupted" and run["remaining"] == [] and len(run["images"]) == 2
    assert [r[0] for r in _read_csv(out / "counts.csv")[1:]] == ["one.png", "two.png"]  # the rows are kept
    assert not (out / "report.pdf").exists() and not (out / "remaining.txt").exists()
    assert not (out / LOCK).exists()


def test_a_report_that_cannot_be_written_leaves_run_json_failed(fakes, tmp_path, monkeypatch, capsys):  # noqa: F811
    from cellviewer.core import report
    from cellviewer.core.errors import SaveError

    def full(*a, **k):
        raise SaveError("Cannot write the report: No space left on device")

    inputs = _write_inputs(tmp_path / "in")
    monkeypatch.setattr(report, "write_pdf_report", full)
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs), "--out", str(out)]) == 5
    run = _run_json(out)
    assert run["status"] == "failed" and "No space left" in run["error"]
    assert "while writing the report" in capsys.readouterr().err


# -- 3. the two-stage WBC model: what its detector does ------------------------------------------------------
class _Parts(_FakeSegmenter):
    """A parts model (nucleus / cytoplasm classes), no red-cell morphology."""

    classes, card, working_scale, diameter_px, tta, morphology = (
        ["background", "nucleus", "cytoplasm"], {}, 32.0, None, "d4", False)


class _Detector(_FakeSegmenter):
    def __init__(self, device="cpu", tta=None, morphology=True, **_):
        super().__init__(device)
        self.tta, self.morphology = tta or "d4", bool(morphology)


def _wbc_parts_model(monkeypatch):
    from cellviewer.core import segment
    from cellviewer.core.wbcparts import WbcPartsSegmenter

    def make(device="cpu", **opts):
        return WbcPartsSegmenter(lambda **o: _Parts(device), dict(opts, device=device), detector="fake-det")

    monkeypatch.setitem(segment._FACTORIES, "fake-parts", make)
    monkeypatch.setitem(segment._FACTORIES, "fake-det", _Detector)


def test_the_wbc_parts_model_records_its_detectors_tta_and_morphology(fakes, tmp_path, monkeypatch, capsys):  # noqa: F811
    _wbc_parts_model(monkeypatch)
    inputs = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out), "--model", "fake-parts"]) == 0
    opts = _run_json(out)["options"]
    assert opts["tta"] == "d4" and opts["morphology"] is True  # the card's own, as the report says
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out), "--model", "fake-parts",
                     "--tta", "flips", "--no-morphology"]) == 0
    assert "does not apply" not in capsys.readouterr().err
    opts = _run_json(out)["options"]
    assert opts["tta"] == "flips" and opts["tta_given"] == "flips" and opts["morphology"] is False


# -- 4. a reused folder: the earlier run's files are set aside together -------------------------------------
def test_a_reused_folder_sets_the_earlier_run_aside_together(fakes, tmp_path, monkeypatch, capsys):  # noqa: F811
    inputs = _write_inputs(tmp_path / "in")
    (inputs / "broken.png").unlink()
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out), "-q"]) == 0
    first = {n: (out / n).read_bytes() for n in ("run.json", "counts.csv", "cells.csv", "report.pdf")}
    seen, real = [], _FakeSegmenter.segment

    def segment(self, image, cancel=None):  # what a kill -9 while it analyses its first image leaves
        seen.append({p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")})
        return (yield from real(self, image, cancel))

    monkeypatch.setattr(_FakeSegmenter, "segment", segment)
    assert cli.main(["analyze", str(inputs / "two.png"), "--out", str(out)]) == 0
    mid = seen[0]
    assert not {"counts.csv", "cells.csv", "report.pdf"} & set(mid)  # no earlier row passes for this run's
    assert json.loads(mid["run.json"])["status"] == "running"
    assert {n: mid[n.replace(".", "-earlier-run.", 1)] for n in first} == first  # the earlier run, one set
    err = capsys.readouterr().err
    assert "kept as counts-earlier-run.csv" in err and "kept as run-earlier-run.json" in err
    assert [r[0] for r in _read_csv(out / "counts.csv")[1:]] == ["two.png"]
    assert (out / "counts-earlier-run.csv").read_bytes() == first["counts.csv"]
    # the next run's set gets the next number, for every file of the set
    monkeypatch.setattr(_FakeSegmenter, "segment", real)
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out), "-q"]) == 0
    assert all((out / f"{s}-earlier-run-2{e}").is_file() for s, e in (("run", ".json"), ("counts", ".csv"),
                                                                       ("cells", ".csv"), ("report", ".pdf")))


# -- 5. the output-folder lock -------------------------------------------------------------------------------
def test_a_second_run_into_the_same_folder_is_refused(fakes, tmp_path, monkeypatch, capsys):  # noqa: F811
    inputs = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    second, real = [], _FakeSegmenter.segment

    def segment(self, image, cancel=None):  # a second run starts while the first is at work
        if not second:
            second.append(cli.main(["analyze", str(inputs / "two.png"), "--out", str(out), "-q"]))
            second.append(capsys.readouterr().err)
        return (yield from real(self, image, cancel))

    monkeypatch.setattr(_FakeSegmenter, "segment", segment)
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out), "-q"]) == 0
    assert second[0] == 2
    assert f"process {os.getpid()}" in second[1] and "--out" in second[1] and str(out / LOCK) in second[1]
    assert [r[0] for r in _read_csv(out / "counts.csv")[1:]] == ["one.png"]  # the first run's, whole
    assert not (out / LOCK).exists()  # released at the end


def test_a_live_lock_refuses_and_a_stale_one_is_taken_over(fakes, tmp_path, capsys):  # noqa: F811
    import socket

    inputs = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    lock = out / LOCK
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "since": "then"}))
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"process {os.getppid()}" in err and "choose another folder with --out" in err
    assert sorted(p.name for p in out.iterdir()) == [LOCK]  # nothing touched (not even a masks folder left)
    lock.write_text(json.dumps({"pid": 999999999, "host": socket.gethostname(), "since": "then"}))
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "took over the lock" in err and "process 999999999" in err
    assert not lock.exists() and _run_json(out)["status"] == "complete"


# -- 6. remaining.txt and a name holding a line break -------------------------------------------------------
def test_a_name_with_a_line_break_is_named_not_broken_in_remaining_txt(fakes, tmp_path, monkeypatch, capsys):  # noqa: F811
    from cellviewer.commands.analyze_run import read_list

    inputs = _write_inputs(tmp_path / "in")
    (inputs / "broken.png").unlink()
    Image.fromarray(_smear(seed=3)).save(inputs / "a\nb.png")
    interrupt_on_image(monkeypatch, 1, ctrl_c)
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs), "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"{inputs}/a\\nb.png cannot be listed in remaining.txt" in err
    assert read_list(str(out / "remaining.txt")) == [str(inputs / "one.png"), str(inputs / "two.png")]
    assert str(inputs / "a\nb.png") in _run_json(out)["remaining"]  # run.json still lists it
