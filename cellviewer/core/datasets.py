"""Readers for the shared annotated data (``shared/data``) and its items at the working scale.

Layouts (see ``shared/data/README.md``):

* **boxes** — ``bccd`` and ``txl_pbc``: ``annotations*.csv`` with
  ``image,cls,xmin,ymin,xmax,ymax``. For BCCD the TXL-PBC re-annotation
  (``annotations_txl.csv``) is used where ``images.csv`` has ``has_txl=1``; the
  other BCCD images fall back to the original VOC boxes, which miss many cells:
  those samples carry ``weak=True``.
* **masks** — ``wbc_seg``: 8-bit masks (0 background, 128 cytoplasm, 255 nucleus),
  read with the thresholds <64 / 64–191 / ≥192 into the part map of
  :mod:`cellviewer.core.document` (0 none, 1 nucleus, 2 cytoplasm). Masks are found by stem in any
  case (``IMG_001.JPG`` → ``img_001_mask.png``, :mod:`cellviewer.core.stemmatch`).
* **points** — ``chula_rbc12``: one point inside some (not all) red cells; a recall
  check only.

**Split.** :func:`split_of` puts every image in ``train`` / ``val`` / ``test``
(70/15/15) by ``sha256("cellviewer-split-v1:" + image file name)`` read as a number
in [0, 1): fixed, identical for everyone, independent of which other images exist.
The ``test`` split is what the model cards report on.

**Weak labels from boxes** (:func:`weak_labels`, :func:`ignore_unlabelled`, the class map's
:data:`CLASS_INDEX` and :data:`IGNORE`) are in :mod:`cellviewer.core.weaklabels` (re-exported
here); :func:`working_item` puts a sample at the working scale with its targets.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from cellviewer.core.datacsv import (BOX_COLUMNS, CELL_LABELS, box_notes, boxes_by_image,  # noqa: F401
                                     cell_class, clip_boxes, number, print_notes, read_rows)
from cellviewer.core.errors import CellviewerError, ImageReadError, OptionError
from cellviewer.core.stemmatch import FolderIndex
from cellviewer.core.weaklabels import (CLASS_INDEX, IGNORE, _DRAW_ORDER,  # noqa: F401 - part of this API
                                        ignore_unlabelled, resize_classmap, stained_foreground, weak_labels)

DATASETS: tuple[str, ...] = ("bccd", "txl_pbc", "wbc_seg", "chula_rbc12")
BOX_DATASETS: tuple[str, ...] = ("bccd", "txl_pbc")
SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_SEED = "cellviewer-split-v1"
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
BOX_CLASSES: tuple[str, ...] = ("background", "rbc", "wbc", "platelet")
PART_CLASSES: tuple[str, ...] = ("background", "nucleus", "cytoplasm")
#: a normal red cell (7.5 µm) over a typical white cell (≈ 12.5 µm): used to put the
#: WBC crops of ``wbc_seg`` (no red cells annotated) on the RBC-diameter scale
RBC_PER_WBC = 0.6
#: pixel size (µm) of a source whose images share one microscope and camera. Chula RBC-12 (1000×, one
#: camera) publishes none: this one puts the train split's median normal red cell (blood-cells mask,
#: equivalent diameter 44.1 px) at 7.5 µm (``python -m cellviewer.core.sizeprior`` prints it)
UM_PER_PX = {"chula": 0.1700}


def default_data_root() -> Path:
    """``<repo root>/../shared/data``."""
    return Path(__file__).resolve().parents[3] / "shared" / "data"


#: sha256 of each dataset's ``images.csv`` in the development data (``shared/data``): how a copy of it given as
#: ``--data`` elsewhere (the installed app has no ``<repo>/..``) is known as the development data, whose
#: images the models' splits divide; a held-out set or a lab's images have other lists
DEVELOPMENT_IMAGE_LISTS = {
    "bccd": "27ad9d842db888f9bc782b9c5b9ceac8e490d2f7c941ea106657ae2091009f46",
    "chula_rbc12": "85819dc33b6a8f032e12cce6ad63b490c10a1fb33d4e18c44aaa96a2a8990f43",
    "txl_pbc": "7bfabc4902c713eb1fdefb10bea8c9e25bb4187e02e0ac8877d002f01755c16c",
    "wbc_seg": "9e2746da3769ac201ea87c62b6fae3b04b7e2dd122e1ef9851d947206f851575",
}


def is_development_data(root: str | Path) -> bool:
    """Whether ``root`` is the development data: the default data root, or a folder whose datasets' image lists
    are exactly the development data's (:data:`DEVELOPMENT_IMAGE_LISTS`; every one found must match)."""
    import hashlib

    try:
        p = Path(root).resolve()
        if p == default_data_root().resolve():
            return True
        found = [n for n in DEVELOPMENT_IMAGE_LISTS if (p / n / "images.csv").is_file()]
        return bool(found) and all(
            hashlib.sha256((p / n / "images.csv").read_bytes()).hexdigest() == DEVELOPMENT_IMAGE_LISTS[n]
            for n in found)
    except OSError:
        return False


