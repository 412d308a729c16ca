"""Red-cell morphology training data: crops of labelled cells, as the classifier sees them at run time.

Chula RBC-12's labelled points (:func:`load_crops`), TXL-PBC's healthy-donor red cells as
"normal" (:func:`load_pbc_normals`) — each image's crops cut at its red-cell size
(:func:`crop_diameter`: the blob estimate, or the size a blood-cells segmentation works at)
and ``margin`` × larger than the network's input, for the scale / shift augmentation of
:mod:`cellviewer.core.morphtrain`.
"""

from __future__ import annotations

import math

import numpy as np

from cellviewer.core import datasets as D
from cellviewer.core import morphology as MO
from cellviewer.core.errors import CellviewerError, OptionError
from cellviewer.core.jobs import CancelToken, run_job

#: crops are cut this much larger than the network's input, for the scale / shift augmentation
MARGIN = 1.25
#: how a training / scoring crop's red-cell size is found: ``estimate`` (the blob estimate alone) or
#: ``segmenter`` (what a segmentation with blood-cells classifies at: the estimate refined on its red cells)
CROP_SCALES = ("estimate", "segmenter")


def crop_diameter(image: np.ndarray, how: str = "estimate") -> float:
    """The red-cell diameter (px) crops of ``image`` are cut at (see :data:`CROP_SCALES`)."""
    from cellviewer.core.cellsize import estimate_rbc_diameter

    if how == "estimate":
        return float(estimate_rbc_diameter(image)[0])
    if how != "segmenter":
        raise OptionError(f"Unknown crop scale '{how}'", hint=f"use one of: {', '.join(CROP_SCALES)}")
    from cellviewer.core.segment import create_segmenter  # the active blood-cells (its weights are cached)

    return float(run_job(create_segmenter("blood-cells", morphology=False, device="cpu").segment(image))
                 .params["diameter_px"])


def field_crops(path, points: np.ndarray, px: int, margin: float, white_balance: bool,
                 scale: str = "estimate") -> np.ndarray:
    """Crops (``px`` wide, ``margin`` × the network's view) around ``points`` of one image, at its red-cell
    diameter (:func:`crop_diameter`, as the segmenter finds it at run time), white-balanced first when asked."""
    from cellviewer.core.io import read_image

    img = read_image(path).pixels
    d = crop_diameter(img, scale)
    return MO.cell_crops(MO.white_balance(img) if white_balance else img, points, d, px, MO.CROP_DIAMETERS * margin)


def load_crops(split: str, data_root=None, margin: float = MARGIN, cancel: CancelToken | None = None,
               crop_px: int = MO.CROP_PX, white_balance: bool = False, scale: str = "estimate"):
    """``(crops N×S×S×3 uint8, labels N, image index N, image ids)`` of one split's labelled points;
    crops are ``margin`` × the network's crop (same centre and scale)."""
    px = int(round(crop_px * margin))
    ids = {cid: i for i, cid in enumerate(MO.CHULA_CLASSES)}
    crops, labels, owner, names = [], [], [], []
    for sample in D.load_samples("chula_rbc12", data_root, split):
        if cancel is not None:
            cancel.check()
        cls = np.asarray(sample.meta.get("point_classes", []), int)
        keep = np.array([c in ids for c in cls], bool)
        if not keep.any():
            continue
        crops.append(field_crops(sample.path, sample.points[keep], px, margin, white_balance, scale))
        labels.append(np.array([ids[c] for c in cls[keep]], np.int64))
        owner.append(np.full(int(keep.sum()), len(names)))
        names.append(sample.image_id)
    if not crops:
        raise CellviewerError(f"No labelled chula_rbc12 points in the {split} split",
                              hint="put the shared data (chula_rbc12/points.csv and images) under --data")
    return np.concatenate(crops), np.concatenate(labels), np.concatenate(owner), names


def load_pbc_normals(split: str, limit: int, data_root=None, margin: float = MARGIN, crop_px: int = MO.CROP_PX,
                     white_balance: bool = False, seed: int = 0, scale: str = "estimate"):
    """Crops (as :func:`load_crops`) of up to ``limit`` whole red cells (boxes clear of the image edge) of the
    PBC images of TXL-PBC in ``split``, all labelled "normal": the PBC dataset's smears come from healthy
    donors (Acevedo et al., Data in Brief 2020), so nearly all their red cells are normal. Teaches the
    classifier another microscope and stain without new morphology labels."""
    px = int(round(crop_px * margin))
    samples = [s for s in D.load_samples("txl_pbc", data_root, split) if s.origin == "pbc"]
    rng = np.random.default_rng(seed)
    per = max(1, int(math.ceil(limit / max(1, len(samples)))))
    crops = []
    for s in samples:
        b = np.asarray(s.boxes.get("rbc", np.zeros((0, 4))), float).reshape(-1, 4)
        whole = b[(b[:, 0] > 2) & (b[:, 1] > 2) & (b[:, 2] < s.width - 3) & (b[:, 3] < s.height - 3)]
        if not len(whole):
            continue
        whole = whole[rng.permutation(len(whole))[:per]]
        centres = np.stack([(whole[:, 0] + whole[:, 2]) / 2, (whole[:, 1] + whole[:, 3]) / 2], 1)
        crops.append(field_crops(s.path, centres, px, margin, white_balance, scale))
    x = np.concatenate(crops)[:limit] if crops else np.zeros((0, px, px, 3), np.uint8)
    return x, np.zeros(len(x), np.int64)  # class 0 = normal


def center_crops(crops: np.ndarray, px: int = MO.CROP_PX) -> np.ndarray:
    """The central ``px``×``px`` of margin crops (what the network sees without augmentation)."""
    o = (crops.shape[1] - px) // 2
    return np.ascontiguousarray(crops[:, o:o + px, o:o + px])
