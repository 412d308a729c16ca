"""The parts brush: correct a white cell's nucleus / cytoplasm split; one drag is ONE undo step.

:class:`PartsStroke` paints the chosen part (``"nucleus"`` or ``"cytoplasm"``, the values of
:data:`~cellviewer.core.document.PART_NAMES`) into ``doc.parts`` live, like
:class:`~cellviewer.core.brush.BrushStroke`, and ``finish`` turns the drag into one already applied
:class:`~cellviewer.core.edits.Edit` holding a single :class:`~cellviewer.core.edits.LabelPatch` on the
``"parts"`` layer (so it is undone, journaled and saved like every other edit, and counts as a correction).

* Painting is clipped to the white cell the stroke starts in (the cell under its first point, else the
  white cell it covers most): it never changes a cell mask and never spills into a touching white cell.
  A stroke that never meets a white cell changes nothing (``cell`` stays None, ``finish`` returns None).
* A white cell without parts gets them: the whole cell becomes cytoplasm first, then the brush paints,
  so the parts always cover the cell. (That is part of the same undo step.)
"""

from __future__ import annotations

import numpy as np

from cellviewer.core.brush import StrokePath, Tiles, stamp
from cellviewer.core.document import PART_NAMES, BBox, Change, Document, union_bbox
from cellviewer.core.edits import Edit, LabelPatch, log_edit, make_edit
from cellviewer.core.errors import EditError
from cellviewer.core.operations import cell_bbox

PART_VALUES = {name: v for v, name in PART_NAMES.items() if v}  # {"nucleus": 1, "cytoplasm": 2}
ACTION = "Parts brush"  # the audit-trail action of a parts stroke


def part_value(part: str | int) -> int:
    """1 (nucleus) or 2 (cytoplasm) from a part name or value; :class:`EditError` for anything else."""
    if isinstance(part, str) and part in PART_VALUES:
        return PART_VALUES[part]
    if isinstance(part, (int, np.integer)) and not isinstance(part, bool) and int(part) in PART_NAMES and part:
        return int(part)
    raise EditError(f"Unknown white-cell part {part!r}.", hint=f"use one of {', '.join(PART_VALUES)}")


class PartsStroke(StrokePath):
    def __init__(self, doc: Document, part: str | int, radius: float):
        self.doc = doc
        self.value = part_value(part)
        self.radius = max(0.5, float(radius))
        self.cell: int | None = None  # the white cell this stroke paints (chosen by its first point on one)
        self.seeded = False  # the cell had no parts: the stroke gave it cytoplasm all over first
        self._parts = doc.parts  # the map painted (a stroke ends before a segmentation replaces it)
        self._tiles = Tiles(self._parts)
        self.layer_key = "parts"
        self._box: BBox | None = None
        self._last: tuple[float, float] | None = None
        self._finished = False

    @property
    def part(self) -> str:
        return PART_NAMES[self.value]

    # -- painting: dab / line_to from StrokePath -----------------------------------
    def _paint(self, pts) -> BBox | None:
        if self._finished:
            raise RuntimeError("stroke already finished")
        doc = self.doc
        doc.open_stroke = self  # saves wait for the end of the drag
        stamped = stamp(pts, self.radius, doc.shape)
        if stamped is None:
            return None
        box, hit = stamped
        y0, x0, y1, x1 = box
        wbc = doc.labels["wbc"][y0:y1, x0:x1]
        if self.cell is None:
            self.cell = _pick_cell(wbc, hit, pts[0], box)
            if self.cell is None:
                return None
            self._seed()
        hit &= wbc == self.cell
        if not hit.any():
            return None
        self._tiles.save(box)
        self._parts[y0:y1, x0:x1][hit] = self.value
        self._box = union_bbox(self._box, box)
        doc.notify(Change(box, ("parts",), False))
        return box

    def _seed(self) -> None:
        """A cell without parts: cytoplasm over the whole cell (the brush then paints on that)."""
        labels = self.doc.labels["wbc"]
        box = cell_bbox(labels, self.cell)
        y0, x0, y1, x1 = box
        cell = labels[y0:y1, x0:x1] == self.cell
        parts = self._parts[y0:y1, x0:x1]
        if parts[cell].any():
            return
        self._tiles.save(box)
        parts[cell] = PART_VALUES["cytoplasm"]
        self.seeded = True
        self._box = union_bbox(self._box, box)
        self.doc.notify(Change(box, ("parts",), False))

    # -- end of drag ------------------------------------------------------------------
    def finish(self) -> Edit | None:
        """The whole drag as one applied edit (``None`` when nothing changed)."""
        self._finished = True
        doc = self.doc
        if doc.open_stroke is self:
            doc.open_stroke = None
        if self._box is None:
            return None
        y0, x0, y1, x1 = self._box
        new = self._parts[y0:y1, x0:x1].copy()
        patch = LabelPatch.from_arrays("parts", self._box, self._tiles.before(self._box), new)
        if patch is None:
            return None
        detail = f"{self.part}, radius {self.radius:g}, cell {self.cell}" + (" (parts added)" if self.seeded else "")
        edit = make_edit(ACTION, [patch], cls="wbc", detail=detail)
        if edit.record is not None:  # the pixels are painted already: record and log the edit as applied
            doc.provenance.edits.append(edit.record)
        edit.applied = True
        log_edit(doc, "apply", edit)
        doc.notify(edit.change())
        return edit


def _pick_cell(wbc: np.ndarray, hit: np.ndarray, point, box: BBox) -> int | None:
    """The white cell under ``point`` (x, y), else the one the stamp ``hit`` covers most; None when none."""
    y0, x0, y1, x1 = box
    ix, iy = int(point[0]) - x0, int(point[1]) - y0
    if 0 <= iy < y1 - y0 and 0 <= ix < x1 - x0 and wbc[iy, ix]:
        return int(wbc[iy, ix])
    under = wbc[hit & (wbc > 0)]
    if not under.size:
        return None
    ids, counts = np.unique(under, return_counts=True)
    return int(ids[int(np.argmax(counts))])
