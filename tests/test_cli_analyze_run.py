"""``cellviewer analyze`` and its output folder: the finish command after Ctrl-C repeats the run's options,
earlier reports are never lost, a run that analyses nothing leaves the earlier outputs, run.json says
"running" while a run is on, dead temp files are swept, case-insensitive mask names, --from-list with a BOM,
and the note about --tta on a classical segmenter."""

import json
import os
import shlex

from PIL import Image

from cellviewer import cli
from cellviewer.commands.analyze_run import finish_command, unique_stem
from tests.test_cli import (_FakeSegmenter, _read_csv, _smear, _write_inputs, ctrl_c, fakes,  # noqa: F401
                            interrupt_on_image)


def _any_options(monkeypatch):
    """The fake segmenter, taking every option a real one takes."""
    from cellviewer.core import segment

    monkeypatch.setitem(segment._FACTORIES, "fake", lambda device="cpu", **kw: _FakeSegmenter(device))


def test_the_finish_command_repeats_every_option_of_the_run(fakes, tmp_path, monkeypatch, capsys):  # noqa: F811
    _any_options(monkeypatch)
    inputs = _write_inputs(tmp_path / "in")
    real = _FakeSegmenter.segment
    interrupt_on_image(monkeypatch, 2, ctrl_c)
    out = tmp_path / "out dir"
    argv = ["analyze", str(inputs), "--out", str(out), "--tta", "d4", "--border-cells", "inside",
            "--no-morphology", "--diameter-px", "31.5", "--um-per-px", "0.1", "--device", "cpu",
            "--report-pages", "7", "-q"]
    assert cli.main(argv) == 130
    line = next(ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("cellviewer: interrupted"))
    cmd = line.split("left into another folder: ", 1)[1].split(" (or run the same command", 1)[0]
    words = shlex.split(cmd)
    assert words[:2] == ["cellviewer", "analyze"]
    again = cli.build_parser().parse_args(words[1:])
    first = cli.build_parser().parse_args(argv + ["--model", "fake"])  # the model actually used is named
    skip = {"inputs", "from_list", "out"}
    assert {k: v for k, v in vars(again).items() if k not in skip} == \
        {k: v for k, v in vars(first).items() if k not in skip}
    assert again.from_list == str(out / "remaining.txt") and again.out == str(out) + "-rest"
    # and it runs as printed
    monkeypatch.setattr(_FakeSegmenter, "segment", real)
    assert cli.main(words[1:]) == 0
    opts = json.loads((tmp_path / "out dir-rest" / "run.json").read_text())["options"]
    assert opts["border_cells"] == "inside" and opts["diameter_px"] == 31.5 and opts["tta_given"] == "d4"


def test_finish_command_leaves_out_options_not_given():
    args = cli.build_parser().parse_args(["analyze", "x.png", "--out", "o"])
    words = shlex.split(finish_command(args, "classical", "o/remaining.txt", "o-rest"))
    assert "--tta" not in words and "--diameter-px" not in words and "--no-morphology" not in words
    assert words[words.index("--model") + 1] == "classical"
    big = cli.build_parser().parse_args(["analyze", "x.png", "--out", "o", "--diameter-px", "5000"])
    assert "5000" in shlex.split(finish_command(big, "m", "l", "o"))


def test_no_earlier_report_is_lost_over_three_runs(fakes, tmp_path, capsys):  # noqa: F811
    inputs = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    reports = []
    for name in ("one.png", "two.png", "one.png"):
        assert cli.main(["analyze", str(inputs / name), "--out", str(out), "--report-pages", str(len(reports))]) == 0
        reports.append((out / "report.pdf").read_bytes())
    err = capsys.readouterr().err
    assert "kept as report-earlier-run.pdf" in err and "kept as report-earlier-run-2.pdf" in err
    assert (out / "report-earlier-run.pdf").read_bytes() == reports[0]
    assert (out / "report-earlier-run-2.pdf").read_bytes() == reports[1]


