"""Model-card summaries, headline metrics, card comparison, ODE solver pass-through; shared CLI options."""

import argparse
import math

import pytest

from cellviewer.core.modelcards import card_differences, headline_metrics, summarize_card

BOX = {"kind": "boxes", "n_images": 3,
       **{c: {"count_accuracy": a, "f1": f} for c, a, f in (("rbc", 0.9, 0.8), ("wbc", 1.0, 0.5),
                                                           ("platelet", float("nan"), 0.0))}}
CARD = {"name": "m", "architecture": "node-unet", "version": "2", "working_scale": 24,
        "classes": ["background", "rbc", "wbc", "platelet"], "config": {"widths": [4, 8], "rtol": 0.01, "n_classes": 4},
        "metrics": {"split": "test", "datasets": {
            "txl_pbc": BOX, "txl_pbc:pbc": BOX, "bccd_voc": BOX,
            "wbc_seg": {"kind": "masks", "n_images": 2, "wbc": {"dice": 0.5}},
            "wbc_seg:d1": {"kind": "masks", "n_images": 1, "wbc": {"dice": 0.25}, "nucleus": {"dice": 1.0}},
            "chula_rbc12": {"kind": "points", "n_images": 4, "recall": 0.75}}}}


def test_headline_metrics_pick_the_papers_numbers():
    lines = headline_metrics(CARD["metrics"])
    assert lines == (
        "txl_pbc (3 images) counting accuracy: RBC 90.00 %, WBC 100.00 %, platelets —; "
        "detection F1: RBC 80.00 %, WBC 50.00 %, platelets 0.00 %",
        "wbc_seg:d1 (1 images) Dice: whole WBC 25.00 %, nucleus 100.00 %",
        "chula_rbc12 (4 images) points inside a predicted RBC: 75.00 %")  # per-origin, bccd_voc and pooled left out
    assert headline_metrics(None) == () and headline_metrics({"datasets": {"x": 3}}) == ()


def test_summary_of_a_card():
    s = summarize_card(CARD)
    assert (s.name, s.architecture, s.version, s.working_scale, s.split) == ("m", "node-unet", "2", 24.0, "test")
    assert s.has_ode_solver and s.solver == {"rtol": 0.01}
    info = s.info_line()
    assert info.startswith("node-unet (widths [4, 8], rtol 0.01)") and "classes: rbc, wbc, platelet" in info
    assert "working scale: 24 px per red cell; version 2" in info
    assert s.text().splitlines()[1:3] == ["test split:", "  " + s.headline[0]]
    refit = summarize_card({**CARD, "training_data": {"split": {"trained_on": "train+val"}}})
    assert refit.trained_on == "train+val" and refit.text().splitlines()[1] == "test split (trained on train + val):"
    bare = summarize_card({})
    assert bare.name == "?" and not bare.has_ode_solver and "no measured metrics" in bare.text()
    assert "working scale: unknown" in bare.info_line()


def test_card_differences():
    card = {"a": {"x": 0.5, "y": [1, 2], "s": "t", "n": float("nan")}, "b": 1.0}
    same = {"a": {"x": 0.50001, "y": [1, 2], "s": "t", "n": float("nan"), "extra": 3}, "b": 1.0}
    assert card_differences(same, card) == []
    other = {"a": {"x": 0.6, "y": [1], "s": "u", "n": 0.0}}
    diffs = card_differences(other, card)
    assert [d[0] for d in diffs] == ["a.x", "a.y", "a.s", "a.n", "b"]
    assert diffs[0] == ("a.x", 0.5, 0.6) and diffs[-1] == ("b", 1.0, None)
    assert card_differences({"v": 1.0}, {"v": 1.2}, tol=0.25) == []
    assert math.isnan(card_differences({"v": float("nan")}, {"v": 1.0})[0][2])


def test_apply_solver_sets_and_restores_and_rejects_bad_values():
    pytest.importorskip("torchdiffeq")
    from cellviewer.core.errors import SegmentationError
    from cellviewer.core.modelcards import apply_solver
    from cellviewer.nets.registry import create_net

    net = create_net("node-unet", widths=[4, 8])
    old = apply_solver(net, {"method": "rk4", "rtol": 0.1})
    assert net.solver["method"] == "rk4" and net.solver["rtol"] == 0.1 and old["method"] == "dopri5"
    apply_solver(net, old)
    assert net.solver == old
    assert apply_solver(net, {}) == {} and apply_solver(create_net("do-unet", base=4, depth=2), {"rtol": 1}) == {}
    with pytest.raises(SegmentationError, match="Bad ODE solver"):
        apply_solver(net, {"method": "leapfrog"})
    with pytest.raises(SegmentationError):
        apply_solver(net, {"rtol": -1})


def test_shared_options_follow_the_datasets_module_and_parse():
    from cellviewer.core import cliopts
    from cellviewer.core import datasets as D

    assert cliopts.SPLITS == D.SPLITS and set(cliopts.DATASETS) <= set(D.DATASETS)
    assert set(cliopts.TRAIN_DATASETS) - {"synthetic"} <= set(D.DATASETS)
    ap = argparse.ArgumentParser()
    cliopts.add_train_arguments(ap)
    cfg = cliopts.train_config_from_args(ap.parse_args(
        ["--config", '{"patience": 3, "epochs": 9}', "--epochs", "2", "--net-config", '{"base": 8}', "--two-phase"]))
    assert (cfg.patience, cfg.epochs, cfg.net_config, cfg.two_phase) == (3, 2, {"base": 8}, True)
    from cellviewer.core.errors import OptionError

    with pytest.raises(OptionError, match="must be a JSON object"):
        cliopts.train_config_from_args(ap.parse_args(["--net-config", "[1]"]))
    with pytest.raises(OptionError, match="Cannot read --config file"):
        cliopts.train_config_from_args(ap.parse_args(["--config", "/no/such/file.json"]))


def test_a_stored_fine_tune_shows_its_gate_verdict():
    from cellviewer.core.modelcards import summarize_card

    card = {"name": "blood-cells", "architecture": "do-unet", "version": "6", "classes": ["background", "rbc"],
            "parent": {"model": "blood-cells", "version": "5"},
            "metrics": {"held_out": {"score": 0.5}, "val_score": 0.98},
            "gate": {"accepted": False, "rows": [{"metric": "held-out: score", "old": 0.978, "new": 0.501},
                                                 {"metric": "held-out: rbc F1", "old": 0.97, "new": 0.81}]}}
    text = summarize_card(card).text()
    assert "no measured metrics" not in text
    assert "regression gate against blood-cells v5: REFUSED, stored anyway" in text
    assert "score 97.80 % → 50.10 %" in text and "rbc F1 97.00 % → 81.00 %" in text
    card["gate"]["accepted"] = True
    assert "blood-cells v5: accepted" in summarize_card(card).text()
    assert summarize_card({"name": "x"}).gate == ""
