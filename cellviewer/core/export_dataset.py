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
  ``ignore/<stem>.png``       ignore target (255): around markers without an outline and over
                              outlines that carry two markers (:mod:`~cellviewer.core.export_unit`)
  ``markers.csv``             ``image,id,cls,x,y,origin,cell,score,reviewed``
  ``export.json``             the manifest: formats, tile, per image its stem, source, sha256,
                              split, ``rbc_diameter`` and the segmentation's red-cell diameter
                              (``segmentation_rbc_diameter``), the history of merges
  ==========================  ==============================================================

* **COCO** (``"coco"``): ``coco.json`` with ``images`` (plus their ``split``), categories
  ``1 rbc, 2 wbc, 3 platelet`` and one annotation per cell: outer polygon(s) from
  :func:`cv2.findContours`, ``bbox`` ``[x, y, w, h]``, ``area`` (pixels), ``score``; each
  image also names its ``source``, ``sha256``, ``rbc_diameter`` and ``segmentation_rbc_diameter``.

**Into an earlier export** (``merge=True``, what ``cellviewer export`` does): new images are added, an
image exported again replaces its earlier rows and files, the rest is kept with its split, and the
manifest is updated (:mod:`cellviewer.core.export_merge`); other formats or tiling than the earlier
export's are refused (:class:`~cellviewer.core.errors.OptionError`, exit code 2). Every file is written
atomically.

**Split.** Every exported source image gets ``train`` / ``val`` / ``test``: images are ordered
by ``sha256("cellviewer-export-v1:" + source name)`` and the first ``round(n·f_test)`` go to
``test``, the next ``round(n·f_val)`` to ``val``, the rest ``train`` (at least one in each split with a share
once there are 3 images; merging, a split the earlier images leave empty takes images of this export,
:func:`~cellviewer.core.export_merge.fill_empty_splits`, else :attr:`ExportResult.notes` says so);
tiles follow their source image, so no image leaks across splits. ``test`` is the held-out
part the regression gate (:mod:`cellviewer.core.gate`) scores on.

Only documents whose ``reviewed`` flag is set are exported unless ``reviewed_only=False``;
the others are listed in :attr:`ExportResult.skipped` with the reason. Counts are markers:
an outline whose count marker the annotator removed is left out of every file
(:func:`counted_labels`; :attr:`ExportResult.uncounted` says how many).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellviewer.core.document import CELL_CLASSES, CLASS_MAP_VALUES, Document
from cellviewer.core.errors import CellviewerError, Cancelled, OptionError, SaveError
from cellviewer.core.export_read import EDGE_PX, edge_map, load_exported  # noqa: F401 - the reader lives there
from cellviewer.core.export_unit import (BOX_COLUMNS, COCO_CATEGORIES, CSV_CLASS, IMAGE_COLUMNS,  # noqa: F401
                                         MARKER_BOX, MARKER_COLUMNS, Collected, doc_diameter, units, write_csv,
                                         write_json, write_unit)
from cellviewer.core.jobs import CancelToken, Job, Progress

FORMATS: tuple[str, ...] = ("shared", "coco")
SPLIT_SEED = "cellviewer-export-v1"
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)  # train, val, test
MIN_TILE = 16


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
    ignored_px: int = 0  # pixels of the ignore targets (markers without an outline, shared outlines)
    merged: bool = False  # written into an earlier export (see the counts below)
    added: int = 0  # images (tiles) new to the folder
    replaced: int = 0  # images (tiles) of the earlier export written again
    kept: int = 0  # images (tiles) of the earlier export left as they were
    notes: list[str] = field(default_factory=list)  # e.g. a split left without an image (and what that means)


