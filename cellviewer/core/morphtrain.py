"""Train and score the red-cell morphology classifier on Chula RBC-12 (:mod:`cellviewer.core.morphology`).

Data: the labelled points of ``chula_rbc12`` (``../shared/data``), split by image with
:func:`cellviewer.core.datasets.split_of` (train / val / test, as every other model): a
crop per point (:func:`cellviewer.core.morphology.cell_crops`) at the image's estimated
red-cell diameter (:func:`cellviewer.core.cellsize.estimate_rbc_diameter`, as the segmenter
finds it at run time).

Training (:func:`train_morphology`, a job generator: progress, cancel): AdamW + cosine
schedule, cross-entropy with class weights ``(n / n_c) ** 0.5`` and label smoothing;
augmentation: the 8 flips/rotations, ±8 % scale, ±3 px shift, brightness / contrast /
saturation jitter. The epoch with the best validation macro F1 is kept; the card gets
the scores on the test images (:func:`scores`: accuracy, balanced accuracy, macro F1,
per-class precision / recall / F1, confusion matrix).

``python -m cellviewer.core.morphtrain --out models/rbc-morphology --minutes 25`` trains;
``--evaluate models/rbc-morphology`` only scores a model (``--split``).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cellviewer.core import datasets as D
from cellviewer.core import morphology as MO
from cellviewer.core.errors import OptionError, script_main
from cellviewer.core.jobs import CancelToken, Job, Progress, run_job
from cellviewer.core.morphdata import CROP_SCALES, center_crops, load_crops, load_pbc_normals


@dataclass
class MorphConfig:
    out: str = "runs/rbc-morphology"
    data_root: str | None = None
    widths: list[int] = field(default_factory=lambda: [24, 48, 96, 160])
    crop_px: int = MO.CROP_PX
    epochs: int = 200
    max_minutes: float = 20.0
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    seed: int = 0
    threads: int = 0
    #: white-balance each image before cropping (:func:`cellviewer.core.morphology.white_balance`; stored in the card)
    white_balance: bool = True
    #: stronger appearance augmentation (blur, gamma, gain per channel) for other microscopes and stains
    strong_aug: bool = True
    #: add up to this many red cells of TXL-PBC's PBC images (healthy donors) of the same split as "normal"
    pbc_normals: int = 0
    #: classify grey crops (luminance only; stored in the card)
    grey: bool = False
    #: how the crops' red-cell size is found (:data:`CROP_SCALES`; stored in the card)
    crop_scale: str = "estimate"


def _augment(crops: np.ndarray, rng: np.random.Generator, px: int = MO.CROP_PX, strong: bool = False) -> np.ndarray:
    import cv2

    out = np.empty((len(crops), px, px, 3), np.uint8)
    big = crops.shape[1]
    for i, c in enumerate(crops):
        side = px * rng.uniform(0.92, 1.08)
        cx, cy = big / 2 + rng.uniform(-3, 3), big / 2 + rng.uniform(-3, 3)
        m = np.array([[px / side, 0, px / 2 - cx * px / side], [0, px / side, px / 2 - cy * px / side]])
        a = cv2.warpAffine(c, m, (px, px), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        if strong and rng.random() < 0.5:  # softer optics / focus (other microscopes, JPEG fields)
            a = cv2.GaussianBlur(a, (0, 0), rng.uniform(0.3, 1.2))
        if strong:  # stain and lamp: a gain per channel and a gamma
            g = rng.uniform(0.88, 1.12, 3) * rng.uniform(0.9, 1.1)
            a = np.clip(255.0 * (a.astype(np.float32) / 255.0) ** rng.uniform(0.8, 1.25) * g, 0, 255).astype(np.uint8)
        a = np.rot90(a, int(rng.integers(4)))
        out[i] = a[:, ::-1] if rng.random() < 0.5 else a
    return out


def _jitter(x, rng: np.random.Generator):
    import torch

    n = x.shape[0]
    b = torch.from_numpy(rng.uniform(0.85, 1.15, (n, 1, 1, 1))).float()
    c = torch.from_numpy(rng.uniform(0.85, 1.15, (n, 1, 1, 1))).float()
    s = torch.from_numpy(rng.uniform(0.8, 1.2, (n, 1, 1, 1))).float()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * c + mean * b
    grey = x.mean(dim=1, keepdim=True)
    return ((x - grey) * s + grey).clamp_(0, 1)


def class_weights(labels: np.ndarray, n_classes: int):
    """Cross-entropy class weights ``(n / n_c) ** 0.5`` (0 for absent classes), mean 1 over the present ones."""
    import torch

    counts = np.bincount(labels, minlength=n_classes).astype(float)
    w = torch.from_numpy(np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** 0.5, 0.0)).float()
    return w / w[counts > 0].mean()


def cosine_lr(opt, lr: float, frac: float) -> None:
    """Set every group's learning rate to ``lr`` annealed (cosine, to 2 %) at ``frac`` (0..1) of the run."""
    for g in opt.param_groups:
        g["lr"] = lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, frac)))))


