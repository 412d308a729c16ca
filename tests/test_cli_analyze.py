"""``cellviewer analyze``: Ctrl-C says what was written and how to finish, an earlier report is kept, masks
before rows, the tta used in run.json, what a folder walk passes over, and option errors (exit 2); an error
ends a run as "failed"; a file name that is not UTF-8 is analysed and written readable."""

import json
import re

import numpy as np
from PIL import Image

from cellviewer import cli
from tests.test_cli import (_FakeSegmenter, _read_csv, _smear, _write_inputs, ctrl_c, fakes,  # noqa: F401
                            interrupt_on_image)


def test_ctrl_c_says_what_was_written_and_how_to_finish(fakes, tmp_path, monkeypatch, capsys):  # noqa: F811
    inputs = _write_inputs(tmp_path / "in")
    real = _FakeSegmenter.segment
    interrupt_on_image(monkeypatch, 2, ctrl_c)
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs), "--out", str(out), "--device", "cpu"]) == 130
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if ln.startswith("cellviewer: interrupted"))
    assert "1 of 3 images analyzed" in line and "counts.csv" in line and "report.pdf was not written" in line
    assert f"--from-list {out / 'remaining.txt'}" in line
    assert (out / "remaining.txt").read_text().splitlines() == [str(inputs / "two.png")]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["remaining"] == [str(inputs / "two.png")]
    assert [r[0] for r in _read_csv(out / "counts.csv")[1:]] == ["one.png"] and not (out / "report.pdf").exists()
    assert json.loads((out / "classes.json").read_text())  # the masks written so far can be read
    # the command it names finishes the job
    monkeypatch.setattr(_FakeSegmenter, "segment", real)
    assert cli.main(["analyze", "--from-list", str(out / "remaining.txt"), "--out", str(tmp_path / "rest"), "-q"]) == 0
    assert [r[0] for r in _read_csv(tmp_path / "rest" / "counts.csv")[1:]] == ["two.png"]
    assert json.loads((tmp_path / "rest" / "run.json").read_text())["remaining"] == []
    # a later complete run into the first folder drops the stale list
    assert cli.main(["analyze", str(inputs), "--out", str(out), "-q"]) == 1  # broken.png is still broken
    assert not (out / "remaining.txt").exists() and json.loads((out / "run.json").read_text())["status"] == "complete"


def test_an_earlier_report_is_kept_not_overwritten(fakes, tmp_path, capsys):  # noqa: F811
    inputs = _write_inputs(tmp_path / "in")
    (inputs / "broken.png").unlink()
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out), "-q"]) == 0
    first = (out / "report.pdf").read_bytes()
    assert cli.main(["analyze", str(inputs / "two.png"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "holds an earlier run" in err and "kept as report-earlier-run.pdf" in err
    assert (out / "report-earlier-run.pdf").read_bytes() == first and (out / "report.pdf").read_bytes() != first


def test_ctrl_c_before_the_first_image_leaves_an_earlier_run_as_it_was(fakes, tmp_path, monkeypatch, capsys):  # noqa: F811
    inputs = _write_inputs(tmp_path / "in")
    (inputs / "broken.png").unlink()
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs), "--out", str(out), "-q"]) == 0
    (out / "remaining.txt").write_text("/somewhere/left.png\n")  # (as an interrupted earlier run leaves it)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    interrupt_on_image(monkeypatch, 1, ctrl_c)
    assert cli.main(["analyze", str(inputs), "--out", str(out)]) == 130
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # CSVs, run.json, classes.json, report.pdf and remaining.txt as they were
    line = next(ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("cellviewer: interrupted"))
    assert "before any image was analyzed" in line and "as they were" in line and "--from-list" not in line


def _disk_full_at_second_mask(fakes) -> None:
    """Writing the mask of image "two" fails as on a full disk."""
    real = fakes.write_png

    def write_png(path, arr):
        if "two" in str(path):
            raise OSError(28, "No space left on device")
        real(path, arr)

    fakes.write_png = write_png


def test_a_mask_is_written_before_its_rows(fakes, tmp_path, capsys):  # noqa: F811
    """Writing the second mask fails (disk full): the CSVs name only images whose mask is there."""
    inputs = _write_inputs(tmp_path / "in")
    _disk_full_at_second_mask(fakes)
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs), "--out", str(out), "-q"]) != 0
    capsys.readouterr()
    for table in ("counts.csv", "cells.csv"):
        names = {r[0] for r in _read_csv(out / table)[1:]}
        assert names == {"one.png"} and all((out / "masks" / n).is_file() for n in names)


