"""A red cell's measured size in micrometres as evidence for its morphology class (when the pixel size is known).

Microcytes and macrocytes are *size* classes: a normal red cell is about 7.5 µm across, a
microcyte clearly smaller, a macrocyte clearly larger. The crop classifier of
:mod:`cellviewer.core.morphology` sees each cell at the scale of its own field (crops are cut at
the field's typical red-cell diameter), so in a field where most cells are small it cannot tell
that they are small. On the Chula RBC-12 train split, measured on the blood-cells masks: a
normal cell's equivalent diameter is 0.90-1.09 × its field's (10th-90th percentile), a
macrocyte's 1.01-1.22 × — but in micrometres normal cells span 6.8-8.2 µm and macrocytes
8.9-10.2 µm, and microcytes (median 6.5 µm) sit below normal cells.

So when the image's **calibration** (µm per pixel, e.g. from a stage micrometer) is known, each
classified red cell whose mask is known gets, per class ``c``, ``weight × log N(log d; mean_c, sd_c)``
(``d`` = the mask's equivalent diameter in µm) added to the classifier's log probabilities — a
naive-Bayes combination; ``weight`` < 1 because the crop already shows part of the size. The
Gaussians (one mean per class and one pooled spread, on log µm: :func:`fit`) and the weight are
the morphology card's ``size_prior``.
Without a calibration nothing changes.

Fit: ``python -m cellviewer.core.sizeprior --card models/rbc-morphology.json [--write]`` segments the
Chula train and val splits with the active blood-cells model, fits the Gaussians on the train split
(classes with fewer than :data:`MIN_CELLS` cells get the pooled distribution, i.e. no size
evidence), and picks the weight with the highest accuracy of the val split's cells (crop level).
Chula's own calibration is not published: it is the one that puts the train split's median
normal cell at 7.5 µm (:data:`cellviewer.core.datasets.UM_PER_PX`; the command prints it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

#: diameter of a normal red cell (µm): the calibration of a data set without one puts its normal cells here
NORMAL_UM = 7.5
#: classes with fewer training cells than this carry no size evidence (the pooled distribution)
MIN_CELLS = 10
#: weights tried by the fit (0 = the crop classifier alone)
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
#: a class's spread never goes below this (log µm), so one tight class cannot dominate
MIN_SD = 0.03


def equivalent_diameters(labels: np.ndarray, cells) -> np.ndarray:
    """Equivalent diameter (px) of each label id in ``cells`` (NaN for 0 or an id with no pixels)."""
    cells = np.asarray(cells, np.int64).reshape(-1)
    area = np.bincount(np.asarray(labels).ravel().astype(np.int64), minlength=int(cells.max(initial=0)) + 1)
    out = np.full(len(cells), np.nan)
    ok = (cells > 0) & (cells < len(area))
    a = area[cells[ok]].astype(float)
    out[ok] = np.where(a > 0, 2.0 * np.sqrt(a / math.pi), np.nan)
    return out


#: the median whole red cell outside this range (µm) means the calibration is probably not this image's
PLAUSIBLE_UM = (4.5, 11.0)


def calibration_warning(rbc_labels: np.ndarray, um_per_px: float) -> str | None:
    """A message when the whole red cells (not cut by the image edge; at least 3) measure implausibly at
    ``um_per_px`` — a calibration kept from another microscope turns every cell into a micro- or macrocyte."""
    from cellviewer.core.countframe import edge_flags

    lab = np.asarray(rbc_labels)
    cut = edge_flags(lab)
    ids = [i for i in np.unique(lab).tolist() if i and i not in cut]
    if len(ids) < 3 or not um_per_px:
        return None
    d = float(np.median(equivalent_diameters(lab, ids))) * float(um_per_px)
    if PLAUSIBLE_UM[0] <= d <= PLAUSIBLE_UM[1]:
        return None
    return (f"the whole red cells measure {d:.1f} µm (median of {len(ids)}) at {float(um_per_px):g} µm/px, "
            f"but normal red cells are about {NORMAL_UM} µm: check the calibration (is it this microscope's?)")


def log_likelihood(diam_um: np.ndarray, prior: dict) -> np.ndarray:
    """``N×C`` weighted log-likelihoods of the diameters (µm) under each class (rows of NaN diameters: 0);
    each row's maximum is 0."""
    mean = np.asarray(prior["mean_log_um"], float)
    sd = np.maximum(np.asarray(prior["sd_log_um"], float), MIN_SD)
    d = np.asarray(diam_um, float).reshape(-1, 1)
    ok = np.isfinite(d[:, 0]) & (d[:, 0] > 0)
    ll = np.zeros((len(d), len(mean)))
    if ok.any():
        z = (np.log(d[ok]) - mean) / sd
        v = -0.5 * z * z - np.log(sd)
        ll[ok] = float(prior.get("weight", 1.0)) * (v - v.max(1, keepdims=True))
    return ll


