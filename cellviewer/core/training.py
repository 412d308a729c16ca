"""Training a segmentation network on the shared data: a long job with progress and cancel.

``train(config, cancel)`` is a generator yielding :class:`TrainProgress` and returning a
:class:`TrainResult`. What it does:

* **Data.** ``config.datasets`` names box datasets (``bccd``, ``txl_pbc``: classes
  background/rbc/wbc/platelet + an edge target from :func:`~cellviewer.core.datasets.weak_labels`),
  ``wbc_seg`` (background/nucleus/cytoplasm, no edge) or ``synthetic`` (generated discs,
  for tests). Every image is resized so its RBC diameter (measured from its boxes)
  becomes ``working_scale`` px. Training uses the ``train`` split, model selection the
  ``val`` split (:func:`~cellviewer.core.datasets.split_of`); the ``test`` split is never
  touched (``train_splits = ["train", "val"]``: a refit on both, the recipe chosen on val
  before). Each dataset (or origin, ``balance``) is drawn equally often. Crops come from
  :func:`cellviewer.core.augment.augment`.
* **Loss.** ``mask_loss`` from :func:`cellviewer.nets.losses.create_loss` (default
  ``ce+dice`` with ignored pixels; ``mask_loss_config={"fg_dice_weight": w}`` adds the
  per-image Dice of the whole cell, the union of the non-background classes) + ``edge_weight`` × masked BCE on the edge logits +
  ``aux_weight`` × the mask loss of deep-supervision side outputs.
* **Validation** after every epoch on the whole val images: mean Dice of the foreground
  classes and, for box data, the counting accuracy of the instances
  (:func:`~cellviewer.core.instances.instances_from_probs`), with the mirrored margin
  ``border_pad`` that inference will use (recorded in the card). The selection score is
  the Dice (masks) or the mean of Dice and counting accuracy (boxes).
* **Weight averaging** (``swa_epochs``, :mod:`cellviewer.core.swa`): the last N epochs of
  phase 1 are averaged, BatchNorm re-estimated, and the average validated; it becomes the
  best checkpoint only when it scores higher (always kept as ``<out>-swa``). A
  ``lr_floor`` of ~0.3-0.5 keeps the late epochs apart enough to be worth averaging.
* **Widening** (``widen_base``, :mod:`cellviewer.nets.widen`): on ``resume``, a DO-U-Net is
  first grown to that channel width by copying channels (Net2WiderNet) — same output at
  the start, more capacity to train.
* **Checkpoints** (:func:`cellviewer.nets.checkpoint.save_checkpoint`, float16): the
  best epoch to ``config.out``, the latest to ``<out>-last`` (its card holds the
  training state, so ``resume`` continues from there). A resume keeps the run's best
  checkpoint until an epoch beats it, and refuses other classes, datasets or splits and
  used-up epochs (:mod:`cellviewer.core.trainresume`).
* **Budgets.** ``epochs`` and ``max_minutes`` (wall time, both phases), early stopping
  after ``patience`` epochs without improvement, fixed ``seed``.
* **Two-phase transfer** (DO-U-Net paper, ``two_phase``): phase 1 trains the net on the
  mask loss only; phase 2 freezes everything but the edge head and trains it on the edge
  loss for ``phase2_epochs``.

``python -m cellviewer.core.training --help`` is the command-line entry; its options are
built by :mod:`cellviewer.core.cliopts` (shared with ``cellviewer train``).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from cellviewer.core import datasets as D
from cellviewer.core.augment import AugmentConfig
from cellviewer.core.errors import OptionError, script_main
from cellviewer.core.evaluate import validate
from cellviewer.core.jobs import CancelToken, Job, Progress, run_job
from cellviewer.core.swa import WeightWindow, average_into, refresh_batchnorm
from cellviewer.core.trainparts import batch as _batch
from cellviewer.core.trainparts import (border_pad_of, build_net, card_for, load_items, loss_for, model_name,
                                        preprocess_steps)
from cellviewer.core.trainresume import best_so_far, check_resume, export_images, net_of


@dataclass
class TrainConfig:
    #: the card's name; None: a resumed checkpoint's, else the ``out`` file name (trainparts.model_name)
    name: str | None = None
    datasets: list = field(default_factory=lambda: ["bccd", "txl_pbc"])
    data_root: str | None = None
    architecture: str = "do-unet"
    net_config: dict = field(default_factory=lambda: {"base": 16, "depth": 3})
    working_scale: float = 32.0
    edge_px: float = 2.0
    epochs: int = 40
    steps_per_epoch: int = 0  # 0 = train images / batch size
    max_minutes: float | None = None
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    mask_loss: str = "ce+dice"
    mask_loss_config: dict = field(default_factory=dict)
    edge_weight: float = 1.0
    edge_pos_weight: float = 2.0
    aux_weight: float = 0.4
    patience: int = 8
    two_phase: bool = False
    phase2_epochs: int = 5
    augment: dict = field(default_factory=dict)
    seed: int = 0
    threads: int | None = 2
    device: str = "cpu"
    out: str = "runs/model/model"
    resume: str | None = None
    val_limit: int | None = None
    synthetic_n: int = 12
    balance: str = "dataset"  # draw each "dataset" / "origin" (e.g. d1, d2) equally often, or "none"
    description: str = ""
    #: image steps before the net (cellviewer.nets.preprocess); None: the resumed card's, else the architecture's
    preprocess: list | None = None
    #: mirrored margin (RBC diameters) at validation and in the card's inference; None: the resumed card's, else 0
    border_pad: float | None = None
    #: average the weights of the last N epochs of phase 1 (SWA, core.swa); kept when it validates better
    swa_epochs: int = 0
    #: the learning rate never falls below this fraction of ``lr`` (cosine schedule's floor; ~0.3 suits SWA)
    lr_floor: float = 0.02
    #: on resume, grow the DO-U-Net to this channel width first, keeping its function (nets.widen)
    widen_base: int | None = None
    #: keep every BatchNorm layer's statistics as resumed (eval mode while training): a fine-tune on a few
    #: images otherwise drifts them toward its crops, and that alone changes the counts (core.finetune)
    freeze_bn: bool = False
    #: splits trained on; ``["train", "val"]``: refit on both (val no longer held out; never "test")
    train_splits: list = field(default_factory=lambda: ["train"])

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise OptionError(f"Unknown training option(s): {', '.join(bad)}.",
                              hint=f"use only these: {', '.join(sorted(known))}")
        return cls(**d)


@dataclass(frozen=True)
class TrainProgress(Progress):
    """Progress of :func:`train`: ``phase`` (1 or 2), ``epoch`` (1-based), ``step`` (in the
    epoch), ``loss`` (running mean of the epoch), ``val`` (last validation score, None
    before the first), ``best`` (best score so far), ``elapsed`` seconds."""

    phase: int = 1
    epoch: int = 0
    step: int = 0
    loss: float = float("nan")
    val: float | None = None
    best: float | None = None
    elapsed: float = 0.0


@dataclass
class TrainResult:
    checkpoint: str  # stem of the best checkpoint (``.json`` + ``.safetensors``)
    best_score: float
    best_epoch: int
    epochs_run: int
    minutes: float
    stopped: str  # "epochs", "patience", "time"
    history: list = field(default_factory=list)


# -- data ------------------------------------------------------------------------------------
def classes_of(cfg: TrainConfig) -> list[str]:
    from cellviewer.core.cliopts import TRAIN_DATASETS

    for d in (d for d in cfg.datasets if d not in TRAIN_DATASETS + ("export",)):  # chula_rbc12 (points), typos
        raise OptionError(f"{d} holds one point per red cell (its morphology class), not masks or boxes: no "
                          f"segmenter trains on it." if d in D.DATASETS else f"Unknown dataset '{d}'.",
                          hint=f"train on {', '.join(TRAIN_DATASETS)} or export (a cellviewer export, --data DIR); "
                               f"the red-cell morphology classifier trains on chula_rbc12 with "
                               f"'python -m cellviewer.core.morphtrain'")
    kinds = {"parts" if d == "wbc_seg" else "boxes" for d in cfg.datasets}
    if len(kinds) > 1:
        raise OptionError(f"wbc_seg (nucleus/cytoplasm masks) cannot be mixed with box datasets "
                          f"({', '.join(d for d in cfg.datasets if d != 'wbc_seg')}).",
                          hint="train two models: one with --datasets wbc_seg, one with the box datasets")
    return list(D.PART_CLASSES if kinds == {"parts"} else D.BOX_CLASSES)


# -- the job -------------------------------------------------------------------------------------
def _card(cfg: TrainConfig, classes, n_train, n_val, state: dict, command: str, extra: dict | None = None) -> dict:
    return card_for(cfg, classes, n_train, n_val, state, command, preprocess_steps(cfg), border_pad_of(cfg),
                    **(extra or {}))


def train(config: TrainConfig, cancel: CancelToken | None = None, command: str = "") -> Job[TrainResult]:
    """Long job: train per ``config`` (see the module docstring); returns a :class:`TrainResult`."""
    import torch

    from cellviewer.nets.checkpoint import load_checkpoint, save_checkpoint
    from cellviewer.nets.widen import widen_do_unet

    from cellviewer.core.device import resolve_device
    from cellviewer.nets.checkpoint import read_card

    cfg = config
    t0 = time.perf_counter()
    classes = classes_of(cfg)
    resumed = read_card(cfg.resume) if cfg.resume else None
    if resumed is not None:  # before any data is read: classes, datasets, splits and epochs left
        check_resume(cfg, resumed, classes)
    cfg = replace(cfg, name=model_name(cfg, resumed), **(net_of(cfg, resumed) if resumed is not None else {}))
    if cfg.device != "cpu":  # a device that is not there is an option error (exit 2), not a torch one
        cfg = replace(cfg, device=resolve_device(cfg.device))
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    state = {"epoch": 0, "phase": 1, "best_score": -1.0, "best_epoch": 0, "history": []}
    if cfg.resume:  # the net before the data: a bad --arch / --net-config is said at once
        yield TrainProgress(0.0, f"resuming {cfg.resume}: the best checkpoint goes to {cfg.out}, the latest to "
                                 f"{cfg.out}-last")
        net, old = load_checkpoint(cfg.resume, "cpu")
        state.update((old.get("training") or {}).get("state") or {})
        if cfg.widen_base:
            net = widen_do_unet(net, cfg.widen_base, seed=cfg.seed)
    else:
        net = build_net(cfg, classes)
    yield TrainProgress(0.0, "loading data")
    train_items, val_items = load_items(cfg, "train"), load_items(cfg, "val")
    extra = {"resumed": resumed, "export_images": export_images({"train": train_items, "val": val_items})}

    def card(st: dict) -> dict:
        return _card(cfg, classes, len(train_items), len(val_items), dict(st), command, extra)
    key = (lambda it: (it["dataset"], it["origin"])) if cfg.balance == "origin" else (
        (lambda it: it["dataset"]) if cfg.balance == "dataset" else (lambda it: 0))
    by_ds: dict = {}
    for it in train_items:
        by_ds[key(it)] = by_ds.get(key(it), 0) + 1
    weights = np.array([1.0 / by_ds[key(it)] for it in train_items])
    weights /= weights.sum()
    acfg = AugmentConfig.from_dict(cfg.augment)
    net.to(cfg.device)
    if hasattr(net, "valid_input_size"):  # valid convolutions (do-unet-valid): a usable crop, targets cut to the output
        acfg.crop = net.valid_input_size(acfg.crop)
    loss_fn = loss_for(cfg)
    steps = cfg.steps_per_epoch or max(1, len(train_items) // cfg.batch_size)
    budget = cfg.max_minutes * 60.0 if cfg.max_minutes else math.inf
    has_edge = any("edge" in n for n, _ in net.named_parameters())
    phases = [(1, cfg.epochs)] + ([(2, cfg.phase2_epochs)] if cfg.two_phase and has_edge else [])
    total_epochs = sum(e for _, e in phases)
    out = Path(cfg.out)
    pad = border_pad_of(cfg)
    window = WeightWindow(cfg.swa_epochs) if cfg.swa_epochs else None
    stopped, done_epochs = "epochs", 0
    command = command or f"python -m cellviewer.core.training --config '{json.dumps(asdict(cfg))}'"
    best = best_so_far(cfg, resumed) if resumed is not None else None
    if best is not None:  # the run's best so far stays the best until an epoch beats it
        state["best_score"] = best[0]
        if best[1]:  # it lies at the run's own --out: copied to this one
            bnet, bcard = load_checkpoint(best[1], "cpu")
            save_checkpoint(bnet, out, dict(bcard, name=cfg.name), half=True)
        yield TrainProgress(0.0, f"keeping the best checkpoint so far (score {best[0]:.4f}) in {out}")
    elif cfg.resume:  # the resumed weights are the start: the score to beat, measured as the new epochs will be
        yield TrainProgress(0.0, "scoring the resumed checkpoint")
        state["best_score"] = validate(net.eval(), val_items, classes, cfg.working_scale, cfg.device, pad)["score"]
        yield TrainProgress(0.0, f"resumed checkpoint: val {state['best_score']:.4f}", val=state["best_score"])
        save_checkpoint(net, out, card(state), half=True)
    for phase, n_ep in phases:
        if phase < state["phase"]:
            done_epochs += n_ep
            continue
        params = [p for n, p in net.named_parameters() if phase == 1 or "edge" in n]
        for n, p in net.named_parameters():
            p.requires_grad_(phase == 1 or "edge" in n)
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        start = state["epoch"] if phase == state["phase"] else 0
        state["phase"], bad = phase, 0
        phase_budget = budget * (0.8 if phase == 1 and len(phases) > 1 else 1.0)
        t_phase = time.perf_counter() - t0
        for epoch in range(start + 1, n_ep + 1):
            net.train(phase == 1)
            if cfg.freeze_bn:
                for m in net.modules():
                    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                        m.eval()
            losses = []
            for step in range(1, steps + 1):
                if cancel is not None:
                    cancel.check()
                el = time.perf_counter() - t0
                progress = max(((epoch - 1) * steps + step) / (n_ep * steps),
                               (el - t_phase) / max(1e-6, phase_budget - t_phase))
                for g in opt.param_groups:
                    g["lr"] = lr_at(min(progress, 1.0), cfg.lr, floor=cfg.lr_floor)
                x, cm, edge = _batch(train_items, weights, rng, acfg, cfg.batch_size)
                res = net(x.to(cfg.device))
                loss = loss_fn(res, cm.to(cfg.device), edge.to(cfg.device), phase)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                el = time.perf_counter() - t0
                frac = max((done_epochs + epoch - 1 + step / steps) / total_epochs, min(1.0, el / budget))
                yield TrainProgress(min(frac, 0.999), f"phase {phase} epoch {epoch}/{n_ep} step {step}/{steps} "
                                    f"loss {np.mean(losses):.4f}", phase, epoch, step, float(np.mean(losses)),
                                    state["history"][-1]["score"] if state["history"] else None,
                                    state["best_score"] if state["best_score"] >= 0 else None, el)
                if el > phase_budget:
                    break
            net.eval()
            if window is not None and phase == 1:
                window.add(net)
            v = validate(net, val_items, classes, cfg.working_scale, cfg.device, pad)
            el = time.perf_counter() - t0
            state["epoch"] = epoch
            state["history"].append({"phase": phase, "epoch": epoch, "loss": round(float(np.mean(losses)), 5),
                                     "score": round(v["score"], 5), "minutes": round(el / 60, 2),
                                     **{k: v[k] for k in v if k != "score"}})
            # phase 2 only trains the edge: keep its best by the same score
            if v["score"] > state["best_score"]:
                state.update(best_score=v["score"], best_epoch=epoch, best_phase=phase)
                save_checkpoint(net, out, card(state), half=True)
                bad = 0
            else:
                bad += 1
            save_checkpoint(net, f"{out}-last", card(state), half=True)
            yield TrainProgress(min(0.999, max((done_epochs + epoch) / total_epochs, el / budget)),  # time too
                                f"phase {phase} epoch {epoch}: loss {np.mean(losses):.4f} val {v['score']:.4f}"
                                f" (best {state['best_score']:.4f} @ {state['best_epoch']})", phase, epoch, steps,
                                float(np.mean(losses)), v["score"], state["best_score"], el)
            if el > phase_budget:
                stopped = "time"
                break
            if bad >= cfg.patience:
                stopped = "patience"
                break
        done_epochs += n_ep
        state["epoch"] = 0
        if window is not None and phase == 1 and len(window) > 1:
            yield from _swa_finish(net, window, cfg, classes, (train_items, weights, acfg, rng), val_items, pad,
                                   state, out, card, t0)
    minutes = (time.perf_counter() - t0) / 60.0
    yield TrainProgress(1.0, f"done ({stopped}); best {state['best_score']:.4f} at epoch {state['best_epoch']}")
    return TrainResult(str(out), float(state["best_score"]), int(state["best_epoch"]),
                       len(state["history"]), minutes, stopped, list(state["history"]))


def _swa_finish(net, window, cfg: TrainConfig, classes, data, val_items, pad, state, out, card, t0):
    """Average the window into ``net`` (BatchNorm re-estimated on 32 training batches), save it as
    ``OUT-swa``, and as the best checkpoint when it validates better."""
    from cellviewer.nets.checkpoint import save_checkpoint

    train_items, weights, acfg, rng = data
    last = {k: v.detach().clone() for k, v in net.state_dict().items()}
    n = average_into(net, window)
    if not cfg.freeze_bn:
        refresh_batchnorm(net, (_batch(train_items, weights, rng, acfg, cfg.batch_size)[0].to(cfg.device)
                                for _ in range(32)))
    net.eval()
    v = validate(net, val_items, classes, cfg.working_scale, cfg.device, pad)
    el = time.perf_counter() - t0
    epoch = max([h["epoch"] for h in state["history"] if h.get("phase") == 1] or [0])
    entry = {"phase": 1, "epoch": epoch, "swa": n, "score": round(v["score"], 5), "minutes": round(el / 60, 2),
             **{k: v[k] for k in v if k != "score"}}
    state["history"].append(entry)
    better = v["score"] > state["best_score"]
    if better:
        state.update(best_score=v["score"], best_epoch=epoch, best_phase=1, best_swa=n)
        save_checkpoint(net, out, card(state), half=True)
    save_checkpoint(net, f"{out}-swa", card(state), half=True)
    yield TrainProgress(0.999, f"SWA of the last {n} epochs: val {v['score']:.4f} "
                        f"({'new best' if better else 'not better'}; best {state['best_score']:.4f})",
                        1, state["epoch"], 0, float("nan"), v["score"], state["best_score"], el)
    if not better:
        net.load_state_dict(last)


def lr_at(progress: float, base: float, warmup: float = 0.05, floor: float = 0.02) -> float:
    """Learning rate at ``progress`` (0..1 of the phase, by steps or wall time): linear warm-up, cosine decay."""
    if progress < warmup:
        return base * (floor + (1 - floor) * progress / warmup)
    t = (progress - warmup) / (1 - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


# -- command line -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m cellviewer.core.training``: plain progress lines (``cellviewer train`` has a bar)."""
    from cellviewer.core.cliopts import add_train_arguments, train_config_from_args

    ap = argparse.ArgumentParser(prog="python -m cellviewer.core.training",
                                 description="Train a cellviewer segmentation network on shared/data.")
    add_train_arguments(ap)
    args = ap.parse_args(argv)
    command = "python -m cellviewer.core.training " + shlex.join(sys.argv[1:] if argv is None else argv)
    last = [0.0]

    def show(p: Progress) -> None:
        if " val " in p.message or p.message.startswith(("done", "loading", "resuming")) or time.time() - last[0] > 60:
            last[0] = time.time()
            print(p.message, flush=True)

    def body() -> None:
        res = run_job(train(train_config_from_args(args), command=command), show)
        print(json.dumps({k: v for k, v in asdict(res).items() if k != "history"}, indent=1))

    return script_main(body)


if __name__ == "__main__":
    sys.exit(main())
