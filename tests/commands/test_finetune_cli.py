"""``cellviewer finetune``: the review loop without a display — fine-tune, gate, store only what the gate
accepts, undo with ``versions --rollback``."""

import pytest

pytest.importorskip("torch")

from cellviewer.cli import main  # noqa: E402
from cellviewer.core.export_dataset import export_training_set  # noqa: E402
from cellviewer.core.jobs import run_job  # noqa: E402
from cellviewer.core.modelstore import ModelStore  # noqa: E402
from tests.synthdocs import random_doc, save_tiny_base  # noqa: E402
from tests.tinymodels import isolated_registry  # noqa: E402,F401


def test_finetune_stores_only_what_the_gate_accepts(isolated_registry, tmp_path, capsys):  # noqa: F811
    save_tiny_base("tiny-cells")
    export = tmp_path / "exp"
    run_job(export_training_set([random_doc(i) for i in range(6)], export))
    common = [str(export), "--base", "tiny-cells", "--epochs", "1", "--minutes", "2", "--threads", "1",
              "--device", "cpu", "--store"]
    # a gain of 50 points is asked for: refused, nothing stored
    assert main(["finetune", *common, "--out", str(tmp_path / "a"), "--min-gain", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "REFUSED" in out and "held-out" in out and ModelStore().versions("tiny-cells") == []
    # no gain asked for (a loss of up to 100 points allowed): accepted, stored as the next version, active
    assert main(["finetune", *common, "--out", str(tmp_path / "b"), "--min-gain", "-1"]) == 0
    out = capsys.readouterr().out
    mv = ModelStore().active("tiny-cells")
    assert "ACCEPTED" in out and f"stored and active: tiny-cells version {mv.version}" in out
    assert "old = tiny-cells v3, new = tiny-cells fine-tuned" in out  # the version gated against
    assert mv.card["parent"] == {"model": "tiny-cells", "version": "3"}
    assert "cellviewer versions tiny-cells --rollback" in out
    assert mv.card["parent"]["model"] == "tiny-cells" and "held_out" in mv.card["metrics"]
    assert main(["versions", "tiny-cells", "--rollback"]) == 0 and ModelStore().active("tiny-cells") is None


def test_finetune_refuses_an_export_without_held_out_images_before_training(isolated_registry, tmp_path,  # noqa: F811
                                                                            capsys):
    save_tiny_base("tiny-cells")
    run_job(export_training_set([random_doc(i) for i in range(4)], tmp_path / "e", fractions=(0.8, 0.2, 0.0)))
    assert main(["finetune", str(tmp_path / "e"), "--base", "tiny-cells", "--out", str(tmp_path / "ft")]) == 2
    assert "no held-out (test) images" in capsys.readouterr().err
    assert not (tmp_path / "ft.json").exists()


@pytest.mark.parametrize("flag,value", [("--epochs", "0"), ("--epochs", "-3"), ("--minutes", "0"),
                                        ("--minutes", "-1"), ("--threads", "-2"), ("--lr", "0"),
                                        ("--min-gain", "2"), ("--min-gain", "nan")])
def test_finetune_refuses_budgets_that_cannot_train(tmp_path, capsys, flag, value):
    assert main(["finetune", str(tmp_path), "--out", str(tmp_path / "ft"), flag, value]) == 2
    assert flag in capsys.readouterr().err and not (tmp_path / "ft.json").exists()


def test_finetune_usage_errors_come_before_training(isolated_registry, tmp_path, capsys):  # noqa: F811
    save_tiny_base("tiny-cells")
    (tmp_path / "empty").mkdir()
    args = ["--base", "tiny-cells", "--out", str(tmp_path / "ft")]
    assert main(["finetune", str(tmp_path / "empty"), *args]) == 2
    assert "no images in" in capsys.readouterr().err
    assert main(["finetune", str(tmp_path / "nope"), *args]) == 2
    assert "does not exist" in capsys.readouterr().err
    run_job(export_training_set([random_doc(i) for i in range(6)], tmp_path / "exp"))
    assert main(["finetune", str(tmp_path / "exp"), *args, "--reference", str(tmp_path / "no-ref")]) == 2
    assert "not a cellviewer export" in capsys.readouterr().err
    assert not (tmp_path / "ft.json").exists()  # nothing was trained


def test_an_interrupted_finetune_says_nothing_was_stored(isolated_registry, tmp_path, capsys, monkeypatch):  # noqa: F811
    from cellviewer.core import finetune

    save_tiny_base("tiny-cells")
    export = tmp_path / "exp"
    run_job(export_training_set([random_doc(i) for i in range(6)], export))

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt
        yield  # a generator, as the real job

    monkeypatch.setattr(finetune, "finetune", interrupted)
    code = main(["finetune", str(export), "--base", "tiny-cells", "--out", str(tmp_path / "ft"), "--store"])
    err = capsys.readouterr().err
    assert code == 130 and "nothing was stored" in err and "'tiny-cells' is unchanged" in err
    assert ModelStore().versions("tiny-cells") == []


@pytest.mark.parametrize("base, budget", [("tiny-cells", (10.0, 20)), ("rbc-morphology", (5.0, 30)),
                                          ("rbc-morphology --minutes 2 --epochs 3", (2.0, 3))])
def test_each_base_gets_its_own_budget_unless_one_is_given(isolated_registry, tmp_path, capsys,  # noqa: F811
                                                           monkeypatch, base, budget):
    from cellviewer.core import finetune, morphfinetune

    save_tiny_base("tiny-cells")
    export = tmp_path / "exp"
    run_job(export_training_set([random_doc(i) for i in range(6)], export))
    seen = {}

    def recorded(*_a, minutes, epochs, **_k):
        seen["budget"] = (minutes, epochs)
        raise KeyboardInterrupt
        yield  # a generator, as the real job

    monkeypatch.setattr(finetune, "finetune", recorded)
    monkeypatch.setattr(morphfinetune, "finetune_morphology", recorded)
    assert main(["finetune", str(export), "--base", *base.split(), "--out", str(tmp_path / "ft")]) == 130
    assert seen["budget"] == budget  # before: 10 min / 20 epochs for every base
    assert morphfinetune.MAX_EPOCHS >= budget[1] or "--epochs" in base
