"""``cellviewer train``: a tiny synthetic run writes a loadable checkpoint; Ctrl-C keeps the best one (exit 130)."""

import json
import os
import signal

import pytest

pytest.importorskip("torch")

from cellviewer import cli  # noqa: E402

TINY = ["train", "--datasets", "synthetic", "--arch", "do-unet", "--net-config", '{"base": 4, "depth": 2}',
        "--working-scale", "16", "--steps-per-epoch", "2", "--batch-size", "2", "--threads", "1",
        "--config", '{"synthetic_n": 4, "augment": {"crop": 64}}', "--name", "tiny"]


def test_tiny_synthetic_run_writes_a_loadable_checkpoint(tmp_path, capsys):
    from cellviewer.nets.checkpoint import load_checkpoint

    out = tmp_path / "tiny"
    assert cli.main(TINY + ["--epochs", "1", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["checkpoint"] == str(out) and summary["epochs_run"] == 1 and summary["stopped"] == "epochs"
    net, card = load_checkpoint(out)
    assert card["name"] == "tiny" and card["working_scale"] == 16
    # the recorded command rebuilds the same configuration
    assert card["command"].startswith("cellviewer train --config ")
    cfg = json.loads(card["command"].split("--config ", 1)[1].strip("'"))
    assert cfg["datasets"] == ["synthetic"] and cfg["net_config"] == {"base": 4, "depth": 2}


def test_ctrl_c_cancels_keeps_the_best_checkpoint_and_exits_130(tmp_path, monkeypatch, capsys):
    from cellviewer.core import training

    real = training.validate
    calls = []

    def validate_then_ctrl_c(*a, **kw):  # Ctrl-C arrives during epoch 1's validation
        res = real(*a, **kw)
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return res

    monkeypatch.setattr(training, "validate", validate_then_ctrl_c)
    out = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)
    assert cli.main(TINY + ["--epochs", "5", "--out", str(out), "-q"]) == 130
    err = capsys.readouterr().err
    assert "cancelled" in err and "kept" in err and "--resume" in err
    assert len(calls) == 1  # stopped in epoch 2, before its validation
    state = json.loads((tmp_path / "run.json").read_text())["training"]["state"]
    assert state["best_epoch"] == 1 and (tmp_path / "run.safetensors").is_file()
    assert signal.getsignal(signal.SIGINT) is before  # the handler is restored


def test_bad_json_option_is_a_clear_error(tmp_path, capsys):
    rc = cli.main(["train", "--datasets", "synthetic", "--net-config", "{base: 4}", "--out", str(tmp_path / "x")])
    assert rc == 2 and "--net-config is not valid JSON" in capsys.readouterr().err


def test_nonsense_budgets_are_usage_errors_and_an_unwritable_out_fails_before_training(tmp_path, capsys):
    base = ["train", "--datasets", "synthetic", "--out", str(tmp_path / "m")]
    for bad in (["--epochs", "0"], ["--minutes", "-1"], ["--lr", "0"], ["--batch-size", "0"]):
        assert cli.main(base + bad) == 2
    capsys.readouterr()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert cli.main(["train", "--datasets", "synthetic", "--out", str(blocker / "sub" / "m"), "--epochs", "1"]) == 5
    err = capsys.readouterr().err
    assert "Cannot write the checkpoint" in err and "unexpected" not in err


def test_resume_goes_on_with_the_run_s_own_options_and_says_when_epochs_are_used_up(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert cli.main(TINY + ["--epochs", "1", "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    # nothing but --resume and a larger budget: datasets, net, scale, name and --out are the run's own
    assert cli.main(["train", "--resume", f"{out}-last", "--epochs", "2", "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["checkpoint"] == str(out) and summary["epochs_run"] == 2  # the history goes on
    card = json.loads((tmp_path / "tiny-last.json").read_text())
    assert card["name"] == "tiny" and card["working_scale"] == 16 and card["training"]["state"]["epoch"] == 2
    assert card["training"]["config"]["datasets"] == ["synthetic"] and card["config"]["base"] == 4
    # the budget is used up: a usage error that says what to give
    assert cli.main(["train", "--resume", f"{out}-last", "-q"]) == 2
    err = capsys.readouterr().err
    assert "already run 2 of the 2 epochs" in err and "--epochs 12" in err and len(err.strip().splitlines()) == 1
    # other data than the run's: refused before any epoch
    assert cli.main(["train", "--resume", f"{out}-last", "--epochs", "3", "--datasets", "wbc_seg", "-q"]) == 2
    assert "segments rbc, wbc, platelet" in capsys.readouterr().err
    # a device that is not there is an option error too
    assert cli.main(["train", "--resume", f"{out}-last", "--epochs", "3", "--device", "no-such", "-q"]) == 2
    assert "Unknown device" in capsys.readouterr().err
