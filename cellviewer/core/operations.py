"""Edit builders: each returns an *unapplied* :class:`~cellviewer.core.edits.Edit`.

They read the document, compute the change on the smallest crop that holds it
and raise :class:`~cellviewer.core.errors.EditError` (with what to do instead)
when the action makes no sense. Apply the result with ``edit.apply(doc)`` or
push it on a history / QUndoStack.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
from scipy import ndimage as ndi

from cellviewer.core.document import CELL_CLASSES, DISPLAY_NAMES, BBox, Document, Marker
from cellviewer.core.edits import Edit, FlagChange, LabelPatch, MarkerChange, ParamChange, make_edit
from cellviewer.core.errors import EditError
from cellviewer.core.floodregion import flood_region
from cellviewer.core.partsedit import grown_cytoplasm, parts_clear as _parts_clear


def _check_cls(cls: str) -> None:
    if cls not in CELL_CLASSES:
        raise EditError(f"Unknown cell class '{cls}'.", hint=f"use one of {', '.join(CELL_CLASSES)}")


def cell_bbox(layer: np.ndarray, cell: int) -> BBox | None:
    """Bounding box of one label (None when absent)."""
    m = layer == cell
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(m[rows[0] : rows[-1] + 1].any(axis=0))
    return (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)


def _require_cell(doc: Document, cls: str, cell: int) -> BBox:
    _check_cls(cls)
    box = cell_bbox(doc.labels[cls], cell) if cell > 0 else None
    if box is None:
        raise EditError(f"There is no {DISPLAY_NAMES[cls]} cell #{cell}.", hint="click inside a cell of that class")
    return box


def interior_point(mask: np.ndarray) -> tuple[float, float]:
    """(y, x) of a point inside ``mask``: the centroid when inside, else the most interior pixel."""
    cy, cx = ndi.center_of_mass(mask)
    iy, ix = int(round(cy)), int(round(cx))
    if 0 <= iy < mask.shape[0] and 0 <= ix < mask.shape[1] and mask[iy, ix]:
        return float(cy), float(cx)
    d = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    iy, ix = np.unravel_index(int(np.argmax(d)), d.shape)
    return float(iy), float(ix)


def _crop(doc: Document, layer: str, box: BBox) -> np.ndarray:
    y0, x0, y1, x1 = box
    return doc.layer(layer)[y0:y1, x0:x1]


def _pad_box(box: BBox, pad: int, shape: tuple[int, int]) -> BBox:
    return (max(0, box[0] - pad), max(0, box[1] - pad), min(shape[0], box[2] + pad), min(shape[1], box[3] + pad))


def _remove_markers_of(doc: Document, cls: str, cells) -> list[MarkerChange]:
    cells = set(int(c) for c in cells)
    return [MarkerChange(m, None) for m in doc.markers.values() if m.cls == cls and m.cell in cells and m.cell]


def _marker_for_cell(doc: Document, cls: str, cell: int, mask: np.ndarray, box: BBox, mid: int) -> Marker:
    cy, cx = interior_point(mask)
    return Marker(id=mid, cls=cls, x=box[1] + cx, y=box[0] + cy, origin="manual", cell=cell, score=1.0)


# -- masks ------------------------------------------------------------------------
def fill(doc: Document, cls: str, x: int, y: int, value: int | None = None) -> Edit:
    """Flood-fill the connected region under (x, y) (4-connected, same label).

    Filling background needs a closed outline: a region touching the image
    border is refused. ``value`` None fills with the enclosing cell's label (a
    hole), or with a new cell (plus its marker) when nothing encloses it.

    The cost follows the region, not the image (:func:`cellviewer.core.floodregion.flood_region` floods growing crops).
    """
    _check_cls(cls)
    layer = doc.labels[cls]
    h, w = layer.shape
    if not (0 <= x < w and 0 <= y < h):
        raise EditError("The click is outside the image.", hint="click inside the image")
    src = int(layer[y, x])
    if value is not None and value == src and src != 0:  # (background is checked for an outline first)
        raise EditError("Nothing to fill: the area already has that label.", hint="pick another cell or class")
    found = flood_region(layer, x, y, refuse_open=src == 0)
    if found is None:
        raise EditError("This area is not enclosed: filling it would flood the background.",
                        hint="click inside a closed outline or a hole in a cell")
    box, region = found
    pbox = _pad_box(box, 1, (h, w))
    sub = np.zeros((pbox[2] - pbox[0], pbox[3] - pbox[1]), bool)
    sub[box[0] - pbox[0] : box[2] - pbox[0], box[1] - pbox[1] : box[3] - pbox[1]] = region
    old = _crop(doc, cls, pbox)
    atoms: list = []
    new_cell = False
    if value is None:
        ring = ndi.binary_dilation(sub) & ~sub
        vals = old[ring]
        vals = vals[vals != 0]
        if vals.size:
            value = int(np.bincount(vals).argmax())  # a label around the region: in the layer already
        else:
            value, new_cell = doc.next_label(cls), True  # above every label: not in the layer yet
    elif value:
        new_cell = not (old == value).any() and not (value <= layer.max() and (layer == value).any())
    if value == src:
        raise EditError("Nothing to fill: the area already has that label.", hint="pick another cell or class")
    new = old.copy()
    new[sub] = value
    atoms.append(LabelPatch.from_arrays(cls, pbox, old, new))
    if cls == "wbc":  # a hole filled in a white cell with parts becomes cytoplasm (as the brush grows it)
        atoms.append(grown_cytoplasm(doc, pbox, old, new, value) if value else _parts_clear(doc, pbox, old != new))
    if value and new_cell:
        atoms.append(MarkerChange(None, _marker_for_cell(doc, cls, value, new == value, pbox, doc.next_marker_id())))
    return make_edit("Fill", atoms, cls=cls, detail=f"value {value}")


def delete_cell(doc: Document, cls: str, cell: int) -> Edit:
    box = _require_cell(doc, cls, cell)
    old = _crop(doc, cls, box)
    new = old.copy()
    mask = old == cell
    new[mask] = 0
    # its markers, and markers added by hand on top of it without a link (a second count of the cell)
    loose = [MarkerChange(m, None) for m in doc.markers.values()
             if m.cls == cls and not m.cell and box[0] <= int(m.y) < box[2] and box[1] <= int(m.x) < box[3]
             and mask[int(m.y) - box[0], int(m.x) - box[1]]]
    atoms = [LabelPatch.from_arrays(cls, box, old, new), *_remove_markers_of(doc, cls, [cell]), *loose]
    if cls == "wbc":
        atoms.append(_parts_clear(doc, box, mask))
    return make_edit("Delete cell", atoms, cls=cls, detail=f"cell {cell}")


def merge_cells(doc: Document, cls: str, a: int, b: int) -> Edit:
    """Merge cell ``b`` into ``a``: one cell, one marker (moved to the merged cell; an automatic red-cell class
    goes, as in a Split, a class set by hand stays)."""
    if a == b:
        raise EditError("Pick two different cells to merge.", hint="click the first cell, then the second")
    box = _require_cell(doc, cls, a)
    box_b = _require_cell(doc, cls, b)
    box = (min(box[0], box_b[0]), min(box[1], box_b[1]), max(box[2], box_b[2]), max(box[3], box_b[3]))
    old = _crop(doc, cls, box)
    new = old.copy()
    new[old == b] = a
    atoms: list = [LabelPatch.from_arrays(cls, box, old, new)]
    ma, mb = doc.markers_of_cell(cls, a), doc.markers_of_cell(cls, b)
    # the kept marker: one whose red-cell class was set by hand (p = 1) first, so that decision survives
    # whichever cell is clicked first; else the first cell's
    by_hand = [m for m in ma + mb if m.morph and m.morph_p >= 1.0]
    keep = by_hand[0] if by_hand else (ma[0] if ma else (mb[0] if mb else None))
    for m in ma + mb:
        if m is not keep:
            atoms.append(MarkerChange(m, None))
    merged = new == a
    cy, cx = interior_point(merged)
    if keep is not None:  # the model classed one piece, not the merged cell: Classify again classes it (as a Split)
        auto = {"morph": "", "morph_p": 0.0} if keep.morph and keep.morph_p < 1.0 else {}
        atoms.append(MarkerChange(keep, replace(keep, cell=a, x=box[1] + cx, y=box[0] + cy, origin="manual", **auto)))
    else:
        atoms.append(MarkerChange(None, _marker_for_cell(doc, cls, a, merged, box, doc.next_marker_id())))
    return make_edit("Merge cells", atoms, cls=cls, detail=f"{b} into {a}")


def split_cell(doc: Document, cls: str, cell: int, points, width: int = 2) -> Edit:
    """Cut a cell along a polyline ``points`` [(x, y), ...] into two or more cells."""
    box = _require_cell(doc, cls, cell)
    if len(points) < 2:
        raise EditError("A split needs a line.", hint="drag a line across the cell, from outside to outside")
    box = _pad_box(box, 1, doc.shape)
    old = _crop(doc, cls, box)
    mask = old == cell
    line = np.zeros(mask.shape, np.uint8)
    pts = np.round(np.asarray(points, float) - [box[1], box[0]]).astype(np.int32)
    cv2.polylines(line, [pts.reshape(-1, 1, 2)], False, 1, thickness=max(1, int(width)))
    cut = mask & (line == 0)
    comp, n = ndi.label(cut)  # 4-connected: a thin line separates
    sizes = np.bincount(comp.ravel(), minlength=n + 1)[1:]
    min_px = max(4, int(0.02 * mask.sum()))
    big = [i + 1 for i in np.argsort(-sizes) if sizes[i] >= min_px]
    if len(big) < 2:
        raise EditError("The line does not cut the cell in two.",
                        hint="drag a line from outside the cell, right across it, to outside")
    # every pixel of the cell (line and crumbs included) goes to its nearest big part
    seeds = np.zeros(mask.shape, np.int32)
    for k, i in enumerate(big):
        seeds[comp == i] = k + 1
    _, (iy, ix) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    part = np.where(mask, seeds[iy, ix], 0)
    new = old.copy()
    first_new = doc.next_label(cls)
    ids = [cell] + [first_new + k for k in range(len(big) - 1)]
    for k, lab in enumerate(ids):
        new[part == k + 1] = lab
    atoms: list = [LabelPatch.from_arrays(cls, box, old, new)]
    markers = doc.markers_of_cell(cls, cell)
    used: set[int] = set()
    for m in markers:  # each existing marker stays with the part it lies in
        iy_, ix_ = int(m.y) - box[0], int(m.x) - box[1]
        k = int(part[iy_, ix_]) if 0 <= iy_ < part.shape[0] and 0 <= ix_ < part.shape[1] else 0
        if k == 0 or ids[k - 1] in used:
            continue
        used.add(ids[k - 1])
        moved = replace(m, cell=ids[k - 1])
        if m.morph and m.morph_p < 1.0:  # the model classed the uncut cell, not this piece: Classify again
            moved = replace(moved, morph="", morph_p=0.0)  # classes it (a class set by hand stays)
        if m.origin == "auto":  # the merged cell's centre may now lie at its piece's edge: re-centre it
            cy, cx = interior_point(part == k)  # (a marker placed by hand stays where it was put)
            moved = replace(moved, x=float(box[1] + cx), y=float(box[0] + cy))
        if moved != m:
            atoms.append(MarkerChange(m, moved))
    for m in doc.markers.values():  # a marker placed by hand on the outline (counted as its second cell) is
        if m.cls != cls or m.cell:  # linked to the piece it lies in, which then needs no new marker
            continue
        iy_, ix_ = int(m.y) - box[0], int(m.x) - box[1]
        k = int(part[iy_, ix_]) if 0 <= iy_ < part.shape[0] and 0 <= ix_ < part.shape[1] else 0
        if k == 0 or ids[k - 1] in used:
            continue
        used.add(ids[k - 1])
        atoms.append(MarkerChange(m, replace(m, cell=ids[k - 1])))
    next_id = doc.next_marker_id()
    for k, lab in enumerate(ids):
        if lab not in used:
            atoms.append(MarkerChange(None, _marker_for_cell(doc, cls, lab, part == k + 1, box, next_id)))
            next_id += 1
    return make_edit("Split cell", atoms, cls=cls, detail=f"cell {cell} into {len(ids)}")


def reclassify_cell(doc: Document, cls: str, cell: int, new_cls: str) -> Edit:
    """Move a cell (mask and markers) to another class; cells of that class under it keep their pixels (and
    markers), and the cell's marker goes to its centre when its own pixel is theirs."""
    _check_cls(new_cls)
    if new_cls == cls:
        raise EditError(f"The cell is already a {DISPLAY_NAMES[cls]}.", hint="choose another class first")
    box = _require_cell(doc, cls, cell)
    old = _crop(doc, cls, box)
    mask = old == cell
    new = old.copy()
    new[mask] = 0
    old2 = _crop(doc, new_cls, box)
    free = mask & (old2 == 0)  # cells of the new class under it stay theirs (a platelet lying on a red cell)
    if not free.any():
        raise EditError(f"The cell lies wholly on {DISPLAY_NAMES[new_cls]} outlines.", hint="delete it (D) instead")
    new2 = old2.copy()
    lab = doc.next_label(new_cls)
    new2[free] = lab
    atoms: list = [LabelPatch.from_arrays(cls, box, old, new), LabelPatch.from_arrays(new_cls, box, old2, new2)]
    if cls == "wbc":
        atoms.append(_parts_clear(doc, box, mask))
    ms = doc.markers_of_cell(cls, cell)
    centre = _marker_for_cell(doc, new_cls, lab, free, box, doc.next_marker_id())
    for m in ms:  # a marker on a pixel the new class's cell keeps goes to the cell's centre
        at = (0 <= int(m.y) - box[0] < free.shape[0] and 0 <= int(m.x) - box[1] < free.shape[1]
              and free[int(m.y) - box[0], int(m.x) - box[1]])
        xy = {} if at else {"x": centre.x, "y": centre.y}
        atoms.append(MarkerChange(m, replace(m, cls=new_cls, cell=lab, origin="manual", **xy, **_morph_kept(new_cls))))
    if not ms:
        atoms.append(MarkerChange(None, centre))
    return make_edit("Reclassify cell", atoms, cls=new_cls, detail=f"{cls} {cell} -> {new_cls} {lab}")


