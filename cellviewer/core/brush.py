"""Live brush / eraser strokes that become ONE undo step.

``BrushStroke.dab``/``line_to`` paint straight into the document (so the canvas
shows the paint at once) while remembering the original values of every tile
they touch; ``finish`` turns the whole drag into a single, already applied
:class:`~cellviewer.core.edits.Edit` whose patch holds only the changed pixels.

The brush never paints over *another* cell of the same class (touching cells
stay separate); the eraser clears any cell of the class under it. A stroke that
starts on empty ground paints a new cell and gives it a marker; an eraser stroke
that removes a whole cell removes its marker too, and one that erases the pixel under
the marker of a cell it leaves moves that marker onto what is left of the cell (no marker
off its cell). Painting a white cell that has parts (nucleus / cytoplasm) grows its cytoplasm
over the new pixels (the nucleus stays), so the parts keep covering the cell; erasing clears
the parts under the erased pixels (:mod:`cellviewer.core.partsedit`).

While a stroke paints it is the document's ``open_stroke``: saves wait until it ends, so a
half-finished drag is never saved as a state of its own. :func:`stamp` and :class:`Tiles` are shared
with the parts brush (:mod:`cellviewer.core.partsbrush`).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from cellviewer.core.document import BBox, Change, Document, union_bbox
from cellviewer.core.edits import Edit, LabelPatch, MarkerChange, log_edit, make_edit
from cellviewer.core.operations import _check_cls, _marker_for_cell, cell_bbox, interior_point
from cellviewer.core.partsedit import grown_cytoplasm as _grown_cytoplasm, parts_clear as _parts_clear

TILE = 64


def stamp(pts, radius: float, shape: tuple[int, int]) -> tuple[BBox, np.ndarray] | None:
    """The pixels a brush of ``radius`` covers at one point or along a segment of two ``(x, y)`` points:
    (box clipped to ``shape``, boolean mask of the box); None when it lies wholly outside."""
    h, w = shape
    r = radius
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    box = (max(0, int(np.floor(min(ys) - r))), max(0, int(np.floor(min(xs) - r))),
           min(h, int(np.ceil(max(ys) + r)) + 1), min(w, int(np.ceil(max(xs) + r)) + 1))
    if box[0] >= box[2] or box[1] >= box[3]:
        return None
    y0, x0, y1, x1 = box
    out = np.zeros((y1 - y0, x1 - x0), np.uint8)
    sp = np.round((np.asarray(pts, float) - [x0, y0]) * 16).astype(np.int32)  # 4 fractional bits
    thickness = max(1, int(round(2 * r)))
    if len(sp) == 1 or (sp[0] == sp[-1]).all():
        cv2.circle(out, tuple(int(v) for v in sp[0]), int(round(r * 16)), 1, -1, cv2.LINE_8, 4)
    else:
        cv2.line(out, tuple(int(v) for v in sp[0]), tuple(int(v) for v in sp[1]), 1, thickness, cv2.LINE_8, 4)
    return box, out.astype(bool)


class Tiles:
    """The original values of the ``TILE``-square tiles of ``layer`` a live stroke touched (saved before it
    paints them), so that its end can build one patch of the whole drag."""

    def __init__(self, layer: np.ndarray):
        self.layer = layer
        self._tiles: dict[tuple[int, int], np.ndarray] = {}

    def save(self, box: BBox) -> None:
        for ty in range(box[0] // TILE, (box[2] - 1) // TILE + 1):
            for tx in range(box[1] // TILE, (box[3] - 1) // TILE + 1):
                if (ty, tx) not in self._tiles:
                    self._tiles[(ty, tx)] = self.layer[ty * TILE : (ty + 1) * TILE, tx * TILE : (tx + 1) * TILE].copy()

    def before(self, box: BBox) -> np.ndarray:
        """The crop ``box`` of the layer as it was before the stroke (every painted pixel must lie in a saved
        tile); forgets the tiles."""
        y0, x0, y1, x1 = box
        old = self.layer[y0:y1, x0:x1].copy()
        for (ty, tx), orig in self._tiles.items():
            ty0, tx0 = ty * TILE, tx * TILE
            oy0, ox0 = max(ty0, y0), max(tx0, x0)
            oy1, ox1 = min(ty0 + orig.shape[0], y1), min(tx0 + orig.shape[1], x1)
            if oy0 < oy1 and ox0 < ox1:
                old[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0] = orig[oy0 - ty0 : oy1 - ty0, ox0 - tx0 : ox1 - tx0]
        self._tiles.clear()
        return old


class StrokePath:
    """A drag's geometry: ``dab`` paints one disc, ``line_to`` a thick segment from the previous point;
    the subclass's ``_paint(points)`` does the painting and returns the box it changed (or None)."""

    _last: tuple[float, float] | None = None

    def dab(self, x: float, y: float) -> BBox | None:
        """Paint one disc at (x, y) (image pixel coordinates); the box it changed, or None."""
        self._last = (x, y)
        return self._paint([(x, y)])

    def line_to(self, x: float, y: float) -> BBox | None:
        """Paint a thick segment from the previous point to (x, y)."""
        if self._last is None:
            return self.dab(x, y)
        pts = [self._last, (x, y)]
        self._last = (x, y)
        return self._paint(pts)

    def _paint(self, pts) -> BBox | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def cancel(self) -> None:
        """Drop the drag (Esc while dragging): every pixel it painted gets its value back; no edit, nothing
        journaled (a stroke is journaled when it finishes)."""
        self._finished = True
        if self.doc.open_stroke is self:
            self.doc.open_stroke = None
        box, self._box = self._box, None
        if box is not None:
            self._tiles.layer[box[0] : box[2], box[1] : box[3]] = self._tiles.before(box)
            self.doc.notify(Change(box, (self.layer_key,), False))


