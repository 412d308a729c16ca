"""Red-cell morphology: each segmented red cell gets a class (normal, spherocyte, target cell, ...).

The classes are those of the Chula RBC-12 dataset (``../shared/data/chula_rbc12``, MIT),
whose points mark the centres of red cells with their morphology:
:data:`CLASSES` (its "uncategorised" class, 19 points, is left out).

A cell is classified from a square crop centred on it (:func:`cell_crops`), scaled so the
field's typical red cell is ``CROP_PX / CROP_DIAMETERS`` px across: the crop shows the cell
with its neighbours, so size classes (microcyte, macrocyte) are judged against the field's
own red cells, as a haematologist does, and the result does not depend on the camera.
The network is a ``classify`` net of the registry (:mod:`cellviewer.nets.cell_classifier`);
the shipped model is ``models/rbc-morphology`` (trained by
``python -m cellviewer.core.morphtrain``, see its card).

:func:`classify_cells` sets ``Marker.morph`` / ``Marker.morph_p`` of the red-cell markers of a
segmentation result; :func:`morphology_counts` is the differential a report shows.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from cellviewer.core.errors import ModelLoadError

#: Chula RBC-12 class ids -> names (its README at the pinned commit); 10 "uncategorised" is not used
CHULA_CLASSES = {0: "normal", 1: "macrocyte", 2: "microcyte", 3: "spherocyte", 4: "target_cell",
                 5: "stomatocyte", 6: "ovalocyte", 7: "teardrop", 8: "burr_cell", 9: "schistocyte",
                 11: "hypochromia", 12: "elliptocyte"}
CLASSES: tuple[str, ...] = tuple(CHULA_CLASSES.values())
#: crop side, in typical red-cell diameters of the field
CROP_DIAMETERS = 2.0
#: crop side in px (the network's input)
CROP_PX = 64
#: the highest probability an automatic class is stored with (``morph_p`` = 1 marks a class set by hand)
AUTO_P_MAX = 0.9999
#: the shipped model's name (``models/<name>.json``)
MODEL_NAME = "rbc-morphology"
#: a card of this task is a morphology classifier, not a segmenter (``core.netsegment`` skips it)
TASK = "rbc-morphology"

_CACHE: dict[str, tuple[object, dict]] = {}
_LOCK = threading.Lock()


def white_balance(image: np.ndarray, level: float = 235.0) -> np.ndarray:
    """The image with its background (the median colour of its brightest 10 % of pixels) made a neutral
    ``level`` grey by a gain per channel: stains, lamps and cameras differ; the cells' shapes do not."""
    img = np.ascontiguousarray(np.asarray(image)[..., :3], dtype=np.uint8)
    # the mean of three uint8 values, as float32 would give it (integer sums are exact in float32)
    lum = cv2.add(cv2.add(img[..., 0], img[..., 1], dtype=cv2.CV_16U), img[..., 2], dtype=cv2.CV_16U)
    lum = lum.astype(np.float32) / np.float32(3)
    bright = img[lum >= np.percentile(lum, 90)]
    bg = np.maximum(np.median(bright.reshape(-1, 3), axis=0).astype(np.float32), 1.0)
    # a per-channel lookup table: the same values as clip(img * gain) pixel by pixel, 10× faster
    lut = np.clip(np.arange(256, dtype=np.float32)[:, None] * (np.float32(level) / bg)[None, :], 0, 255)
    return cv2.LUT(img, lut.astype(np.uint8).reshape(256, 1, 3))


