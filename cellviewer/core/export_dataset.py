"""Export reviewed corrections as a training set, and read such an export back.

:func:`export_training_set` is a long job (yields :class:`~cellviewer.core.jobs.Progress`,
honours a :class:`~cellviewer.core.jobs.CancelToken`) that takes image paths (their sidecars
are restored with :func:`cellviewer.core.sidecar.load_document`) or :class:`Document` objects
and writes, into ``out_dir``:

* **shared layout** (``formats`` contains ``"shared"``; the layout of ``shared/data``, so
  :func:`cellviewer.core.datasets.load_samples` ``("export", root=out_dir)`` reads it back):

  ==========================  ==============================================================
  ``images/<stem>.png``       the pixels the labels belong to (RGB, lossless; EXIF applied)
  ``images.csv``              ``image,width,height,origin,split,rbc_diameter,n_rbc,n_wbc,
                              n_platelet,source,x0,y0,sha256`` (``source``: the original
                              file; ``x0,y0``: the tile's offset in it)
  ``annotations.csv``         ``image,cls,xmin,ymin,xmax,ymax`` (``RBC``/``WBC``/``Platelets``;
                              one box per count marker: its outline's box, or a box of the
                              class's size around a marker with no outline or a second
                              marker on one outline)
  ``masks/<stem>.png``        8-bit class map (0 background, 1 rbc, 2 wbc, 3 platelet,
                              4 nucleus, 5 cytoplasm — ``classes.json``)
  ``labels/<stem>_<cls>.png`` 16-bit instance labels per class (0 none, 1..N one cell each)
  ``edges/<stem>.png``        edge mask (255): a ring :data:`EDGE_PX` px (at 32 px per red
                              cell) inside every cell + pixels covered by two cells
  ``markers.csv``             ``image,id,cls,x,y,origin,cell,score,reviewed``
  ==========================  ==============================================================

* **COCO** (``"coco"``): ``coco.json`` with ``images`` (plus their ``split``), categories
  ``1 rbc, 2 wbc, 3 platelet`` and one annotation per cell: outer polygon(s) from
  :func:`cv2.findContours`, ``bbox`` ``[x, y, w, h]``, ``area`` (pixels), ``score``.

**Split.** Every exported source image gets ``train`` / ``val`` / ``test``: images are ordered
by ``sha256("cellviewer-export-v1:" + source name)`` and the first ``round(n·f_test)`` go to
``test``, the next ``round(n·f_val)`` to ``val`` (at least one each once there are 3 images);
tiles follow their source image, so no image leaks across splits. ``test`` is the held-out
part the regression gate (:mod:`cellviewer.core.gate`) scores on.

Only documents whose ``reviewed`` flag is set are exported unless ``reviewed_only=False``;
the others are listed in :attr:`ExportResult.skipped` with the reason. Counts are markers:
an outline whose count marker the annotator removed is left out of every file
(:func:`counted_labels`; :attr:`ExportResult.uncounted` says how many).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage as ndi

from cellviewer.core.document import CELL_CLASSES, CLASS_MAP_VALUES, Document
from cellviewer.core.errors import CellviewerError, Cancelled, SaveError
from cellviewer.core.export_read import EDGE_PX, edge_map, load_exported  # noqa: F401 - the reader lives there
from cellviewer.core.jobs import CancelToken, Job, Progress

FORMATS: tuple[str, ...] = ("shared", "coco")
SPLIT_SEED = "cellviewer-export-v1"
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)  # train, val, test
CSV_CLASS = {"rbc": "RBC", "wbc": "WBC", "platelet": "Platelets"}
COCO_CATEGORIES = [{"id": i + 1, "name": c, "supercategory": "cell"} for i, c in enumerate(CELL_CLASSES)]
#: a mask-less marker gets a box of this fraction of the red-cell diameter
MARKER_BOX = {"rbc": 1.0, "wbc": 1.6, "platelet": 0.35}
IMAGE_COLUMNS = ["image", "width", "height", "origin", "split", "rbc_diameter", "n_rbc", "n_wbc", "n_platelet",
                 "source", "x0", "y0", "sha256"]


@dataclass
class ExportResult:
    """What :func:`export_training_set` wrote."""

    out_dir: Path
    n_images: int = 0  # image files written (tiles count one each)
    n_cells: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CELL_CLASSES})
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)
    files: list[Path] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)  # split -> exported images
    uncounted: int = 0  # outlines left out because the annotator removed their count markers


# -- helpers ---------------------------------------------------------------------------------------
def split_for(names: list[str], fractions=SPLIT_FRACTIONS, seed: str = SPLIT_SEED) -> dict[str, str]:
    """Source name -> split, rank-based on a hash of the name (see the module docstring)."""
    order = sorted(set(names), key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
    n = len(order)
    k = [int(round(n * f)) for f in fractions]
    if n >= 3:
        k = [k[0]] + [max(1, v) if f > 0 else 0 for v, f in zip(k[1:], fractions[1:])]
    n_test, n_val = min(k[2], n), min(k[1], max(0, n - k[2]))
    return {name: "test" if i < n_test else "val" if i < n_test + n_val else "train" for i, name in enumerate(order)}


def _crop_relabel(lab: np.ndarray, y0: int, x0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A crop renumbered 1..N and the lookup table old id -> new id."""
    crop = lab[y0:y0 + h, x0:x0 + w]
    lut = np.zeros(int(lab.max()) + 1, np.int32)
    ids = np.unique(crop)
    ids = ids[ids > 0]
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return lut[crop], lut


