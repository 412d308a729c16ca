"""Exporting into a folder that already holds a cellviewer export: merge, never clobber.

:func:`read_prior` reads the earlier export (its manifest ``export.json``, else its ``images.csv`` /
``coco.json`` — exports made before the manifest existed), and refuses (:class:`OptionError`, exit
code 2) when this export's formats or tiling differ from it: the merged files must describe every
image the same way. :func:`merge` then gives the rows of the merged export:

* an image **not** in the earlier export is **added** (a new stem when its name is taken);
* an image that **is** there (same sha256 of the file, else the same source file name) is
  **replaced**: its earlier rows go, its files are rewritten under its earlier stem (files of tiles it
  no longer has are removed);
* every other image of the earlier export is **kept** with its rows, files and split.

Splits: images already exported keep theirs (a model trained on the earlier export never finds its
training images in ``val`` / ``test``); a new image of a known source takes that source's split, the
others the rank split of :func:`~cellviewer.core.export_dataset.split_for` over every source; a split left
empty that way takes new images of this export (:func:`fill_empty_splits`; earlier ones never move).

The manifest ``export.json`` (written by every export) records: ``formats``, ``tile``, ``fractions``,
per image its ``stem``, ``source``, ``sha256``, ``split``, ``rbc_diameter`` (the one training uses)
and ``segmentation_rbc_diameter`` (the diameter the segmentation used, px), and the ``history`` of
exports into the folder (added / replaced / kept).
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cellviewer.core.csvtext import unquote_rows
from cellviewer.core.errors import CellviewerError, OptionError
from cellviewer.core.export_unit import Collected, unit_files

MANIFEST = "export.json"
MANIFEST_VERSION = 1
_TILE_NAME = re.compile(r"^(.*)_y\d+_x\d+$")


def image_key(sha256: str, source: str) -> str:
    """What makes two exported images the same: the file's sha256, else its source file name."""
    return f"sha256:{sha256}" if sha256 else f"source:{source}"


@dataclass
class Prior:
    """The earlier export in the folder."""

    out: Path
    formats: tuple[str, ...]
    tile: int | None
    collected: Collected
    meta: dict[str, dict] = field(default_factory=dict)  # image name -> stem, source, sha256, split ...
    history: list = field(default_factory=list)

    def stem_of(self, key: str) -> str | None:
        """The stem the image ``key`` was exported under (None: not in the earlier export)."""
        return next((m["stem"] for m in self.meta.values() if image_key(m["sha256"], m["source"]) == key), None)

    def stems(self) -> set[str]:
        return {m["stem"] for m in self.meta.values()}


def _formats_text(formats) -> str:
    return "both" if set(formats) == {"shared", "coco"} else next(iter(formats))


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(unquote_rows(csv.DictReader(f)))


