"""Count accuracy and detection F1 of a segmenter on the shared box-annotated data.

* **Count accuracy** per class = mean over images of ``max(0, 1 − |pred − true| / true)``
  (images where ``true == 0`` for that class are skipped; how many of them got a
  prediction > 0 is reported as ``zero_true_pred_pos``); the **MAE** ``|pred − true|`` is over every image.
* **Detection F1** per class: a predicted marker matches a true box of the same
  class when it lies inside it; matching is one-to-one and greedy (closest to
  the box centre first); precision / recall / F1 are summed over all images.

Datasets (under ``data_root``, the layout of ``shared/data``):
``"bccd"`` — BCCD images with ``has_txl=1`` scored against ``annotations_txl.csv``;
``"bccd_voc"`` — all BCCD images against the original (incomplete) VOC boxes;
``"txl_pbc"`` — the PBC and Raabin crops against ``annotations.csv`` (also split
per ``origin``).

``python -m cellviewer.core.evalcount [--data DIR] [--dataset NAME] [--methods ...]``
prints one table per dataset.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from cellviewer.core.errors import CellviewerError, ImageReadError, OptionError, script_main
from cellviewer.core.jobs import run_job

CLASSES = ("rbc", "wbc", "platelet")
DATASETS = ("bccd", "bccd_voc", "txl_pbc")


def load_dataset(data_root: str | Path, dataset: str = "bccd") -> list[dict]:
    """One record per image: ``{"path", "image", "origin", "boxes": {cls: (N, 4) xmin,ymin,xmax,ymax}}``."""
    root = Path(data_root)
    if dataset in ("bccd", "bccd_voc"):
        folder, ann_name = root / "bccd", "annotations_txl.csv" if dataset == "bccd" else "annotations.csv"
    elif dataset == "txl_pbc":
        folder, ann_name = root / "txl_pbc", "annotations.csv"
    else:
        raise OptionError(f"Unknown dataset '{dataset}'.", hint=f"choose one of: {', '.join(DATASETS)}")
    if not (folder / "images.csv").is_file():
        raise OptionError(f"No dataset at '{folder}'.", hint="point --data at the shared/data folder")
    from cellviewer.core.datasets import boxes_by_image, read_rows  # BOM-tolerant, strict (a bad row: exit 2)

    rows = [r for r in read_rows(folder / "images.csv") if dataset != "bccd" or r.get("has_txl") == "1"]
    boxes = boxes_by_image(folder / ann_name)  # image -> {rbc, wbc, platelet: [[xmin, ymin, xmax, ymax], ...]}
    out = []
    for r in sorted(rows, key=lambda r: r["image"]):
        b = boxes[r["image"]]
        out.append({
            "path": folder / "images" / r["image"], "image": r["image"], "origin": r.get("origin", "bccd"),
            "boxes": {c: np.asarray(b[c], np.float64).reshape(-1, 4) for c in CLASSES},
        })
    return out


def match_markers(xs: np.ndarray, ys: np.ndarray, boxes: np.ndarray) -> int:
    """Number of one-to-one matches: a marker matches a box it lies inside, closest centres first."""
    if len(xs) == 0 or len(boxes) == 0:
        return 0
    x0, y0, x1, y1 = (boxes[:, i][None, :] for i in range(4))
    px, py = np.asarray(xs, float)[:, None], np.asarray(ys, float)[:, None]
    inside = (px >= x0) & (px <= x1) & (py >= y0) & (py <= y1)
    cost = np.hypot((px - (x0 + x1) / 2) / np.maximum(x1 - x0, 1), (py - (y0 + y1) / 2) / np.maximum(y1 - y0, 1))
    pi, bj = np.nonzero(inside)
    order = np.argsort(cost[pi, bj], kind="stable")
    used_p, used_b = set(), set()
    for k in order:
        i, j = int(pi[k]), int(bj[k])
        if i not in used_p and j not in used_b:
            used_p.add(i)
            used_b.add(j)
    return len(used_p)


def read_rgb(path: str | Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageReadError(path, "OpenCV could not decode it")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _summary(acc: dict) -> dict:
    out = {}
    for c in CLASSES:
        a = acc[c]
        tp, npred, ntrue = a["tp"], a["pred"], a["true"]
        p = tp / npred if npred else 0.0
        r = tp / ntrue if ntrue else 0.0
        out[c] = {
            "count_accuracy": float(np.mean(a["acc"])) if a["acc"] else float("nan"),
            "n_images": len(a["acc"]),
            "mean_abs_error": float(np.mean(a["abs_err"])) if a["abs_err"] else float("nan"),
            "zero_true_images": a["zero_true"], "zero_true_pred_pos": a["zero_true_pos"],
            "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "n_pred": npred, "n_true": ntrue,
        }
    return out


def evaluate_counts(
    segmenter, data_root: str | Path, dataset: str = "bccd", limit: int | None = None,
    stride: int = 1, on_image: Callable[[int, int, str], None] | None = None,
) -> dict:
    """Run ``segmenter`` on a dataset and score counts and detections per class.

    ``limit`` keeps the first N images (after taking every ``stride``-th).
    Returns ``{"dataset", "n_images", "seconds_per_image", "classes": {cls: {...}},
    "by_origin": {origin: {cls: {...}}}, "images": [per-image counts]}``.
    """
    records = load_dataset(data_root, dataset)[:: max(1, stride)]
    if limit is not None:
        records = records[:limit]
    mk = lambda: {c: {"acc": [], "abs_err": [], "zero_true": 0, "zero_true_pos": 0, "tp": 0, "pred": 0, "true": 0}
                  for c in CLASSES}
    total, per_origin = mk(), defaultdict(mk)
    per_image, seconds = [], 0.0
    for k, rec in enumerate(records):
        if on_image is not None:
            on_image(k, len(records), rec["image"])
        img = read_rgb(rec["path"])
        t = time.perf_counter()
        res = run_job(segmenter.segment(img))
        seconds += time.perf_counter() - t
        row = {"image": rec["image"], "origin": rec["origin"]}
        for c in CLASSES:
            ms = [m for m in res.markers if m.cls == c]
            xs = np.array([m.x for m in ms])
            ys = np.array([m.y for m in ms])
            boxes = rec["boxes"][c]
            pred, true = len(ms), len(boxes)
            tp = match_markers(xs, ys, boxes)
            row[f"{c}_pred"], row[f"{c}_true"] = pred, true
            for acc in (total[c], per_origin[rec["origin"]][c]):
                acc["abs_err"].append(abs(pred - true))  # MAE over every image, those without such cells too
                if true > 0:
                    acc["acc"].append(max(0.0, 1.0 - abs(pred - true) / true))
                else:
                    acc["zero_true"] += 1
                    acc["zero_true_pos"] += int(pred > 0)
                acc["tp"] += tp
                acc["pred"] += pred
                acc["true"] += true
        per_image.append(row)
    return {
        "dataset": dataset, "n_images": len(records),
        "seconds_per_image": seconds / max(1, len(records)),
        "classes": _summary(total), "by_origin": {o: _summary(a) for o, a in sorted(per_origin.items())},
        "images": per_image,
    }


def format_table(results: dict[str, dict]) -> str:
    """A text table: one row per (method, class) with count accuracy, MAE, P/R/F1."""
    lines = [f"{'method':<34}{'class':<10}{'count acc':>10}{'MAE':>7}{'prec':>7}{'rec':>7}{'F1':>7}"
             f"{'n img':>7}{'0-true>0':>10}{'s/img':>7}"]
    for name, res in results.items():
        groups = [("", res["classes"])]
        if len(res["by_origin"]) > 1:
            groups += [(f" [{o}]", s) for o, s in res["by_origin"].items()]
        for suffix, summ in groups:
            for c in CLASSES:
                s = summ[c]
                zero = f"{s['zero_true_pred_pos']}/{s['zero_true_images']}"
                lines.append(f"{(name + suffix):<34}{c:<10}{s['count_accuracy']:>10.3f}{s['mean_abs_error']:>7.2f}"
                             f"{s['precision']:>7.3f}{s['recall']:>7.3f}{s['f1']:>7.3f}{s['n_images']:>7}{zero:>10}"
                             f"{res['seconds_per_image']:>7.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from cellviewer.core.segment import create_segmenter

    ap = argparse.ArgumentParser(prog="python -m cellviewer.core.evalcount", description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    ap.add_argument("--dataset", choices=DATASETS + ("all",), default="all")
    ap.add_argument("--methods", nargs="+",
                    default=["classical", "classical-components", "classical-hough", "classical-distance"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--diameter-px", type=float, default=None)
    args = ap.parse_args(argv)
    datasets = ("bccd", "txl_pbc") if args.dataset == "all" else (args.dataset,)

    def body() -> None:
        for ds in datasets:
            results = {}
            for name in args.methods:
                seg = create_segmenter(name, diameter_px=args.diameter_px)
                results[name] = evaluate_counts(seg, args.data, ds, limit=args.limit, stride=args.stride)
            print(f"\n== {ds} ({results[args.methods[0]]['n_images']} images) ==")
            print(format_table(results))

    return script_main(body)


if __name__ == "__main__":
    sys.exit(main())