def apply(probs: np.ndarray, diam_um: np.ndarray, prior: dict) -> np.ndarray:
    """Class probabilities ``N×C`` after the size evidence (:func:`log_likelihood`); rows without a size unchanged."""
    logp = np.log(np.clip(np.asarray(probs, float), 1e-7, 1.0)) + log_likelihood(diam_um, prior)
    logp -= logp.max(1, keepdims=True)
    p = np.exp(logp)
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


def calibration_from_normals(diam_px: np.ndarray, classes: np.ndarray, normal: int = 0) -> float:
    """µm per pixel that puts the median cell of class ``normal`` at :data:`NORMAL_UM`."""
    d = np.asarray(diam_px, float)[(np.asarray(classes) == normal) & np.isfinite(diam_px)]
    if len(d) < MIN_CELLS:
        raise ValueError(f"need at least {MIN_CELLS} sized normal cells to calibrate, not {len(d)}")
    return NORMAL_UM / float(np.median(d))


def fit(diam_um: np.ndarray, classes: np.ndarray, names: list[str], weight: float = 1.0) -> dict:
    """The card's ``size_prior``: per class the mean of log µm (classes under :data:`MIN_CELLS` cells: the mean
    of all cells, i.e. no size evidence) and ONE spread for all, the pooled within-class standard deviation.
    One spread makes the evidence linear in log size: a cell far smaller or larger than any training cell
    goes to the smallest or largest class (microcyte, macrocyte), never to a class that is merely broad."""
    d, y = np.asarray(diam_um, float), np.asarray(classes, int)
    ok = np.isfinite(d) & (d > 0)
    lu, y = np.log(d[ok]), y[ok]
    mean, n, ss, dof = [], [], 0.0, 0
    for c in range(len(names)):
        v = lu[y == c]
        n.append(int(len(v)))
        if len(v) >= MIN_CELLS:
            mean.append(round(float(v.mean()), 5))
            ss, dof = ss + float(((v - v.mean()) ** 2).sum()), dof + len(v) - 1
        else:
            mean.append(round(float(lu.mean()), 5))
    sd = round(max(math.sqrt(ss / dof) if dof > 0 else float(lu.std()), MIN_SD), 5)
    return {"feature": "log of the red cell's mask equivalent diameter in µm", "classes": list(names),
            "mean_log_um": mean, "sd_log_um": [sd] * len(names), "spread": "pooled within-class",
            "cells": n, "weight": float(weight)}


