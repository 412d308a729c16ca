"""The accumulated scores of :func:`cellviewer.core.evaluate.evaluate_model`: box datasets (counting
accuracy, detection precision / recall / F1) and mask datasets (pixel scores per region).

**Undefined is NaN.** A score whose definition divides 0 by 0 — the precision of a class nothing was
predicted of, the recall of a class with no true cell, the Dice of a region both the prediction and the
truth leave empty — is NaN (``null`` in ``--json``, "—" in the table), not 0 or 100 %: neither a failure
nor a success was measured. Means over images leave such images out of that score. (The training's
quick score, :func:`cellviewer.core.evaluate.validate`, keeps the metrics' 1.0 for "nothing to find,
nothing found".)

**Count MAE** is the mean of ``|pred − true|`` over every image scored — an image without such cells counts
(a false count there is an error too); the counting accuracy ``1 − |pred − true| / true`` is undefined there
and averages over the images with ``true > 0`` only (``zero_true_images`` / ``zero_true_false_counts`` say how
the others went).
"""

from __future__ import annotations

import warnings

import numpy as np

from cellviewer.core import metrics as M
from cellviewer.core import morphology as MO
from cellviewer.core.evaltable import CELLS, PARTS


def _div(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def undefined_as_nan(scores: dict, c) -> dict:
    """``scores`` of :func:`cellviewer.core.metrics.segmentation_scores` (+ ``boundary_f1``) with the ones
    that are 0/0 for the pixel counts ``c`` (:class:`~cellviewer.core.metrics.Counts`) set to NaN."""
    nan = float("nan")
    undefined = {"dice": c.tp + c.fp + c.fn == 0, "iou": c.tp + c.fp + c.fn == 0, "precision": c.tp + c.fp == 0,
                 "recall": c.tp + c.fn == 0, "fnr": c.tp + c.fn == 0, "specificity": c.tn + c.fp == 0,
                 "fpr": c.tn + c.fp == 0, "boundary_f1": c.tp + c.fp + c.fn == 0}
    return {k: nan if undefined.get(k) else v for k, v in scores.items()}


def box_acc() -> dict:
    """An empty accumulator of box scores per cell class."""
    return {c: {"acc": [], "abs": [], "pred": 0, "true": 0, "tp": 0, "fp": 0, "fn": 0, "zero": 0, "zero_pos": 0,
                "fp_edge": 0, "fn_edge": 0} for c in CELLS}


def add_boxes(acc: dict, res, sample) -> dict:
    """Add one image's predicted markers against its true boxes to ``acc``; returns ``{cls: (pred, true)}``."""
    from cellviewer.core.countframe import edge_flags

    row = {}
    for c in CELLS:
        marks = [m for m in res.markers if m.cls == c]
        pts = [(m.x, m.y) for m in marks]
        true_b = sample.boxes[c]
        pred, true = len(pts), len(true_b)
        det = M.detection_f1(np.asarray(pts, float).reshape(-1, 2), true_b)
        a = acc[c]
        lab = res.labels.get(c)
        if lab is not None:  # which errors are cells cut by the image edge (sources box those differently)
            flags = edge_flags(lab)
            fp_e, fn_e = M.edge_errors(det, [m.cell in flags for m in marks], true_b, lab.shape)
            a["fp_edge"] += fp_e
            a["fn_edge"] += fn_e
        a["pred"] += pred
        a["true"] += true
        a["tp"] += det.tp
        a["fp"] += det.fp
        a["fn"] += det.fn
        a["abs"].append(abs(pred - true))  # the MAE is over every image, those without such cells too
        if true > 0:
            a["acc"].append(M.counting_accuracy(pred, true))
        else:
            a["zero"] += 1
            a["zero_pos"] += int(pred > 0)
        row[c] = (pred, true)
    return row


def morph_pairs(markers, cells: np.ndarray, classes) -> list[tuple[int, int]]:
    """``(true, predicted)`` morphology class indices of the labelled points that lie in a predicted red
    cell with a morphology class (the point's class must be one of :data:`cellviewer.core.morphology.CLASSES`)."""
    if classes is None:
        return []
    index = {name: k for k, name in enumerate(MO.CLASSES)}
    morph = {m.cell: index[m.morph] for m in markers if m.cls == "rbc" and m.cell and m.morph in index}
    out = []
    for cell, cid in zip(np.asarray(cells).tolist(), np.asarray(classes).tolist()):
        name = MO.CHULA_CLASSES.get(int(cid))
        if cell and name in index and cell in morph:
            out.append((index[name], morph[cell]))
    return out


def box_summary(acc: dict, n: int) -> dict:
    """The summary of a box dataset (see the module docstring: 0/0 is NaN)."""
    out = {"n_images": n}
    for c in CELLS:
        a = acc[c]
        tp, fp, fn = a["tp"], a["fp"], a["fn"]
        p, r = _div(tp, tp + fp), _div(tp, tp + fn)
        out[c] = {"count_accuracy": float(np.mean(a["acc"])) if a["acc"] else float("nan"),
                  "count_accuracy_ci95": list(M.bootstrap_ci(a["acc"])),
                  "count_accuracy_total": M.counting_accuracy(a["pred"], a["true"]) if a["true"] else float("nan"),
                  "mae": float(np.mean(a["abs"])) if a["abs"] else float("nan"),
                  "precision": p, "recall": r, "f1": _div(2 * tp, 2 * tp + fp + fn),
                  "n_pred": a["pred"], "n_true": a["true"], "images_with_cells": len(a["acc"]),
                  "zero_true_images": a["zero"], "zero_true_false_counts": a["zero_pos"],
                  "false_positives": fp, "false_negatives": fn, "fp_at_edge": a["fp_edge"], "fn_at_edge": a["fn_edge"]}
    return out


def mask_scores(pred_parts: np.ndarray, true_parts: np.ndarray) -> dict:
    """One image's scores of the whole WBC, nucleus and cytoplasm (0/0: NaN) and of the 3-class map."""
    out = {}
    for name, sel in PARTS.items():
        p, t = sel(pred_parts), sel(true_parts)
        s = M.segmentation_scores(p, t)
        s["boundary_f1"] = M.boundary_f1(p, t, tolerance=2.0)
        out[name] = undefined_as_nan(s, M.binary_counts(p, t))
    out["map"] = {"pixel_accuracy": M.pixel_accuracy(pred_parts, true_parts),
                  "misclassification_error": M.misclassification_error(pred_parts, true_parts),
                  "mean_iou": M.mean_iou(pred_parts, true_parts, 3),
                  "class_pixel_accuracy": [float(v) for v in M.class_pixel_accuracy(pred_parts, true_parts, 3)]}
    return out


def mean_dicts(rows: list[dict]) -> dict:
    """The means over the images (an image where a score is undefined does not count for it)."""
    out: dict = {"n_images": len(rows)}
    for name in list(PARTS) + ["map"]:
        keys = rows[0][name].keys()
        with warnings.catch_warnings():  # a score undefined on every image stays NaN, quietly
            warnings.simplefilter("ignore", RuntimeWarning)
            out[name] = {k: (np.nanmean(np.array([r[name][k] for r in rows], float), axis=0).round(6).tolist())
                         for k in keys}
        if name in PARTS:
            out[name]["dice_ci95"] = [round(v, 6) for v in M.bootstrap_ci([r[name]["dice"] for r in rows])]
    return out