def test_run_json_records_the_tta_used(fakes, tmp_path, monkeypatch):  # noqa: F811
    inputs = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out), "-q"]) == 0
    opts = json.loads((out / "run.json").read_text())["options"]
    assert opts["tta"] == "none" and opts["tta_given"] is None  # no test-time augmentation in this model
    monkeypatch.setattr(_FakeSegmenter, "tta", "d4", raising=False)  # e.g. the card's own choice
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out), "-q"]) == 0
    assert json.loads((out / "run.json").read_text())["options"]["tta"] == "d4"


def test_a_jobs_note_is_said_when_the_image_starts(fakes, tmp_path, monkeypatch, capsys):  # noqa: F811
    from cellviewer.core.jobs import Progress

    inner = _FakeSegmenter.segment

    def noting(self, image, cancel=None):
        yield Progress(0.05, "enlarged", note="red cells of 4.0 px are enlarged 8.0×")
        return (yield from inner(self, image, cancel))

    monkeypatch.setattr(_FakeSegmenter, "segment", noting)
    inputs = _write_inputs(tmp_path / "in")
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.splitlines()
    notes = [ln for ln in err if ln.startswith("cellviewer: note:")]
    assert notes == [f"cellviewer: note: {inputs / 'one.png'}: red cells of 4.0 px are enlarged 8.0×"]
    assert err.index(notes[0]) < next(i for i, ln in enumerate(err) if ln.startswith("[1/1]"))  # before its result


def test_what_a_folder_walk_passes_over_is_one_note(fakes, tmp_path, capsys):  # noqa: F811
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(_smear(seed=1)).save(folder / "one.png")
    (folder / "raw").mkdir()
    (folder / ".one.png").write_bytes((folder / "one.png").read_bytes())
    (folder / "notes.txt").write_text("x")
    assert cli.main(["analyze", str(folder), "--out", str(tmp_path / "out")]) == 0
    notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("cellviewer: note:")]
    assert len(notes) == 1 and "passed over 3 entries" in notes[0]
    assert all(n in notes[0] for n in ("raw/", ".one.png", "notes.txt", "sub-folder"))


def test_passed_over_summary_names_a_few_and_counts_the_rest(tmp_path):
    from cellviewer.core.folderwalk import passed_over

    for i in range(9):
        (tmp_path / f"f{i}.txt").write_text("x")
    (tmp_path / "a.png").write_text("x")
    p = passed_over([tmp_path, tmp_path / "a.png"], (".png",))
    assert len(p) == 9 and not p.folders and not p.hidden
    assert "9 files without an image suffix: f0.txt" in p.summary() and "and 3 more" in p.summary()
    assert len(passed_over([tmp_path / "a.png"], (".png",))) == 0  # a file named directly is taken


