"""`cellviewer analyze` on every hostile image: the documented exit code, one clear line, no traceback.

Exit codes (README): 0 every image analysed; 3 the one image given is unreadable; 1 a batch
had a bad file (each listed as ``cellviewer: skipped FILE: REASON``); 2 nothing to analyse;
5 the output cannot be written. The "classical" segmenter keeps this fast.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cellviewer import cli
from tests.hostile.corpus import EITHER, OK, cases_of, encode, smear

REPO = Path(__file__).resolve().parents[2]
ARGS = ["--model", "classical", "--device", "cpu"]
CLI_CASES = cases_of("image", "path")


def _allowed(case) -> tuple:
    return case.exit_code if isinstance(case.exit_code, tuple) else (case.exit_code,)


def _cv_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("cellviewer:")]


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.name[:60])
def test_analyze_one_hostile_file(case, tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli.main(["analyze", str(case.path), "--out", str(out), *ARGS])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.out + cap.err
    assert rc in _allowed(case), f"{case.name} ({case.note}): exit {rc}, expected {case.exit_code}\n{cap.err}"
    lines = _cv_lines(cap.err)
    if rc == 0:  # at most a note (a greyscale image: white cells and platelets may be missed)
        assert all(ln.startswith("cellviewer: note: ") for ln in lines), cap.err
        stem = os.path.splitext(case.path.name)[0]
        assert (out / "masks" / f"{stem}.png").is_file()
        assert len(_rows(out / "counts.csv")) == 2 and (out / "report.pdf").is_file()
    else:
        assert len(lines) == 1, f"expected one cellviewer: line, got\n{cap.err}"
        assert case.path.name[:40] in lines[0] or rc == 2, lines[0]  # names the bad file
        assert len(lines[0]) > len("cellviewer: error: ") + 20  # and says something


def test_loadable_ones_have_their_documented_code():
    """The corpus itself: every image io must load is expected to analyse with 0 (or to be
    refused as too small to segment, with its own code), every bad one with 3."""
    for c in cases_of("image"):
        if c.expected == OK:
            assert 0 in _allowed(c)
        elif c.expected != EITHER:
            assert _allowed(c) == (3,), c.name


@pytest.mark.parametrize("name", ["zero_bytes.png", "bomb_header.png", "trunc_40pct.jpg",
                                  "nonascii_смесь_血液_ü.png", "symlink_loop.png"])
def test_analyze_in_a_real_process(name, tmp_path):
    case = next(c for c in CLI_CASES if c.name == name)
    r = subprocess.run([sys.executable, "-m", "cellviewer", "analyze", str(case.path), "--out", str(tmp_path / "o"),
                        *ARGS], cwd=REPO, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONIOENCODING="utf-8"))
    assert "Traceback" not in r.stdout + r.stderr
    assert r.returncode in _allowed(case), r.stderr
    if r.returncode:
        assert len(_cv_lines(r.stderr)) == 1, r.stderr


def test_whole_folder_batch_lists_every_bad_file_and_writes_the_good_ones(corpus, tmp_path, capsys):
    images = [c for c in corpus if c.kind == "image"]
    folder = images[0].path.parent
    assert {p.name for p in folder.iterdir()} == {c.path.name for c in images}
    out = tmp_path / "out"
    rc = cli.main(["analyze", str(folder), "--out", str(out), *ARGS])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.out + cap.err
    assert rc == 1
    skipped = [ln for ln in _cv_lines(cap.err) if ln.startswith("cellviewer: skipped")]
    notes = [ln for ln in _cv_lines(cap.err) if ln.startswith("cellviewer: note: ")]
    assert len(skipped) + len(notes) == len(_cv_lines(cap.err))  # nothing but the skipped files and notes
    listed = {c.name for c in images if any(str(c.path) in ln for ln in skipped)}
    written = {r[0] for r in _rows(out / "counts.csv")[1:]}
    for c in images:
        n = sum(str(c.path) + ":" in ln for ln in skipped)
        assert n <= 1, f"{c.name} listed {n} times"
        if c.bad:
            assert c.name in listed, f"{c.name} ({c.note}) not listed"
        elif c.expected == OK and 7 not in _allowed(c):
            assert c.name in written, f"{c.name} ({c.note}) not analysed"
        assert (c.name in listed) != (c.name in written), c.name
    stems = {os.path.splitext(n)[0] for n in written}
    assert {p.stem for p in (out / "masks").iterdir()} == stems
    assert (out / "report.pdf").stat().st_size > 1000 and (out / "classes.json").is_file()
    assert f"analyzed {len(written)} of {len(images)} images" in cap.out
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_odd_files_in_a_folder_are_listed_not_hidden(tmp_path, capsys):
    """A symlink loop, a dangling link and a FIFO named *.png are reported; a sub-folder, a hidden file and a
    text file are not images, and one note line names them (the parsing keeps the two kinds of line apart)."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.png").write_bytes(encode(smear(), "PNG"))
    os.symlink("loop.png", folder / "loop.png")
    os.symlink("nowhere.png", folder / "dangling.png")
    os.mkfifo(folder / "fifo.png")
    (folder / "sub.png").mkdir()
    (folder / ".hidden.png").write_bytes(encode(smear(), "PNG"))
    (folder / "notes.txt").write_text("not an image")
    rc = cli.main(["analyze", str(folder), "--out", str(tmp_path / "out"), *ARGS])
    cap = capsys.readouterr()
    assert rc == 1 and "Traceback" not in cap.err
    lines = _cv_lines(cap.err)
    skipped = [ln for ln in lines if ln.startswith("cellviewer: skipped ")]
    notes = [ln for ln in lines if ln.startswith("cellviewer: note: ")]
    assert len(skipped) + len(notes) == len(lines), cap.err  # nothing but skipped files and notes
    # every bad file is named on its own line ...
    assert sorted(Path(ln[len("cellviewer: skipped "):].split(":")[0]).name for ln in skipped) == \
        ["dangling.png", "fifo.png", "loop.png"], cap.err
    # ... and what the walk passed over (a sub-folder, a hidden file, a text file) in one note naming each
    passed = [ln for ln in notes if "passed over" in ln]
    assert len(passed) == 1 and all(n in passed[0] for n in ("sub.png/", ".hidden.png", "notes.txt")), cap.err
    assert _rows(tmp_path / "out" / "counts.csv")[1][0] == "good.png"