def run_epoch(net, opt, lossf, crops: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *, batch_size: int,
              px: int, strong: bool, grey: bool, cancel: CancelToken | None = None) -> float:
    """One pass over ``crops`` (shuffled, augmented: :func:`_augment`, :func:`_jitter`) in ``len // batch_size``
    steps (at least one); returns the mean loss. The net is left in eval mode."""
    import torch

    net.train()
    order = rng.permutation(len(crops))
    steps = max(1, len(crops) // batch_size)
    total = 0.0
    for k in range(steps):
        if cancel is not None:
            cancel.check()
        idx = order[k * batch_size:(k + 1) * batch_size]
        a = _augment(crops[idx], rng, px, strong)
        x = _jitter(MO.to_tensor(MO.to_grey(a) if grey else a), rng)
        loss = lossf(net(x)["logits"], torch.from_numpy(labels[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(loss.detach())
    net.eval()
    return total / steps


def scores(true: np.ndarray, pred: np.ndarray, n_classes: int, names=MO.CLASSES) -> dict:
    """Accuracy, balanced accuracy and macro F1 (over the classes present in ``true``), per-class
    precision / recall / F1 / support and the confusion matrix (rows = true)."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (true, pred), 1)
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(1), cm.sum(0)
    prec = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    rec = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
    present = support > 0
    return {"n": int(cm.sum()), "accuracy": float(tp.sum() / max(1, cm.sum())),
            "balanced_accuracy": float(rec[present].mean()) if present.any() else 0.0,
            "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
            "per_class": {names[k]: {"precision": round(float(prec[k]), 4), "recall": round(float(rec[k]), 4),
                                     "f1": round(float(f1[k]), 4), "support": int(support[k])}
                          for k in range(n_classes)},
            "confusion": cm.tolist()}


def evaluate_net(net, crops: np.ndarray, labels: np.ndarray, crop_px: int = MO.CROP_PX, grey: bool = False) -> dict:
    probs = MO.predict_crops(net, center_crops(crops, crop_px) if crops.shape[1] != crop_px else crops, grey=grey)
    return scores(labels, probs.argmax(1), len(MO.CLASSES))


def train_morphology(cfg: MorphConfig, command: str = "", cancel: CancelToken | None = None) -> Job[dict]:
    """Train, keep the best validation epoch, score it on test, save it (float16) to ``cfg.out``;
    returns its card."""
    import torch

    from cellviewer.nets.checkpoint import save_checkpoint
    from cellviewer.nets.registry import create_net

    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    yield Progress(0.0, "loading crops")
    px = int(cfg.crop_px)
    wb = bool(cfg.white_balance)
    tr_x, tr_y, _, tr_names = load_crops("train", cfg.data_root, cancel=cancel, crop_px=px, white_balance=wb,
                                       scale=cfg.crop_scale)
    va_x, va_y, _, va_names = load_crops("val", cfg.data_root, cancel=cancel, crop_px=px, white_balance=wb,
                                       scale=cfg.crop_scale)
    n_pbc = 0
    if cfg.pbc_normals:
        px_x, px_y = load_pbc_normals("train", cfg.pbc_normals, cfg.data_root, crop_px=px, white_balance=wb,
                                      seed=cfg.seed, scale=cfg.crop_scale)
        tr_x, tr_y, n_pbc = np.concatenate([tr_x, px_x]), np.concatenate([tr_y, px_y]), len(px_y)
    n_cls = len(MO.CLASSES)
    net = create_net("cell-cnn", n_classes=n_cls, widths=list(cfg.widths))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    lossf = torch.nn.CrossEntropyLoss(weight=class_weights(tr_y, n_cls), label_smoothing=cfg.label_smoothing)
    t0, best, best_state, history = time.time(), -1.0, None, []
    for epoch in range(1, cfg.epochs + 1):
        cosine_lr(opt, cfg.lr, max((time.time() - t0) / 60 / cfg.max_minutes, (epoch - 1) / cfg.epochs))
        loss = run_epoch(net, opt, lossf, tr_x, tr_y, rng, batch_size=cfg.batch_size, px=px,
                         strong=cfg.strong_aug, grey=cfg.grey, cancel=cancel)
        val = evaluate_net(net, va_x, va_y, px, cfg.grey)
        minutes = (time.time() - t0) / 60
        history.append({"epoch": epoch, "loss": round(loss, 4), "val_macro_f1": round(val["macro_f1"], 4),
                        "val_accuracy": round(val["accuracy"], 4), "minutes": round(minutes, 2)})
        if val["macro_f1"] > best:
            best, best_epoch = val["macro_f1"], epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        yield Progress(min(0.95, max(epoch / cfg.epochs, minutes / cfg.max_minutes)),
                       f"epoch {epoch}: loss {loss:.4f} val macro F1 {val['macro_f1']:.4f} "
                       f"acc {val['accuracy']:.4f} (best {best:.4f} @ {best_epoch}) {minutes:.1f} min")
        if minutes >= cfg.max_minutes:
            break
    # the weights are stored as float16: score exactly what is stored (--evaluate then reproduces it)
    net.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in best_state.items()})
    net.eval()
    yield Progress(0.97, "scoring the test split")
    te_x, te_y, _, te_names = load_crops("test", cfg.data_root, cancel=cancel, crop_px=px, white_balance=wb,
                                       scale=cfg.crop_scale)
    test = evaluate_net(net, te_x, te_y, px, cfg.grey)
    card = {"name": Path(cfg.out).name, "task": MO.TASK, "classes": list(MO.CLASSES),
            "crop_px": px, "crop_diameters": MO.CROP_DIAMETERS, "working_scale": None, "white_balance": wb,
            "grey": bool(cfg.grey), "crop_scale": cfg.crop_scale,
            "description": (f"red-cell morphology classifier ({len(MO.CLASSES)} Chula RBC-12 classes) "
                            f"on {px}-px crops {MO.CROP_DIAMETERS:g} red-cell diameters wide"),
            "licence": "weights trained on Chula RBC-12 (MIT, Copyright (c) 2021 Chula PIC Lab)",
            "training_data": {"datasets": ["chula_rbc12"] + (["txl_pbc"] if n_pbc else []),
                              "labels": "chula_rbc12: centre points with morphology classes"
                                        + ("; txl_pbc: red-cell boxes of the PBC images (healthy donors) clear of the "
                                           "image edge, as 'normal'" if n_pbc else ""),
                              "split": {"function": "cellviewer.core.datasets.split_of", "trained_on": "train",
                                        "selected_on": "val (macro F1)", "reported_on": "test"},
                              "n_train_cells": int(len(tr_y)), "n_val_cells": int(len(va_y)),
                              "n_train_pbc_normal_cells": n_pbc,
                              "n_test_cells": int(len(te_y)), "n_train_images": len(tr_names),
                              "n_val_images": len(va_names), "n_test_images": len(te_names)},
            "training": {"config": asdict(cfg), "best_epoch": best_epoch, "epochs_run": len(history),
                         "minutes": round((time.time() - t0) / 60, 1), "history": history},
            "metrics": {"test": test, "val_best_macro_f1": round(best, 4),
                        "command": "python -m cellviewer.core.morphtrain --evaluate " + cfg.out},
            "command": command}
    card = save_checkpoint(net, cfg.out, card, half=True)
    yield Progress(1.0, "done")
    return card


def normal_shares(model, split: str = "val", limit: int = 20, data_root=None, segmenter: str = "blood-cells") -> dict:
    """Share of red cells called "normal", per source, on the first ``limit`` images of ``split`` of TXL-PBC
    (PBC: healthy donors, so it should be high; Raabin-WBC) and BCCD, through the whole pipeline
    (``segmenter``'s red cells not cut by the image edge, then ``model`` = ``(net, card)``): a check on microscopes and stains that
    Chula RBC-12 does not have. Returns ``{source: {"images", "red_cells", "normal_share", "top"}}``."""
    from collections import Counter

    from cellviewer.core.io import read_image
    from cellviewer.core.segment import create_segmenter

    seg = create_segmenter(segmenter, morphology=False, device="cpu")
    out = {}
    for ds, origin in (("txl_pbc", "pbc"), ("txl_pbc", "raabin_wbc"), ("bccd", None)):
        samples = [s for s in D.load_samples(ds, data_root, split) if origin is None or s.origin == origin][:limit]
        c: Counter = Counter()
        for sample in samples:
            img = read_image(sample.path).pixels
            res = run_job(seg.segment(img))
            MO.classify_cells(img, res.markers, res.params["diameter_px"], model=model, labels=res.labels["rbc"])
            c.update(m.morph for m in res.markers if m.cls == "rbc" and m.morph)  # cells cut by the edge: none
        n = sum(c.values())
        out[origin or ds] = {"images": len(samples), "red_cells": n, "normal_share": round(c["normal"] / n, 4) if n else None,
                             "top": {k: round(v / n, 4) for k, v in c.most_common(4)}}
    return out


def format_scores(s: dict) -> str:
    lines = [f"{s['n']} cells: accuracy {100 * s['accuracy']:.2f} %, balanced accuracy "
             f"{100 * s['balanced_accuracy']:.2f} %, macro F1 {100 * s['macro_f1']:.2f} %",
             f"{'class':<14}{'prec':>7}{'recall':>8}{'F1':>7}{'n':>6}"]
    for name, c in s["per_class"].items():
        lines.append(f"{name:<14}{100 * c['precision']:>7.1f}{100 * c['recall']:>8.1f}{100 * c['f1']:>7.1f}"
                     f"{c['support']:>6}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cellviewer.core.morphtrain", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=MorphConfig.out, help="checkpoint stem to write (default %(default)s)")
    ap.add_argument("--data", default=None, help="data root in the shared layout (default ../shared/data)")
    ap.add_argument("--minutes", type=float, default=MorphConfig.max_minutes, help="wall-time budget")
    ap.add_argument("--epochs", type=int, default=MorphConfig.epochs)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--crop-px", type=int, default=MO.CROP_PX, help="network input side (default %(default)s)")
    ap.add_argument("--widths", default=None, help="channels per stage, e.g. 16,32,64,128")
    ap.add_argument("--pbc-normals", type=int, default=0, metavar="N",
                    help="add up to N red cells of TXL-PBC's PBC train images (healthy donors) as 'normal'")
    ap.add_argument("--plain", action="store_true", help="no white balance and no strong augmentation")
    ap.add_argument("--grey", action="store_true", help="classify grey crops (luminance only)")
    ap.add_argument("--crop-scale", default="estimate", choices=CROP_SCALES,
                    help="crops at the blob estimate of the red-cell size, or at the size blood-cells segments at "
                         "(the estimate refined on its red cells: what a segmentation classifies at)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--evaluate", metavar="MODEL", help="only score this model (card path or stem)")
    ap.add_argument("--split", default="test", choices=["train", "val", "test"], help="with --evaluate")
    ap.add_argument("--normal-share", action="store_true",
                    help="with --evaluate: also the share of red cells called normal on the first 20 images of "
                         "--split of TXL-PBC's PBC (healthy donors) and Raabin parts and of BCCD")
    args = ap.parse_args(argv)
    return script_main(lambda: _evaluate_command(args) if args.evaluate else _train_command(args, argv))


def _evaluate_command(args) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    net, card = MO.load_model(Path(args.evaluate).with_suffix(".json"))
    px = int(card.get("crop_px") or MO.CROP_PX)
    x, y, _, names = load_crops(args.split, args.data, crop_px=px, white_balance=bool(card.get("white_balance")),
                                scale=card.get("crop_scale") or "estimate")
    print(f"{card.get('name')} on the {args.split} split of chula_rbc12 ({len(names)} images)")
    print(format_scores(evaluate_net(net, x, y, px, bool(card.get("grey")))))
    if args.normal_share:
        for src, r in normal_shares((net, card), args.split, data_root=args.data).items():
            print(f"{src}: {r['images']} images, {r['red_cells']} red cells, "
                  f"{100 * (r['normal_share'] or 0):.1f} % called normal; most frequent: "
                  + ", ".join(f"{k} {100 * v:.1f} %" for k, v in r["top"].items()))


def _train_command(args, argv) -> None:
    if args.minutes <= 0 or args.epochs <= 0:
        raise OptionError("--minutes and --epochs must be positive", hint="e.g. --minutes 20")
    cfg = MorphConfig(out=args.out, data_root=args.data, max_minutes=args.minutes, epochs=args.epochs,
                      seed=args.seed, threads=args.threads, crop_px=args.crop_px, pbc_normals=args.pbc_normals,
                      white_balance=not args.plain, strong_aug=not args.plain, grey=args.grey,
                      crop_scale=args.crop_scale,
                      **({"widths": [int(w) for w in args.widths.split(",")]} if args.widths else {}))
    command = "python -m cellviewer.core.morphtrain " + shlex.join(sys.argv[1:] if argv is None else argv)
    card = run_job(train_morphology(cfg, command), lambda p: print(p.message, flush=True))
    print(format_scores(card["metrics"]["test"]))
    print(json.dumps({k: card[k] for k in ("name", "sha256")}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