def read_prior(out, formats, tile: int | None) -> Prior | None:
    """The export already in ``out`` (None when there is none); raises :class:`OptionError` when it was made
    with other formats or tiling than ``formats`` / ``tile`` (see the module docstring)."""
    out = Path(out)
    man_path, csv_path, coco_path = out / MANIFEST, out / "images.csv", out / "coco.json"
    if not (man_path.is_file() or csv_path.is_file() or coco_path.is_file()):
        return None
    try:
        manifest = json.loads(man_path.read_text(encoding="utf-8")) if man_path.is_file() else {}
        coco = json.loads(coco_path.read_text(encoding="utf-8")) if coco_path.is_file() else {}
        rows = _read_csv(csv_path)
    except (OSError, ValueError) as e:
        raise CellviewerError(f"'{out}' holds an earlier export that cannot be read ({e}).",
                              hint="export into another folder, or move the earlier export away") from e
    had = tuple(manifest.get("formats") or [f for f, p in (("shared", csv_path), ("coco", coco_path)) if p.is_file()])
    names = [r["image"] for r in rows] or [im.get("file_name", "") for im in coco.get("images") or []]
    tiled = any(_TILE_NAME.match(Path(n).stem) for n in names)  # without a manifest: tiles by their names
    had_tile = manifest["tile"] if "tile" in manifest else ("?" if tiled else None)
    asked = f"--format {_formats_text(formats)}" + (f" --tile {tile}" if tile else "")
    if set(had) != set(formats) or (had_tile == "?" and not tile) or (had_tile != "?" and had_tile != tile):
        made = f"--format {_formats_text(had)}" + (f" --tile {had_tile}" if had_tile not in (None, "?") else
                                                     " with --tile" if had_tile == "?" else "")
        fix = []  # what to change: only the options that differ
        if set(had) != set(formats):
            fix.append(f"--format {_formats_text(had)}")
        if had_tile == "?" and not tile:
            fix.append("--tile N (the earlier export is tiled; N the side of its tiles)")
        elif had_tile != "?" and had_tile != tile:
            fix.append(f"--tile {had_tile}" if had_tile else "without --tile")
        how = " and ".join(f if f.startswith("without") else f"with {f}" for f in fix)
        raise OptionError(f"'{out}' holds an export made with {made}; this one asks for {asked}, and one folder "
                          "cannot mix them.", hint=f"export {how} to add to it, or into another folder")
    coco_images, coco_anns = list(coco.get("images") or []), list(coco.get("annotations") or [])
    if not rows:  # a COCO-only export: its image entries are the rows
        rows = [{"image": im["file_name"], "width": im.get("width", ""), "height": im.get("height", ""),
                 "origin": "export", "split": im.get("split", ""), "rbc_diameter": im.get("rbc_diameter", ""),
                 "source": im.get("source", ""), "sha256": im.get("sha256", ""), "x0": "", "y0": ""}
                for im in coco_images]
    sha_of = {im["file_name"]: im.get("sha256", "") for im in coco_images}
    meta = {}
    for r in rows:
        name = r["image"]
        m = dict((manifest.get("images") or {}).get(name) or {})
        stem = Path(name).stem
        if "stem" not in m:
            hit = _TILE_NAME.match(stem) if had_tile else None
            m["stem"] = hit.group(1) if hit else stem
        m.setdefault("source", r.get("source", ""))
        m.setdefault("sha256", r.get("sha256") or sha_of.get(name, ""))
        m["split"] = r.get("split") or m.get("split", "")
        meta[name] = m
    collected = Collected(rows, _read_csv(out / "annotations.csv"), _read_csv(out / "markers.csv"),
                          coco_images, coco_anns)
    return Prior(out, had, tile, collected, meta, list(manifest.get("history") or []))


def new_stem(stem: str, key: str, prior: Prior | None, used: set[str]) -> tuple[str, bool]:
    """The stem an image is exported under and whether it replaces one of the earlier export: its earlier
    stem when it is there, else ``stem`` (``stem_2``, ``stem_3`` ... when taken)."""
    if prior is not None:
        earlier = prior.stem_of(key)
        if earlier is not None:
            used.add(earlier)
            return earlier, True
    base, n = stem, 2
    while stem in used:
        stem, n = f"{base}_{n}", n + 1
    used.add(stem)
    return stem, False