# -- markers ----------------------------------------------------------------------
def _marker(doc: Document, marker_id: int) -> Marker:
    if marker_id not in doc.markers:
        raise EditError(f"There is no marker #{marker_id}.", hint="click closer to a marker")
    return doc.markers[marker_id]


def _unmarked_cell_at(doc: Document, cls: str, x: float, y: float, exclude: int | None = None) -> int:
    h, w = doc.shape
    ix, iy = int(x), int(y)
    if not (0 <= ix < w and 0 <= iy < h):
        return 0
    c = int(doc.labels[cls][iy, ix])
    if c and not any(m.id != exclude for m in doc.markers_of_cell(cls, c)):
        return c
    return 0


def add_marker(doc: Document, cls: str, x: float, y: float) -> Edit:
    """Count a cell by hand; linked to the cell under it when that cell has no marker."""
    _check_cls(cls)
    h, w = doc.shape
    if not (0 <= x < w and 0 <= y < h):
        raise EditError("A marker must lie inside the image.", hint="click inside the image")
    m = Marker(doc.next_marker_id(), cls, float(x), float(y), "manual", _unmarked_cell_at(doc, cls, x, y), 1.0)
    return make_edit("Add marker", [MarkerChange(None, m)], cls=cls)


def remove_marker(doc: Document, marker_id: int) -> Edit:
    m = _marker(doc, marker_id)
    return make_edit("Remove marker", [MarkerChange(m, None)], cls=m.cls, detail=f"marker {marker_id}")


