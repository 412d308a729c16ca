"""Fine-tuning the red-cell morphology classifier on reviewed corrections, and its regression gate.

The review loop of the segmenters (:mod:`cellviewer.core.finetune`, :mod:`cellviewer.core.gate`)
for the morphology model (:mod:`cellviewer.core.morphology`):

1. **Data**: a cellviewer export (:mod:`cellviewer.core.export_dataset`; a folder, or reviewed
   images / documents exported first into ``<out>-data``). Its ``markers.csv`` holds every
   red-cell marker's class (``morphology``) as the annotator left it: classes the model gave
   and the annotator let stand, and classes set by hand (``morphology_p`` = 1). Each becomes a
   crop (:func:`export_cells`: same scale, white balance and grey as the base model's card);
   a hand-set class counts ``hand_weight`` times (it is the correction).
2. **Fine-tune** (:func:`finetune_morphology`, a job: progress, cancel): from the base model's
   weights, AdamW at a tenth of the base's learning rate (cosine), plain cross-entropy (the
   lab's own class mix), the trainer's augmentation (:func:`cellviewer.core.morphtrain.run_epoch`),
   at most :data:`MAX_EPOCHS` epochs. The base is scored on the export's ``val`` cells first;
   only a better epoch (score = mean of accuracy and macro F1) replaces it, so a run that
   learns nothing returns the base's weights. Returns a :class:`cellviewer.core.finetune.FinetuneResult`.
3. **Gate** (:func:`morphology_gate`): old vs new on the export's held-out ``test`` cells (and
   on a reference export, if given); accepted when the new score is at least the old + ``min_gain``
   and not lower on the reference. A :class:`cellviewer.core.gate.GateResult`, so the GUI's gate
   dialog, Accept (model store: next version of ``rbc-morphology``, active at once) and Reject
   work as for the segmenters.

``python -m cellviewer.core.morphfinetune EXPORT --out OUT [--store]`` runs the loop headless
(:func:`main`); ``python -m cellviewer.core.morphdemo`` measures it on the shared data.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from cellviewer.core.csvtext import unquote_rows
from cellviewer.core import morphology as MO
from cellviewer.core.errors import CellviewerError, ModelLoadError, SaveError
from cellviewer.core.jobs import CancelToken, Job, Progress

#: learning rate of a fine-tune, as a fraction of the base model's
LR_FRACTION = 0.1
#: at most this many epochs: on a few hundred cells, longer runs only learn those cells (``morphdemo``)
MAX_EPOCHS = 30


def morphology_base(name_or_stem) -> tuple[Path, dict] | None:
    """``(card path, card)`` when ``name_or_stem`` is a red-cell morphology model (its registered name, as
    :func:`cellviewer.core.morphology.find_card` resolves it, or a checkpoint stem / card path), else None."""
    s = str(name_or_stem).removesuffix(".json").removesuffix(".safetensors")
    path = Path(s + ".json") if Path(s + ".json").is_file() else MO.find_card(s) if Path(s).name == s else None
    if path is None:
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (path, card) if isinstance(card, dict) and card.get("task") == MO.TASK else None


def export_cells(data_dir, split: str | None, card: dict, *, margin: float = 1.0, cancel: CancelToken | None = None):
    """``(crops N×S×S×3 uint8, labels N, hand-set N bool, image names)`` of the red-cell markers with a
    morphology class in ``split`` (None: every split) of an export, cropped as the model of ``card`` sees
    cells (``margin`` × its crop, for augmentation)."""
    from cellviewer.core.morphdata import field_crops

    root = Path(data_dir)
    try:
        with open(root / "images.csv", newline="", encoding="utf-8") as f:
            images = {r["image"]: r for r in unquote_rows(csv.DictReader(f))}
        with open(root / "markers.csv", newline="", encoding="utf-8") as f:
            rows = list(unquote_rows(csv.DictReader(f)))
    except (OSError, KeyError) as e:
        raise CellviewerError(f"'{root}' is not a cellviewer export with markers ({e}).",
                              hint="export reviewed images with 'cellviewer export IMAGES --out DIR'") from e
    classes = list(card.get("classes") or MO.CLASSES)
    ids = {c: i for i, c in enumerate(classes)}
    px = int(round(int(card.get("crop_px") or MO.CROP_PX) * margin))
    by_image: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("cls") == "rbc" and r.get("morphology") in ids and r["image"] in images:
            if split is None or images[r["image"]]["split"] == split:
                by_image.setdefault(r["image"], []).append(r)
    crops, labels, hand, names = [], [], [], []
    for name, rs in sorted(by_image.items()):
        if cancel is not None:
            cancel.check()
        pts = np.array([(float(r["x"]), float(r["y"])) for r in rs], np.float64)
        crops.append(field_crops(root / "images" / name, pts, px, margin, bool(card.get("white_balance")),
                                  card.get("crop_scale") or "estimate"))
        labels.append(np.array([ids[r["morphology"]] for r in rs], np.int64))
        hand.append(np.array([float(r.get("morphology_p") or 0) >= 1.0 for r in rs], bool))
        names.append(name)
    if not crops:
        return np.zeros((0, px, px, 3), np.uint8), np.zeros(0, np.int64), np.zeros(0, bool), []
    return np.concatenate(crops), np.concatenate(labels), np.concatenate(hand), names


def gate_score(s: dict) -> float:
    """The primary number of a morphology fine-tune: mean of accuracy and macro F1."""
    return (s["accuracy"] + s["macro_f1"]) / 2


def _score(net, card: dict, crops: np.ndarray, labels: np.ndarray) -> dict:
    from cellviewer.core.morphtrain import evaluate_net

    return evaluate_net(net, crops, labels, int(card.get("crop_px") or MO.CROP_PX), bool(card.get("grey")))


def finetune_morphology(base, train_items, *, out, minutes: float | None = 5.0, epochs: int = MAX_EPOCHS,
                        cancel: CancelToken | None = None, lr: float | None = None, batch_size: int = 64,
                        threads: int | None = None, device: str = "cpu", seed: int = 0, keep: str = "best",
                        hand_weight: int = 3, **segmentation_only) -> Job:
    """Long job: fine-tune the morphology model ``base`` (name or checkpoint stem) on the classes of an export's
    ``train`` cells; writes ``out`` (best on ``val``, or the last epoch with ``keep="last"``) and returns a
    :class:`cellviewer.core.finetune.FinetuneResult`. The classifier is small: it trains on the CPU whatever
    ``device`` says. ``segmentation_only``: options of the segmenters' fine-tune (``steps_per_epoch``,
    ``val_limit``, ``patience``), accepted and ignored, so one call serves both."""
    import torch

    from cellviewer.core.finetune import FinetuneResult, _data, _sha
    from cellviewer.core.morphdata import MARGIN
    from cellviewer.core.morphtrain import cosine_lr, run_epoch
    from cellviewer.core.training import TrainProgress
    from cellviewer.nets.checkpoint import load_checkpoint, save_checkpoint

    found = morphology_base(base)
    if found is None:
        raise ModelLoadError(f"'{base}' is not a red-cell morphology model.",
                             hint=f"start from {MO.MODEL_NAME} or a stored version of it")
    if keep not in ("best", "last"):
        raise CellviewerError(f"keep must be 'best' or 'last', not '{keep}'.", hint="use keep='best'")
    card_path, card = found
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SaveError(f"Cannot create '{out.parent}': {e.strerror or e}", hint="choose a writable folder") from e
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    yield Progress(0.0, "preparing the training data")
    data_dir = yield from _data(train_items, out, cancel)
    tr_x, tr_y, tr_hand, tr_names = export_cells(data_dir, "train", card, margin=MARGIN, cancel=cancel)
    va_x, va_y, _, va_names = export_cells(data_dir, "val", card, cancel=cancel)
    if not len(tr_y) or not len(va_y):
        raise CellviewerError(f"The export '{data_dir}' has {len(tr_y)} training and {len(va_y)} validation red cells "
                              "with a morphology class; fine-tuning needs both.",
                              hint="segment with morphology on, review the classes and mark at least 3 images reviewed")
    epochs = max(1, min(int(epochs), MAX_EPOCHS))
    reps = np.where(tr_hand, max(1, int(hand_weight)), 1)
    fit_x, fit_y = np.repeat(tr_x, reps, axis=0), np.repeat(tr_y, reps)
    net, _ = load_checkpoint(card_path.with_suffix(""), device="cpu")
    cfg = (card.get("training") or {}).get("config") or {}
    lr = float(lr or float(cfg.get("lr") or 2e-3) * LR_FRACTION)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=float(cfg.get("weight_decay") or 1e-4))
    lossf = torch.nn.CrossEntropyLoss(label_smoothing=float(cfg.get("label_smoothing") or 0.05))
    px, grey = int(card.get("crop_px") or MO.CROP_PX), bool(card.get("grey"))
    net.eval()
    best = gate_score(_score(net, card, va_x, va_y))
    best_state, best_epoch, history, t0 = _state(net), 0, [{"epoch": 0, "val_score": round(best, 4)}], time.time()
    yield TrainProgress(0.02, f"base model: val score {best:.4f} ({len(va_y)} cells)", epoch=0, val=best, best=best)
    stopped = "epochs"
    for epoch in range(1, int(epochs) + 1):
        elapsed = time.time() - t0
        cosine_lr(opt, lr, max(elapsed / 60 / minutes if minutes else 0.0, (epoch - 1) / epochs))
        loss = run_epoch(net, opt, lossf, fit_x, fit_y, rng, batch_size=batch_size, px=px,
                         strong=bool(cfg.get("strong_aug", True)), grey=grey, cancel=cancel)
        val = gate_score(_score(net, card, va_x, va_y))
        if val > best:
            best, best_epoch, best_state = val, epoch, _state(net)
        elapsed = time.time() - t0
        history.append({"epoch": epoch, "loss": round(loss, 4), "val_score": round(val, 4),
                        "minutes": round(elapsed / 60, 2)})
        yield TrainProgress(min(0.95, max(epoch / epochs, elapsed / 60 / minutes if minutes else 0.0)),
                            f"epoch {epoch}: loss {loss:.4f} val {val:.4f} (best {best:.4f} @ {best_epoch})",
                            epoch=epoch, loss=loss, val=val, best=best, elapsed=elapsed)
        if minutes and elapsed / 60 >= minutes:
            stopped = "time"
            break
    if keep == "best":
        net.load_state_dict(best_state)
    new = dict(card, name=str(card.get("name") or MO.MODEL_NAME),
               description=f"{card.get('name', 'rbc-morphology')} fine-tuned on reviewed corrections ({data_dir})",
               fine_tuned_from={"model": str(card.get("name") or base), "version": str(card.get("version", "")),
                                "data": str(data_dir)},
               training={"config": {"lr": lr, "batch_size": batch_size, "epochs": epochs, "minutes": minutes,
                                    "hand_weight": hand_weight, "seed": seed, "keep": keep,
                                    **{k: cfg[k] for k in ("crop_px", "grey", "white_balance", "widths") if k in cfg}},
                         "best_epoch": best_epoch, "epochs_run": len(history) - 1, "history": history,
                         "n_train_cells": int(len(tr_y)), "n_train_hand_set": int(tr_hand.sum()),
                         "n_val_cells": int(len(va_y))},
               metrics={"val_score": round(best, 5)},
               command=f"cellviewer.core.morphfinetune.finetune_morphology({str(base)!r}, {str(data_dir)!r}, "
                       f"minutes={minutes}, epochs={epochs}, lr={lr})")
    new.pop("sha256", None)
    new.pop("weights", None)
    save_checkpoint(net, out, new, half=True)
    yield Progress(1.0, "done")
    images = sorted(set(tr_names) | set(va_names))
    return FinetuneResult(str(out), float(best), best_epoch, len(history) - 1, round((time.time() - t0) / 60, 2),
                          stopped, history, base=str(base), base_version=str(card.get("version", "")),
                          data_dir=str(data_dir), data_hashes=sorted(_sha(Path(data_dir) / "images" / n) for n in images),
                          n_train=len(tr_names), n_val=len(va_names))


def _state(net) -> dict:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def morphology_gate(old, new, items, *, reference_items=None, min_gain: float = 0.0,
                    cancel: CancelToken | None = None) -> Job:
    """Long job: old vs new morphology model (names or checkpoint stems) on the ``test`` cells of the export
    ``items`` (and every cell of the export ``reference_items``, if given); returns a
    :class:`cellviewer.core.gate.GateResult` (rows ``held-out: accuracy`` ... ``held-out: score``)."""
    from cellviewer.core.gate import GateResult
    from cellviewer.nets.checkpoint import load_checkpoint

    models = []
    for which in (old, new):
        found = morphology_base(which)
        if found is None:
            raise ModelLoadError(f"'{which}' is not a red-cell morphology model.", hint="pick rbc-morphology")
        models.append((load_checkpoint(found[0].with_suffix(""))[0], found[1]))
    rows, details, verdict, sizes = [], {}, [], []
    sets = [("held-out", items, "test")] + ([("reference", reference_items, None)] if reference_items else [])
    for k, (label, data, split) in enumerate(sets):
        yield Progress(k / len(sets), f"{label}: scoring the old and the new model")
        pair, cells = [], {}
        for net, card in models:
            how = json.dumps([card.get(k) for k in ("crop_px", "crop_diameters", "white_balance", "crop_scale",
                                                    "classes")])
            if how not in cells:  # a fine-tune keeps its base's crops: the images are read and cropped once
                cells[how] = export_cells(data, split, card, cancel=cancel)
            x, y, hand, names = cells[how]
            if not len(y):
                part = "test images" if split else "images"
                raise CellviewerError(f"The {part} of '{data}' have no red cells with a morphology class, so there is "
                                      f"nothing to compare the models on ({label}).",
                                      hint="export at least 3 reviewed images segmented with morphology on (the default "
                                           "split keeps 20 % of them as held-out test images)")
            s = _score(net, card, x, y)
            s["score"], s["images"] = gate_score(s), len(names)
            pair.append(s)
        details[label] = {"old": pair[0], "new": pair[1]}
        sizes.append(f"{label}: {len(names)} image{'s' if len(names) != 1 else ''}, {len(y)} cells, "
                     f"{int(hand.sum())} classes set by hand"
                     + (" — the others are the model's own classes, let stand" if hand.sum() < len(y) else ""))
        for m, shown in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"),
                         ("macro_f1", "macro F1"), ("score", "score")):
            rows.append((f"{label}: {shown}", pair[0][m], pair[1][m], pair[1][m] - pair[0][m]))
        need = min_gain if label == "held-out" else 0.0
        if pair[1]["score"] < pair[0]["score"] + need - 1e-12:
            verdict.append(f"the {label} score fell or did not gain {100 * need:.2f} points "
                           f"({100 * pair[0]['score']:.2f} -> {100 * pair[1]['score']:.2f} %, {pair[1]['n']} cells)")
    yield Progress(1.0, "gate done")
    trained = models[1][1].get("training") or {}
    kept = trained.get("best_epoch") == 0 and (trained.get("config") or {}).get("keep") == "best"
    if kept:
        verdict.append("the fine-tune kept the base's weights (no epoch beat it on the validation cells); "
                       "there is nothing new to store")
    accepted = not verdict
    reason = ("the new model is at least as good on the held-out cells"
              + (" and on the reference set" if reference_items else "") if accepted else "; ".join(verdict))
    reason += " (" + "; ".join(sizes) + ")"  # how much the verdict rests on, and how much of it is a person's
    return GateResult(rows, accepted, reason, old_name=str(old), new_name=str(new), details=details,
                      nothing_new=kept)


def main(argv: list[str] | None = None) -> int:
    """``python -m cellviewer.core.morphfinetune DATA --out OUT [--store]``: fine-tune, gate, and (when the gate
    accepts and ``--store`` is given) store and activate the new version; exit 1 when the gate refuses
    (:mod:`cellviewer.core.finetunerun`, as ``cellviewer finetune --base rbc-morphology``)."""
    import argparse

    from cellviewer.core import finetunerun
    from cellviewer.core.errors import script_main

    ap = argparse.ArgumentParser(prog="python -m cellviewer.core.morphfinetune",
                                 description="Fine-tune the red-cell morphology model on reviewed corrections, "
                                             "then the regression gate on their held-out part.",
                                 epilog=finetunerun.EXIT_CODES)
    finetunerun.add_arguments(ap, MO.MODEL_NAME)
    args = ap.parse_args(argv)
    return script_main(lambda: finetunerun.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