# -- fitting on the shared data -----------------------------------------------------------
def collect(split: str, card: dict, net, data_root=None) -> dict:
    """Per labelled Chula point of ``split`` inside a segmented red cell not cut by the image edge: its mask's
    equivalent diameter (px), class index, and the classifier's probabilities (as :func:`classify_cells` crops)."""
    from cellviewer.core import datasets as D
    from cellviewer.core import morphology as MO
    from cellviewer.core.countframe import edge_flags
    from cellviewer.core.jobs import run_job
    from cellviewer.core.segment import create_segmenter

    seg = create_segmenter("blood-cells", device="cpu", morphology=False)
    ids = {cid: i for i, cid in enumerate(MO.CHULA_CLASSES)}
    diam, cls, probs = [], [], []
    for s in D.load_samples("chula_rbc12", data_root, split):
        img = s.read_image()
        res = run_job(seg.segment(img))
        lab = res.labels["rbc"]
        cut = set(edge_flags(lab))
        xs = np.clip(np.rint(s.points[:, 0]).astype(int), 0, lab.shape[1] - 1)
        ys = np.clip(np.rint(s.points[:, 1]).astype(int), 0, lab.shape[0] - 1)
        cells = lab[ys, xs]
        keep = np.array([c in ids for c in s.meta.get("point_classes", [])], bool) & (cells > 0)
        keep &= np.array([c not in cut for c in cells.tolist()], bool)
        if not keep.any():
            continue
        im = MO.white_balance(img) if card.get("white_balance") else img
        crops = MO.cell_crops(im, s.points[keep], float(res.params["diameter_px"]),
                              int(card.get("crop_px") or MO.CROP_PX),
                              float(card.get("crop_diameters") or MO.CROP_DIAMETERS))
        probs.append(MO.predict_crops(net, crops, grey=bool(card.get("grey"))))
        diam.append(equivalent_diameters(lab, cells[keep]))
        cls.append(np.array([ids[c] for c in np.asarray(s.meta["point_classes"])[keep]], int))
    return {"diam_px": np.concatenate(diam), "classes": np.concatenate(cls), "probs": np.concatenate(probs)}


def main(argv: list[str] | None = None) -> int:
    from cellviewer.core.errors import script_main

    ap = argparse.ArgumentParser(prog="python -m cellviewer.core.sizeprior", description=__doc__.split("\n\n")[0])
    ap.add_argument("--card", default="models/rbc-morphology.json", help="morphology model card")
    ap.add_argument("--data", help="data root in the shared layout (default ../shared/data)")
    ap.add_argument("--write", action="store_true", help="store the fitted size_prior in the card")
    args = ap.parse_args(argv)
    return script_main(lambda: _fit_command(args, argv))


def _fit_command(args, argv) -> None:
    from cellviewer.core import morphology as MO
    from cellviewer.core.morphtrain import scores

    net, card = MO.load_model(Path(args.card))
    names = list(card.get("classes") or MO.CLASSES)
    tr, va = collect("train", card, net, args.data), collect("val", card, net, args.data)
    um = calibration_from_normals(tr["diam_px"], tr["classes"])
    print(f"Chula calibration: {um:.4f} µm/px (train median normal cell = {NORMAL_UM} µm; "
          f"{len(tr['classes'])} train cells, {len(va['classes'])} val cells)")
    best = None
    for w in WEIGHTS:
        prior = fit(tr["diam_px"] * um, tr["classes"], names, w)
        s = scores(va["classes"], apply(va["probs"], va["diam_px"] * um, prior).argmax(1), len(names), names)
        print(f"weight {w:4.2f}: val accuracy {100 * s['accuracy']:.2f} %, balanced {100 * s['balanced_accuracy']:.2f} %, "
              f"macro F1 {100 * s['macro_f1']:.2f} %")
        if best is None or s["accuracy"] > best[1]["accuracy"]:
            best = (prior, s)
    prior, s = best
    prior.update({"calibration_um_per_px": round(um, 5), "data": "chula_rbc12 train split (Gaussians), val split (weight)",
                  "selected_on": f"val accuracy {100 * s['accuracy']:.2f} % (cells inside blood-cells masks)",
                  "command": "python -m cellviewer.core.sizeprior " + " ".join(sys.argv[1:] if argv is None else argv)})
    print(f"chosen weight {prior['weight']}")
    if args.write:
        path = Path(args.card)
        data = json.loads(path.read_text(encoding="utf-8"))
        data["size_prior"] = prior
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"wrote size_prior into {path}")


if __name__ == "__main__":
    raise SystemExit(main())
