"""The review queue: cells ordered by how doubtful they are, so the annotator looks at those first.

:func:`doubt_queue` scores every counted cell that has a mask (markers placed by hand without
a mask are the annotator's own, an outline whose count marker was removed is no longer a
cell, and a cell cut by the image edge that the document's border rule does not count
(:mod:`cellviewer.core.countframe`) is in no count: none of them is queued, so "left to
review" counts counted cells only). A cell's doubt in [0, 1] combines its signs,
as a noisy-or ``1 − Π(1 − dᵢ)``:

* **low model score** — ``d = (0.9 − score) / 0.5`` clipped to [0, 1] (scores ≥ 0.9 are not
  doubtful, 0.4 and below fully) of its automatic marker (manual cells: 0);
* **the counting methods disagree** — watershed, circle Hough and distance transform + peaks
  (:mod:`cellviewer.core.counting`) are run on each cell's own mask (its crop, the cell
  alone) at its class's typical cell size, and count the cells they see in it — for cells
  whose area is off the typical one by more than :data:`CHECK_SIZE` × or whose roundness is
  below :data:`CHECK_ROUNDNESS` (a round cell of typical size is one cell for every method;
  this keeps a 2000-cell image to a few seconds). ``d = 0.5 ·
  (max − min of the counts) + 0.5 · [the methods agree on a number other than 1]``, capped at 1;
* **unusual size or shape for its class** — ``d = min(1, |ln(area / median area of its class
  in this image)| / ln 3)`` for the size (with fewer than 3 cells of the class the
  expected area comes from the red-cell size), and ``1 − roundness`` (area over the disc of
  the largest inscribed radius, as in :func:`cellviewer.core.counting.shape_scores`) beyond 0.25
  for the shape. Cells cut by the image border are expected to be small and not round: only
  an oversized one counts;
* **red-cell morphology to check** (red cells with an automatic morphology class,
  :mod:`cellviewer.core.morphology`) — ``d = (0.6 − p) / 0.4`` clipped to [0, 1] for a class of
  probability ``p`` (unsure), and at least :data:`ABNORMAL_DOUBT` for any class but normal: an
  abnormal call is what a report rests on, so it is worth a look.

A sign counts as a reason (``DoubtItem.reasons``) when its ``d`` is ≥ :data:`REASON_AT`.
The queue is sorted by doubt, highest first; reviewed cells stay in it (``reviewed``) so
next/previous can skip them (:func:`next_doubtful`). :func:`mark_reviewed` returns an
undoable :class:`~cellviewer.core.edits.Edit` (a :class:`~cellviewer.core.edits.MarkerChange`
per marker of the cell).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from cellviewer.core.countframe import edge_flags
from cellviewer.core.document import CELL_CLASSES, Document
from cellviewer.core.errors import EditError

#: how a class's typical diameter relates to the red-cell diameter (when too few cells to measure)
CLASS_SIZE = {"rbc": 1.0, "wbc": 1.6, "platelet": 0.35}
METHODS: tuple[str, ...] = ("watershed", "hough", "distance_peaks")
REASON_AT = 0.3
ARTICLE = {"rbc": "an RBC", "wbc": "a WBC", "platelet": "a platelet"}
#: the doubt of an automatic red-cell morphology class other than "normal", at least
ABNORMAL_DOUBT = 0.35
#: the counting methods are run on cells off the typical area by more than this factor, or less round
CHECK_SIZE, CHECK_ROUNDNESS = 1.25, 0.8


@dataclass
class DoubtItem:
    """One queued cell: ``cls`` + ``cell`` (label id in ``doc.labels[cls]``), a point inside it,
    its doubt ``score`` (0..1), the ``reasons`` and whether all its markers are ``reviewed``."""

    cls: str
    cell: int
    x: float
    y: float
    score: float
    reasons: list[str] = field(default_factory=list)
    reviewed: bool = False
    marker_ids: list[int] = field(default_factory=list)
    signs: dict[str, float] = field(default_factory=dict)  # model / methods / size / shape -> d
    box: tuple[int, int, int, int] | None = None  # the cell's bounding box: x0, y0, x1, y1 (exclusive)


def _rbc_diameter(doc: Document, diameter: float | None, token=None) -> float:
    if diameter:
        return float(diameter)
    d = (doc.provenance.params or {}).get("diameter_px")
    if d:
        return float(d)
    _, a, _ = _areas_slices(doc.labels["rbc"], token, slices=False)  # = counting.areas
    return float(2 * np.sqrt(np.median(a) / np.pi)) if len(a) >= 3 else 32.0


def _method_counts(lab: np.ndarray, diameter: float, check: np.ndarray, token=None,
                   slices: list | None = None) -> dict[str, np.ndarray]:
    """method -> how many cells it finds in each cell's own mask (index = label id; the crop is
    the cell alone, padded, so its neighbours do not interfere); cells with ``check[id]`` False
    are taken as one cell for every method. ``slices``: ``ndi.find_objects(lab)`` when known."""
    from scipy import ndimage as ndi

    from cellviewer.core.counting import count_params, instances_from_mask

    n = int(lab.max())
    out = {m: np.ones(n + 1, np.int64) for m in METHODS} if n else {}
    params = count_params(diameter_px=max(4.0, diameter))
    pad = 3
    for cid, sl in enumerate(ndi.find_objects(lab) if slices is None else slices, 1):
        if sl is None or not check[cid]:
            continue
        mask = np.pad(lab[sl] == cid, pad)
        for m in METHODS:
            _check(token)  # seconds per thousand cells: stop between cells (and methods: a big cell takes long)
            out[m][cid] = int(instances_from_mask(mask, m, params).max(initial=0))
    return out


#: the whole-image steps run on bands of about this many pixels, the cancel token checked between
#: bands (a window closing waits for one band: tens of ms, ~0.1 s on a busy 2-core machine), identical results
BAND_PX = 1 << 21
#: rows a band of the distance transform reads beyond its own on each side at first (more, for this band and
#: the next ones, where cells are wider: a distance is exact when no larger than the rows read around it)
BAND_MARGIN = 64


def _check(token) -> None:
    if token is not None:
        token.check()  # (a CancelToken: raises Cancelled)


def _bands(lab: np.ndarray):
    """Row ranges (r0, r1) covering ``lab`` in about :data:`BAND_PX` pixels each."""
    h, w = lab.shape
    rows = max(16, BAND_PX // max(1, w))
    return [(r0, min(h, r0 + rows)) for r0 in range(0, h, rows)]


def _areas_slices(lab: np.ndarray, token=None, slices: bool = True) -> tuple[np.ndarray, np.ndarray, list]:
    """``counting.areas(lab)`` (ids, areas) and ``ndi.find_objects(lab)`` (``[]`` without ``slices``), a band
    at a time (token checked between bands)."""
    from scipy import ndimage as ndi

    n = int(lab.max()) if lab.size else 0
    counts = np.zeros(n + 1, np.int64)
    y0 = np.full(n, -1, np.int64)
    y1, x0, x1 = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    for r0, r1 in _bands(lab):
        _check(token)
        band = lab[r0:r1]
        here = np.bincount(band.ravel(), minlength=n + 1)[: n + 1]
        counts += here
        if not slices:
            continue
        found = ndi.find_objects(band, max_label=n)
        for i in np.flatnonzero(here[1:]).tolist():  # the labels in this band (index = label - 1)
            sl = found[i]
            if y0[i] < 0:
                y0[i], x0[i], x1[i] = r0 + sl[0].start, sl[1].start, sl[1].stop
            else:
                x0[i], x1[i] = min(x0[i], sl[1].start), max(x1[i], sl[1].stop)
            y1[i] = r0 + sl[0].stop
    ids = np.nonzero(counts)[0]
    ids = ids[ids > 0]
    found = [None if y0[i] < 0 else (slice(int(y0[i]), int(y1[i]), None), slice(int(x0[i]), int(x1[i]), None))
             for i in range(n)] if slices else []
    return ids.astype(np.int32), counts[ids].astype(np.int64), found


def _band_distance(lab: np.ndarray, r0: int, r1: int, margin: int) -> np.ndarray:
    """``counting._cell_distance(lab)[r0:r1]`` where its values are at most ``margin`` (computed on the
    rows ``margin`` around the band, their cell outlines on one more row)."""
    from cellviewer.core.counting import edt, inner_boundary

    h = lab.shape[0]
    e0, e1 = max(0, r0 - margin), min(h, r1 + margin)
    o0, o1 = max(0, e0 - 1), min(h, e1 + 1)
    rows = lab[o0:o1]
    inner = ((rows > 0) & ~inner_boundary(rows))[e0 - o0 : e1 - o0]
    return (edt(inner) + (lab[e0:e1] > 0))[r0 - e0 : r1 - e0]


def _opencv_ipp(rows: int, cols: int) -> bool:
    """Whether ``cv2.distanceTransform`` (precise) runs Intel IPP's code on an image of this size (OpenCV's own
    condition): its values differ from OpenCV's code in the last bit here and there, so the distances are found
    per band only where the whole image and every band take OpenCV's code (a large image, two threads or more)."""
    import cv2

    return (bool(cv2.ipp.useIPP()) and (cv2.getNumThreads() <= 1 or rows * cols < 1 << 14)
            and rows < 4097 and cols < 4097)