def _starts(n: int, t: int) -> list[int]:
    return [0] if n <= t else list(range(0, n - t, t)) + [n - t]


@dataclass
class _Unit:
    """One image to write: a whole document or one tile of it."""

    name: str
    source: str
    pixels: np.ndarray
    labels: dict[str, np.ndarray]
    parts: np.ndarray
    markers: list
    x0: int = 0
    y0: int = 0
    diameter: float = 0.0
    sha256: str = ""


def counted_labels(doc: Document) -> tuple[dict[str, np.ndarray], int]:
    """The label maps without the outlines that carry no count marker, and how many went.

    Counts are markers: an outline whose last marker the annotator removed is not a cell of
    this image (the counts and the report leave it out), so a training set must not teach a
    model to find it again. Copies are made only of the classes that lose an outline."""
    labels, dropped = dict(doc.labels), 0
    for c in CELL_CLASSES:
        lab = labels[c]
        n = int(lab.max(initial=0))
        if n == 0:
            continue
        marked = np.zeros(n + 1, bool)
        for m in doc.markers.values():
            if m.cls == c and 0 < m.cell <= n:
                marked[m.cell] = True
        present = np.zeros(n + 1, bool)
        present[np.unique(lab)] = True
        gone = present & ~marked
        gone[0] = False
        if gone.any():
            labels[c] = np.where(gone[lab], 0, lab).astype(lab.dtype)
            dropped += int(gone.sum())
    return labels, dropped


def _units(doc: Document, stem: str, tile: int | None, diameter: float, labels0: dict) -> list[_Unit]:
    markers = [m for m in doc.markers.values()]
    h, w = doc.shape
    info = doc.image.info
    source = Path(info.path).name if info.path else stem
    if not tile:
        return [_Unit(stem, source, doc.image.pixels, labels0, doc.parts, markers, 0, 0, diameter,
                      info.sha256)]
    out = []
    for y0 in _starts(h, tile):
        for x0 in _starts(w, tile):
            th, tw = min(tile, h), min(tile, w)
            labels, luts = {}, {}
            for c in CELL_CLASSES:
                labels[c], luts[c] = _crop_relabel(labels0[c], y0, x0, th, tw)
            ms = []
            for m in markers:
                if x0 <= m.x < x0 + tw and y0 <= m.y < y0 + th:
                    cell = int(luts[m.cls][m.cell]) if 0 < m.cell < len(luts[m.cls]) else 0
                    ms.append(replace(m, x=m.x - x0, y=m.y - y0, cell=cell))
            out.append(_Unit(f"{stem}_y{y0}_x{x0}", source, doc.image.pixels[y0:y0 + th, x0:x0 + tw], labels,
                             doc.parts[y0:y0 + th, x0:x0 + tw], ms, x0, y0, diameter, info.sha256))
    return out


