"""The text table of :func:`cellviewer.core.evaluate.evaluate_model`'s result (percentages)."""

from __future__ import annotations

import numpy as np

CELLS = ("rbc", "wbc", "platelet")
PARTS = {"wbc": lambda p: p > 0, "nucleus": lambda p: p == 1, "cytoplasm": lambda p: p == 2}
_SEG_KEYS = ("dice", "iou", "precision", "recall", "specificity", "fpr", "fnr", "pixel_accuracy", "boundary_f1")


def _f(v, pct=True) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    return f"{100 * v:.2f}" if pct else f"{v:.2f}"


def _ci(v) -> str:
    return "—" if not v or any(np.isnan(x) for x in v) else f"{100 * v[0]:.2f}–{100 * v[1]:.2f}"


def format_table(result: dict) -> str:
    """The full metric table of :func:`evaluate_model` as text (percentages)."""
    split = result["split"] + (" (every image)" if result["split"] == "all" else "")
    lines = [f"model {result['model']} — split {split} — {result.get('n_images', '?')} images — "
             f"{result['seconds_per_image']:.3f} s/image — scale: {result['diameter']}"]
    if result.get("datasets_missing"):
        lines.append(f"not in the data folder, skipped: {', '.join(result['datasets_missing'])}")
    if any(r["kind"] == "masks" for r in result["datasets"].values()):
        lines.append(result["protocol"])
    for g, r in result["datasets"].items():
        lines.append("")
        if r["kind"] == "boxes":
            lines.append(f"[{g}] {r['n_images']} images (boxes)")
            lines.append(f"{'class':<10}{'count acc':>10}{'total acc':>10}{'MAE':>7}{'prec':>8}{'recall':>8}"
                         f"{'F1':>8}{'pred/true':>12}{'0-true>0':>10}")
            for c in CELLS:
                s = r[c]
                lines.append(f"{c:<10}{_f(s['count_accuracy']):>10}{_f(s['count_accuracy_total']):>10}"
                             f"{_f(s['mae'], False):>7}{_f(s['precision']):>8}{_f(s['recall']):>8}{_f(s['f1']):>8}"
                             f"{str(s['n_pred']) + '/' + str(s['n_true']):>12}"
                             f"{str(s['zero_true_false_counts']) + '/' + str(s['zero_true_images']):>10}")
            lines.append("count acc 95 % CI (bootstrap over images): "
                         + ", ".join(f"{c} {_ci(r[c].get('count_accuracy_ci95'))}" for c in CELLS))
            if "fp_at_edge" in r[CELLS[0]]:
                lines.append("errors at the image edge (cut cells): "
                             + ", ".join(f"{c} FP {r[c]['fp_at_edge']} of {r[c]['false_positives']},"
                                         f" FN {r[c]['fn_at_edge']} of {r[c]['false_negatives']}" for c in CELLS))
        elif r["kind"] == "masks":
            lines.append(f"[{g}] {r['n_images']} images (masks; mean over images)")
            lines.append(f"{'region':<10}" + "".join(f"{k[:9]:>10}" for k in _SEG_KEYS))
            for part in PARTS:
                lines.append(f"{part:<10}" + "".join(f"{_f(r[part][k]):>10}" for k in _SEG_KEYS))
            lines.append("Dice 95 % CI (bootstrap over images): "
                         + ", ".join(f"{part} {_ci(r[part].get('dice_ci95'))}" for part in PARTS))
            m = r["map"]
            cpa = "/".join(_f(v) for v in m["class_pixel_accuracy"])
            lines.append(f"3-class map: pixel acc {_f(m['pixel_accuracy'])}, class pixel acc (bg/nuc/cyto) {cpa}, "
                         f"mean IoU {_f(m['mean_iou'])}, misclassification {_f(m['misclassification_error'])}")
        else:
            lines.append(f"[{g}] {r['n_images']} images (points): {r['inside_rbc']}/{r['points']} points inside "
                         f"a predicted RBC = recall {_f(r['recall'])}")
            if r.get("morphology"):
                mo = r["morphology"]
                lines.append(f"  red-cell morphology of the cell each point lies in ({mo['n']} cells): accuracy "
                             f"{_f(mo['accuracy'])}, balanced accuracy {_f(mo['balanced_accuracy'])}, "
                             f"macro F1 {_f(mo['macro_f1'])}")
    return "\n".join(lines)
