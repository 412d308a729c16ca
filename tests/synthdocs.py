"""Test helpers for the human-in-the-loop modules: synthetic corrected documents and a tiny base model."""

from __future__ import annotations

import cv2
import numpy as np

from cellviewer.core.document import CELL_CLASSES, Document, ImageData, ImageInfo, Marker

COLOURS = {"rbc": (200, 120, 130), "wbc": (90, 70, 170), "platelet": (120, 60, 150)}


def disc_doc(discs, size=(96, 128), name="synth.png", reviewed=True, seed=0) -> Document:
    """A document whose cells are the given discs ``[(cls, x, y, r, score), ...]`` (one label and one
    auto marker each, in order; a later disc of the same class covers an earlier one)."""
    h, w = size
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), (235, 225, 230), np.float32)
    labels = {c: np.zeros((h, w), np.int32) for c in CELL_CLASSES}
    doc = Document(ImageData(img.astype(np.uint8), ImageInfo(f"/nowhere/{name}", w, h)))
    for cls, x, y, r, score in discs:
        one = np.zeros((h, w), np.uint8)
        cv2.circle(one, (int(round(x)), int(round(y))), int(round(r)), 1, -1)
        cell = int(labels[cls].max()) + 1
        labels[cls][one > 0] = cell
        img[one > 0] = COLOURS[cls]
        mid = doc.next_marker_id()
        doc.markers[mid] = Marker(mid, cls, float(x), float(y), "auto", cell, float(score))
    img += rng.normal(0, 4, img.shape)
    doc.image.pixels[:] = np.clip(img, 0, 255).astype(np.uint8)
    doc.labels = labels
    doc.reviewed = reviewed
    return doc


def random_doc(seed: int, d: float = 16.0, size=(96, 96), reviewed=True) -> Document:
    """Six red cells, a white cell and two platelets at random places (red-cell diameter ``d``)."""
    rng = np.random.default_rng(seed)
    discs = []
    for cls, n, f in (("rbc", 6, 1.0), ("wbc", 1, 1.6), ("platelet", 2, 0.35)):
        for _ in range(n):
            r = d * f / 2
            discs.append((cls, rng.uniform(r, size[1] - r), rng.uniform(r, size[0] - r), r, rng.uniform(0.6, 1)))
    return disc_doc(discs, size, f"synth_{seed}.png", reviewed, seed)


def saved_doc(path, src: Document, reviewed: bool | None = None) -> Document:
    """``src``'s image written to ``path`` and its labels and markers saved in the image's sidecar
    (``reviewed``: set the document's flag; None: leave it as loading gives it)."""
    from cellviewer.core.sidecar import load_document, save_sidecar

    cv2.imwrite(str(path), src.image.pixels[..., ::-1])
    doc = load_document(path)
    doc.labels, doc.markers = src.labels, src.markers
    if reviewed is not None:
        doc.reviewed = reviewed
    save_sidecar(doc)
    return doc


def save_tiny_base(name: str = "tiny-cells") -> None:
    """An untrained tiny DO-U-Net (rbc/wbc/platelet + edge, 16 px per red cell) in the user's
    model folder, with a training config in its card like the shipped model."""
    import torch

    from cellviewer.core.netsegment import model_dirs, register_models
    from cellviewer.nets.checkpoint import save_checkpoint
    from cellviewer.nets.registry import create_net

    torch.manual_seed(0)
    cfg = {"base": 4, "depth": 2, "edge": True, "n_classes": 4}
    net = create_net("do-unet", **cfg)
    training = {"config": {"architecture": "do-unet", "net_config": {"base": 4, "depth": 2}, "working_scale": 16.0,
                           "batch_size": 2, "augment": {"crop": 48}, "lr": 1e-3, "threads": 1}, "state": {"epoch": 9}}
    save_checkpoint(net, model_dirs()[-1] / name, {
        "name": name, "version": "3", "classes": ["background", "rbc", "wbc", "platelet"], "working_scale": 16.0,
        "postprocess": {"method": "edge-watershed", "rbc_measured_to_box": 0.97}, "training": training,
        "description": "tiny untrained base"})
    register_models()


def morph_field(k: int, path: str | None = None) -> Document:
    """A reviewed 192×192 field of 16 red cells with morphology classes: round ones "normal" (the model's
    class let stand, p 0.9), elongated ones (every third, shifted by ``k``) "elliptocyte" set by hand (p 1)."""
    img = np.full((192, 192, 3), 230, np.uint8)
    lab = np.zeros((192, 192), np.int32)
    markers = []
    for i in range(16):
        x, y = 24 + 48 * (i % 4), 24 + 48 * (i // 4)
        long = (i + k) % 3 == 0
        axes = (17, 8) if long else (13, 13)
        cv2.ellipse(img, (x, y), axes, 0, 0, 360, (190, 120, 140), -1)
        cv2.ellipse(lab, (x, y), axes, 0, 0, 360, i + 1, -1)
        markers.append(Marker(i + 1, "rbc", float(x), float(y), cell=i + 1, reviewed=True,
                              morph="elliptocyte" if long else "normal", morph_p=1.0 if long else 0.9))
    doc = Document(ImageData(img, ImageInfo(path or f"/nowhere/field{k}.png", 192, 192)))
    doc.labels["rbc"] = lab
    doc.markers = {m.id: m for m in markers}
    doc.reviewed = True
    return doc
