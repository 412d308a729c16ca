"""Training: a tiny net on synthetic data writes a loadable checkpoint, resumes, honours cancel."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from cellviewer.core.errors import Cancelled, CellviewerError  # noqa: E402
from cellviewer.core.jobs import CancelToken, run_job  # noqa: E402
from cellviewer.core.training import TrainConfig, TrainProgress, lr_at, main, train  # noqa: E402


def _cfg(tmp_path, **kw):
    base = dict(name="tiny", datasets=["synthetic"], net_config={"base": 4, "depth": 2}, epochs=1,
                steps_per_epoch=2, batch_size=2, augment={"crop": 64}, working_scale=16, synthetic_n=4,
                out=str(tmp_path / "tiny"), threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_two_steps_write_a_loadable_checkpoint_and_resume(tmp_path):
    from cellviewer.nets.checkpoint import load_checkpoint

    seen = []
    res = run_job(train(_cfg(tmp_path)), seen.append)
    assert res.epochs_run == 1 and res.stopped == "epochs"
    assert any(isinstance(p, TrainProgress) and p.step == 2 and np.isfinite(p.loss) for p in seen)
    assert seen[-1].fraction == 1.0
    net, card = load_checkpoint(res.checkpoint)
    assert card["name"] == "tiny" and card["classes"] == ["background", "rbc", "wbc", "platelet"]
    assert card["working_scale"] == 16 and card["dtype"] == "float16"
    assert card["training_data"]["split"]["seed"]
    # resume from the last state: continues at epoch 2
    res2 = run_job(train(_cfg(tmp_path, epochs=2, resume=str(tmp_path / "tiny-last"), out=str(tmp_path / "r"))))
    assert [h["epoch"] for h in res2.history] == [1, 2]
    assert json.loads((tmp_path / "r-last.json").read_text())["training"]["state"]["epoch"] == 2


def test_freeze_bn_keeps_the_resumed_batchnorm_statistics(tmp_path):
    from safetensors.numpy import load_file

    run_job(train(_cfg(tmp_path)))
    start = load_file(str(tmp_path / "tiny-last.safetensors"))
    for frozen, out in ((True, "f"), (False, "u")):
        run_job(train(_cfg(tmp_path, epochs=2, resume=str(tmp_path / "tiny-last"), out=str(tmp_path / out),
                           freeze_bn=frozen, lr=1e-2)))
        after = load_file(str(tmp_path / f"{out}-last.safetensors"))
        stats = [k for k in start if "running_" in k]
        assert stats
        same = all(np.array_equal(start[k], after[k]) for k in stats)
        assert same == frozen  # frozen: the statistics as resumed; else they follow the crops
        assert not all(np.array_equal(start[k], after[k]) for k in start if "running_" not in k and "num_batches" not in k)


def test_two_phase_trains_the_edge_head_last(tmp_path):
    res = run_job(train(_cfg(tmp_path, two_phase=True, phase2_epochs=1)))
    assert [h["phase"] for h in res.history] == [1, 2]


def test_cancel_stops_training(tmp_path):
    tok = CancelToken()
    job = train(_cfg(tmp_path, steps_per_epoch=50), cancel=tok)
    with pytest.raises(Cancelled):
        for p in job:
            if isinstance(p, TrainProgress) and p.step >= 1:
                tok.cancel()


def test_bad_option_and_lr_schedule():
    with pytest.raises(CellviewerError):
        TrainConfig.from_dict({"epochz": 3})
    assert lr_at(0.0, 1.0) < 0.1 and lr_at(0.05, 1.0) == pytest.approx(1.0) and lr_at(1.0, 1.0) < 0.05


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--working-scale" in capsys.readouterr().out


def test_swa_averages_the_last_epochs_and_border_pad_goes_to_the_card(tmp_path):
    from cellviewer.nets.checkpoint import load_checkpoint

    seen = []
    res = run_job(train(_cfg(tmp_path, epochs=3, swa_epochs=2, lr_floor=0.3, border_pad=0.5)), seen.append)
    swa = [h for h in res.history if "swa" in h]
    assert len(swa) == 1 and swa[0]["swa"] == 2 and swa[0]["epoch"] == 3 and np.isfinite(swa[0]["score"])
    assert any("SWA of the last 2 epochs" in p.message for p in seen)
    net, card = load_checkpoint(str(tmp_path / "tiny-swa"))
    assert card["inference"] == {"border_pad": 0.5}
    assert card["training"]["config"]["swa_epochs"] == 2
    assert res.best_score == pytest.approx(max(h["score"] for h in res.history), abs=1e-5)  # kept only if better


def test_resume_can_widen_the_net_first(tmp_path):
    from cellviewer.nets.checkpoint import load_checkpoint

    res = run_job(train(_cfg(tmp_path)))
    seen = []
    res2 = run_job(train(_cfg(tmp_path, epochs=2, resume=res.checkpoint, widen_base=6,
                              out=str(tmp_path / "wide"))), seen.append)
    assert res2.history[-1]["epoch"] == 2
    net, card = load_checkpoint(str(tmp_path / "wide-last"))
    assert card["config"]["base"] == 6 and card["training"]["config"]["widen_base"] == 6
    assert net.down[0][0][0].weight.shape[0] == 6


def _wbc_layout(root, per_split=2):
    """``root/wbc_seg`` with ``per_split`` crops of each of the train / val / test splits."""
    import cv2

    from cellviewer.core.datasets import split_of

    folder = root / "wbc_seg"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    names = {sp: [n for n in (f"d1_{i:03d}.png" for i in range(300)) if split_of(n) == sp][:per_split]
             for sp in ("train", "val", "test")}
    yy, xx = np.mgrid[:96, :96]
    rows = ["image,width,height,class_name"]
    for name in sum(names.values(), []):
        r2 = (yy - 48) ** 2 + (xx - 48) ** 2
        img = np.full((96, 96, 3), (225, 215, 190), np.uint8)
        img[r2 <= 30 ** 2] = (190, 150, 200)
        img[r2 <= 14 ** 2] = (90, 40, 130)
        cv2.imwrite(str(folder / "images" / name), img[..., ::-1])
        cv2.imwrite(str(folder / "masks" / name), np.where(r2 <= 14 ** 2, 255, np.where(r2 <= 30 ** 2, 128, 0))
                    .astype(np.uint8))
        rows.append(f"{name},96,96,neutrophil")
    (folder / "images.csv").write_text("\n".join(rows) + "\n")
    return names


def test_train_splits_refit_on_train_and_val_never_test(tmp_path):
    from cellviewer.core.training import load_items
    from cellviewer.core.trainparts import card_for

    names = _wbc_layout(tmp_path / "data")
    cfg = _cfg(tmp_path, name="wbc", datasets=["wbc_seg"], data_root=str(tmp_path / "data"))
    ids = lambda items: sorted(it["id"] for it in items)  # noqa: E731
    assert ids(load_items(cfg, "train")) == sorted(names["train"])
    cfg.train_splits = ["train", "val"]
    assert ids(load_items(cfg, "train")) == sorted(names["train"] + names["val"])
    assert ids(load_items(cfg, "val")) == sorted(names["val"])  # still scored, no longer held out
    split = card_for(cfg, ["background", "nucleus", "cytoplasm"], 4, 2, {}, "cmd", [], 0.0)["training_data"]["split"]
    assert split["trained_on"] == "train+val" and "val is trained on" in split["selected_on"]
    cfg.train_splits = ["train", "test"]
    with pytest.raises(CellviewerError, match="test split"):
        load_items(cfg, "train")


def _arch_configs():
    from tests.nets.test_architectures import SMALL

    return {name: {k: v for k, v in cfg.items() if k not in ("classes", "n_classes")}
            for name, (cfg, _sizes, _n, _edge) in SMALL.items()}


@pytest.mark.parametrize("arch", sorted(_arch_configs()))
def test_every_architecture_trains_from_scratch_and_loads(tmp_path, arch):
    """``cellviewer train --arch NAME`` for every registered architecture: one step, a loadable checkpoint."""
    from cellviewer.nets.checkpoint import load_checkpoint

    res = run_job(train(_cfg(tmp_path, architecture=arch, net_config=_arch_configs()[arch], steps_per_epoch=1,
                             augment={"crop": 64})))
    assert res.epochs_run == 1 and np.isfinite(res.history[-1]["loss"])
    net, card = load_checkpoint(res.checkpoint)
    assert card["architecture"] == arch and card["classes"] == ["background", "rbc", "wbc", "platelet"]


def test_the_valid_convolution_do_unet_trains_on_its_output_centre(tmp_path):
    """The paper's unpadded DO-U-Net answers for the centre of its input: the crop is rounded up to a
    usable size and the targets are cut to the output, so the loss compares the same pixels."""
    import torch

    from cellviewer.core.trainparts import loss_for

    res = run_job(train(_cfg(tmp_path, architecture="do-unet-valid", net_config={"base": 4, "depth": 2},
                             augment={"crop": 100}, steps_per_epoch=1)))
    assert np.isfinite(res.history[-1]["loss"])
    loss = loss_for(TrainConfig(mask_loss="ce"))
    cm = torch.zeros(1, 8, 8, dtype=torch.long)
    cm[:, 2:6, 2:6] = 1  # the centre 4×4 is all class 1, the ring around it class 0
    logits = torch.zeros(1, 2, 4, 4)
    logits[:, 1] = 20.0  # a confident "class 1" everywhere in the 4×4 output: right for the centre
    assert float(loss({"mask": logits}, cm, torch.zeros(1, 8, 8), 1)) < 1e-3
    assert float(loss({"mask": -logits}, cm, torch.zeros(1, 8, 8), 1)) > 10


def _scores(monkeypatch, values):
    """``validate`` answers these scores in turn (the last one from then on)."""
    from cellviewer.core import training

    it = iter(values)
    last = [values[-1]]

    def fake(*a, **k):
        last[0] = next(it, last[0])
        return {"score": last[0], "mean_dice": last[0], "dice": {}}

    monkeypatch.setattr(training, "validate", fake)


def test_a_resumed_run_whose_epochs_are_worse_keeps_the_best(tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    _scores(monkeypatch, [0.5, 0.1])  # epoch 1 is the best, epoch 2 (the -last state) worse
    run_job(train(_cfg(tmp_path, epochs=2)))
    best = (tmp_path / "tiny.safetensors").read_bytes()
    assert json.loads((tmp_path / "tiny.json").read_text())["training"]["state"]["best_epoch"] == 1
    _scores(monkeypatch, [0.05])  # every resumed epoch (and the resumed weights) scores lower
    seen = []
    res = run_job(train(_cfg(tmp_path, epochs=4, resume=str(tmp_path / "tiny-last"))), seen.append)
    assert any("keeping the best checkpoint so far (score 0.5000)" in p.message for p in seen)
    assert not any("scoring the resumed checkpoint" in p.message for p in seen)
    assert (tmp_path / "tiny.safetensors").read_bytes() == best and res.best_score == 0.5 and res.best_epoch == 1
    assert json.loads((tmp_path / "tiny-last.json").read_text())["training"]["state"]["epoch"] == 4
    # resumed into another --out, the best so far comes along (not the -last weights)
    _scores(monkeypatch, [0.05])
    run_job(train(_cfg(tmp_path, epochs=5, resume=str(tmp_path / "tiny-last"), out=str(tmp_path / "r"))))
    a, b = load_file(str(tmp_path / "tiny.safetensors")), load_file(str(tmp_path / "r.safetensors"))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_classes_datasets_and_used_up_epochs(tmp_path):
    from cellviewer.core.errors import OptionError

    run_job(train(_cfg(tmp_path, epochs=2)))
    last = str(tmp_path / "tiny-last")
    cases = [({"datasets": ["wbc_seg"]}, "segments rbc, wbc, platelet"),
             ({"datasets": ["synthetic", "bccd"]}, "was trained on synthetic"),
             ({"train_splits": ["train", "val"]}, "split"),
             ({"epochs": 2}, "already run 2 of the 2 epochs")]
    for change, msg in cases:
        with pytest.raises(OptionError, match=msg) as e:
            run_job(train(_cfg(tmp_path, resume=last, **{"epochs": 3, **change})))
        assert e.value.exit_code == 2 and e.value.hint
    with pytest.raises(OptionError, match="--epochs 12"):
        run_job(train(_cfg(tmp_path, resume=last, epochs=2)))


def test_resume_keeps_the_calibration_of_the_card(tmp_path):
    run_job(train(_cfg(tmp_path)))
    p = tmp_path / "tiny-last.json"
    card = json.loads(p.read_text())
    card["postprocess"] = {"method": "edge-watershed", "rbc_measured_to_box": 0.93}
    card["inference"] = {"tta": "flips", "border_pad": 0.5}
    p.write_text(json.dumps(card))  # the weights' sha256 is unchanged
    run_job(train(_cfg(tmp_path, epochs=2, resume=str(tmp_path / "tiny-last"), out=str(tmp_path / "c"))))
    new = json.loads((tmp_path / "c-last.json").read_text())
    assert new["postprocess"]["rbc_measured_to_box"] == 0.93
    assert new["inference"] == {"tta": "flips", "border_pad": 0.5}


def test_resume_refuses_an_export_whose_split_moved(tmp_path):
    import csv
    from types import SimpleNamespace

    from cellviewer.core.errors import OptionError
    from cellviewer.core.export_dataset import export_training_set
    from cellviewer.core.trainresume import check_resume
    from tests.synthdocs import random_doc

    run_job(export_training_set([random_doc(i) for i in range(4)], tmp_path / "x", formats=("shared",)))
    with open(tmp_path / "x" / "images.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    trained = [r["image"] for r in rows if r["split"] == "train"]
    cfg = SimpleNamespace(resume="run-last", datasets=["export"], train_splits=["train"], epochs=5, phase2_epochs=0,
                          two_phase=False, data_root=str(tmp_path / "x"))
    card = {"classes": ["background", "rbc", "wbc", "platelet"], "training_data": {"export_images": {
        "train": trained, "val": []}}, "training": {"config": {"datasets": ["export"]}, "state": {"epoch": 2}}}
    check_resume(cfg, card, card["classes"])  # unchanged: fine
    for r in rows:
        if r["image"] == trained[0]:
            r["split"] = "test"
    with open(tmp_path / "x" / "images.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(OptionError, match=f"{trained[0]}: train → test"):
        check_resume(cfg, card, card["classes"])


def test_resume_from_the_best_checkpoint_into_its_own_run_is_refused_naming_the_last(tmp_path):
    from cellviewer.core.errors import OptionError

    run_job(train(_cfg(tmp_path, epochs=1)))
    last_before = (tmp_path / "tiny-last.safetensors").read_bytes()
    with pytest.raises(OptionError, match="best checkpoint") as e:
        run_job(train(_cfg(tmp_path, resume=str(tmp_path / "tiny"), epochs=3)))
    assert e.value.exit_code == 2 and f"--resume {tmp_path / 'tiny-last'}" in e.value.hint
    assert (tmp_path / "tiny-last.safetensors").read_bytes() == last_before  # the later epochs are untouched
    # into another --out it branches off from the best weights
    res = run_job(train(_cfg(tmp_path, resume=str(tmp_path / "tiny.json"), epochs=2, out=str(tmp_path / "b"))))
    assert res.epochs_run >= 1


def test_resuming_a_best_checkpoint_still_at_its_start_into_its_own_run_is_refused(tmp_path):
    """A fine-tune that never beat its base leaves the base weights as its best (no epochs) and the trained
    epochs in RUN-last; `train --resume RUN --out RUN` would overwrite RUN-last."""
    from types import SimpleNamespace

    from cellviewer.core.errors import OptionError
    from cellviewer.core.trainresume import check_resume

    run = tmp_path / "ft"
    card = {"classes": ["background", "rbc"], "training": {"config": {}, "state": {"best_epoch": 0}}}
    (tmp_path / "ft.json").write_text(json.dumps(card))
    (tmp_path / "ft-last.json").write_text(json.dumps(card))
    cfg = SimpleNamespace(resume=str(run), out=str(run), datasets=["export"])
    with pytest.raises(OptionError, match="later epochs"):
        check_resume(cfg, card, ["background", "rbc"])
    check_resume(SimpleNamespace(resume=str(run), out=str(tmp_path / "branch"), datasets=["export"]), card,
                 ["background", "rbc"])  # another --out branches off: fine


def test_a_minutes_budget_s_progress_never_falls_back_at_an_epoch_s_end(tmp_path, monkeypatch):
    """With a time budget (the GUI's minutes: epochs = 1000), the bar follows the clock: an epoch's end
    once reported (epoch / 1000) ≈ 0 % after its steps had said 80 %."""
    import cellviewer.core.training as training

    clock = iter(range(0, 10 ** 6, 2))  # every look at the clock: two seconds later
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(next(clock)))
    seen = []
    run_job(train(_cfg(tmp_path, epochs=1000, steps_per_epoch=1, max_minutes=0.5)), seen.append)
    fr = [p.fraction for p in seen if isinstance(p, TrainProgress) and p.epoch]
    assert len(fr) > 4 and max(fr) > 0.5
    assert all(b >= a for a, b in zip(fr, fr[1:])), fr

