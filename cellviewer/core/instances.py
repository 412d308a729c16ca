"""Cell instances from a segmentation net's class probabilities (and edge probability).

Class = argmax of the softmax; for the classes in :data:`SEPARATE` the *seeds* are the
class mask minus the edge (edge probability ≥ 0.5), small seeds dropped, and a watershed
on the edge probability grows them back to the whole class mask (DO-U-Net's separation
of touching cells); the other classes are connected components. Sizes are fractions of
the expected red-cell area at the working scale (:data:`MIN_FRACS`; a card may override
them and give a separate, e.g. stricter, minimum for cells cut by the image border).

A nucleus/cytoplasm model's white cells are connected components of nucleus + cytoplasm;
a card may ask to split them by their nuclei (:func:`split_by_nuclei`), so that a
neighbouring white cell whose cytoplasm touches the cell is not merged into it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from cellviewer.core.counting import instances_from_mask, remove_small
from cellviewer.core.scale import count_params

#: per class: (smallest seed, smallest cell) as fractions of the expected RBC area
MIN_FRACS = {"rbc": (0.04, 0.12), "wbc": (0.08, 0.25), "platelet": (0.008, 0.02)}
#: classes whose touching cells are split by the edge watershed (the others: connected components)
SEPARATE: tuple[str, ...] = ("rbc", "wbc")


def _mean_by_label(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    n = int(labels.max())
    if n == 0:
        return np.zeros(0)
    s = np.bincount(labels.ravel(), weights=values.ravel().astype(np.float64), minlength=n + 1)
    c = np.bincount(labels.ravel(), minlength=n + 1)
    return (s[1:] / np.maximum(c[1:], 1)).astype(np.float64)


def _fill_small_holes(mask: np.ndarray, max_area: float) -> np.ndarray:
    holes = ndi.binary_fill_holes(mask) & ~mask
    lab, n = ndi.label(holes)
    if n == 0:
        return mask
    small = np.bincount(lab.ravel()) <= max_area
    small[0] = False
    return mask | small[lab]


def _edge_watershed(fg: np.ndarray, edge_p: np.ndarray, min_seed: int, min_cell: int,
                    min_border: int | None = None, threshold: float = 0.5) -> np.ndarray:
    seeds, _ = ndi.label(fg & (edge_p < threshold))
    seeds = remove_small(seeds.astype(np.int32), max(1, min_seed), min_border)
    lab = watershed(edge_p, seeds, mask=fg) if seeds.max() else np.zeros(fg.shape, np.int32)
    rest, _ = ndi.label(fg & (lab == 0))  # blobs without a seed
    rest = remove_small(rest.astype(np.int32), max(1, min_cell), min_border)
    lab = np.where(rest > 0, rest + lab.max(), lab).astype(np.int32)
    return remove_small(lab, max(1, min_cell), min_border)


def merge_fragments(lab: np.ndarray, max_area: float, min_contact: float, ring: int = 2) -> np.ndarray:
    """Small cells lying against other cells merged into the neighbour they touch most.

    A cell smaller than ``max_area`` px that is not cut by the image border and whose
    ``ring``-px outer band lies at least ``min_contact`` on other cells is given to the
    cell holding most of that band (smallest first). Such pieces are what an extra
    watershed seed leaves in the overlap of two red cells; a small cell standing free
    (a microcyte, a spherocyte) touches nothing and stays. Labels are renumbered 1..n.
    """
    n = int(lab.max())
    if n == 0:
        return lab
    out = lab.copy()
    h, w = lab.shape
    area = np.bincount(lab.ravel(), minlength=n + 1)
    objs = ndi.find_objects(lab)
    small = [c for c in np.argsort(area[1:], kind="stable") + 1 if 0 < area[c] < max_area]
    changed = False
    for cid in small:
        sl = objs[cid - 1]
        if sl is None or sl[0].start == 0 or sl[1].start == 0 or sl[0].stop == h or sl[1].stop == w:
            continue  # cut by the image border: the border rules decide
        y0, y1 = max(0, sl[0].start - ring), min(h, sl[0].stop + ring)
        x0, x1 = max(0, sl[1].start - ring), min(w, sl[1].stop + ring)
        sub = out[y0:y1, x0:x1]
        m = sub == cid
        if not m.any() or m.sum() >= max_area:
            continue
        band = ndi.binary_dilation(m, iterations=ring) & ~m
        nb = sub[band]
        other = nb[(nb > 0) & (nb != cid)]
        if other.size == 0 or other.size < min_contact * band.sum():
            continue
        sub[m] = np.bincount(other).argmax()
        changed = True
    if not changed:
        return lab
    ids, inv = np.unique(out, return_inverse=True)
    inv = inv.reshape(out.shape)
    return (inv if ids[0] == 0 else inv + 1).astype(np.int32)


def instances_from_probs(probs: np.ndarray, edge_p: np.ndarray | None, classes: list[str], diameter: float,
                         method: str = "edge-watershed", fracs: dict | None = None,
                         border_fracs: dict | None = None,
                         nucleus_split: dict | None = None,
                         merge: dict | None = None,
                         edge_threshold: dict | None = None) -> tuple[dict, np.ndarray | None, dict]:
    """``(labels, parts, scores)`` at the working scale from class probabilities (C×H×W).

    ``classes`` names the channels (``background, rbc, wbc, platelet`` or
    ``background, nucleus, cytoplasm``); ``diameter`` is the RBC diameter (px) at this
    scale. ``fracs`` overrides :data:`MIN_FRACS` per class; ``border_fracs[cls]`` is the
    smallest area (fraction of an RBC) of a cell cut by the image border (default: as
    any cell). ``scores[cls][i]`` belongs to label ``i + 1``. ``nucleus_split`` (keyword
    arguments of :func:`split_by_nuclei`) splits a parts model's white cells by their nuclei.
    ``merge[cls] = (max area, min contact)`` merges small pieces of that class into the
    neighbour they lie against (:func:`merge_fragments`; area as a fraction of an RBC's).
    ``edge_threshold[cls]`` is the edge probability at and above which a pixel is no seed
    (default 0.5): averaging the net over flips (``inference.tta``) softens the edge map.
    """
    a0 = np.pi * (diameter / 2.0) ** 2
    fracs = {**MIN_FRACS, **(fracs or {})}
    border_fracs = border_fracs or {}
    cm = probs.argmax(0)
    labels, scores, parts = {}, {}, None
    idx = {c: i for i, c in enumerate(classes)}
    if "nucleus" in idx:  # WBC parts model
        fg_ids = [idx[c] for c in ("nucleus", "cytoplasm") if c in idx]
        prob = probs[fg_ids].sum(0)
        fg = ndi.binary_fill_holes(np.isin(cm, fg_ids))
        lab, _ = ndi.label(fg)
        wbc = remove_small(lab.astype(np.int32), max(1, int(MIN_FRACS["wbc"][1] * a0)))
        parts = np.where(wbc > 0, np.where(cm == idx["nucleus"], 1, 2), 0).astype(np.uint8)
        if nucleus_split is not None:
            wbc = split_by_nuclei(wbc, parts, diameter, **nucleus_split)
        labels["wbc"], scores["wbc"] = wbc, _mean_by_label(prob, wbc)
        return labels, parts, scores
    for cls in ("rbc", "wbc", "platelet"):
        if cls not in idx:
            continue
        prob = probs[idx[cls]]
        fg = _fill_small_holes(cm == idx[cls], 0.25 * a0)
        min_seed, min_cell = (int(f * a0) for f in fracs[cls])
        min_border = max(1, int(border_fracs[cls] * a0)) if cls in border_fracs else None
        if edge_p is not None and method == "edge-watershed" and cls in SEPARATE:
            lab = _edge_watershed(fg, edge_p, min_seed, min_cell, min_border,
                                  float((edge_threshold or {}).get(cls, 0.5)))
        elif cls == "rbc" and method not in ("edge-watershed", "components"):
            lab = instances_from_mask(fg, method, count_params(diameter, min_area_frac=MIN_FRACS["rbc"][1]))
        else:
            lab, _ = ndi.label(fg)
            lab = remove_small(lab.astype(np.int32), max(1, min_cell), min_border)
        if merge and cls in merge:
            lab = merge_fragments(lab.astype(np.int32), float(merge[cls][0]) * a0, float(merge[cls][1]))
        labels[cls], scores[cls] = lab.astype(np.int32), _mean_by_label(prob, lab)
    return labels, parts, scores


def split_by_nuclei(wbc: np.ndarray, parts: np.ndarray, diameter: float, min_gap: float = 1.1,
                    min_nucleus: float = 0.05) -> np.ndarray:
    """White cells (labels) split where they hold nuclei of *different* cells.

    In each cell the nucleus pieces (``parts == 1``) of at least ``min_nucleus`` × the
    expected red-cell area are grouped by single linkage: pieces whose centroids are closer
    than ``min_gap`` red-cell diameters (``diameter`` px) belong to one cell, so the lobes
    of a segmented neutrophil stay together. With two or more groups the cell is divided
    by a watershed on its distance transform seeded by the groups' nuclei: a neighbouring
    white cell that touches it (a cytoplasm bridge) becomes its own instance. Labels are
    renumbered 1..n; a cell with one group is unchanged.
    """
    out = np.zeros(wbc.shape, np.int32)
    nxt = 1
    min_px = min_nucleus * np.pi * (diameter / 2.0) ** 2
    objs = ndi.find_objects(wbc)
    for cid, sl in enumerate(objs, start=1):
        if sl is None:
            continue
        m = wbc[sl] == cid
        pieces, n = ndi.label(m & (parts[sl] == 1))
        big = [i + 1 for i, a in enumerate(np.bincount(pieces.ravel())[1:]) if a >= min_px] if n > 1 else []
        groups = _link(np.array(ndi.center_of_mass(m, pieces, big)), min_gap * diameter) if len(big) > 1 else [0]
        k = max(groups) + 1
        if k < 2:
            out[sl][m] = nxt
            nxt += 1
            continue
        seeds = np.zeros(m.shape, np.int32)
        for b, g in zip(big, groups):
            seeds[pieces == b] = g + 1
        ws = watershed(-ndi.distance_transform_edt(m), seeds, mask=m)
        view = out[sl]
        view[m] = ws[m] + (nxt - 1)
        nxt += k
    return out


def _link(points: np.ndarray, gap: float) -> list[int]:
    """Single-linkage groups (0..k-1) of points closer than ``gap`` to one another."""
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial.distance import cdist

    return connected_components(cdist(points, points) < gap, directed=False)[1].tolist()


def softmax_np(logits: np.ndarray) -> np.ndarray:
    if logits.shape[0] == 1:
        p = 1.0 / (1.0 + np.exp(-logits[0]))
        return np.stack([1.0 - p, p])
    e = np.exp(logits - logits.max(0, keepdims=True))
    return e / e.sum(0, keepdims=True)
