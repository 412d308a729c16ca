"""Undo atoms: pure data, no Qt.

An :class:`Edit` is one user action (one brush drag, one merge, ...). It holds
*atoms*:

* :class:`LabelPatch` — a bounding box on one map plus the old and new values of
  the pixels that changed inside it (sparse: memory grows with the pixels the
  edit touched, never with the image);
* :class:`MarkerChange` — a marker before/after (``None`` for add/remove).

Builders in :mod:`cellviewer.core.operations` return *unapplied* edits;
:class:`BrushStroke` (in :mod:`cellviewer.core.brush`) paints live and returns an
already applied edit. ``Edit.apply``/``revert`` are idempotent, record the
action in the document's provenance (audit trail) and notify the document.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace

import numpy as np

from cellviewer.core.document import BBox, Change, Document, EditRecord, Marker, union_bbox


@dataclass
class LabelPatch:
    layer: str  # a cell class or "parts"
    bbox: BBox  # (y0, x0, y1, x1)
    rows: np.ndarray  # uint16/uint32 row offsets inside bbox of the changed pixels
    cols: np.ndarray
    old: np.ndarray  # values before
    new: np.ndarray  # values after

    @classmethod
    def from_arrays(cls, layer: str, bbox: BBox, old: np.ndarray, new: np.ndarray) -> "LabelPatch | None":
        """Build from dense before/after crops of ``bbox``; ``None`` if nothing changed."""
        r, c = np.nonzero(old != new)
        if r.size == 0:
            return None
        h, w = old.shape
        it = np.uint16 if max(h, w) < 65536 else np.uint32
        y0, x0 = bbox[0], bbox[1]
        tight = (y0 + int(r.min()), x0 + int(c.min()), y0 + int(r.max()) + 1, x0 + int(c.max()) + 1)
        return cls(layer, tight, (r - (tight[0] - y0)).astype(it), (c - (tight[1] - x0)).astype(it),
                   old[r, c].copy(), new[r, c].copy())

    def _view(self, doc: Document) -> np.ndarray:
        y0, x0, y1, x1 = self.bbox
        return doc.layer(self.layer)[y0:y1, x0:x1]

    def apply(self, doc: Document) -> None:
        self._view(doc)[self.rows, self.cols] = self.new

    def revert(self, doc: Document) -> None:
        self._view(doc)[self.rows, self.cols] = self.old

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.layer,)

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes + self.cols.nbytes + self.old.nbytes + self.new.nbytes


@dataclass
class MarkerChange:
    old: Marker | None
    new: Marker | None

    def __post_init__(self) -> None:
        # own copies: later edits must not mutate what this atom restores
        self.old = None if self.old is None else replace(self.old)
        self.new = None if self.new is None else replace(self.new)

    def apply(self, doc: Document) -> None:
        if self.old is not None:
            doc.markers.pop(self.old.id, None)
        if self.new is not None:
            doc.markers[self.new.id] = replace(self.new)

    def revert(self, doc: Document) -> None:
        if self.new is not None:
            doc.markers.pop(self.new.id, None)
        if self.old is not None:
            doc.markers[self.old.id] = replace(self.old)

    @property
    def bbox(self) -> BBox | None:
        box = None
        for m in (self.old, self.new):
            if m is not None:
                y, x = int(m.y), int(m.x)
                box = union_bbox(box, (y, x, y + 1, x + 1))
        return box

    layers: tuple[str, ...] = ()
    nbytes: int = 128


@dataclass
class FlagChange:
    """A document-level attribute change (e.g. ``reviewed``)."""

    attr: str
    old: object
    new: object

    def apply(self, doc: Document) -> None:
        setattr(doc, self.attr, self.new)

    def revert(self, doc: Document) -> None:
        setattr(doc, self.attr, self.old)

    bbox: BBox | None = None
    layers: tuple[str, ...] = ()
    nbytes: int = 64


@dataclass
class ParamChange:
    """A value of the segmentation's provenance (``doc.provenance.params[key]``; None = absent) that an edit
    changes, e.g. which morphology model made the red-cell classes (the report's "Morphology" line)."""

    key: str
    old: object
    new: object

    def apply(self, doc: Document) -> None:
        _set_param(doc, self.key, self.new)

    def revert(self, doc: Document) -> None:
        _set_param(doc, self.key, self.old)

    bbox: BBox | None = None
    layers: tuple[str, ...] = ()
    nbytes: int = 64


def _set_param(doc: Document, key: str, value) -> None:
    params = dict(doc.provenance.params or {})
    if value is None:
        params.pop(key, None)
    else:
        params[key] = value
    doc.provenance.params = params


Atom = LabelPatch | MarkerChange | FlagChange | ParamChange


@dataclass
class Edit:
    name: str
    atoms: list = field(default_factory=list)
    record: EditRecord | None = None
    applied: bool = False
    # which edit this is: journaled with every apply and undo of it, so a recovery tells a redo from an
    # identical new edit (None: read from a journal written before edits had one)
    uid: str | None = field(default_factory=lambda: uuid.uuid4().hex, compare=False)

    def change(self) -> Change:
        box, layers, markers = None, set(), False
        for a in self.atoms:
            box = union_bbox(box, a.bbox)
            layers.update(a.layers)
            # (the border rule changes which markers count: the views redraw them)
            markers = markers or isinstance(a, MarkerChange) or (isinstance(a, FlagChange) and a.attr == "border_rule")
        return Change(box, tuple(sorted(layers)), markers)

    def apply(self, doc: Document) -> None:
        if self.applied:
            return
        for a in self.atoms:
            a.apply(doc)
        if self.record is not None:
            doc.provenance.edits.append(self.record)
        self.applied = True
        log_edit(doc, "apply", self)
        doc.notify(self.change())

    def revert(self, doc: Document) -> None:
        if not self.applied:
            return
        for a in reversed(self.atoms):
            a.revert(doc)
        if self.record is not None:
            edits = doc.provenance.edits
            for i in range(len(edits) - 1, -1, -1):
                if edits[i] is self.record or edits[i] == self.record:
                    del edits[i]
                    break
        self.applied = False
        log_edit(doc, "revert", self)
        doc.notify(self.change())

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.atoms)


