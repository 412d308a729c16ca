"""Pictures of a :class:`~cellviewer.core.document.Document` for files and reports: the 8-bit
class map (``analyze`` masks, exports) and the RGB overlay (report thumbnails).

Auto markers are dots, manual markers crosses, in their class colour; a cell that the
document's border rule does not count (:mod:`cellviewer.core.countframe`) gets a hollow ring
instead of a dot and no class tint, as in the viewer. Numpy and Pillow only.
"""

from __future__ import annotations

import math

import numpy as np

from cellviewer.core.document import CLASS_COLORS, CLASS_MAP_VALUES, PART_COLORS, Document


def _class_map(labels: dict[str, np.ndarray], parts: np.ndarray | None, shape) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for cls in ("rbc", "wbc", "platelet"):  # smaller cells on top
        lab = labels.get(cls)
        if lab is None:
            continue
        out[lab > 0] = CLASS_MAP_VALUES[cls]
        if cls == "wbc" and parts is not None:
            in_wbc = lab > 0
            out[in_wbc & (parts == 1)] = CLASS_MAP_VALUES["nucleus"]
            out[in_wbc & (parts == 2)] = CLASS_MAP_VALUES["cytoplasm"]
    return out


def class_map(doc: Document) -> np.ndarray:
    """The 8-bit class map (H×W ``uint8``) of ``doc`` using :data:`CLASS_MAP_VALUES`."""
    return _class_map(doc.labels, doc.parts, doc.shape)


def classes_json() -> dict[str, str]:
    """Pixel value (as a string) -> class name, for ``classes.json``."""
    return {str(v): k for k, v in sorted(CLASS_MAP_VALUES.items(), key=lambda kv: kv[1])}


_MAP_COLORS = {CLASS_MAP_VALUES["rbc"]: CLASS_COLORS["rbc"], CLASS_MAP_VALUES["wbc"]: CLASS_COLORS["wbc"],
               CLASS_MAP_VALUES["platelet"]: CLASS_COLORS["platelet"],
               CLASS_MAP_VALUES["nucleus"]: PART_COLORS[1], CLASS_MAP_VALUES["cytoplasm"]: PART_COLORS[2]}


def _boundary(lab: np.ndarray) -> np.ndarray:
    """Pixels of a cell that touch a different label on the right or below (or vice versa)."""
    b = np.zeros(lab.shape, bool)
    for one, two in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))), (slice(1, None), slice(None, -1))):
        d = lab[one] != lab[two]
        b[one] |= d & (lab[one] > 0)
        b[two] |= d & (lab[two] > 0)
    return b


def _stamp(out: np.ndarray, xs, ys, offsets, color) -> None:
    h, w = out.shape[:2]
    yy, xx = (ys[:, None] + offsets[0][None, :]).ravel(), (xs[:, None] + offsets[1][None, :]).ravel()
    ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    out[yy[ok], xx[ok]] = color


def _disk(r: int):
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    keep = dy * dy + dx * dx <= r * r + r // 2
    return dy[keep], dx[keep]


def _annulus(inner: float, outer: float):
    """Offsets at a distance in (``inner``, ``outer``] from the centre."""
    k = int(math.ceil(outer))
    dy, dx = np.mgrid[-k:k + 1, -k:k + 1]
    d2 = dy * dy + dx * dx
    keep = (d2 > inner * inner) & (d2 <= outer * outer)
    return dy[keep], dx[keep]


def _cross(r: int):
    t = np.arange(-r, r + 1)
    return np.concatenate([t, t, t[:-1], t[:-1]]), np.concatenate([t, -t, t[1:], -t[1:]])  # diagonals, 2 px thick


def _kind(marker, uncounted: set) -> str:
    return "uncounted" if marker.id in uncounted else ("manual" if marker.origin == "manual" else "auto")