def _doc_diameter(doc: Document) -> float:
    from cellviewer.core.datasets import box_diameter

    boxes = [(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in ndi.find_objects(doc.labels["rbc"]) if s]
    h, w = doc.shape
    d = box_diameter(np.asarray(boxes, float).reshape(-1, 4), w, h) if boxes else None
    if d is None:
        d = float((doc.provenance.params or {}).get("diameter_px") or 0.0)
    return float(d or 0.0)


def _polygons(mask: np.ndarray, x0: int, y0: int) -> list[list[float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = [(c.reshape(-1, 2) + [x0, y0]).astype(float).ravel().tolist() for c in contours if len(c) >= 3]
    return polys


# -- the job ---------------------------------------------------------------------------------------
def _load(item) -> tuple[Document | None, str, str]:
    """``(doc, name, reason)``: the document of an item, or None and why not."""
    if isinstance(item, Document):
        p = item.image.info.path
        return item, Path(p).stem if p else "", ""
    from cellviewer.core.sidecar import find_sidecar, load_document

    p = Path(item)
    if find_sidecar(p) is None:
        return None, p.stem, "no saved corrections (no sidecar)"
    return load_document(p), p.stem, ""


def export_training_set(items, out_dir, *, formats=FORMATS, tile: int | None = None, reviewed_only: bool = True,
                        fractions=SPLIT_FRACTIONS, cancel: CancelToken | None = None) -> Job[ExportResult]:
    """Long job: write the training set of ``items`` into ``out_dir`` (see the module docstring).

    ``items``: image paths (with sidecars) and/or :class:`Document` objects (any sized iterable:
    documents can be made one at a time). ``formats``:
    any of ``"shared"``, ``"coco"``. ``tile``: cut every image into ``tile``×``tile`` tiles
    (the last row/column aligned to the border). ``reviewed_only``: skip documents whose
    ``reviewed`` flag is not set. ``fractions``: train/val/test shares of the split.
    Returns an :class:`ExportResult`; raises :class:`SaveError` when ``out_dir`` is not
    writable and :class:`Cancelled` when cancelled (files written so far stay).
    """
    formats = tuple(formats)
    bad = sorted(set(formats) - set(FORMATS))
    if bad or not formats:
        raise CellviewerError(f"Unknown export format(s): {', '.join(bad) or 'none given'}.",
                              hint=f"choose from: {', '.join(FORMATS)}")
    if tile is not None and tile < 16:
        raise CellviewerError(f"A tile of {tile} px is too small.", hint="use 16 px or more, or no tiling")
    out = Path(out_dir)
    shared = "shared" in formats
    try:
        for sub in ("images",) + (("masks", "labels", "edges") if shared else ()):
            (out / sub).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SaveError(f"Cannot create the export folder '{out}': {e.strerror or e}",
                        hint="choose a writable folder") from e
    res = ExportResult(out)
    items = items if hasattr(items, "__len__") else list(items)  # a lazy sequence stays lazy
    rows, boxes, markers, coco_images, coco_anns, used = [], [], [], [], [], set()
    for k, item in enumerate(items):
        if cancel is not None:
            cancel.check()
        label = str(item.image.info.path or f"document {k + 1}") if isinstance(item, Document) else str(item)
        yield Progress(k / max(1, len(items)), f"exporting {Path(label).name}")
        try:
            doc, stem, reason = _load(item)
        except Cancelled:
            raise
        except CellviewerError as e:
            res.skipped.append((label, e.message))
            continue
        if doc is None:
            res.skipped.append((label, reason))
            continue
        if reviewed_only and not doc.reviewed:
            res.skipped.append((label, "not marked reviewed"))
            continue
        stem = stem or f"image_{k + 1}"
        base, n = stem, 2
        while stem in used:
            stem, n = f"{base}_{n}", n + 1
        used.add(stem)
        labels0, dropped = counted_labels(doc)
        res.uncounted += dropped
        for u in _units(doc, stem, tile, _doc_diameter(doc), labels0):
            _write_unit(u, out, shared, res, rows, boxes, markers, coco_images, coco_anns)
    if res.n_images == 0:
        yield Progress(1.0, "nothing to export")
        return res
    for r in rows:  # images without a measurable red-cell size get the export's median
        if not r["rbc_diameter"]:
            known = [x["rbc_diameter"] for x in rows if x["rbc_diameter"]]
            r["rbc_diameter"] = round(float(np.median(known)), 2) if known else 32.0
    splits = split_for([r["source"] for r in rows], fractions)
    for r in rows:
        r["split"] = splits[r["source"]]
        res.splits[r["split"]] = res.splits.get(r["split"], 0) + 1
    if shared:
        res.files += [_write_csv(out / "images.csv", IMAGE_COLUMNS, rows),
                      _write_csv(out / "annotations.csv", ["image", "cls", "xmin", "ymin", "xmax", "ymax"], boxes),
                      _write_csv(out / "markers.csv", ["image", "id", "cls", "x", "y", "origin", "cell", "score",
                                                       "reviewed", "morphology", "morphology_p"], markers),
                      _write_json(out / "classes.json", {str(v): c for c, v in CLASS_MAP_VALUES.items()})]
    if "coco" in formats:
        split_of_image = {r["image"]: r["split"] for r in rows}
        for im in coco_images:
            im["split"] = split_of_image[im["file_name"]]
        res.files.append(_write_json(out / "coco.json", {
            "info": {"description": "cellviewer export of reviewed corrections", "version": "1"},
            "images": coco_images, "annotations": coco_anns, "categories": COCO_CATEGORIES}))
    yield Progress(1.0, f"exported {res.n_images} images")
    return res


def _write_unit(u: _Unit, out: Path, shared: bool, res: ExportResult, rows, boxes, markers, coco_images,
                coco_anns) -> None:
    from cellviewer.core.render import _class_map

    h, w = u.pixels.shape[:2]
    name = u.name + ".png"
    res.files.append(_imwrite(out / "images" / name, cv2.cvtColor(np.ascontiguousarray(u.pixels[..., :3]),
                                                                   cv2.COLOR_RGB2BGR)))
    img_id = len(coco_images) + 1
    coco_images.append({"id": img_id, "file_name": name, "width": w, "height": h, "source": u.source})
    counts = {c: 0 for c in CELL_CLASSES}
    d = u.diameter or 32.0
    by_cell: dict[tuple[str, int], list] = {}
    for m in u.markers:
        by_cell.setdefault((m.cls, m.cell), []).append(m)
    for c in CELL_CLASSES:
        lab = u.labels[c]
        objs = ndi.find_objects(lab)
        present = {i for i, sl in enumerate(objs, 1) if sl is not None}
        for i, sl in enumerate(objs, 1):
            if sl is None:
                continue
            (ys, xs) = sl
            boxes.append({"image": name, "cls": CSV_CLASS[c], "xmin": xs.start, "ymin": ys.start,
                          "xmax": xs.stop - 1, "ymax": ys.stop - 1})
            mask = lab[sl] == i
            ms = by_cell.get((c, i), [])
            polys = _polygons(mask, xs.start, ys.start) or [[xs.start, ys.start, xs.stop, ys.start, xs.stop,
                                                              ys.stop, xs.start, ys.stop]]
            coco_anns.append({"id": len(coco_anns) + 1, "image_id": img_id, "category_id": CELL_CLASSES.index(c) + 1,
                              "segmentation": polys, "area": int(mask.sum()), "iscrowd": 0,
                              "bbox": [xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start],
                              "score": float(min((m.score for m in ms), default=1.0))})
            counts[c] += 1
        # counts are markers: a marker without a mask, and every marker past the first on one
        # outline (two cells under one outline), gets a box of the class's size around it
        extra = [m for ms in by_cell.values() for m in ms[1:] if m.cls == c and m.cell in present]
        for m in [m for m in u.markers if m.cls == c and m.cell not in present] + extra:
            r = MARKER_BOX[c] * d / 2
            boxes.append({"image": name, "cls": CSV_CLASS[c], "xmin": round(max(0.0, m.x - r)),
                          "ymin": round(max(0.0, m.y - r)), "xmax": round(min(w - 1.0, m.x + r)),
                          "ymax": round(min(h - 1.0, m.y + r))})
            counts[c] += 1
    for m in u.markers:
        markers.append({"image": name, "id": m.id, "cls": m.cls, "x": round(m.x, 2), "y": round(m.y, 2),
                        "origin": m.origin, "cell": m.cell, "score": round(float(m.score), 4),
                        "reviewed": int(bool(m.reviewed)), "morphology": m.morph,
                        "morphology_p": round(float(m.morph_p), 4) if m.morph else ""})
    if shared:
        res.files.append(_imwrite(out / "masks" / name, _class_map(u.labels, u.parts, (h, w))))
        for c in CELL_CLASSES:
            lab = u.labels[c]
            if lab.max(initial=0) > 65535:
                raise SaveError(f"'{u.name}' has more than 65535 {c} cells; a 16-bit label PNG cannot hold them.",
                                hint="export with --tile to cut the image into smaller pieces")
            res.files.append(_imwrite(out / "labels" / f"{u.name}_{c}.png", lab.astype(np.uint16)))
        res.files.append(_imwrite(out / "edges" / name, edge_map(u.labels, EDGE_PX * d / 32.0) * 255))
    rows.append({"image": name, "width": w, "height": h, "origin": "export", "split": "",
                 "rbc_diameter": round(u.diameter, 2), **{f"n_{c}": counts[c] for c in CELL_CLASSES},
                 "source": u.source, "x0": u.x0, "y0": u.y0, "sha256": u.sha256})
    res.n_images += 1
    for c in CELL_CLASSES:
        res.n_cells[c] += counts[c]


def _imwrite(path: Path, a: np.ndarray) -> Path:
    if not cv2.imwrite(str(path), a):
        raise SaveError(f"Cannot write '{path}'.", hint="check the folder is writable and the disk not full")
    return path


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            wr = csv.DictWriter(f, columns)
            wr.writeheader()
            wr.writerows(rows)
    except OSError as e:
        raise SaveError(f"Cannot write '{path}': {e.strerror or e}", hint="free some disk space") from e
    return path


def _write_json(path: Path, data) -> Path:
    try:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise SaveError(f"Cannot write '{path}': {e.strerror or e}", hint="free some disk space") from e
    return path