def _shape(lab: np.ndarray, ids: np.ndarray, a: np.ndarray, token=None) -> np.ndarray:
    """Roundness of each cell (``counting.shape_scores``' measure): the largest inscribed radius from
    ``counting._cell_distance``, found a band at a time (token checked between bands), same values."""
    n = int(lab.max()) + 1 if lab.size else 1
    h, w = lab.shape
    rmax = np.full(n, -np.inf)
    margin = BAND_MARGIN
    bands = _bands(lab)
    if len(bands) > 1 and (_opencv_ipp(h, w) or _opencv_ipp(min(r1 - r0 for r0, r1 in bands), w)):
        bands = [(0, h)]  # (the image in one piece: bands would not give the very same values)
    for r0, r1 in bands:
        while True:
            _check(token)
            dist = _band_distance(lab, r0, r1, margin)
            top = float(dist.max()) - 1 if dist.size else 0.0  # (- 1: the distance counts the pixel itself)
            if top <= margin or (r0 - margin <= 0 and r1 + margin >= h):
                break
            # a cell wider than the margin: its distances here are at least the exact ones, so read as many
            # rows around the band as the largest of them (exact on that try), here and for the next bands
            margin = int(math.ceil(top))
        band = lab[r0:r1]
        on = band > 0
        np.maximum.at(rmax, band[on], dist[on].astype(np.float64))
    rmax = rmax[np.asarray(ids, np.intp)]
    q = a / (np.pi * np.maximum(rmax, 0.5) ** 2)
    return np.minimum(q, 1.0 / q)


