"""``cellviewer export``: reviewed sidecars become a training set; exit codes for skipped / nothing exported."""

import json

from cellviewer import cli
from tests.synthdocs import random_doc, saved_doc


def _images(tmp_path, reviewed):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k, rev in enumerate(reviewed):
        saved_doc(folder / f"img{k}.png", random_doc(k), reviewed=rev)
    return folder


def test_export_reviewed_images_both_formats(tmp_path, capsys):
    folder = _images(tmp_path, [True, True, True, False])
    out = tmp_path / "out"
    assert cli.main(["export", str(folder), "--out", str(out), "-q"]) == 1  # one image skipped
    cap = capsys.readouterr()
    assert "skipped" in cap.err and "img3.png: not marked reviewed" in cap.err
    assert "exported 3 images" in cap.out and "1 test" in cap.out
    assert (out / "images.csv").is_file() and (out / "labels" / "img0_rbc.png").is_file()
    assert len(json.loads((out / "coco.json").read_text())["images"]) == 3
    assert cli.main(["export", str(folder), "--out", str(tmp_path / "all"), "--all", "--format", "coco",
                     "--tile", "48", "-q"]) == 0
    assert not (tmp_path / "all" / "labels").exists()
    assert len(json.loads((tmp_path / "all" / "coco.json").read_text())["images"]) == 4 * 4


def test_nothing_reviewed_and_usage_errors(tmp_path, capsys):
    folder = _images(tmp_path, [False])
    assert cli.main(["export", str(folder), "--out", str(tmp_path / "o")]) == 1
    assert "nothing was exported" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # no empty folders left behind
    (tmp_path / "kept").mkdir()
    assert cli.main(["export", str(folder), "--out", str(tmp_path / "kept"), "-q"]) == 1
    assert (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())  # a folder that was there stays
    assert cli.main(["export", str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")]) == 3
    assert cli.main(["export", str(folder), "--out", str(tmp_path / "o"), "--holdout", "0.9", "--val", "0.2"]) == 2
    assert cli.main(["export", str(folder), "--out", str(tmp_path / "o"), "--format", "yolo"]) == 2


def test_export_into_an_earlier_export_merges_and_bad_tiles_are_usage_errors(tmp_path, capsys):
    folder = _images(tmp_path, [True, True, True])
    out = tmp_path / "out"
    assert cli.main(["export", str(folder / "img0.png"), str(folder / "img1.png"), "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    assert cli.main(["export", str(folder), "--out", str(out), "-q"]) == 0  # img0, img1 again + img2
    assert "1 new, 2 exported again (replaced), 0 kept; 3 images in all" in capsys.readouterr().out
    assert len(json.loads((out / "coco.json").read_text())["images"]) == 3
    assert len((out / "images.csv").read_text().splitlines()) == 1 + 3
    # a tile too small, or other options than the earlier export's: exit 2, saying what to give
    assert cli.main(["export", str(folder), "--out", str(tmp_path / "t"), "--tile", "8"]) == 2
    assert "--tile 16 px or more" in capsys.readouterr().err
    assert cli.main(["export", str(folder), "--out", str(out), "--tile", "48", "-q"]) == 2
    err = capsys.readouterr().err
    assert "holds an export made with --format both" in err and "another folder" in err
    assert len(err.strip().splitlines()) == 1