# -- helpers ---------------------------------------------------------------------------------------
def _rank(name: str, seed: str = SPLIT_SEED) -> str:
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def split_for(names: list[str], fractions=SPLIT_FRACTIONS, seed: str = SPLIT_SEED) -> dict[str, str]:
    """Source name -> split, rank-based on a hash of the name (see the module docstring)."""
    order = sorted(set(names), key=lambda n: _rank(n, seed))
    n = len(order)
    k = [int(round(n * f)) for f in fractions]
    if n >= 3:  # at least one image in each split that has a share, train included
        k = [k[0]] + [max(1, v) if f > 0 else 0 for v, f in zip(k[1:], fractions[1:])]
        keep = 1 if fractions[0] > 0 else 0
        n_test = min(k[2], n - keep - (1 if fractions[1] > 0 else 0))
        n_val = min(k[1], n - keep - n_test)
    else:
        n_test, n_val = min(k[2], n), min(k[1], max(0, n - k[2]))
    return {name: "test" if i < n_test else "val" if i < n_test + n_val else "train" for i, name in enumerate(order)}


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


def check_options(formats, tile: int | None) -> tuple[str, ...]:
    """The formats as a tuple; :class:`OptionError` (exit code 2) for an unknown format or a tile too small."""
    formats = tuple(formats)
    bad = sorted(set(formats) - set(FORMATS))
    if bad or not formats:
        raise OptionError(f"Unknown export format(s): {', '.join(bad) or 'none given'}.",
                          hint=f"choose from: {', '.join(FORMATS)} (--format shared, coco or both)")
    if tile is not None and tile < MIN_TILE:
        raise OptionError(f"A tile of {tile} px is too small to hold cells.",
                          hint=f"give --tile {MIN_TILE} px or more (e.g. 256), or leave it out to export whole images")
    return formats


def export_training_set(items, out_dir, *, formats=FORMATS, tile: int | None = None, reviewed_only: bool = True,
                        fractions=SPLIT_FRACTIONS, merge: bool = False,
                        cancel: CancelToken | None = None) -> Job[ExportResult]:
    """Long job: write the training set of ``items`` into ``out_dir`` (see the module docstring).

    ``items``: image paths (with sidecars) and/or :class:`Document` objects (any sized iterable:
    documents can be made one at a time). ``formats``:
    any of ``"shared"``, ``"coco"``. ``tile``: cut every image into ``tile``×``tile`` tiles
    (the last row/column aligned to the border). ``reviewed_only``: skip documents whose
    ``reviewed`` flag is not set. ``fractions``: train/val/test shares of the split. ``merge``: add to
    an export already in ``out_dir`` (:mod:`cellviewer.core.export_merge`); without it the files list
    this export's images only.
    Returns an :class:`ExportResult`; raises :class:`OptionError` for bad options (or, merging, options
    other than the earlier export's), :class:`SaveError` when ``out_dir`` is not writable and
    :class:`Cancelled` when cancelled (files written so far stay; the lists are not updated).
    """
    from cellviewer.core.export_merge import image_key, new_stem, read_prior

    formats = check_options(formats, tile)
    out = Path(out_dir)
    shared = "shared" in formats
    prior = read_prior(out, formats, tile) if merge else None
    made = [d for d in [out] + [out / sub for sub in ("images",) + (("masks", "labels", "edges", "ignore")
                                                                      if shared else ())] if not d.exists()]
    try:
        for sub in ("images",) + (("masks", "labels", "edges", "ignore") if shared else ()):
            (out / sub).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SaveError(f"Cannot create the export folder '{out}': {e.strerror or e}",
                        hint="choose a writable folder") from e
    res = ExportResult(out, merged=prior is not None)
    items = items if hasattr(items, "__len__") else list(items)  # a lazy sequence stays lazy
    acc, used, replaced = Collected.empty(), set(prior.stems()) if prior else set(), set()
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
        if not doc.provenance.model_name and not doc.markers and not any(v.any() for v in doc.labels.values()):
            # an empty image that no model ever looked at: its "no cells" would teach a model to miss them
            res.skipped.append((label, ("marked reviewed but " if doc.reviewed else "")
                                + "never segmented and no cell drawn — segment it (or draw its cells) and review "
                                  "it first"))
            continue
        info = doc.image.info
        key = image_key(info.sha256, Path(info.path).name if info.path else "")
        stem, again = new_stem(stem or f"image_{k + 1}", key, prior, used)
        if again:
            replaced.add(key)
        labels0, dropped = counted_labels(doc)
        res.uncounted += dropped
        n_rows = len(acc.rows)
        for u in units(doc, stem, tile, doc_diameter(doc), labels0):
            write_unit(u, out, shared, res, acc)
        for r in acc.rows[n_rows:]:  # for the manifest (write_csv leaves these out)
            r.update(_stem=stem, _seg_diameter=u.seg_diameter)
        if again:
            res.replaced += len(acc.rows) - n_rows
    if res.n_images == 0:
        for d in reversed(made):  # an export that wrote nothing leaves no empty folders behind
            try:
                d.rmdir()
            except OSError:
                pass
        yield Progress(1.0, "nothing to export")
        return res
    for r in acc.rows:  # images without a measurable red-cell size get the export's median
        if not r["rbc_diameter"]:
            known = [x["rbc_diameter"] for x in acc.rows if x["rbc_diameter"]]
            r["rbc_diameter"] = round(float(np.median(known)), 2) if known else 32.0
    for im, r in zip(acc.coco_images, acc.rows):
        im["rbc_diameter"] = r["rbc_diameter"]
    yield from _finish(out, formats, tile, fractions, acc, prior, replaced, res)
    return res