def test_unwritable_output_is_exit_5_with_one_line(tmp_path, capsys):
    img = tmp_path / "good.png"
    img.write_bytes(encode(smear(), "PNG"))
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should go")
    assert cli.main(["analyze", str(img), "--out", str(blocker), *ARGS]) == 5
    err = capsys.readouterr().err
    assert len(_cv_lines(err)) == 1 and "Traceback" not in err and "--out" in err


def test_disk_full_while_writing_masks_is_exit_5(tmp_path, capsys, monkeypatch):
    from cellviewer.core import io

    img = tmp_path / "good.png"
    img.write_bytes(encode(smear(), "PNG"))

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.os, "replace", full)
    assert cli.main(["analyze", str(img), "--out", str(tmp_path / "out"), *ARGS]) == 5
    err = capsys.readouterr().err
    lines = _cv_lines(err)
    assert len(lines) == 1 and "No space left" in lines[0] and "Traceback" not in err
    monkeypatch.undo()
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".tmp")]


def test_read_only_image_folder_still_analyses(tmp_path, capsys, monkeypatch):
    """analyze never writes beside the images: a read-only input folder is fine (simulated: root
    ignores permissions, so every write under it is refused by a patched open)."""
    src = tmp_path / "ro"
    src.mkdir()
    shutil.copy(cases_of("image")[0].path.parent / "png_named.jpg", src / "a.jpg")
    real_open = os.open

    def guarded(path, flags, *a, **k):
        if str(path).startswith(str(src)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", guarded)
    assert cli.main(["analyze", str(src), "--out", str(tmp_path / "out"), *ARGS]) == 0
    assert "Traceback" not in capsys.readouterr().err