def merge(prior: Prior, new: Collected, replaced: set[str]) -> tuple[Collected, dict, dict]:
    """``(merged rows, {name: manifest entry} of the kept images, {source: split} known)``: the kept images of
    ``prior`` (those whose key is not in ``replaced``) followed by ``new``; files of earlier images that are
    neither kept nor rewritten are removed. COCO ids are renumbered."""
    new_names = {r["image"] for r in new.rows}
    kept = {n for n, m in prior.meta.items() if image_key(m["sha256"], m["source"]) not in replaced}
    for name in set(prior.meta) - kept - new_names:  # e.g. a tile the re-exported image no longer has
        for f in unit_files(prior.out, name):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise CellviewerError(f"Cannot remove the earlier '{f}': {e.strerror or e}",
                                      hint="check the export folder is writable") from e
    old = prior.collected
    keep = (lambda r: r.get("image") in kept)  # noqa: E731
    coco_images, coco_anns, ids = [], [], {}
    for im in old.coco_images:
        if im.get("file_name") in kept:
            ids[im["id"]] = len(coco_images) + 1
            coco_images.append(dict(im, id=ids[im["id"]]))
    for a in old.coco_anns:
        if a.get("image_id") in ids:
            coco_anns.append(dict(a, id=len(coco_anns) + 1, image_id=ids[a["image_id"]]))
    offset = len(coco_images)
    for im in new.coco_images:
        coco_images.append(dict(im, id=im["id"] + offset))
    for a in new.coco_anns:
        coco_anns.append(dict(a, id=len(coco_anns) + 1, image_id=a["image_id"] + offset))
    merged = Collected([r for r in old.rows if keep(r)] + new.rows, [b for b in old.boxes if keep(b)] + new.boxes,
                       [m for m in old.markers if keep(m)] + new.markers, coco_images, coco_anns)
    known = {m["source"]: m["split"] for m in prior.meta.values() if m.get("split")}
    return merged, {n: prior.meta[n] for n in kept}, known


_SPLIT_USE = {"test": "the regression gate has no held-out image to test on",
              "val": "training has no val image to choose its epoch by (train refuses such an export)",
              "train": "there is nothing to train on"}


def fill_empty_splits(rows: list[dict], movable: set[str], fractions, rank) -> list[str]:
    """Give every split with a share (``fractions``: train, val, test) at least one source image once there
    are three: a split left empty (e.g. by the earlier images, which keep theirs) takes images of the sources
    in ``movable`` (this export's new images, never earlier ones) in ``rank`` order, from a split that keeps
    one (test comes first: a val image may become the only test image, the gate's held-out part). Updates
    ``rows`` (tiles follow their image); returns a note for each split still empty."""
    split_of = {r["source"]: r["split"] for r in rows}
    wanted = [s for s, f in zip(("train", "val", "test"), fractions) if f > 0]
    if len(split_of) >= 3:
        for empty in ("test", "val", "train"):
            if empty not in wanted or empty in split_of.values():
                continue
            sizes = {s: list(split_of.values()).count(s) for s in wanted}
            pick = next((src for src in sorted(movable, key=rank) if src in split_of
                         and (sizes.get(split_of[src], 0) > 1 or (split_of[src], empty) == ("val", "test"))), None)
            if pick is not None:
                split_of[pick] = empty
                for r in rows:
                    if r["source"] == pick:
                        r["split"] = empty
    return [f"the export has no {s} image: {_SPLIT_USE[s]} — export more images into it"
            + (" (images exported earlier keep their split)" if len(split_of) >= 3 else "")
            for s in ("test", "val", "train") if s in wanted and s not in split_of.values()]


def write_manifest(out: Path, formats, tile, fractions, rows: list[dict], earlier: dict, history: list,
                   event: dict) -> Path:
    """Write ``export.json`` (see the module docstring) for the merged ``rows``; ``earlier``: the kept
    images' entries of the earlier manifest."""
    from cellviewer import __version__
    from cellviewer.core.document import now_iso
    from cellviewer.core.export_unit import write_json

    images = {}
    for r in rows:
        m = dict(earlier.get(r["image"]) or {})
        m.update(source=r.get("source", ""), sha256=r.get("sha256", ""), split=r.get("split", ""),
                 rbc_diameter=_num(r.get("rbc_diameter")))
        if "_stem" in r:
            m.update(stem=r["_stem"], segmentation_rbc_diameter=r.get("_seg_diameter"))
        m.setdefault("stem", Path(r["image"]).stem)
        images[r["image"]] = m
    data = {"format": "cellviewer-export", "version": MANIFEST_VERSION, "cellviewer": __version__,
            "updated": now_iso(), "formats": list(formats), "tile": tile, "fractions": list(fractions),
            "images": images, "history": list(history) + [dict(event, at=now_iso())]}
    return write_json(out / MANIFEST, data)


def _num(v):
    try:
        return round(float(v), 2)
    except (TypeError, ValueError):
        return None