def log_edit(doc: Document, kind: str, edit: "Edit") -> None:
    """Append to the document's journal; never raises (a failure is reported by the journal's
    ``on_error`` and the edit stays applied — see :meth:`cellviewer.core.journal.Journal.log`)."""
    if doc.journal is not None:
        doc.journal.log(kind, edit)


def make_edit(name: str, atoms: list, *, cls: str | None = None, detail: str = "") -> Edit:
    """An unapplied edit with an audit record; ``None`` atoms are dropped."""
    atoms = [a for a in atoms if a is not None]
    e = Edit(name, atoms)
    e.record = EditRecord(action=name, cls=cls, bbox=e.change().bbox, detail=detail)
    return e


class History:
    """A plain undo stack for code without Qt (CLI, tests, scripts)."""

    def __init__(self, doc: Document):
        self.doc = doc
        self._done: list[Edit] = []
        self._undone: list[Edit] = []

    def push(self, edit: Edit | None) -> None:
        if edit is None:
            return
        edit.apply(self.doc)  # no-op when already applied (brush strokes)
        self._done.append(edit)
        self._undone.clear()

    def undo(self) -> bool:
        if not self._done:
            return False
        e = self._done.pop()
        e.revert(self.doc)
        self._undone.append(e)
        return True

    def redo(self) -> bool:
        if not self._undone:
            return False
        e = self._undone.pop()
        e.apply(self.doc)
        self._done.append(e)
        return True

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._done + self._undone)

    def __len__(self) -> int:
        return len(self._done)


# Builders live in their own modules (which import this one); they are re-exported
# lazily here so callers need one import: ``from cellviewer.core import edits``.
_BUILDERS = {
    "add_marker", "delete_cell", "fill", "merge_cells", "move_marker", "nearest_marker", "reclassify_cell",
    "reclassify_marker", "remove_marker", "set_image_reviewed", "set_marker_reviewed", "set_morphologies",
    "split_cell",
}


def __getattr__(name: str):
    if name == "BrushStroke":
        from cellviewer.core import brush

        return brush.BrushStroke
    if name in _BUILDERS:
        from cellviewer.core import operations

        return getattr(operations, name)
    raise AttributeError(f"module 'cellviewer.core.edits' has no attribute '{name}'")


__all__ = [
    "Edit", "LabelPatch", "MarkerChange", "FlagChange", "History", "make_edit", "BrushStroke",
    "add_marker", "delete_cell", "fill", "merge_cells", "move_marker", "nearest_marker",
    "reclassify_cell", "reclassify_marker", "remove_marker", "set_image_reviewed",
    "set_marker_reviewed", "set_morphologies", "split_cell",
]
