"""Evaluate a segmenter on the shared data: the full metric table of the papers.

:func:`evaluate_model` runs a segmenter (a name from the registry, or an object) on one
split (``test``, ``val``, ``train`` — :func:`cellviewer.core.datasets.split_of` — or ``all``;
by default ``test`` on the development data and ``all`` on any other folder, see
:func:`resolve_split`) of:

* **box datasets** (``bccd``, ``txl_pbc``) — per class: *counting accuracy*
  ``1 − |pred − true| / true`` averaged over the images with ``true > 0`` (images with
  no such cell are listed apart: how many got a false count), the *total* counting
  accuracy on the summed counts of the split, the mean absolute error (over every image, those
  without such cells too), and *detection*
  precision / recall / F1 (a marker matches a box it lies in, one-to-one,
  :func:`cellviewer.core.metrics.detection_f1`). BCCD images with TXL boxes
  (``bccd``) and with the incomplete original boxes (``bccd_voc``) are scored apart;
  TXL-PBC also per origin (``pbc``, ``raabin_wbc``); the false positives whose cell touches
  the image edge and the false negatives whose box comes within 2 px of it are counted apart
  (``fp_at_edge`` / ``fn_at_edge``): the sources box cells cut by the edge differently;
* **mask datasets** (``wbc_seg``, per subset d1/d2; only the annotated cell — the
  predicted WBC at the crop centre — is scored unless ``central_cell=False``, since the
  ground truth leaves other WBCs cut by the crop unlabelled) — for the whole WBC, the nucleus and
  the cytoplasm: Dice/F1, IoU, precision, recall, specificity, FPR, FNR, pixel accuracy
  and boundary F1 (2 px), each averaged over the images; and on the 3-class map:
  pixel accuracy, class pixel accuracy, mean IoU and misclassification error;
* **points** (``chula_rbc12``) — the share of labelled points that fall inside a
  predicted red cell (a recall check: the points are not exhaustive).

The scale: with ``diameter="estimate"`` (default for box and point data) the segmenter
estimates the red-cell size itself (end to end); ``"annotation"`` passes each image's
annotated size (default for ``wbc_seg``, whose crops have no red cells to measure:
the subset's median WBC size × 0.6, i.e. a known pixel pitch).

:func:`validate` is the quick score used during training. ``python -m
cellviewer.core.evaluate --model NAME [--data DIR] [--split test] [--write-card]`` prints
:func:`format_table` and can store the summary in the model card.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from cellviewer.core import datasets as D
from cellviewer.core import morphology as MO
from cellviewer.core.cliopts import add_evaluate_arguments
from cellviewer.core.errors import OptionError, script_main
from cellviewer.core.jobs import run_job

from cellviewer.core.evalsummary import add_boxes, box_acc, box_summary, mask_scores, mean_dicts, morph_pairs
from cellviewer.core.evaltable import _SEG_KEYS, CELLS, PARTS, format_table  # noqa: F401 - re-exported

__all__ = ["CELLS", "PARTS", "evaluate_model", "format_table", "resolve_split", "validate"]
#: the accumulators under the names :mod:`cellviewer.core.gate` imports (they live in core.evalsummary)
_box_acc, _add_boxes, _box_summary = box_acc, add_boxes, box_summary


def validate(net, items: list[dict], classes: list[str], working_scale: float, device: str = "cpu",
             border_pad: float = 0.0) -> dict:
    """Mean Dice of the foreground classes (+ counting accuracy for box data) on whole images
    already at the working scale (items of :func:`cellviewer.core.datasets.working_item`);
    ``border_pad`` mirrors a margin (RBC diameters) around each image first, as inference does."""
    from cellviewer.core.instances import instances_from_probs, softmax_np
    from cellviewer.core.tiling import crop_margin, mirror_margin, predict_tiled

    inter, total = np.zeros(len(classes)), np.zeros(len(classes))
    acc: dict[str, list[float]] = {c: [] for c in CELLS}
    for it in items:
        img, m = mirror_margin(it["image"], border_pad * working_scale)
        out = crop_margin(predict_tiled(net, img, tile=512, overlap=48, device=device), m)
        probs = softmax_np(out["mask"])
        pred, cm = probs.argmax(0), it["classmap"]
        ok = cm != D.IGNORE
        for k in range(1, len(classes)):
            p, t = (pred == k) & ok, (cm == k) & ok
            inter[k] += (p & t).sum()
            total[k] += p.sum() + t.sum()
        if "rbc" in classes and not it.get("weak"):  # the original BCCD boxes miss cells: no count check
            edge = out.get("edge")
            labels, _, _ = instances_from_probs(probs, None if edge is None else 1 / (1 + np.exp(-edge[0])),
                                                classes, working_scale)
            for c, true in it["counts"].items():
                if true > 0 and c in labels:
                    acc[c].append(max(0.0, 1.0 - abs(int(labels[c].max()) - true) / true))
    dice = {classes[k]: float(2 * inter[k] / total[k]) if total[k] else 1.0 for k in range(1, len(classes))}
    res: dict = {"dice": dice, "mean_dice": float(np.mean(list(dice.values())))}
    res["score"] = res["mean_dice"]
    if "rbc" in classes:
        ca = {c: float(np.mean(v)) for c, v in acc.items() if v}
        res["count_accuracy"] = ca
        res["mean_count_accuracy"] = float(np.mean(list(ca.values()))) if ca else 0.0
        res["score"] = 0.5 * (res["mean_dice"] + res["mean_count_accuracy"])
    return res


# -- the evaluation ----------------------------------------------------------------------------
def _segmenter_factory(model, device: str):
    from cellviewer.core.segment import create_segmenter

    if not isinstance(model, str):
        return lambda diameter=None, um_per_px=None: model
    cache: dict = {}

    def get(diameter=None, um_per_px=None):
        """The segmenter at a fixed RBC ``diameter`` (px; None: estimated), told the images' calibration
        ``um_per_px`` (trained nets only: classical segmenters would take their scale from it)."""
        key = (None if diameter is None else round(float(diameter), 3), um_per_px)
        if key not in cache:
            seg = create_segmenter(model, device=device, diameter_px=key[0])
            if um_per_px and hasattr(seg, "um_per_px") and hasattr(seg, "morphology"):
                seg = create_segmenter(model, device=device, diameter_px=key[0], um_per_px=um_per_px)
            cache[key] = seg
        return cache[key]

    return get


def json_safe(obj):
    """``obj`` with every NaN / infinite float (an undefined metric, e.g. a count accuracy with no true
    cells) as None: ``json.dumps`` would write ``NaN``, which is not JSON."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def central_label(wbc: np.ndarray) -> int:
    """The WBC instance at (or nearest to) the image centre; 0 when there is none."""
    if wbc.max() == 0:
        return 0
    h, w = wbc.shape
    if wbc[h // 2, w // 2]:
        return int(wbc[h // 2, w // 2])
    ys, xs = np.nonzero(wbc)
    k = int(np.argmin((ys - h / 2) ** 2 + (xs - w / 2) ** 2))
    return int(wbc[ys[k], xs[k]])


def resolve_split(split: str | None, data_dir: str | Path | None) -> str:
    """The split to score when none is named: ``test`` on the development data (no ``data_dir``, the
    default data root or a copy of it: :func:`cellviewer.core.datasets.is_development_data`), ``all`` on any other folder — a held-out set or a lab's own annotated
    images were not split by :func:`cellviewer.core.datasets.split_of`, so every image counts."""
    if split is not None:
        return split
    if data_dir is None:
        return "test"
    return "test" if D.is_development_data(data_dir) else "all"


def default_datasets(seg, data_dir: str | Path | None) -> tuple[list[str], list[str]]:
    """The datasets a segmenter is scored on when none are named (``wbc_seg`` for a nucleus/cytoplasm
    model, else the box and point sets), keeping those present under the data root; returns
    ``(present, missing)`` and raises when none is there."""
    parts_model = "nucleus" in (getattr(seg, "classes", None) or [])
    wanted = ["wbc_seg"] if parts_model else ["bccd", "txl_pbc", "chula_rbc12"]
    root = D.resolve_data_root(data_dir)
    present = [d for d in wanted if (root / d / "images.csv").is_file()]
    if not present:
        hint = f"expected one of the folders {', '.join(wanted)} (each with images.csv) in the shared layout"
        if (root / "images.csv").is_file() and ((root / "labels").is_dir() or (root / "export.json").is_file()):
            raise OptionError(f"'{root}' is a cellviewer export, not a folder of the shared datasets.",
                                  hint=f"score it with --data {root} --datasets export (every image; add --split "
                                       "test for the held-out part the regression gate uses)")
        if (root / "images.csv").is_file():  # pointed at one dataset's folder instead of the data root
            hint = (f"'{root.name}' looks like one dataset's folder: pass its parent as --data"
                    f" (with --datasets {root.name} if it has another name); {hint}")
        raise OptionError(f"No dataset this model is scored on is in '{root}'.",
                              hint=hint + ", or name them with --datasets")
    return present, [d for d in wanted if d not in present]


def evaluate_model(name_or_segmenter, data_dir: str | Path | None = None, split: str | None = None,
                   datasets: list[str] | None = None, diameter: str | None = None, limit: int | None = None,
                   device: str = "cpu", on_image=None, central_cell: bool = True, calibration: bool = True) -> dict:
    """Score a segmenter on ``split`` (``"all"``: every image; None: :func:`resolve_split`) of
    ``datasets`` (default from its classes, those present); see the module docstring.

    Returns ``{"model", "split", "datasets": {group: summary}, "seconds_per_image", "images": [...]}``.
    """
    split = resolve_split(split, data_dir)
    if split != "all" and split not in D.SPLITS:
        raise OptionError(f"Unknown split '{split}'.", hint=f"choose one of: {', '.join(D.SPLITS)}, all")
    get = _segmenter_factory(name_or_segmenter, device)
    seg = get()
    missing: list[str] = []
    if datasets is None:
        datasets, missing = default_datasets(seg, data_dir)
    datasets = list(dict.fromkeys(datasets))  # a dataset named twice is scored once
    results: dict = {}
    images: list[dict] = []
    notes: list[str] = []
    seconds, n_run = 0.0, 0
    for ds in datasets:
        every = D.load_samples(ds, data_dir, None, notes)
        samples = [s for s in every if split == "all" or s.split == split][:limit]
        if not samples:
            notes.append(f"{ds}: no image in the '{split}' split (of {len(every)} in all): not scored"
                         + ("; --split all scores every image" if every else ""))
            continue
        mode = diameter or ("annotation" if ds == "wbc_seg" else "estimate")
        boxes: dict = defaultdict(box_acc)
        counts: dict = defaultdict(int)
        mask_rows: dict = defaultdict(list)
        pts = defaultdict(lambda: [0, 0])
        morph: dict = defaultdict(list)
        for k, s in enumerate(samples):
            if on_image is not None:
                on_image(ds, k, len(samples), s.image_id)
            seg = get(s.rbc_diameter if mode == "annotation" and s.rbc_diameter else None,
                      s.um_per_px if calibration else None)
            img = s.read_image()
            t = time.perf_counter()
            res = run_job(seg.segment(img))
            seconds += time.perf_counter() - t
            n_run += 1
            row = {"dataset": ds, "image": s.image_id, "origin": s.origin}
            if s.boxes is not None:
                # per origin too (txl_pbc: pbc / raabin_wbc), unless the origin is the dataset itself (an export)
                groups = [("bccd_voc" if s.weak else "bccd")] if ds == "bccd" else (
                    [ds] + ([f"{ds}:{s.origin}"] if s.origin and s.origin != ds else []))
                for g in groups:
                    r = add_boxes(boxes[g], res, s)
                    counts[g] += 1
                row.update({f"{c}_pred_true": list(v) for c, v in r.items()})
            elif s.mask_path is not None:
                pred = res.parts if res.parts is not None else (res.labels["wbc"] > 0).astype(np.uint8) * 2
                if central_cell:
                    pred = pred * (res.labels["wbc"] == central_label(res.labels["wbc"]))
                truth = s.read_parts()
                if truth.shape != pred.shape:
                    raise OptionError(f"The mask '{s.mask_path}' is {truth.shape[1]}×{truth.shape[0]} px, its image "
                                      f"'{s.path}' {pred.shape[1]}×{pred.shape[0]}.",
                                      hint="a mask must have its image's size (and images.csv must give it)")
                sc = mask_scores(pred, truth)
                mask_rows[f"{ds}:{s.origin}"].append(sc)
                mask_rows[ds].append(sc)
                row["wbc_dice"] = sc["wbc"]["dice"]
            elif s.points is not None:
                lab = res.labels["rbc"]
                xs = np.clip(np.rint(s.points[:, 0]).astype(int), 0, lab.shape[1] - 1)
                ys = np.clip(np.rint(s.points[:, 1]).astype(int), 0, lab.shape[0] - 1)
                hit = int((lab[ys, xs] > 0).sum())
                pts[ds][0] += hit
                pts[ds][1] += len(xs)
                row["points_hit"] = [hit, len(xs)]
                morph[ds] += morph_pairs(res.markers, lab[ys, xs], s.meta.get("point_classes"))
            images.append(row)
        # a sub-group holding every image of its dataset (one origin only) would repeat its table
        boxes = {g: a for g, a in boxes.items() if ":" not in g or counts[g] < counts[ds]}
        for g, acc in boxes.items():
            results[g] = {"kind": "boxes", **box_summary(acc, counts[g])}
        for g, rows in mask_rows.items():
            results[g] = {"kind": "masks", **mean_dicts(rows)}
        for g, (hit, n) in pts.items():
            results[g] = {"kind": "points", "n_images": len(samples), "points": n, "inside_rbc": hit,
                          "recall": hit / n if n else float("nan")}
            if morph[g]:  # end to end: the class of the predicted red cell each labelled point lies in
                from cellviewer.core.morphtrain import scores

                t, pr = np.array(morph[g]).T
                sc = scores(t, pr, len(MO.CLASSES))
                results[g]["morphology"] = {k: sc[k] for k in ("n", "accuracy", "balanced_accuracy", "macro_f1")}
    name = name_or_segmenter if isinstance(name_or_segmenter, str) else getattr(name_or_segmenter, "name", "?")
    if not images:  # nothing scored is no result: an empty table with exit 0 would read as one
        raise OptionError(f"No image to score: {'; '.join(notes) or 'the datasets hold no image'}.",
                          hint="choose another --split (e.g. --split all), --datasets or --data")
    return {"model": name, "split": split, "n_images": len(images), "datasets_missing": missing,
            "notes": list(dict.fromkeys(notes)),
            "diameter": diameter or "estimate (annotation for wbc_seg)",
            "protocol": "wbc_seg: only the WBC at the crop centre is scored (one annotated cell per crop)"
            if central_cell else "wbc_seg: every predicted WBC pixel is scored",
            "datasets": results, "seconds_per_image": seconds / max(1, n_run), "images": images}


def command_args(argv: list[str]) -> str:
    """The arguments that decide the numbers (without --write-card / --json FILE)."""
    out, skip = [], False
    for a in argv:
        if skip or a == "--write-card":
            skip = False
            continue
        if a == "--json":
            skip = True
            continue
        if not a.startswith("--json="):
            out.append(a)
    return " ".join(out)


def evaluate_args(args, on_image=None) -> dict:
    """:func:`evaluate_model` with the options of :func:`cellviewer.core.cliopts.add_evaluate_arguments`
    (``args.split`` is resolved in place, so the command and the card check name the split scored)."""
    args.split = resolve_split(args.split, args.data)
    if args.device not in ("cpu", "auto"):  # a device that is not there: an option error (2), for any model
        from cellviewer.core.device import resolve_device

        resolve_device(args.device)
    return evaluate_model(args.model, args.data, args.split, args.datasets, args.diameter, args.limit,
                          args.device, on_image=on_image, central_cell=not args.all_cells,
                          calibration=not getattr(args, "no_calibration", False))


def model_card(model: str) -> tuple[Path, dict] | None:
    """``(card path, card)`` of a trained model given by name (models/, the user's store) or by the path of its
    checkpoint; None for a model without a card (the classical segmenters)."""
    from cellviewer.core.netsegment import card_at, find_models

    found = find_models().get(model)
    if found is not None:
        return found
    path = card_at(model)
    if path is None:
        return None
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def data_of(data_dir) -> str | None:
    """The data folder a score was measured on, as recorded in a card: its absolute path, or None for the
    development data (``../shared/data``, the default, or a copy of it elsewhere)."""
    if data_dir is None:
        return None
    return None if D.is_development_data(data_dir) else str(Path(data_dir).resolve())


def card_to_write(model: str) -> Path:
    """The card ``--write-card`` writes into, checked before the evaluation runs: an OptionError (exit 2) for a
    model without a card, a SaveError (exit 5) when the card's folder is not writable."""
    from cellviewer.core.atomic import check_writable

    found = model_card(model)
    if found is None:
        raise OptionError(f"'{model}' has no model card to write metrics into.",
                          hint="--write-card works for trained models (a name in 'cellviewer models', or the path "
                               "of a checkpoint's .json card)")
    check_writable(found[0], "--write-card")
    return found[0]


def store_metrics(model: str, res: dict, command: str, data_dir=None) -> Path:
    """Write the summary of ``res`` as the ``metrics`` of ``model``'s card (with the data folder scored,
    :func:`data_of`); returns the card path."""
    from cellviewer.core.atomic import write_output

    path = card_to_write(model)
    card = model_card(model)[1]
    card["metrics"] = {"split": res["split"], "datasets": res["datasets"], "diameter": res["diameter"],
                       "data": data_of(data_dir), "seconds_per_image_cpu": round(res["seconds_per_image"], 4),
                       "command": command}
    write_output(path, json.dumps(card, indent=2, sort_keys=True) + "\n", "--write-card")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cellviewer.core.evaluate", description=__doc__.split("\n")[0])
    add_evaluate_arguments(ap)
    args = ap.parse_args(argv)

    def body() -> None:
        from cellviewer.core.atomic import check_writable, write_output

        if args.json is not None:
            check_writable(args.json, "--json")
        if args.write_card:
            card_to_write(args.model)  # before the run: a model without a writable card fails now
        res = evaluate_args(args)
        D.print_notes(res["notes"])
        print(format_table(res))
        if args.json is not None:
            write_output(args.json, json.dumps(json_safe(res), indent=1, allow_nan=False), "--json")
        if args.write_card:
            cmd = "python -m cellviewer.core.evaluate " + command_args(argv if argv is not None else sys.argv[1:])
            print(f"metrics written to {store_metrics(args.model, res, cmd, args.data)}")

    return script_main(body)


if __name__ == "__main__":
    sys.exit(main())
