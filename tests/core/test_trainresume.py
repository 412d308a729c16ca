"""Resuming a run (core.trainresume): the checkpoint's net only, its name, and writing beside the checkpoint."""

import json
from types import SimpleNamespace

import pytest

from cellviewer.core.errors import OptionError
from cellviewer.core.trainresume import check_net, check_resume, net_of, options_of, out_beside

BOXES = ["background", "rbc", "wbc", "platelet"]


def _card(arch="do-unet", config=None, net_config=None, name="lab", out="/elsewhere/run/m"):
    training = {"config": {"architecture": arch, "net_config": net_config or {"base": 4, "depth": 2},
                           "datasets": ["synthetic"], "name": "old-config-name", "out": out, "resume": "x"},
                "state": {"epoch": 1, "history": [{"epoch": 1}], "best_score": 0.5}}
    return {"name": name, "classes": BOXES, "architecture": arch,
            "config": config or {"base": 4, "depth": 2, "edge": True, "n_classes": 4}, "training": training}


def _cfg(tmp_path, **kw):
    base = dict(resume=str(tmp_path / "m-last"), out=str(tmp_path / "m"), datasets=["synthetic"],
                train_splits=["train"], epochs=5, phase2_epochs=0, two_phase=False, architecture="do-unet",
                net_config={"base": 4, "depth": 2})
    base.update(kw)
    return SimpleNamespace(**base)


def test_a_resume_refuses_another_architecture(tmp_path):
    with pytest.raises(OptionError, match="is a do-unet network") as e:
        check_net(_cfg(tmp_path, architecture="node-unet"), _card())
    assert e.value.exit_code == 2 and "leave out --arch" in e.value.hint
    check_net(_cfg(tmp_path), _card())  # the same: fine


@pytest.mark.parametrize("net_config, fine", [
    ({"base": 4, "depth": 2}, True),  # the run's own options
    ({"base": 4}, True),  # part of the checkpoint's net
    ({"base": 4, "depth": 2, "edge": True, "n_classes": 4}, True),  # the checkpoint's config in full
    ({"base": 4, "depth": 2, "encoder_weights_path": "/w.pth"}, True),  # build-only: not part of the net
    ({"base": 8, "depth": 2}, False),
    ({"base": 4, "depth": 2, "n_classes": 5}, False),
    ({"base": 4, "depth": 2, "norm": None}, False),  # a key the checkpoint does not record
])
def test_a_resume_refuses_a_net_config_other_than_the_checkpoint_s(tmp_path, net_config, fine):
    cfg = _cfg(tmp_path, net_config=net_config)
    if fine:
        check_net(cfg, _card())
        assert net_of(cfg, _card()) == {}
        return
    with pytest.raises(OptionError, match="cannot change it") as e:
        check_net(cfg, _card())
    assert e.value.exit_code == 2 and "leave out --net-config" in e.value.hint


def test_a_widened_checkpoint_resumes_with_its_run_s_own_net_config(tmp_path):
    """A widened net (widen_base) has a wider config than the run's recorded net_config: both are its own."""
    card = _card(config={"base": 6, "depth": 2, "edge": True, "n_classes": 4})
    check_net(_cfg(tmp_path), card)  # the run's own options
    check_net(_cfg(tmp_path, net_config={"base": 6, "depth": 2}), card)  # what the weights are
    with pytest.raises(OptionError):
        check_net(_cfg(tmp_path, net_config={"base": 8, "depth": 2}), card)


def test_the_core_job_s_card_records_the_checkpoint_s_net(tmp_path):
    """A caller of the core job that left the defaults in (a fine-tune of a card without training options)
    is not refused, but its card says the net the weights are."""
    card = _card(arch="node-unet", config={"widths": [4, 8, 16], "n_classes": 4})
    card["training"]["config"].pop("net_config")
    assert net_of(_cfg(tmp_path, net_config={"base": 16, "depth": 3}), card) == {
        "architecture": "node-unet", "net_config": {"widths": [4, 8, 16], "n_classes": 4}}
    check_resume(_cfg(tmp_path, net_config={"base": 16, "depth": 3}), card, BOXES)  # not refused here


def test_options_of_keeps_the_name_and_net_but_not_the_out(tmp_path):
    stem = tmp_path / "m-last"
    stem.with_suffix(".json").write_text(json.dumps(_card()))
    opts = options_of(stem)
    assert opts["name"] == "lab" and "out" not in opts and "resume" not in opts
    assert opts["architecture"] == "do-unet" and opts["net_config"] == {"base": 4, "depth": 2}
    bare = {k: v for k, v in _card(arch="wbc-net", config={"depth": 3, "n_classes": 3}).items() if k != "training"}
    stem.with_suffix(".json").write_text(json.dumps(bare))
    opts = options_of(stem)  # a card without training options: its own net, not the defaults
    assert opts == {"name": "lab", "architecture": "wbc-net", "net_config": {"depth": 3, "n_classes": 3}}


def test_out_beside_the_last_checkpoint(tmp_path):
    assert out_beside(tmp_path / "r" / "m-last") == str(tmp_path / "r" / "m")
    assert out_beside(f"{tmp_path}/r/m-last.json") == str(tmp_path / "r" / "m")
    assert out_beside("runs/x/lab-last") == "runs/x/lab"
    # a run's best checkpoint: its own stem (check_resume then refuses it, naming the -last)
    (tmp_path / "b-last.json").write_text("{}")
    assert out_beside(tmp_path / "b") == str(tmp_path / "b")
    with pytest.raises(OptionError, match="not a run's -last checkpoint") as e:
        out_beside(tmp_path / "lone")
    assert e.value.exit_code == 2 and "--out" in e.value.hint