def move_marker(doc: Document, marker_id: int, x: float, y: float) -> Edit:
    m = _marker(doc, marker_id)
    h, w = doc.shape
    x, y = float(np.clip(x, 0, w - 1)), float(np.clip(y, 0, h - 1))
    cell = int(doc.labels[m.cls][int(y), int(x)])
    if cell != m.cell:
        cell = _unmarked_cell_at(doc, m.cls, x, y, exclude=m.id)
    return make_edit("Move marker", [MarkerChange(m, replace(m, x=x, y=y, cell=cell, origin="manual"))], cls=m.cls)


def reclassify_marker(doc: Document, marker_id: int, new_cls: str) -> Edit:
    """Change a marker's class; a marker linked to a cell takes its cell along."""
    m = _marker(doc, marker_id)
    _check_cls(new_cls)
    if m.cell:
        return reclassify_cell(doc, m.cls, m.cell, new_cls)
    if m.cls == new_cls:
        raise EditError(f"The marker is already a {DISPLAY_NAMES[new_cls]}.", hint="choose another class first")
    return make_edit("Reclassify marker", [MarkerChange(m, replace(m, cls=new_cls, origin="manual",
                                                                   **_morph_kept(new_cls)))], cls=new_cls)


def _morph_kept(new_cls: str) -> dict:
    """A red cell's morphology class goes when it becomes another kind of cell."""
    return {} if new_cls == "rbc" else {"morph": "", "morph_p": 0.0}