def _reasons(signs: dict, texts: dict, score: float) -> list[str]:
    """The signs at or above :data:`REASON_AT`, in a fixed order; when none is but the combined doubt
    is, the (up to two) strongest signs, marked as mild, so a queued cell always says why."""
    order = ("model", "methods", "size", "shape", "morphology")
    strong = [texts[k] for k in order if signs.get(k, 0.0) >= REASON_AT and texts.get(k)]
    if strong or score < REASON_AT:
        return strong
    mild = sorted((k for k in order if signs.get(k, 0.0) > 0.05 and texts.get(k)), key=lambda k: -signs[k])[:2]
    return [f"mildly {texts[k]}" if k in ("size", "shape") else f"{texts[k]} (mild)" for k in mild]


def _box(sl) -> tuple[int, int, int, int] | None:
    return None if sl is None else (int(sl[1].start), int(sl[0].start), int(sl[1].stop), int(sl[0].stop))


def doubt_queue(doc: Document, *, diameter: float | None = None, classes=CELL_CLASSES,
                token=None) -> list[DoubtItem]:
    """Every masked cell of ``doc`` as a :class:`DoubtItem`, most doubtful first (see the module
    docstring). ``diameter``: the red-cell diameter in px (default: from the segmentation's
    parameters, else measured from the red cells). ``token``: a :class:`~cellviewer.core.jobs.CancelToken`
    checked between the steps, within the whole-image ones (a band of rows at a time, :data:`BAND_PX`) and
    between cells (``Cancelled`` when it was cancelled): a cancelled queue stops within a fraction of a second."""
    _check(token)
    d_rbc = _rbc_diameter(doc, diameter, token)
    _check(token)
    uncounted = doc.uncounted()  # cells the border rule does not count: nothing a count rests on, not queued
    _check(token)
    fov = doc.field_edge()  # the edge of the field of view inside the image, if any
    by_cell: dict[tuple[str, int], list] = {}
    for m in doc.markers.values():
        if m.cell and m.id not in uncounted:
            by_cell.setdefault((m.cls, m.cell), []).append(m)
    queue: list[DoubtItem] = []
    for cls in classes:
        _check(token)
        lab = doc.labels[cls]
        ids, a, slices = _areas_slices(lab, token)  # = counting.areas(lab), ndi.find_objects(lab)
        if ids.size == 0:
            continue
        expected = math.pi * (CLASS_SIZE[cls] * d_rbc / 2) ** 2
        typical = float(np.median(a)) if len(a) >= 3 else expected
        d_cls = 2 * math.sqrt(typical / math.pi)
        roundness = _shape(lab, ids, a, token)
        check = np.zeros(int(lab.max()) + 1, bool)  # a round cell of typical size: all methods see one
        check[ids] = (np.abs(np.log(a / typical)) > math.log(CHECK_SIZE)) | (roundness < CHECK_ROUNDNESS)
        counts = _method_counts(lab, d_cls, check, token, slices)
        _check(token)
        cut = np.zeros(int(lab.max()) + 1, bool)  # cells cut by the image border (or the field's edge inside
        cut[list(edge_flags(lab, fov))] = True  # it) are small and not round
        for k, cid in enumerate(ids.tolist()):
            if k % 512 == 0:
                _check(token)
            ms = by_cell.get((cls, cid), [])
            if not ms:  # an outline whose count marker the annotator removed, or a cell the border rule does
                continue  # not count: not a cell to review
            auto = [m.score for m in ms if m.origin == "auto"]
            signs = {"model": float(np.clip((0.9 - min(auto)) / 0.5, 0, 1)) if auto else 0.0}
            seen = [int(c[cid]) for c in counts.values()]
            if seen:
                spread = 0.5 * (max(seen) - min(seen)) + (0.5 if min(seen) == max(seen) != 1 else 0.0)
                signs["methods"] = float(min(1.0, spread))
            signs["size"] = float(min(1.0, abs(math.log(a[k] / typical)) / math.log(3)))
            signs["shape"] = float(np.clip((1.0 - roundness[k] - 0.25) / 0.75, 0, 1))
            if cut[cid]:
                signs["size"] = signs["size"] if a[k] > typical else 0.0
                signs["shape"] = 0.0
            morph = next((m for m in ms if m.morph and m.morph_p < 1.0), None)  # automatic classes only
            if morph is not None:
                signs["morphology"] = max(float(np.clip((0.6 - morph.morph_p) / 0.4, 0, 1)),
                                          ABNORMAL_DOUBT if morph.morph != "normal" else 0.0)
            score = 1.0 - float(np.prod([1.0 - v for v in signs.values()]))
            texts = {"model": f"low model score ({min(auto):.2f})" if auto else "",
                     "size": f"{'large' if a[k] > typical else 'small'} for {ARTICLE[cls]} ({a[k] / typical:.1f}× typical)",
                     "shape": f"irregular shape (roundness {roundness[k]:.2f})"}
            if seen:
                texts["methods"] = "counting methods disagree (" + ", ".join(
                    f"{m.replace('_', ' ')} {n}" for m, n in zip(counts, seen)) + ")"
            if morph is not None:
                unsure = "unsure " if morph.morph_p < 0.6 else ""
                texts["morphology"] = f"{unsure}morphology: {morph.morph.replace('_', ' ')} ({morph.morph_p:.2f})"
            reasons = _reasons(signs, texts, score)
            m0 = ms[0]  # (every queued cell has a marker: a point inside it)
            queue.append(DoubtItem(cls, cid, float(m0.x), float(m0.y), score,
                                   reasons, all(m.reviewed for m in ms), [m.id for m in ms], signs,
                                   _box(slices[cid - 1])))
    queue.sort(key=lambda it: (-it.score, CELL_CLASSES.index(it.cls), it.cell))
    return queue


