"""Reading a cellviewer export (layout: :mod:`cellviewer.core.export_dataset`) back for training
and evaluation: :func:`load_exported` gives :class:`cellviewer.core.datasets.Sample` objects
(what ``load_samples("export", root=DIR)`` returns), :func:`working_targets` their class map and
edge target at the working scale (used by :func:`cellviewer.core.datasets.working_item`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from cellviewer.core.document import CELL_CLASSES
from cellviewer.core.errors import OptionError

#: edge ring width (px) at 32 px per red cell; scaled with each image's red-cell size
EDGE_PX = 2.0


def edge_map(labels: dict[str, np.ndarray], edge_px: float) -> np.ndarray:
    """``uint8`` 0/1: a ring of ``edge_px`` px inside every cell (touching cells get one each)
    plus every pixel covered by cells of two classes (the DO-U-Net edge target)."""
    from cellviewer.core.counting import inner_boundary

    shape = next(iter(labels.values())).shape
    ring, cover = np.zeros(shape, bool), np.zeros(shape, np.uint8)
    t = max(1, int(round(edge_px)))
    for lab in labels.values():
        fg = lab > 0
        cover += fg
        b = inner_boundary(lab)
        if t > 1:
            b = cv2.dilate(b.astype(np.uint8), np.ones((2 * t - 1, 2 * t - 1), np.uint8)).astype(bool) & fg
        ring |= b
    return (ring | (cover >= 2)).astype(np.uint8)


def load_exported(root, split: str | None = None, notes: list[str] | None = None):
    """The images of a shared-layout export as :class:`cellviewer.core.datasets.Sample` objects
    (``dataset="export"``, boxes from ``annotations.csv`` clipped to their image, ``meta["labels"]`` the
    instance label files), optionally of one split. Training reads their masks via :func:`working_targets`.
    The CSVs are read as :mod:`cellviewer.core.datacsv` reads the shared layout (a byte-order mark is fine; a
    damaged file is an OptionError naming it and the line); what was read differently goes to ``notes``."""
    from cellviewer.core.datacsv import box_notes, boxes_by_image, clip_boxes, number, read_rows
    from cellviewer.core.datasets import CLASS_INDEX, Sample

    root = Path(root)
    if not (root / "images.csv").is_file() or not (root / "labels").is_dir():
        raise OptionError(f"'{root}' is not a cellviewer export (images.csv / labels/ missing).",
                          hint="give the export folder as --data DIR with --datasets export; make one with "
                               "'cellviewer export IMAGES --out DIR --format shared'")
    rows = read_rows(root / "images.csv", ("image", "width", "height", "split"))
    by_img = boxes_by_image(root / "annotations.csv")
    from cellviewer.core.stemmatch import FolderIndex

    # file names matched in any case (IMG_001.png vs img_001_rbc.png: a copy through another file system)
    images, labels, ignore = (FolderIndex(root / sub) for sub in ("images", "labels", "ignore"))
    out, clipped, dropped = [], 0, 0
    for r in rows:
        w, h = (number(r, k, root / "images.csv", int, 1) for k in ("width", "height"))
        name, stem = r["image"], Path(r["image"]).stem
        b = by_img.get(name, {c: [] for c in CLASS_INDEX})
        boxes = {}
        for c in CLASS_INDEX:
            boxes[c], k_clip, k_drop = clip_boxes(b[c], w, h)
            clipped, dropped = clipped + k_clip, dropped + k_drop
        if split is not None and r["split"] != split:
            continue
        lab = {c: labels.find(f"{stem}_{c}.png") or root / "labels" / f"{stem}_{c}.png" for c in CELL_CLASSES}
        out.append(Sample("export", name, images.find(name) or root / "images" / name, r["split"],
                          origin=r.get("origin") or "export", width=w, height=h, boxes=boxes,
                          rbc_diameter=number(r, "rbc_diameter", root / "images.csv") if r.get("rbc_diameter")
                          else 32.0, meta={"labels": lab, "ignore": ignore.find(name), "source": r.get("source", "")}))
    known = {r["image"] for r in rows}
    strays = {i: sum(map(len, v.values())) for i, v in by_img.items() if i not in known}
    if notes is not None:
        notes += box_notes(root / "annotations.csv", clipped, dropped, strays)
    return out


def read_labels(sample) -> dict[str, np.ndarray]:
    """The instance labels (``uint16`` per class, 0 = none) of an exported sample."""
    from cellviewer.core.errors import ImageReadError

    out = {}
    for c, p in sample.meta["labels"].items():
        a = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if a is None or a.ndim != 2:
            raise ImageReadError(p, "it is not a single-channel label PNG")
        out[c] = a.astype(np.uint16)
    return out


def working_targets(sample, size: tuple[int, int], edge_px: float = EDGE_PX) -> tuple[np.ndarray, np.ndarray]:
    """``(classmap, edge)`` of an exported sample at ``size`` (w, h): labels resized (centre-aligned
    nearest), classes drawn rbc, wbc, platelet (1, 2, 3), the ignore target's pixels set to
    :data:`~cellviewer.core.datasets.IGNORE`, the edge target recomputed at that scale."""
    from cellviewer.core.datasets import CLASS_INDEX, IGNORE
    from cellviewer.core.upsample import NEAREST

    labels = {c: cv2.resize(a, size, interpolation=NEAREST).astype(np.int32)
              for c, a in read_labels(sample).items()}
    classmap = np.zeros((size[1], size[0]), np.uint8)
    for c in ("rbc", "wbc", "platelet"):
        classmap[labels[c] > 0] = CLASS_INDEX[c]
    ignore = read_ignore(sample)  # markers without an outline, outlines shared by two cells: not taught
    if ignore is not None:
        classmap[cv2.resize(ignore, size, interpolation=NEAREST) > 0] = IGNORE
    return classmap, edge_map(labels, edge_px)


def read_ignore(sample) -> np.ndarray | None:
    """The ignore target (``uint8``, > 0 = not taught) of an exported sample; None for an export made
    before ignore targets were written."""
    from cellviewer.core.errors import ImageReadError

    p = sample.meta.get("ignore")
    if p is None:
        return None
    a = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if a is None or a.ndim != 2:
        raise ImageReadError(p, "it is not a single-channel ignore PNG")
    return a