class BrushStroke(StrokePath):
    def __init__(self, doc: Document, cls: str, radius: float, erase: bool = False, value: int | None = None):
        _check_cls(cls)
        self.doc, self.cls, self.erase = doc, cls, erase
        self.radius = max(0.5, float(radius))
        self.value = 0 if erase else value
        self.new_cell = False
        self._layer = doc.labels[cls]
        self.layer_key = cls  # the layer it paints (a cell class, or "parts")
        self._tiles = Tiles(self._layer)
        self._box: BBox | None = None
        self._last: tuple[float, float] | None = None
        self._finished = False

    # -- painting: dab / line_to from StrokePath -----------------------------------

    def _resolve_value(self, x: float, y: float) -> None:
        if self.value is not None:
            return
        h, w = self._layer.shape
        ix, iy = int(x), int(y)
        under = int(self._layer[iy, ix]) if (0 <= ix < w and 0 <= iy < h) else 0
        if under:
            self.value = under
        else:
            self.value = self.doc.next_label(self.cls)
            self.new_cell = True

    def _paint(self, pts) -> BBox | None:
        if self._finished:
            raise RuntimeError("stroke already finished")
        self._resolve_value(*pts[0])
        self.doc.open_stroke = self
        stamped = stamp(pts, self.radius, self._layer.shape)
        if stamped is None:
            return None
        box, hit = stamped
        self._tiles.save(box)
        y0, x0, y1, x1 = box
        region = self._layer[y0:y1, x0:x1]
        if self.erase:
            hit &= region != 0
            region[hit] = 0
        else:
            hit &= (region == 0) | (region == self.value)
            region[hit] = self.value
        self._box = union_bbox(self._box, box)
        self.doc.notify(Change(box, (self.cls,), False))
        return box

    # -- end of drag ------------------------------------------------------------------
    def finish(self) -> Edit | None:
        """The whole drag as one applied edit (``None`` when nothing changed)."""
        self._finished = True
        if self.doc.open_stroke is self:
            self.doc.open_stroke = None
        if self._box is None:
            return None
        y0, x0, y1, x1 = self._box
        new = self._layer[y0:y1, x0:x1].copy()
        old = self._tiles.before(self._box)
        patch = LabelPatch.from_arrays(self.cls, self._box, old, new)
        if patch is None:
            return None
        atoms: list = [patch]
        doc = self.doc
        if self.erase:
            gone = np.setdiff1d(np.unique(old[old != new]), np.unique(new))
            gone = [int(g) for g in gone if g and not (self._layer == g).any()]
            atoms += [MarkerChange(m, None) for m in doc.markers.values()
                      if m.cls == self.cls and m.cell in gone]
            atoms += _markers_back_on(doc, self.cls, self._box, old, new)
            if self.cls == "wbc":
                atoms.append(_parts_clear(doc, self._box, (old != new)))
        else:
            if self.cls == "wbc":
                atoms.append(_grown_cytoplasm(doc, self._box, old, new, self.value))
            if self.new_cell and not doc.markers_of_cell(self.cls, self.value):
                atoms.append(MarkerChange(None, _marker_for_cell(doc, self.cls, self.value, new == self.value,
                                                                 self._box, doc.next_marker_id())))
        name = "Erase" if self.erase else "Brush"
        edit = make_edit(name, atoms, cls=self.cls, detail=f"radius {self.radius:g}")
        # pixels are already painted; apply the rest (markers, parts) and mark applied
        for a in edit.atoms[1:]:  # edit.atoms: without the None of a parts clear that had nothing to clear
            a.apply(doc)
        if edit.record is not None:
            doc.provenance.edits.append(edit.record)
        edit.applied = True
        log_edit(doc, "apply", edit)
        doc.notify(edit.change())
        return edit


def _markers_back_on(doc: Document, cls: str, box: BBox, old: np.ndarray, new: np.ndarray) -> list[MarkerChange]:
    """Markers whose pixel the eraser took from their cell while the cell stays (``old``/``new``: the label
    crops of ``box``): moved onto what is left of it, its centre or most interior pixel (a marker lies on
    its cell)."""
    layer, moved = doc.labels[cls], []
    for m in doc.markers.values():
        iy, ix = int(m.y) - box[0], int(m.x) - box[1]
        if m.cls != cls or not m.cell or not (0 <= iy < old.shape[0] and 0 <= ix < old.shape[1]):
            continue
        if old[iy, ix] != m.cell or new[iy, ix] == m.cell or (cb := cell_bbox(layer, m.cell)) is None:
            continue
        cy, cx = interior_point(layer[cb[0] : cb[2], cb[1] : cb[3]] == m.cell)
        moved.append(MarkerChange(m, replace(m, x=float(cb[1] + cx), y=float(cb[0] + cy))))
    return moved