def _finish(out: Path, formats, tile, fractions, acc: Collected, prior, replaced: set, res: ExportResult):
    """Split, merge with the earlier export (if any) and write the lists, COCO JSON and manifest."""
    from cellviewer.core.export_merge import fill_empty_splits, merge, write_manifest

    earlier, known, history = {}, {}, []
    merged = acc
    if prior is not None:
        merged, earlier, known = merge(prior, acc, replaced)
        history = prior.history
        res.kept = len(earlier)
    res.added = res.n_images - res.replaced
    splits = split_for([r["source"] for r in merged.rows], fractions)
    for r in acc.rows:  # images already exported keep their split (no leak from train into val / test)
        r["split"] = known.get(r["source"]) or splits[r["source"]]
    # a split left empty by the earlier images' splits gets images of this export (never earlier ones)
    res.notes += fill_empty_splits(merged.rows, {r["source"] for r in acc.rows if not known.get(r["source"])},
                                   fractions, _rank)
    for r in acc.rows:
        res.splits[r["split"]] = res.splits.get(r["split"], 0) + 1
    if "shared" in formats:
        res.files += [write_csv(out / "images.csv", IMAGE_COLUMNS, merged.rows),
                      write_csv(out / "annotations.csv", BOX_COLUMNS, merged.boxes),
                      write_csv(out / "markers.csv", MARKER_COLUMNS, merged.markers),
                      write_json(out / "classes.json", {str(v): c for c, v in CLASS_MAP_VALUES.items()})]
    if "coco" in formats:
        split_of_image = {r["image"]: r["split"] for r in merged.rows}
        for im in merged.coco_images:
            im["split"] = split_of_image.get(im["file_name"], im.get("split", ""))
        res.files.append(write_json(out / "coco.json", {
            "info": {"description": "cellviewer export of reviewed corrections", "version": "1"},
            "images": merged.coco_images, "annotations": merged.coco_anns, "categories": COCO_CATEGORIES}))
    res.files.append(write_manifest(out, formats, tile, fractions, merged.rows, earlier, history,
                                    {"added": res.added, "replaced": res.replaced, "kept": res.kept}))
    yield Progress(1.0, f"exported {res.n_images} images" + (f" into the earlier export ({res.kept} kept)"
                                                              if prior is not None else ""))