def remaining(queue: list[DoubtItem]) -> int:
    """How many queued cells are not reviewed yet."""
    return sum(1 for it in queue if not it.reviewed)


def next_doubtful(queue: list[DoubtItem], index: int | None, step: int = 1) -> int | None:
    """Index of the next (``step`` 1) or previous (``step`` −1) unreviewed cell after ``index``
    (None: from the start / end), wrapping around; None when every cell is reviewed."""
    n = len(queue)
    if n == 0:
        return None
    start = (-1 if step > 0 else n) if index is None else index
    for k in range(1, n + 1):
        i = (start + k * (1 if step > 0 else -1)) % n
        if not queue[i].reviewed:
            return i
    return None


def mark_reviewed(doc: Document, cls: str, cell: int, reviewed: bool = True):
    """An unapplied, undoable :class:`~cellviewer.core.edits.Edit` setting ``reviewed`` on every
    marker of the cell (push it on the undo stack / :class:`~cellviewer.core.edits.History`)."""
    from cellviewer.core.edits import MarkerChange, make_edit

    ms = doc.markers_of_cell(cls, int(cell))
    if not ms:
        raise EditError(f"The {cls} cell {cell} has no count marker to mark as reviewed.",
                        hint="add a marker to the cell first, or refresh the review queue")
    return make_edit("Review cell" if reviewed else "Unreview cell",
                     [MarkerChange(m, replace(m, reviewed=bool(reviewed))) for m in ms if m.reviewed != reviewed],
                     cls=cls, detail=f"cell {cell}")


def set_reviewed_in_queue(queue: list[DoubtItem], doc: Document) -> None:
    """Refresh the ``reviewed`` flags of a queue from the document (after an edit, undo or redo); a
    cell whose count markers were removed meanwhile is settled (it is no longer counted)."""
    for it in queue:
        ms = doc.markers_of_cell(it.cls, it.cell)
        it.reviewed = all(m.reviewed for m in ms)


def image_reviewed(image_path) -> bool | None:
    """Whether the saved corrections of ``image_path`` are marked reviewed; None when nothing is saved.

    Reads only ``document.json`` of the sidecar (cheap enough for a folder list); an unreadable
    sidecar counts as not reviewed (opening the image reports why).
    """
    import json
    import zipfile

    from cellviewer.core.sidecar import find_sidecar

    path = find_sidecar(image_path)
    if path is None:
        return None
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("document.json")
            if info.file_size > 64 << 20:
                return False
            return bool(json.loads(z.read(info)).get("reviewed", False))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, AttributeError):
        return False
