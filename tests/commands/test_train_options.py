"""``cellviewer train``: the card's default name, option errors (exit 2) and where a resume writes."""

import json
import shutil

import pytest

pytest.importorskip("torch")

from cellviewer import cli  # noqa: E402

TINY = ["train", "--datasets", "synthetic", "--arch", "do-unet", "--net-config", '{"base": 4, "depth": 2}',
        "--working-scale", "16", "--steps-per-epoch", "1", "--batch-size", "2", "--threads", "1",
        "--config", '{"synthetic_n": 4, "augment": {"crop": 64}}', "-q"]


def _card(stem) -> dict:
    return json.loads(open(f"{stem}.json", encoding="utf-8").read())


def test_without_name_the_card_is_named_after_out_not_the_shipped_model(tmp_path, capsys):
    out = tmp_path / "x" / "lab"
    assert cli.main(TINY + ["--epochs", "1", "--out", str(out)]) == 0
    assert _card(out)["name"] == "lab" and _card(f"{out}-last")["name"] == "lab"
    # the recorded command does not pin a name: rerun into another --out, it is named after that
    cfg = json.loads(_card(out)["command"].split("--config ", 1)[1].strip("'"))
    assert "name" not in cfg
    # --name still names it (the shipped cards' commands give --name blood-cells)
    named = tmp_path / "y" / "m"
    assert cli.main(TINY + ["--epochs", "1", "--name", "blood-cells", "--out", str(named)]) == 0
    assert _card(named)["name"] == "blood-cells"
    # a resume keeps the checkpoint's name, unless --name is given
    assert cli.main(["train", "--resume", f"{out}-last", "--epochs", "2", "-q"]) == 0
    assert _card(f"{out}-last")["name"] == "lab"
    assert cli.main(["train", "--resume", f"{named}-last", "--epochs", "2", "--out", str(tmp_path / "z" / "other"),
                     "-q"]) == 0
    assert _card(tmp_path / "z" / "other")["name"] == "blood-cells"
    assert cli.main(["train", "--resume", f"{named}-last", "--epochs", "2", "--name", "renamed", "--out",
                     str(tmp_path / "z" / "n"), "-q"]) == 0
    assert _card(tmp_path / "z" / "n")["name"] == _card(tmp_path / "z" / "n-last")["name"] == "renamed"


@pytest.mark.parametrize("bad, says", [
    (["--arch", "no-such-net"], "Unknown network architecture"),
    (["--arch", "unet", "--net-config", '{"encoder": "resnet999"}'], "Unknown encoder"),
    (["--net-config", '{"base": -1, "depth": 2}'], "must be positive"),
    (["--net-config", '{"base": 4, "depth": 2, "no_such_option": 1}'], "no_such_option"),
    (["--arch", "cell-cnn"], "not a segmentation network"),
    (["--datasets", "synthetic", "wbc_seg"], "cannot be mixed"),
    (["--net-config", '{"base": 4, "depth": 2, "n_classes": 3}'], "n_classes 3"),
    (["--net-config", '{"base": 4, "depth": 2, "n_classes": 5}'], "n_classes 5"),
    (["--arch", "unet", "--net-config", '{"encoder": "resnet18", "classes": 2}'], "classes 2"),
])
def test_bad_architecture_options_are_usage_errors_exit_2(tmp_path, capsys, bad, says):
    out = tmp_path / "m"
    assert cli.main(TINY + ["--epochs", "1", "--out", str(out)] + bad) == 2
    err = capsys.readouterr().err
    assert says in err and "error: unexpected" not in err and " — " in err  # says what to do
    assert not (tmp_path / "m.json").exists()


def test_n_classes_equal_to_the_data_s_is_fine(tmp_path, capsys):
    out = tmp_path / "m"
    assert cli.main(TINY + ["--epochs", "1", "--out", str(out), "--net-config",
                            '{"base": 4, "depth": 2, "n_classes": 4}']) == 0
    assert _card(out)["config"]["n_classes"] == 4 and len(_card(out)["classes"]) == 4