def test_options_out_of_range_are_usage_errors_with_what_to_give(tmp_path, capsys, monkeypatch):
    import torch

    img = tmp_path / "one.png"
    Image.fromarray(_smear(seed=1)).save(img)
    out = tmp_path / "out"
    assert cli.main(["analyze", str(img), "--out", str(out), "--model", "classical", "--diameter-px", "3000"]) == 2
    err = capsys.readouterr().err
    assert "out of range" in err and "between 4 and 2000 px" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["analyze", str(img), "--out", str(out), "--model", "classical", "--diameter-px", "2001"]) == 2
    assert "diameter 2001 px is out of range" in capsys.readouterr().err  # not rounded to "2000", the limit
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["analyze", str(img), "--out", str(out), "--model", "classical", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "--device cpu" in err
    assert not out.exists()  # refused before anything was written


def test_an_estimated_size_out_of_range_falls_back_instead_of_failing():
    from cellviewer.core import classical

    fg = np.zeros((64, 64), bool)
    d, how = classical._estimate_scale(fg, fg)
    assert how == "fallback" and classical.MIN_DIAMETER_PX <= d <= classical.MAX_DIAMETER_PX


def test_an_error_that_ends_the_run_is_failed_not_interrupted(fakes, tmp_path, capsys):  # noqa: F811
    inputs = _write_inputs(tmp_path / "in")
    _disk_full_at_second_mask(fakes)
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and "No space left on device" in run["error"]
    assert run["remaining"] == [str(inputs / "two.png")] and [i["name"] for i in run["images"]] == ["one.png"]
    assert "run.json says 'failed'" in err and "No space left on device" in err
    assert not (out / "remaining.txt").exists()  # (that list is for an interrupted run's --from-list)


def test_a_file_name_that_is_not_utf8_is_analysed_and_written_readable(fakes, tmp_path, monkeypatch, capsys):  # noqa: F811
    import os

    inputs = _write_inputs(tmp_path / "in")
    (inputs / "broken.png").unlink()
    latin = os.fsdecode(b"caf\xe9.png")  # bytes that are not UTF-8, as a Latin-1 system names a file
    os.replace(inputs / "one.png", inputs / latin)
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "caf\\xe9.png: " in err  # its progress line, in the readable form
    assert [r[0] for r in _read_csv(out / "counts.csv")[1:]] == ["caf\\xe9.png", "two.png"]
    assert {r[0] for r in _read_csv(out / "cells.csv")[1:]} == {"caf\\xe9.png", "two.png"}
    raw = (out / "run.json").read_bytes()
    run = json.loads(raw.decode("utf-8"))  # valid UTF-8 JSON, no lone surrogate
    assert run["status"] == "complete" and run["images"][0]["name"] == "caf\\xe9.png"
    assert (out / "masks" / os.path.splitext(latin)[0]).with_suffix(".png").is_file()  # the mask keeps the bytes
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    # interrupted before it: remaining.txt keeps the file's own bytes, and --from-list finds it again
    real = _FakeSegmenter.segment
    interrupt_on_image(monkeypatch, 1, ctrl_c)
    assert cli.main(["analyze", str(inputs / latin), str(inputs / "two.png"), "--out", str(tmp_path / "o2")]) == 130
    assert (tmp_path / "o2" / "remaining.txt").read_bytes().splitlines()[0] == os.fsencode(str(inputs / latin))
    monkeypatch.setattr(_FakeSegmenter, "segment", real)
    assert cli.main(["analyze", "--from-list", str(tmp_path / "o2" / "remaining.txt"), "--out",
                     str(tmp_path / "o3"), "-q"]) == 0
    assert [r[0] for r in _read_csv(tmp_path / "o3" / "counts.csv")[1:]] == ["caf\\xe9.png", "two.png"]


def test_no_detail_pages_for_one_image_is_the_summary_page(fakes, tmp_path):  # noqa: F811
    inputs = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out), "--report-pages", "0", "-q"]) == 0
    data = (out / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page(?![s\w])", data)) == 1


def test_remaining_txt_finishes_the_run_from_another_folder(fakes, tmp_path, monkeypatch, capsys):  # noqa: F811
    """Images named relative to where the run started are listed with absolute paths in remaining.txt, so the
    list works wherever it is used from."""
    _write_inputs(tmp_path / "in")
    real = _FakeSegmenter.segment
    interrupt_on_image(monkeypatch, 2, ctrl_c)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["analyze", "in/one.png", "in/two.png", "--out", "out", "--device", "cpu"]) == 130
    capsys.readouterr()
    assert (tmp_path / "out" / "remaining.txt").read_text().splitlines() == [str(tmp_path / "in" / "two.png")]
    monkeypatch.setattr(_FakeSegmenter, "segment", real)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert cli.main(["analyze", "--from-list", "../out/remaining.txt", "--out", "rest", "-q"]) == 0
    assert [r[0] for r in _read_csv(tmp_path / "elsewhere" / "rest" / "counts.csv")[1:]] == ["two.png"]


def test_a_model_failing_at_the_first_image_leaves_no_empty_output_folder(fakes, tmp_path, monkeypatch, capsys):  # noqa: F811
    """A model whose weights turn out broken only when it runs (e.g. the cell detector of
    wbc-nucleus-cytoplasm): exit 6, and the output folder the run created is not left behind empty; a folder
    that was there before stays."""
    from cellviewer.core.errors import ModelLoadError

    inputs = _write_inputs(tmp_path / "in")

    def broken(self):  # as WbcPartsSegmenter.tta loads its detector when the run is recorded
        raise ModelLoadError("Weights file 'x.safetensors' does not match its card", hint="copy the model again")

    monkeypatch.setattr(_FakeSegmenter, "tta", property(broken), raising=False)
    out = tmp_path / "out"
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(out), "-q"]) == 6
    assert "does not match its card" in capsys.readouterr().err and not out.exists()
    (tmp_path / "kept").mkdir()
    assert cli.main(["analyze", str(inputs / "one.png"), "--out", str(tmp_path / "kept"), "-q"]) == 6
    assert (tmp_path / "kept").is_dir() and not (tmp_path / "kept" / "masks").exists()
