"""Usage errors exit 2 with a message that says what to do: an export given to evaluate without
``--datasets export`` (and the other way round), an export without val images to train on, an empty
``--json`` name, a file where a folder should be; ``review --csv`` quotes formula-like names."""

import csv

import pytest

from cellviewer import cli
from tests.synthdocs import random_doc, saved_doc


def _export(tmp_path, n):
    from cellviewer.core.export_dataset import export_training_set
    from cellviewer.core.jobs import run_job

    out = tmp_path / "x"
    run_job(export_training_set([random_doc(i) for i in range(n)], out))
    return out


def test_evaluate_an_export_the_wrong_way_is_a_usage_error(tmp_path, capsys):
    out = _export(tmp_path, 3)
    assert cli.main(["evaluate", "--model", "classical", "--data", str(out), "-q"]) == 2
    assert "--datasets export" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["evaluate", "--model", "classical", "--data", str(tmp_path / "empty"), "--datasets", "export",
                     "-q"]) == 2
    err = capsys.readouterr().err
    assert "is not a cellviewer export" in err and "--data DIR" in err


def test_training_on_an_export_without_val_images_says_how_to_get_one(tmp_path, capsys):
    pytest.importorskip("torch")
    out = _export(tmp_path, 2)  # two images: both train
    assert cli.main(["train", "--datasets", "export", "--data", str(out), "--arch", "do-unet", "--net-config",
                     '{"base": 4, "depth": 2}', "--working-scale", "16", "--epochs", "1", "--threads", "1",
                     "--out", str(tmp_path / "m"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "No val images in the export" in err and "export more images" in err and "--val" in err


@pytest.mark.parametrize("cmd", [["evaluate", "--model", "classical"], ["review", "nothing.png"]])
def test_an_empty_output_name_is_a_usage_error(tmp_path, capsys, cmd):
    flag = "--csv" if cmd[0] == "review" else "--json"
    assert cli.main(cmd + [flag, ""]) == 2
    assert "empty file name" in capsys.readouterr().err


def test_a_file_where_the_folder_should_be_is_named_as_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert cli.main(["evaluate", "--model", "classical", "--json", str(tmp_path / "afile" / "e.json")]) == 5
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "does not exist" not in err


def test_review_csv_quotes_names_a_spreadsheet_would_run(tmp_path, capsys):
    p = tmp_path / "=1+1.png"
    saved_doc(p, random_doc(4))
    assert cli.main(["review", str(p), "--csv", str(tmp_path / "q.csv")]) == 0
    with open(tmp_path / "q.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["image"] == "'=1+1.png" for r in rows)
    assert all(not r["x"].startswith("'") for r in rows)


def test_messages_name_what_differs(tmp_path, capsys):
    from cellviewer.core.errors import OptionError
    from cellviewer.core.export_merge import read_prior
    from cellviewer.core.scale import diameter_from

    out = _export(tmp_path, 1)  # untiled, both formats
    with pytest.raises(OptionError) as e:
        read_prior(out, ("shared", "coco"), 256)
    assert e.value.hint.startswith("export without --tile") and "--format" not in e.value.hint
    with pytest.raises(OptionError) as e:
        read_prior(out, ("shared",), None)
    assert "with --format both" in e.value.hint and "tile" not in e.value.hint
    with pytest.raises(OptionError, match="diameter 5000 px"):
        diameter_from(5000.0, None, None)


def test_a_sub_folder_given_by_name_is_not_passed_over(tmp_path):
    from cellviewer.core.folderwalk import passed_over

    (tmp_path / "mix" / "sub").mkdir(parents=True)
    (tmp_path / "mix" / "other").mkdir()
    got = passed_over([str(tmp_path / "mix"), str(tmp_path / "mix" / "sub")], (".png",))
    assert [p.name for p in got.folders] == ["other"]


def test_an_export_in_two_steps_notes_the_empty_split(tmp_path, capsys):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for k in range(2):
        saved_doc(imgs / f"img{k}.png", random_doc(k), reviewed=True)
    assert cli.main(["export", str(imgs), "--out", str(tmp_path / "o"), "-q"]) == 0
    notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("cellviewer: note:")]
    assert any("no test image" in n and "gate" in n for n in notes)


def test_an_unknown_argument_gets_the_commands_usage_and_a_hint_for_a_dash_file(capsys):
    from cellviewer import cli

    assert cli.main(["analyze", "-dash.png", "--out", "o"]) == 2
    err = capsys.readouterr().err
    assert "usage: cellviewer analyze" in err and "write it as ./-dash.png" in err
    assert cli.main(["models", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert "usage: cellviewer models" in err and "unrecognized arguments: --bogus" in err and "./" not in err