def resolve_data_root(root: str | Path | None = None) -> Path:
    r = Path(root) if root is not None else default_data_root()
    if not r.is_dir():
        import sys

        folders = "bccd/, txl_pbc/, wbc_seg/ or chula_rbc12/ with their images.csv"
        if root is None and getattr(sys, "frozen", False):  # the installed app: no development data beside it
            raise OptionError("The installed application has no data folder of its own.",
                              hint=f"give --data DIR: a folder holding {folders} (the shared data layout)")
        raise OptionError(f"No data folder at '{r}'.", hint=f"give --data DIR: a folder holding {folders}")
    return r


def split_of(image_id: str, seed: str = SPLIT_SEED, fractions=SPLIT_FRACTIONS) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for an image file name (deterministic)."""
    h = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2.0**64
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


@dataclass
class Sample:
    """One annotated image. Which fields are set depends on the layout."""

    dataset: str
    image_id: str
    path: Path
    split: str
    origin: str = ""  # bccd / pbc / raabin_wbc / d1 / d2 / chula
    width: int = 0
    height: int = 0
    boxes: dict[str, np.ndarray] | None = None  # cls -> (N, 4) xmin, ymin, xmax, ymax
    weak: bool = False  # boxes are the incomplete original BCCD ones
    mask_path: Path | None = None
    points: np.ndarray | None = None  # (N, 2) x, y
    rbc_diameter: float = 0.0  # native expected RBC diameter (px)
    um_per_px: float | None = None  # the source's calibration (:data:`UM_PER_PX`), None when unknown
    meta: dict = field(default_factory=dict)

    def read_image(self) -> np.ndarray:
        return read_rgb(self.path)

    def read_parts(self) -> np.ndarray:
        """``wbc_seg`` ground truth as a part map: 0 none, 1 nucleus, 2 cytoplasm."""
        if self.mask_path is None:
            raise CellviewerError(f"'{self.image_id}' has no mask.", hint="use a mask dataset (wbc_seg)")
        if not Path(self.mask_path).is_file():
            raise OptionError(f"No mask for '{self.image_id}': '{self.mask_path}' is missing.",
                              hint="add <image stem>_mask.png (or the image's own name) to masks/, or remove the "
                                   "image from images.csv")
        m = cv2.imread(str(self.mask_path), cv2.IMREAD_GRAYSCALE)
        if m is None:
            raise ImageReadError(self.mask_path, "OpenCV could not decode the mask")
        if self.width and self.height and m.shape != (self.height, self.width):
            raise OptionError(f"The mask '{self.mask_path}' is {m.shape[1]}×{m.shape[0]} px, its image "
                              f"'{self.image_id}' {self.width}×{self.height} (images.csv).",
                              hint="a mask must have its image's size: export it again at that size")
        return mask_to_parts(m)

    def counts(self) -> dict[str, int]:
        return {c: int(len(b)) for c, b in (self.boxes or {}).items()}


def mask_to_parts(m: np.ndarray) -> np.ndarray:
    """8-bit ``wbc_seg`` mask → part map (thresholds <64 bg, 64–191 cytoplasm, ≥192 nucleus)."""
    return np.where(m >= 192, 1, np.where(m >= 64, 2, 0)).astype(np.uint8)


def read_rgb(path: str | Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageReadError(path, "OpenCV could not decode it")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def box_diameter(rbc_boxes: np.ndarray, width: int, height: int, margin: int = 2) -> float | None:
    """Median RBC box size ``(w + h) / 2`` over boxes not cut by the border (None if < 3)."""
    b = np.asarray(rbc_boxes, float).reshape(-1, 4)
    inner = (b[:, 0] > margin) & (b[:, 1] > margin) & (b[:, 2] < width - margin) & (b[:, 3] < height - margin)
    b = b[inner]
    if len(b) < 3:
        return None
    return float(np.median((b[:, 2] - b[:, 0] + b[:, 3] - b[:, 1]) / 2.0))


def _load_boxes(root: Path, dataset: str, notes: list[str]) -> list[Sample]:
    folder = root / dataset
    rows = read_rows(folder / "images.csv", ("image", "width", "height"))
    has_txl = dataset != "bccd" or (folder / "annotations_txl.csv").is_file()
    txl_path, voc_path = folder / ("annotations_txl.csv" if dataset == "bccd" else "annotations.csv"), \
        folder / "annotations.csv"
    txl = boxes_by_image(txl_path) if has_txl else {}
    # BCCD's original boxes are read for the images without TXL boxes (none: annotations.csv may be absent)
    need_voc = dataset == "bccd" and any(r.get("has_txl") != "1" or not has_txl for r in rows)
    voc = boxes_by_image(voc_path) if need_voc else {}
    known = {r["image"] for r in rows}
    index = FolderIndex(folder / "images")
    out, tally = [], defaultdict(lambda: [0, 0])  # annotation file -> boxes clipped, dropped
    for r in sorted(rows, key=lambda r: r["image"]):
        img = r["image"]
        weak = dataset == "bccd" and (r.get("has_txl") != "1" or not has_txl)
        src, src_path = (voc, voc_path) if weak else (txl, txl_path)
        b = src.get(img, {c: [] for c in CLASS_INDEX})
        w, h = (number(r, k, folder / "images.csv", int, 1) for k in ("width", "height"))
        boxes = {}
        for c in CLASS_INDEX:
            boxes[c], clipped, dropped = clip_boxes(b[c], w, h)
            tally[src_path][0] += clipped
            tally[src_path][1] += dropped
        s = Sample(dataset, img, index.find(img) or folder / "images" / img, split_of(img),
                   origin=r.get("origin") or dataset, width=w, height=h, boxes=boxes, weak=weak)
        s.rbc_diameter = box_diameter(boxes["rbc"], w, h) or 0.0
        out.append(s)
    for path, src in [(txl_path, txl)] + ([(voc_path, voc)] if need_voc else []):
        strays = {i: sum(map(len, v.values())) for i, v in src.items() if i not in known}
        notes += box_notes(path, *tally[path], strays)
    # images with too few whole red cells get the median of their origin
    by_origin: dict[str, list[float]] = defaultdict(list)
    for s in out:
        if s.rbc_diameter:
            by_origin[s.origin].append(s.rbc_diameter)
    for s in out:
        if not s.rbc_diameter:
            s.rbc_diameter = float(np.median(by_origin[s.origin])) if by_origin[s.origin] else 32.0
    return out


def _load_wbc_seg(root: Path) -> list[Sample]:
    folder = root / "wbc_seg"
    images, masks = FolderIndex(folder / "images"), FolderIndex(folder / "masks")  # names matched in any case
    out = []
    for r in sorted(read_rows(folder / "images.csv", ("image", "width", "height")), key=lambda r: r["image"]):
        img = r["image"]
        w, h = (number(r, k, folder / "images.csv", int, 1) for k in ("width", "height"))
        out.append(Sample("wbc_seg", img, images.find(img) or folder / "images" / img, split_of(img),
                          origin=img[:2], width=w, height=h, mask_path=masks.mask_for(img) or folder / "masks" / img,
                          meta={"class_name": r.get("class_name", "")}))
    # scale: the subset's median WBC equivalent diameter × RBC_PER_WBC (no red cells are annotated)
    for origin in sorted({s.origin for s in out}):
        group = [s for s in out if s.origin == origin]
        d = np.median([2.0 * np.sqrt((s.read_parts() > 0).sum() / np.pi) for s in group[::4]])
        for s in group:
            s.rbc_diameter = float(d * RBC_PER_WBC)
    return out


def _load_chula(root: Path, notes: list[str]) -> list[Sample]:
    folder = root / "chula_rbc12"
    pts: dict[str, list] = defaultdict(list)
    cls: dict[str, list] = defaultdict(list)
    path = folder / "points.csv"
    for r in read_rows(path, ("image", "x", "y", "cls_id")):
        pts[r["image"]].append([number(r, "x", path), number(r, "y", path)])
        cls[r["image"]].append(number(r, "cls_id", path, int))
    out = []
    rows = read_rows(folder / "images.csv", ("image", "width", "height"))
    for r in sorted(rows, key=lambda r: r["image"]):
        img = r["image"]
        w, h = (number(r, k, folder / "images.csv", int, 1) for k in ("width", "height"))
        out.append(Sample("chula_rbc12", img, folder / "images" / img, split_of(img), origin="chula",
                          width=w, height=h, um_per_px=UM_PER_PX["chula"],
                          points=np.asarray(pts[img], np.float64).reshape(-1, 2),
                          meta={"point_classes": np.asarray(cls[img], np.int64)}))
    known = {r["image"] for r in rows}
    notes += box_notes(path, 0, 0, {i: len(v) for i, v in pts.items() if i not in known})
    return out


def load_samples(dataset: str, root: str | Path | None = None, split: str | None = None,
                 notes: list[str] | None = None) -> list[Sample]:
    """All samples of ``dataset`` (one of :data:`DATASETS`, or ``"export"``: a cellviewer export
    at ``root``, :func:`cellviewer.core.export_read.load_exported`), optionally of one split.

    What was read differently from the files — boxes clipped to their image or left out, annotation rows
    of images not in ``images.csv`` — is appended to ``notes`` (None: printed as ``cellviewer: note:``
    lines on stderr). A file that cannot be read as the layout says is an :class:`OptionError` (exit 2)."""
    said: list[str] = [] if notes is None else notes
    r = resolve_data_root(root)
    if dataset == "export":
        from cellviewer.core.export_read import load_exported

        out = load_exported(r, split, said)
        if notes is None:
            print_notes(said)
        return out
    if split is not None and split not in SPLITS:
        raise CellviewerError(f"Unknown split '{split}'.", hint=f"choose one of: {', '.join(SPLITS)}")
    if dataset in BOX_DATASETS:
        out = _load_boxes(r, dataset, said)
    elif dataset == "wbc_seg":
        out = _load_wbc_seg(r)
    elif dataset == "chula_rbc12":
        out = _load_chula(r, said)
    else:
        raise OptionError(f"Unknown dataset '{dataset}'.", hint=f"choose one of: {', '.join(DATASETS)}")
    if notes is None:
        print_notes(said)
    return out if split is None else [s for s in out if s.split == split]


# -- working-scale items -------------------------------------------------------------------
def working_item(sample: Sample, working_scale: float, edge_px: float = 2.0) -> dict:
    """A sample resized to the working scale with its targets, ready for training/validation.

    Returns ``{"image" uint8 H×W×3, "classmap" uint8 (IGNORE where unknown), "edge" uint8 or
    None, "scale", "id", "dataset", "origin", "counts", "weak"}``. Box samples get
    :func:`weak_labels` (and :func:`ignore_unlabelled` when ``weak``); mask samples get
    their part map (0 background, 1 nucleus, 2 cytoplasm) and no edge target.
    """
    img = sample.read_image()
    s = working_scale / max(sample.rbc_diameter, 1e-6)
    h, w = img.shape[:2]
    size = (max(8, int(round(w * s))), max(8, int(round(h * s))))
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    edge = None
    if sample.meta.get("labels"):  # a cellviewer export: its real masks, not box ellipses
        from cellviewer.core.export_read import working_targets

        classmap, edge = working_targets(sample, size, edge_px)
    elif sample.boxes is not None:
        # boxes are scaled per axis exactly as the image was
        sx, sy = size[0] / w, size[1] / h
        boxes = {c: b * np.array([sx, sy, sx, sy]) for c, b in sample.boxes.items()}
        classmap, edge = weak_labels(small.shape[:2], boxes, 1.0, edge_px)
        if sample.weak:
            classmap = ignore_unlabelled(small, classmap)
    elif sample.mask_path is not None:
        classmap = resize_classmap(sample.read_parts(), size)
    else:
        raise CellviewerError(f"'{sample.image_id}' has no pixel targets.", hint="train on bccd, txl_pbc or wbc_seg")
    return {"image": small, "classmap": classmap, "edge": edge, "scale": s, "id": sample.image_id,
            "dataset": sample.dataset, "origin": sample.origin, "counts": sample.counts(), "weak": sample.weak}


def synthetic_items(n: int, working_scale: float, seed: int, size: int = 96) -> list[dict]:
    """Pink discs (rbc), a blue disc (wbc) and purple dots (platelets) on a pale background."""
    rng = np.random.default_rng(seed)
    items = []
    colours = {"rbc": (200, 120, 130), "wbc": (90, 70, 170), "platelet": (120, 60, 150)}
    sizes = {"rbc": 1.0, "wbc": 1.6, "platelet": 0.35}
    for i in range(n):
        img = np.full((size, size, 3), (235, 225, 230), np.float32)
        boxes = {c: [] for c in CLASS_INDEX}
        for cls, k in (("rbc", 6), ("wbc", 1), ("platelet", 2)):
            for _ in range(k):
                r = working_scale * sizes[cls] / 2 * rng.uniform(0.85, 1.15)
                cx, cy = rng.uniform(r, size - r, 2)
                boxes[cls].append([cx - r, cy - r, cx + r, cy + r])
        boxes = {c: np.asarray(b, float).reshape(-1, 4) for c, b in boxes.items()}
        classmap, edge = weak_labels((size, size), boxes, 1.0)
        for c, v in CLASS_INDEX.items():
            img[classmap == v] = colours[c]
        img += rng.normal(0, 6, img.shape)
        items.append({"image": np.clip(img, 0, 255).astype(np.uint8), "classmap": classmap, "edge": edge,
                      "scale": 1.0, "id": f"synthetic_{i}", "dataset": "synthetic", "origin": "synthetic",
                      "counts": {c: len(b) for c, b in boxes.items()}})
    return items