def set_morphology(doc: Document, marker_id: int, morph: str) -> Edit:
    """Set (or, with ``""``, clear) a red cell's morphology class by hand (probability 1)."""
    from cellviewer.core.morphology import CLASSES

    m = _marker(doc, marker_id)
    if m.cls != "rbc":
        raise EditError("Only red cells have a morphology class.", hint="pick a red-cell marker")
    if morph and morph not in CLASSES:
        raise EditError(f"Unknown red-cell morphology '{morph}'.", hint="one of: " + ", ".join(CLASSES))
    if morph == m.morph and m.morph_p == 1.0:
        raise EditError(f"The cell is already '{morph or 'unclassified'}'.", hint="choose another class first")
    new = replace(m, morph=morph, morph_p=1.0)  # cleared by hand too: a decision "Classify again" keeps
    return make_edit("Set morphology", [MarkerChange(m, new)], cls="rbc", detail=f"marker {marker_id}: {morph or '-'}")


_UNCHANGED = object()


def set_morphologies(doc: Document, classes: dict[int, tuple[str, float]], detail: str = "",
                     um_per_px=_UNCHANGED, morphology: str | None = None) -> Edit:
    """Automatic red-cell classes for many markers at once (``{marker id: (class, probability)}``, e.g. from
    :func:`cellviewer.core.morphology.reclassify_job`): one undoable edit. A class set by hand is never
    replaced; markers that are gone are skipped. ``um_per_px`` (µm per pixel, or None): the calibration the
    classes were made with, set on the document in the same edit. ``morphology``: the model that made them
    (``"rbc-morphology 2"``, as a segmentation records it), put in ``provenance.params["morphology"]`` in the
    same edit (undo brings the old one back)."""
    from cellviewer.core.morphology import CLASSES

    atoms = []
    for mid, (morph, p) in sorted(classes.items()):
        m = doc.markers.get(mid)
        if m is None or m.cls != "rbc" or m.morph_p >= 1.0 or (morph and morph not in CLASSES):
            continue
        new = replace(m, morph=morph, morph_p=float(p) if morph else 0.0)
        if new != m:
            atoms.append(MarkerChange(m, new))
    if um_per_px is not _UNCHANGED and (um_per_px or None) != doc.um_per_px:  # the calibration the classes now use
        atoms.append(FlagChange("um_per_px", doc.um_per_px, um_per_px or None))
    old = (doc.provenance.params or {}).get("morphology")
    if morphology and morphology != old:  # another model that gave the same classes still made them
        atoms.append(ParamChange("morphology", old, morphology))
    if not atoms:
        raise EditError("No red-cell class changes.", hint="the classes are already those of the current model "
                                                           "and calibration")
    return make_edit("Classify red cells again", atoms, cls="rbc", detail=detail or f"{len(atoms)} cells")


def set_marker_reviewed(doc: Document, marker_id: int, reviewed: bool = True) -> Edit:
    m = _marker(doc, marker_id)
    return make_edit("Review cell", [MarkerChange(m, replace(m, reviewed=bool(reviewed)))], cls=m.cls)


def set_image_reviewed(doc: Document, reviewed: bool = True) -> Edit:
    return make_edit("Mark image reviewed" if reviewed else "Mark image unreviewed",
                     [FlagChange("reviewed", doc.reviewed, bool(reviewed))])


def nearest_marker(doc: Document, x: float, y: float, max_dist: float) -> Marker | None:
    best, bd = None, max_dist * max_dist
    for m in doc.markers.values():
        d = (m.x - x) ** 2 + (m.y - y) ** 2
        if d <= bd:
            best, bd = m, d
    return best