def test_resume_refuses_another_arch_or_net_config_and_accepts_the_same(tmp_path, capsys):
    out = tmp_path / "r" / "m"
    assert cli.main(TINY + ["--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    last = (tmp_path / "r" / "m-last.json").read_text()
    for bad, says in ((["--arch", "node-unet"], "is a do-unet network"),
                      (["--net-config", '{"base": 8, "depth": 2}'], "base 4"),
                      (["--net-config", '{"base": 4, "depth": 2, "n_classes": 5}'], "n_classes 4")):
        assert cli.main(["train", "--resume", f"{out}-last", "--epochs", "2", "-q"] + bad) == 2
        err = capsys.readouterr().err
        assert says in err and "--resume" in err and "error: unexpected" not in err
        assert (tmp_path / "r" / "m-last.json").read_text() == last  # nothing written
    # the same net, said again (or as the checkpoint's config says it): fine
    assert cli.main(["train", "--resume", f"{out}-last", "--epochs", "2", "--arch", "do-unet", "--net-config",
                     '{"base": 4, "depth": 2}', "-q"]) == 0
    assert cli.main(["train", "--resume", f"{out}-last", "--epochs", "3", "--net-config",
                     '{"base": 4, "depth": 2, "edge": true, "n_classes": 4}', "-q"]) == 0
    card = _card(f"{out}-last")
    assert card["training"]["state"]["epoch"] == 3 and card["architecture"] == "do-unet"
    assert card["training"]["config"]["net_config"]["base"] == card["config"]["base"] == 4


def test_a_copied_or_moved_run_resumes_where_it_is_now(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(TINY + ["--epochs", "1", "--out", str(run / "m")]) == 0
    capsys.readouterr()
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    assert cli.main(["train", "--resume", str(copy / "m-last"), "--epochs", "2"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["checkpoint"] == str(copy / "m")
    assert f"the best checkpoint goes to {copy / 'm'}" in err and f"{copy / 'm'}-last" in err  # says where
    assert _card(copy / "m-last")["training"]["state"]["epoch"] == 2
    assert _card(copy / "m-last")["training"]["config"]["out"] == str(copy / "m")
    assert _card(run / "m-last")["training"]["state"]["epoch"] == 1  # the original is untouched
    moved = tmp_path / "moved"
    shutil.move(str(run), str(moved))
    assert cli.main(["train", "--resume", str(moved / "m-last.json"), "--epochs", "2", "-q"]) == 0
    assert not run.exists() and _card(moved / "m-last")["training"]["state"]["epoch"] == 2
    # --out still chooses
    assert cli.main(["train", "--resume", str(moved / "m-last"), "--epochs", "3", "--out", str(tmp_path / "o" / "b"),
                     "-q"]) == 0
    assert _card(tmp_path / "o" / "b-last")["training"]["state"]["epoch"] == 3


def test_resuming_a_best_checkpoint_without_out_is_refused_saying_what_to_give(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(TINY + ["--epochs", "1", "--out", str(run / "m")]) == 0
    capsys.readouterr()
    before = (run / "m-last.safetensors").read_bytes()
    # the run's best (its -last beside it): going on into it would overwrite the later epochs (as with --out RUN)
    assert cli.main(["train", "--resume", str(run / "m"), "--epochs", "2", "-q"]) == 2
    assert f"--resume {run / 'm-last'}" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(run / "m"), "--out", str(run / "m"), "--epochs", "2", "-q"]) == 2
    assert "best checkpoint" in capsys.readouterr().err
    assert (run / "m-last.safetensors").read_bytes() == before
    # a lone checkpoint (a shipped model, a copied best one): without --out it would be written over
    lone = tmp_path / "lone"
    lone.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(run / f"m{suffix}", lone / f"bc{suffix}")
    assert cli.main(["train", "--resume", str(lone / "bc"), "--epochs", "2", "-q"]) == 2
    assert "give --out" in capsys.readouterr().err
    assert sorted(p.name for p in lone.iterdir()) == ["bc.json", "bc.safetensors"]
