"""Writing one exported image (a whole document or one tile of it) for
:func:`cellviewer.core.export_dataset.export_training_set`: its image, class map, instance labels, edge
and ignore targets, its boxes, markers and COCO annotations (layout in that module's docstring).

**Ignore target** (``ignore/<stem>.png``, 255 = do not teach this pixel): counts are markers, and a
marker with no outline (a cell counted but not outlined) or a second marker on one outline (two cells
under one outline) says the masks are incomplete there. Training must not learn "background" around
the first or "one cell, no edge between" from the second: the ignore target holds a disc of the class's
size (:data:`MARKER_BOX` × the red-cell diameter) around each mask-less marker and the whole of each
outline that carries more than one marker; :func:`cellviewer.core.export_read.working_targets` turns it
into :data:`cellviewer.core.datasets.IGNORE` pixels of the class map (the edge loss skips those too).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage as ndi

from cellviewer.core.csvtext import quote_row
from cellviewer.core.atomic import atomic_write_bytes
from cellviewer.core.document import CELL_CLASSES, Document
from cellviewer.core.errors import SaveError
from cellviewer.core.export_read import EDGE_PX, edge_map

CSV_CLASS = {"rbc": "RBC", "wbc": "WBC", "platelet": "Platelets"}
COCO_CATEGORIES = [{"id": i + 1, "name": c, "supercategory": "cell"} for i, c in enumerate(CELL_CLASSES)]
#: a mask-less marker gets a box (and an ignore disc) of this fraction of the red-cell diameter
MARKER_BOX = {"rbc": 1.0, "wbc": 1.6, "platelet": 0.35}
IMAGE_COLUMNS = ["image", "width", "height", "origin", "split", "rbc_diameter", "n_rbc", "n_wbc", "n_platelet",
                 "source", "x0", "y0", "sha256"]
BOX_COLUMNS = ["image", "cls", "xmin", "ymin", "xmax", "ymax"]
MARKER_COLUMNS = ["image", "id", "cls", "x", "y", "origin", "cell", "score", "reviewed", "morphology", "morphology_p"]
#: the per-image sub-folders of the shared layout (``labels`` holds ``<stem>_<cls>.png``)
IMAGE_FOLDERS = ("images", "masks", "edges", "ignore")


@dataclass
class Unit:
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
    seg_diameter: float | None = None  # the red-cell diameter the segmentation used (provenance)


@dataclass
class Collected:
    """The rows of every file of an export, gathered over its units."""

    rows: list
    boxes: list
    markers: list
    coco_images: list
    coco_anns: list

    @classmethod
    def empty(cls) -> "Collected":
        return cls([], [], [], [], [])


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


def units(doc: Document, stem: str, tile: int | None, diameter: float, labels0: dict) -> list[Unit]:
    """The units of ``doc``: itself, or its ``tile``×``tile`` tiles (cells renumbered, markers shifted)."""
    markers = list(doc.markers.values())
    h, w = doc.shape
    info = doc.image.info
    source = Path(info.path).name if info.path else stem
    seg_d = (doc.provenance.params or {}).get("diameter_px")
    seg_d = round(float(seg_d), 2) if seg_d else None
    if not tile:
        return [Unit(stem, source, doc.image.pixels, labels0, doc.parts, markers, 0, 0, diameter, info.sha256, seg_d)]
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
            out.append(Unit(f"{stem}_y{y0}_x{x0}", source, doc.image.pixels[y0:y0 + th, x0:x0 + tw], labels,
                            doc.parts[y0:y0 + th, x0:x0 + tw], ms, x0, y0, diameter, info.sha256, seg_d))
    return out


def doc_diameter(doc: Document) -> float:
    """The red-cell diameter of ``doc``: the median box of its whole red cells, else the segmentation's."""
    from cellviewer.core.datasets import box_diameter

    boxes = [(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in ndi.find_objects(doc.labels["rbc"]) if s]
    h, w = doc.shape
    d = box_diameter(np.asarray(boxes, float).reshape(-1, 4), w, h) if boxes else None
    if d is None:
        d = float((doc.provenance.params or {}).get("diameter_px") or 0.0)
    return float(d or 0.0)


def _polygons(mask: np.ndarray, x0: int, y0: int) -> list[list[float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [(c.reshape(-1, 2) + [x0, y0]).astype(float).ravel().tolist() for c in contours if len(c) >= 3]


def write_unit(u: Unit, out: Path, shared: bool, res, acc: Collected) -> None:
    """Write ``u``'s files (shared layout when ``shared``; its image always) and add its rows to ``acc``;
    ``res`` (an :class:`~cellviewer.core.export_dataset.ExportResult`) counts files, images and cells."""
    from cellviewer.core.render import _class_map

    h, w = u.pixels.shape[:2]
    name = u.name + ".png"
    res.files.append(imwrite(out / "images" / name, cv2.cvtColor(np.ascontiguousarray(u.pixels[..., :3]),
                                                                 cv2.COLOR_RGB2BGR)))
    img_id = len(acc.coco_images) + 1
    acc.coco_images.append({"id": img_id, "file_name": name, "width": w, "height": h, "source": u.source,
                            "sha256": u.sha256, "rbc_diameter": round(u.diameter, 2),
                            "segmentation_rbc_diameter": u.seg_diameter})
    counts = {c: 0 for c in CELL_CLASSES}
    d = u.diameter or 32.0
    ignore = np.zeros((h, w), np.uint8)
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
            acc.boxes.append({"image": name, "cls": CSV_CLASS[c], "xmin": xs.start, "ymin": ys.start,
                              "xmax": xs.stop - 1, "ymax": ys.stop - 1})
            mask = lab[sl] == i
            ms = by_cell.get((c, i), [])
            if len(ms) > 1:  # two cells under one outline: neither its mask nor its edge is right
                ignore[sl][mask] = 255
            polys = _polygons(mask, xs.start, ys.start) or [[xs.start, ys.start, xs.stop, ys.start, xs.stop,
                                                              ys.stop, xs.start, ys.stop]]
            acc.coco_anns.append({"id": len(acc.coco_anns) + 1, "image_id": img_id,
                                  "category_id": CELL_CLASSES.index(c) + 1, "segmentation": polys,
                                  "area": int(mask.sum()), "iscrowd": 0,
                                  "bbox": [xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start],
                                  "score": float(min((m.score for m in ms), default=1.0))})
            counts[c] += 1
        # counts are markers: a marker without a mask, and every marker past the first on one
        # outline (two cells under one outline), gets a box of the class's size around it
        extra = [m for ms in by_cell.values() for m in ms[1:] if m.cls == c and m.cell in present]
        maskless = [m for m in u.markers if m.cls == c and m.cell not in present]
        for m in maskless + extra:
            r = MARKER_BOX[c] * d / 2
            acc.boxes.append({"image": name, "cls": CSV_CLASS[c], "xmin": round(max(0.0, m.x - r)),
                              "ymin": round(max(0.0, m.y - r)), "xmax": round(min(w - 1.0, m.x + r)),
                              "ymax": round(min(h - 1.0, m.y + r))})
            counts[c] += 1
        for m in maskless:  # a cell counted but not outlined: not background
            cv2.circle(ignore, (int(round(m.x)), int(round(m.y))), max(1, int(round(MARKER_BOX[c] * d / 2))), 255, -1)
    for m in u.markers:
        acc.markers.append({"image": name, "id": m.id, "cls": m.cls, "x": round(m.x, 2), "y": round(m.y, 2),
                            "origin": m.origin, "cell": m.cell, "score": round(float(m.score), 4),
                            "reviewed": int(bool(m.reviewed)), "morphology": m.morph,
                            "morphology_p": round(float(m.morph_p), 4) if m.morph else ""})
    if shared:
        res.files.append(imwrite(out / "masks" / name, _class_map(u.labels, u.parts, (h, w))))
        for c in CELL_CLASSES:
            lab = u.labels[c]
            if lab.max(initial=0) > 65535:
                raise SaveError(f"'{u.name}' has more than 65535 {c} cells; a 16-bit label PNG cannot hold them.",
                                hint="export with --tile to cut the image into smaller pieces")
            res.files.append(imwrite(out / "labels" / f"{u.name}_{c}.png", lab.astype(np.uint16)))
        res.files.append(imwrite(out / "edges" / name, edge_map(u.labels, EDGE_PX * d / 32.0) * 255))
        res.files.append(imwrite(out / "ignore" / name, ignore))
    acc.rows.append({"image": name, "width": w, "height": h, "origin": "export", "split": "",
                     "rbc_diameter": round(u.diameter, 2), **{f"n_{c}": counts[c] for c in CELL_CLASSES},
                     "source": u.source, "x0": u.x0, "y0": u.y0, "sha256": u.sha256})
    res.n_images += 1
    res.ignored_px += int(np.count_nonzero(ignore))
    for c in CELL_CLASSES:
        res.n_cells[c] += counts[c]


def unit_files(out: Path, name: str) -> list[Path]:
    """Every file the shared layout (and the image folder) holds for the exported image ``name``."""
    stem = Path(name).stem
    return [out / sub / name for sub in IMAGE_FOLDERS] + [out / "labels" / f"{stem}_{c}.png" for c in CELL_CLASSES]


def imwrite(path: Path, a: np.ndarray) -> Path:
    """A PNG written atomically (a crash never leaves half an image under the final name)."""
    ok, buf = cv2.imencode(".png", a)
    if not ok:
        raise SaveError(f"Cannot encode '{path}'.", hint="check the image data")
    try:
        atomic_write_bytes(path, buf.tobytes(), fsync=False)
    except OSError as e:
        raise SaveError(f"Cannot write '{path}': {e.strerror or e}",
                        hint="check the folder is writable and the disk not full") from e
    return path


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    """A CSV written atomically; columns missing from a row are left empty (rows of an older export)."""
    buf = io.StringIO(newline="")
    wr = csv.DictWriter(buf, columns, extrasaction="ignore", restval="")
    wr.writeheader()
    wr.writerows(quote_row(r) for r in rows)  # '=x.png' stays text in a spreadsheet
    try:
        atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    except OSError as e:
        raise SaveError(f"Cannot write '{path}': {e.strerror or e}", hint="free some disk space") from e
    return path


def write_json(path: Path, data) -> Path:
    import json

    try:
        atomic_write_bytes(path, json.dumps(data).encode("utf-8"))
    except OSError as e:
        raise SaveError(f"Cannot write '{path}': {e.strerror or e}", hint="free some disk space") from e
    return path