def test_a_run_that_analyses_nothing_leaves_the_earlier_outputs(fakes, tmp_path, capsys):  # noqa: F811
    inputs = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs / "one.png"), str(inputs / "two.png"), "--out", str(out), "-q"]) == 0
    before = {n: (out / n).read_bytes() for n in ("counts.csv", "cells.csv", "run.json", "report.pdf")}
    capsys.readouterr()
    assert cli.main(["analyze", str(inputs / "broken.png"), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "no image was analysed" in err and "left as they were" in err
    assert {n: (out / n).read_bytes() for n in before} == before
    assert not (out / "report-earlier-run.pdf").exists()
    # into a fresh folder the (empty) CSVs are still written
    assert cli.main(["analyze", str(inputs / "broken.png"), "--out", str(tmp_path / "new"), "-q"]) == 3
    assert _read_csv(tmp_path / "new" / "counts.csv") == [["image", "rbc", "wbc", "platelets"]]


def test_run_json_says_running_while_the_run_is_on_and_dead_temps_are_swept(fakes, tmp_path, monkeypatch,
                                                                             capsys):  # noqa: F811
    inputs = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    dead = out / ".counts.csv.999999999.0123abcd.tmp"  # no such process
    dead.write_text("image,rbc\n")
    (out / ".cells.csv.999999998.89abcdef.tmp").write_text("x")
    alive = out / f".cells.csv.{os.getppid()}.deadbeef.tmp"  # a live process's: not ours to remove
    alive.write_text("x")
    seen, real = [], _FakeSegmenter.segment

    def segment(self, image, cancel=None):
        seen.append(json.loads((out / "run.json").read_text())["status"])
        return (yield from real(self, image, cancel))

    monkeypatch.setattr(_FakeSegmenter, "segment", segment)
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out)]) == 0
    assert seen == ["running"] and json.loads((out / "run.json").read_text())["status"] == "complete"
    assert not dead.exists() and not (out / ".cells.csv.999999998.89abcdef.tmp").exists() and alive.exists()
    assert "temporary file of an earlier run" in capsys.readouterr().err


def test_mask_names_differ_in_more_than_letter_case(fakes, tmp_path):  # noqa: F811
    assert [unique_stem(s, used := set()) for s in ("x",)] == ["x"]
    used = set()
    assert [unique_stem(s, used) for s in ("x", "X", "x_2", "X")] == ["x", "X_2", "x_2_2", "X_3"]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    Image.fromarray(_smear(seed=1)).save(a / "x.png")
    Image.fromarray(_smear(seed=2)).save(b / "X.png")
    out = tmp_path / "out"
    assert cli.main(["analyze", str(a / "x.png"), str(b / "X.png"), "--out", str(out), "-q"]) == 0
    assert [r[0] for r in _read_csv(out / "counts.csv")[1:]] == ["x.png", "X_2.png"]
    assert sorted(os.listdir(out / "masks")) == ["X_2.png", "x.png"]


def test_a_list_file_with_a_byte_order_mark(fakes, tmp_path):  # noqa: F811
    inputs = _write_inputs(tmp_path / "in")
    lst = tmp_path / "list.txt"
    lst.write_bytes(("\ufeff" + str(inputs / "one.png") + "\r\n" + str(inputs / "two.png") + "\r\n").encode("utf-8"))
    out = tmp_path / "out"
    assert cli.main(["analyze", "--from-list", str(lst), "--out", str(out), "-q"]) == 0
    assert [r[0] for r in _read_csv(out / "counts.csv")[1:]] == ["one.png", "two.png"]


def test_tta_on_a_classical_segmenter_is_a_note_and_morphology_is_recorded_as_done(fakes, tmp_path, monkeypatch,
                                                                                 capsys):  # noqa: F811
    _any_options(monkeypatch)
    inputs = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out), "--tta", "d4"]) == 0
    notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("cellviewer: note:")]
    assert any("--tta d4 does not apply to classical segmenters" in n for n in notes)
    opts = json.loads((out / "run.json").read_text())["options"]
    assert opts["morphology"] is False and opts["tta"] == "none"  # the fake classifies no red cell
    monkeypatch.setattr(_FakeSegmenter, "morphology", True, raising=False)
    monkeypatch.setattr(_FakeSegmenter, "tta", "none", raising=False)
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out), "--tta", "none"]) == 0
    assert "does not apply" not in capsys.readouterr().err
    assert json.loads((out / "run.json").read_text())["options"]["morphology"] is True


def test_a_list_names_images_from_the_working_folder_or_else_from_its_own(tmp_path, monkeypatch):
    """A relative line is a path from the working directory; one found only beside the list (a list written
    next to its images, used from elsewhere) is taken from there; absolute and missing lines stay as they are."""
    from cellviewer.commands.analyze_run import read_list

    (tmp_path / "batch").mkdir()
    (tmp_path / "batch" / "a.png").write_bytes(b"x")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "b.png").write_bytes(b"x")
    lst = tmp_path / "batch" / "list.txt"
    lst.write_text(f"a.png\nb.png\n{tmp_path / 'batch' / 'a.png'}\nnone.png\n")
    monkeypatch.chdir(tmp_path / "work")
    assert read_list(str(lst)) == [str(tmp_path / "batch" / "a.png"), "b.png", str(tmp_path / "batch" / "a.png"),
                                   "none.png"]