def _counted_only(doc: Document, labels: dict[str, np.ndarray], skip: set) -> dict[str, np.ndarray]:
    """``labels`` with only the cells that count: linked to a count marker that is not in ``skip`` (the
    markers the border rule leaves out, :meth:`Document.uncounted`). A cell whose marker was removed by hand
    — the last of its class too — or that the border rule leaves out is not counted and gets no tint."""
    out = dict(labels)
    for cls, lab in labels.items():
        n = int(lab.max(initial=0))
        if n == 0:
            continue
        keep = np.zeros(n + 1, bool)
        keep[[m.cell for m in doc.markers.values() if m.cls == cls and 0 < m.cell <= n and m.id not in skip]] = True
        if not keep[1:].all():
            out[cls] = np.where(keep[lab], lab, 0)
    return out


def overlay_rgb(doc: Document, alpha: float = 0.45, outlines: bool = True, markers: bool = True,
                max_width: int | None = None) -> np.ndarray:
    """The image with class colours blended in, cell outlines and marker symbols (RGB ``uint8``).

    Auto markers are dots, manual markers are crosses, in their class colour; uncounted cells
    (border rule) get hollow rings, larger than a dot, at any size. A cell that is not counted — the
    border rule leaves it out (untinted in the viewer too), or its count marker was removed by hand — is
    drawn as an outline only, without its class colour (the parts of such a white cell are not tinted either).
    With ``max_width`` the overlay is drawn at a reduced size (integer step,
    width ≤ ``max_width``) without ever building a full-size copy.
    """
    from PIL import Image

    px = doc.image.pixels
    px = np.repeat(px[:, :, None], 3, axis=2) if px.ndim == 2 else px[:, :, :3]
    h, w = doc.shape
    step = max(1, math.ceil(w / max_width)) if max_width else 1
    labels = {c: lab[::step, ::step] for c, lab in doc.labels.items()}
    parts = doc.parts[::step, ::step] if doc.parts is not None else None
    shape = (len(range(0, h, step)), len(range(0, w, step)))
    out = (np.array(Image.fromarray(np.ascontiguousarray(px, np.uint8)).resize(shape[::-1], Image.BOX))
           if step > 1 else np.array(px, np.uint8))
    a = int(round(np.clip(alpha, 0, 1) * 256))
    skip = doc.uncounted()
    cmap = _class_map(_counted_only(doc, labels, skip), parts, shape)
    for value, color in _MAP_COLORS.items():
        m = cmap == value
        if m.any():
            blend = out[m].astype(np.uint16) * (256 - a) + np.array(color, np.uint16) * a
            out[m] = (blend >> 8).astype(np.uint8)
    if outlines:
        for cls in ("rbc", "wbc", "platelet"):
            if cls in labels and labels[cls].any():
                out[_boundary(labels[cls])] = CLASS_COLORS[cls]
    if markers and doc.markers:
        r = max(4, round(min(shape) / 110))  # legible on a printed page
        # the ring: a 1-px class-coloured circle between two black ones, around a hole as wide as a dot (the
        # cell's untinted pixels show through: hollow at any thumbnail size, unlike a dot)
        ring_outer, ring = _annulus(r + 0.5, r + 3.5), _annulus(r + 1.5, r + 2.5)
        dot_outer, dot, cross = _disk(r), _disk(r - 1), _cross(r + 1)
        for cls in sorted({m.cls for m in doc.markers.values()}):
            color = CLASS_COLORS.get(cls, (255, 255, 255))
            for kind, stamps in (("auto", ((dot_outer, (0, 0, 0)), (dot, color))), ("manual", ((cross, color),)),
                                 ("uncounted", ((ring_outer, (0, 0, 0)), (ring, color)))):
                xy = np.array([(round(m.x / step), round(m.y / step)) for m in doc.markers.values()
                               if m.cls == cls and kind == _kind(m, skip)],
                              np.int64).reshape(-1, 2)
                for offsets, col in stamps:
                    _stamp(out, xy[:, 0], xy[:, 1], offsets, col)
    return out