def to_grey(crops: np.ndarray) -> np.ndarray:
    """Crops with their luminance in all three channels (models whose card says ``"grey": true``: no stain shortcut)."""
    lum = (crops.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round().astype(np.uint8)
    return np.repeat(lum[..., None], 3, axis=-1)


def cell_crops(image: np.ndarray, points: np.ndarray, diameter: float,
               px: int = CROP_PX, diameters: float = CROP_DIAMETERS) -> np.ndarray:
    """``N×px×px×3`` uint8 crops of an RGB image centred on ``points`` (N×2, x, y in px), each
    ``diameters × diameter`` input px wide; the image edge is mirrored."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros((0, px, px, 3), np.uint8)
    s = px / (diameters * float(diameter))
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                       interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    pad = px
    big = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    out = np.empty((len(pts), px, px, 3), np.uint8)
    for i, (x, y) in enumerate(pts):
        cx, cy = int(round(x * s)) + pad, int(round(y * s)) + pad
        x0, y0 = cx - px // 2, cy - px // 2
        out[i] = big[y0:y0 + px, x0:x0 + px]
    return out


def to_tensor(crops: np.ndarray):
    """uint8 ``N×S×S×3`` -> float ``N×3×S×S`` 0..1."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2))).float().div_(255.0)


def find_card(name: str = MODEL_NAME) -> Path | None:
    """The card of the morphology model named ``name``: the active version in the user's model store
    (a fine-tune the annotator accepted, :mod:`cellviewer.core.morphfinetune`), else the last of the
    model folders that has it; None when none does."""
    from cellviewer.core.modelstore import ModelStore
    from cellviewer.core.netsegment import model_dirs

    mv = ModelStore().active(name)
    if mv is not None and mv.card.get("task") == TASK:
        return mv.stem.with_suffix(".json")
    found = None
    for d in model_dirs():
        p = d / f"{name}.json"
        if p.is_file() and p.with_suffix(".safetensors").is_file():
            found = p
    return found


def load_model(path: str | Path | None = None, device: str = "cpu"):
    """``(net, card)`` of a morphology model (default: the shipped one), cached."""
    from cellviewer.nets.checkpoint import load_checkpoint

    card_path = Path(path) if path is not None else find_card()
    if card_path is None:
        raise ModelLoadError(f"No red-cell morphology model '{MODEL_NAME}' was found",
                             hint="reinstall cellviewer (models/rbc-morphology.json + .safetensors) "
                                  "or train one with python -m cellviewer.core.morphtrain")
    key = f"{card_path.with_suffix('')}|{device}"
    with _LOCK:
        if key not in _CACHE:
            net, card = load_checkpoint(card_path.with_suffix(""), device=device)
            if card.get("task") != TASK:
                raise ModelLoadError(f"'{card_path}' is not a red-cell morphology model",
                                     hint=f"its card needs \"task\": \"{TASK}\"")
            _CACHE[key] = (net, card)
        return _CACHE[key]


def predict_crops(net, crops: np.ndarray, batch: int = 256, device: str = "cpu", grey: bool = False) -> np.ndarray:
    """Class probabilities ``N×C`` of uint8 crops (averaged over the crop and its mirror; ``grey``:
    of their luminance, :func:`to_grey`)."""
    import torch

    if grey:
        crops = to_grey(crops)
    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            x = to_tensor(crops[i:i + batch]).to(device)
            logits = net(x)["logits"] + net(torch.flip(x, dims=(3,)))["logits"]
            out.append(torch.softmax(logits.float() / 2, dim=1).cpu().numpy())
    n_cls = int(getattr(net, "fc").out_features) if hasattr(net, "fc") else 0
    return np.concatenate(out) if out else np.zeros((0, n_cls), np.float32)


def classify_cells(image: np.ndarray, markers: list, diameter: float, model=None, device: str = "cpu",
                   labels: np.ndarray | None = None, um_per_px: float | None = None) -> int:
    """Set ``morph`` / ``morph_p`` on the red-cell markers (in place) from crops of ``image``
    (RGB uint8) at the field's red-cell ``diameter`` (px); returns how many were classified.
    ``model``: ``(net, card)`` (default: :func:`load_model`). With the red-cell instance ``labels``,
    cells cut by the image edge are left unclassified: a cut cell's shape is not its own (it
    would pass for a fragment, a schistocyte). With ``labels`` and the image's calibration
    ``um_per_px``, a card with a ``size_prior`` also weighs each cell's measured size in µm
    (:mod:`cellviewer.core.sizeprior`: microcytes and macrocytes are size classes)."""
    cut: set = set()
    if labels is not None:
        from cellviewer.core.countframe import edge_flags, field_edge

        cut = set(edge_flags(labels, field_edge(image) if np.asarray(labels).shape == image.shape[:2] else None))
    # with the labels, a marker without a mask (placed by hand) is no cell to classify: its crop may be
    # background or a cut cell, and the review queue, where classes are corrected, lists only cells
    rbcs = [m for m in markers if m.cls == "rbc" and (labels is None or (m.cell and m.cell not in cut))]
    if not rbcs:
        return 0
    net, card = model if model is not None else load_model(device=device)
    classes = list(card.get("classes") or CLASSES)
    if card.get("white_balance"):
        image = white_balance(image)
    pts = np.array([(m.x, m.y) for m in rbcs], np.float64)
    crops = cell_crops(image, pts, diameter, int(card.get("crop_px") or CROP_PX),
                       float(card.get("crop_diameters") or CROP_DIAMETERS))
    probs = predict_crops(net, crops, device=device, grey=bool(card.get("grey")))
    prior = uses_size_prior(card, um_per_px)
    if prior is not None and labels is not None:
        from cellviewer.core import sizeprior

        diam = sizeprior.equivalent_diameters(labels, [m.cell for m in rbcs]) * float(um_per_px)
        probs = sizeprior.apply(probs, diam, prior)
    best = probs.argmax(1)
    for m, k, p in zip(rbcs, best.tolist(), probs):  # 1.0 means "set by hand": a model's class stays below it
        m.morph, m.morph_p = classes[k], min(round(float(p[k]), 4), AUTO_P_MAX)
    return len(rbcs)


def reclassify_job(image: np.ndarray, markers: list, labels: np.ndarray, diameter: float,
                   um_per_px: float | None = None, device: str = "cpu", cancel=None):
    """Long job: the red-cell classes again, on the current masks and markers (e.g. after the calibration was
    given, or a new morphology model was accepted), leaving classes set by hand alone. Returns
    ``{marker id: (class, probability)}`` for the markers whose class or probability changes (copies are
    classified; ``markers`` are not touched): :func:`cellviewer.core.operations.set_morphologies` makes it one
    undoable edit."""
    from dataclasses import replace

    from cellviewer.core.jobs import Progress

    yield Progress(0.0, "loading the morphology model")
    model = load_model(device=device)
    if cancel is not None:
        cancel.check()
    auto = [replace(m) for m in markers if m.cls == "rbc" and m.morph_p < 1.0]  # hand-set (or cleared) stays
    yield Progress(0.2, f"classifying {len(auto)} red cells")
    before = {m.id: (m.morph, m.morph_p) for m in auto}
    for m in auto:
        m.morph, m.morph_p = "", 0.0  # a cell now cut by the image edge, or without a mask, gets none
    classify_cells(image, auto, diameter, model=model, device=device, labels=labels, um_per_px=um_per_px)
    yield Progress(1.0, "done")
    return {m.id: (m.morph, m.morph_p) for m in auto  # a new class, or a probability that moved (not rounding)
            if m.morph != before[m.id][0] or abs(m.morph_p - before[m.id][1]) > 0.005}


def uses_size_prior(card: dict, um_per_px: float | None) -> dict | None:
    """The card's ``size_prior`` when it applies: a calibration is given and the prior's classes are the card's."""
    prior = card.get("size_prior")
    if not prior or not um_per_px or not (float(um_per_px) > 0):
        return None
    return prior if list(prior.get("classes") or []) == list(card.get("classes") or CLASSES) else None


def morphology_counts(markers: list) -> dict[str, int]:
    """How many red cells have each morphology class (classified ones only), most frequent first."""
    return dict(Counter(m.morph for m in markers if m.cls == "rbc" and getattr(m, "morph", "")).most_common())


def describe_installed() -> str:
    """Two lines on the installed morphology model for ``cellviewer models`` ("" when none is)."""
    import json

    path = find_card()
    if path is None:
        return ""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    metrics = card.get("metrics") or {}
    nums = ""
    for label, m in (("test split", metrics.get("test") or {}),
                     ("end to end", (metrics.get("end_to_end") or {}).get("test") or {})):
        if {"accuracy", "balanced_accuracy", "macro_f1"} <= set(m):
            nums += (f"; {label} ({m.get('n') or m.get('cells')} cells): accuracy {100 * m['accuracy']:.2f} %, "
                     f"balanced accuracy {100 * m['balanced_accuracy']:.2f} %, macro F1 {100 * m['macro_f1']:.2f} %")
    cal = (metrics.get("end_to_end") or {}).get("calibrated") or {}
    m = cal.get("test") or {}
    if card.get("size_prior") and {"accuracy", "balanced_accuracy", "macro_f1"} <= set(m):
        nums += (f"; with the size prior at {cal.get('um_per_px')} µm/px: accuracy {100 * m['accuracy']:.2f} %, "
                 f"balanced accuracy {100 * m['balanced_accuracy']:.2f} %, macro F1 {100 * m['macro_f1']:.2f} % "
                 "(give the calibration: analyze --um-per-px, or the GUI's Calibration)")
    parent = card.get("parent") or {}
    stored = (f" (stored in {path.parent}, fine-tuned from {parent.get('model')} {parent.get('version')})"
              if parent.get("model") else "")
    return (f"{card.get('name', path.stem)} (red-cell morphology of every trained segmenter's red cells) — "
            f"{card.get('description', '')}\n    {card.get('architecture')} version {card.get('version', '1')}{stored}; "
            f"classes: {', '.join(card.get('classes') or CLASSES)}{nums}")
