"""One sidecar file per image: everything segmented and corrected, saved atomically.

Format (``format_version`` 1), a ZIP file named ``<image file name>.cellviewer``
next to the image (or, when that folder is read-only, in the per-user store
``$CELLVIEWER_HOME/sidecars`` — default ``~/.local/share/cellviewer``):

* ``document.json`` — ``{"format": "cellviewer-sidecar", "format_version": 1,
  "app_version", "saved_at", "image": {name, width, height, sha256},
  "um_per_px", "reviewed", "border_rule", "markers": [{id, cls, x, y, origin, cell, score,
  reviewed, morph, morph_p}], "provenance": {model_name, model_version, params, segmented_at,
  device, edits: [{action, cls, bbox, time, user, detail}]}, "journal_last", "journal_suffix"}``
  (``journal_last``: id of the last journal record the save covers, or null; ``journal_suffix``:
  which open copy's journal that is — ``""`` for ``<sidecar>.journal``, ``"-<id>"``; see
  :mod:`cellviewer.core.journalfiles`);
* ``labels/<class>.npy`` — instance labels per class (``uint16`` or ``int32``);
* ``parts.npy`` — WBC parts (``uint8``: 0 none, 1 nucleus, 2 cytoplasm).

Arrays are read with ``allow_pickle=False`` (reading and validating an archive:
:mod:`cellviewer.core.sidecarzip`, re-exported here). Writing goes to a temporary file
in the same folder, is fsync'ed and renamed over the old file, so a crash at any
moment leaves either the old or the new sidecar, never a broken one.

Crash safety between saves (GUI integration): ``doc = load_document(path)``;
if ``doc.pending_journal`` is non-empty, ask the user and call
``core.journal.recover(doc, doc.pending_journal)`` (then save; declined:
``core.journalfiles.set_aside(doc.left_over)``); then
``attach_journal(doc)`` so every edit is logged at once (``doc.journal.close()`` when done). To save without
blocking the GUI, take ``snap = snapshot(doc)`` on the GUI thread and run
``write_snapshot(snap, sidecar_path(image))`` in a worker thread.
"""

from __future__ import annotations

import errno
import hashlib
import io as _io
import json
import math
import os
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from cellviewer import __version__
from cellviewer.core.atomic import share_mode
from cellviewer.core.countframe import rule_or_default
from cellviewer.core.document import CELL_CLASSES, PART_NAMES, Document, EditRecord, Marker, Provenance, now_iso
from cellviewer.core.errors import SaveError
from cellviewer.core.sidecarzip import (FORMAT, FORMAT_VERSION, MAX_JSON_BYTES,  # noqa: F401 - part of this API
                                        MAX_MEMBER_BYTES, _LZMA_ERROR, _bad, _check_npy, read_sidecar)

SUFFIX = ".cellviewer"


def user_store() -> Path:
    base = os.environ.get("CELLVIEWER_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share", "cellviewer")
    return Path(base) / "sidecars"


_NAME_MAX = 255  # bytes in a file name (ext4, XFS, btrfs, APFS, NTFS ...)
#: bytes the longest name made from a sidecar's adds to it: ``.journal-<8 hex>.declined-<YYYYmmdd-HHMMSS>-<n>``
#: (a second open copy's journal, set aside), its lock's temporary file ``.<…>.journal-<id>.lock.<pid>.tmp``
_NAME_EXTRA = len(SUFFIX) + 53
#: what versions before 0.9 of this reserve counted (sidecar + journal + temp suffixes): a sidecar they placed
#: by it is still found where it is (:func:`_candidates`)
_LEGACY_EXTRA = len(SUFFIX) + len(".journal") + len(".tmp")


def _name_fits(name: str, extra: int = _NAME_EXTRA) -> bool:
    """``name`` + the suffixes of the sidecar and every file named after it is still a legal file name."""
    return len(os.fsencode(name)) + extra <= _NAME_MAX


def _user_path(image_path: Path, extra: int = _NAME_EXTRA) -> Path:
    key = hashlib.sha1(str(image_path.resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    name = image_path.name
    while name and not _name_fits(f"{key}_{name}", extra):  # a very long image name: the key keeps it unique
        name = name[:-1]
    return user_store() / f"{key}_{name}{SUFFIX}"


def _beside(p: Path, extra: int = _NAME_EXTRA) -> Path | None:
    """``<image>.cellviewer`` next to the image, or None when that name would be too long."""
    return p.with_name(p.name + SUFFIX) if _name_fits(p.name, extra) else None


def _candidates(p: Path) -> list[Path]:
    """Where a sidecar of ``p`` may be: beside it and in the user store, as placed now and (for image names
    of 200–230 bytes, placed differently) by earlier versions."""
    out = []
    for extra in (_NAME_EXTRA, _LEGACY_EXTRA):
        for c in (_beside(p, extra), _user_path(p, extra)):
            if c is not None and c not in out:
                out.append(c)
    return out


def sidecar_path(image_path) -> Path:
    """Where the sidecar of ``image_path`` is (or will be) saved: beside the image when one is there or the
    folder is writable (and the name short enough for the journal files named after it), else in the user
    store. A sidecar an earlier version placed by its shorter reserve stays where it is."""
    p = Path(image_path)
    for beside in (_beside(p), _beside(p, _LEGACY_EXTRA)):
        if beside is not None and beside.exists():
            return beside
    beside = _beside(p)
    if beside is not None and os.access(p.parent, os.W_OK):
        return beside
    user, legacy = _user_path(p), _user_path(p, _LEGACY_EXTRA)
    return legacy if legacy.exists() and not user.exists() else user


def find_sidecar(image_path) -> Path | None:
    """The newest existing sidecar of ``image_path`` (beside it or in the user store)."""
    found = [c for c in _candidates(Path(image_path)) if c.is_file()]
    return max(found, key=lambda c: c.stat().st_mtime) if found else None


@dataclass
class Snapshot:
    """A self-contained copy of a document's savable state (cheap to take, safe to write from a thread)."""

    meta: dict
    arrays: dict[str, np.ndarray]
    journal: object = None  # the document's Journal, emptied up to ``journal_mark`` once written
    journal_mark: int = 0
    journal_skipped: int = 0  # the journal's ``skipped`` count when taken (see Journal.resume)


def snapshot(doc: Document, arrays: dict[str, np.ndarray] | None = None) -> Snapshot:
    """The savable state of ``doc``; ``arrays``: its maps copied already, as this stores them (e.g. a slice
    at a time by the GUI, :func:`cellviewer.gui.slices.copy_maps`), so that only the rest is taken here."""
    info = doc.image.info
    j = doc.journal
    mark, last = j.position() if j is not None else (0, None)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "app_version": __version__,
        "saved_at": now_iso(),
        "image": {"name": Path(info.path).name if info.path else "", "width": info.width,
                  "height": info.height, "sha256": info.sha256},
        "um_per_px": doc.um_per_px,
        "reviewed": bool(doc.reviewed),
        "border_rule": doc.border_rule,
        "markers": [_marker_dict(m) for m in doc.markers.values()],
        "provenance": asdict(doc.provenance),
        "journal_last": last,  # id of the last journal record this save covers (see core.journal)
        "journal_suffix": j.suffix if j is not None else None,  # whose journal (see core.journalfiles)
    }
    if arrays is None:
        arrays = {}
        for c in CELL_CLASSES:
            lab = doc.labels[c]
            arrays[f"labels/{c}.npy"] = lab.astype(np.uint16) if lab.max(initial=0) < 65536 else lab.copy()
        arrays["parts.npy"] = doc.parts.copy()
    return Snapshot(meta, arrays, j, mark, j.skipped if j is not None else 0)


_MARKER_FIELDS = fields(Marker)


def _marker_dict(m) -> dict:
    """``asdict(m)`` for a :class:`Marker` (its fields are plain values: no deep copy; 50× faster)."""
    return {f.name: getattr(m, f.name) for f in _MARKER_FIELDS}


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = _io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


_SWEPT: set[str] = set()  # sidecars whose stale temp files this process has removed
STALE_TEMP_S = 60.0  # a temp file untouched this long belongs to a save that died (crash, kill)


def _sweep_stale_temps(folder: Path, prefix: str) -> None:
    """Once per sidecar and process: remove partial saves a crash left behind (each as big as a
    sidecar; over many crashes they would fill the disk)."""
    key = str(folder / prefix)
    if key in _SWEPT:
        return
    _SWEPT.add(key)
    now = time.time()
    try:
        for c in folder.iterdir():
            if c.name.startswith(prefix) and now - c.lstat().st_mtime > STALE_TEMP_S:
                c.unlink()
    except OSError:
        pass


def write_snapshot(snap: Snapshot, path) -> Path:
    """Write atomically: temp file in the same folder, fsync, rename, fsync folder."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        short = path.name if len(os.fsencode(path.name)) <= 200 else path.name[:40] + SUFFIX  # long names
        _sweep_stale_temps(path.parent, short + ".tmp")
        fd, tmp = tempfile.mkstemp(prefix=short + ".tmp", dir=path.parent)
    except OSError as e:
        raise SaveError(f"Cannot save corrections to '{path}': {e.strerror or e}",
                        hint="choose a writable folder or free some disk space") from e
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
                z.writestr("document.json", json.dumps(snap.meta, indent=1))
                for name, arr in snap.arrays.items():
                    z.writestr(name, _npy_bytes(arr))
            f.flush()
            os.fsync(f.fileno())
        share_mode(tmp, path)  # mkstemp makes 0600 files; other users of a lab folder must read corrections
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise SaveError(f"Cannot save corrections to '{path}': {why}. The previous save is kept.",
                        hint="free some disk space or save to another folder") from e
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass  # some filesystems cannot fsync a folder; the rename is still atomic
    if snap.journal is not None:
        from cellviewer.core.journal import journal_path

        snap.journal.resume(snap.journal_skipped)  # the save holds every edit the journal skipped
        try:  # records the save covers go (journal_last skips them anyway); the journal lives beside
            snap.journal.drop_until(snap.journal_mark)  # the newest sidecar: there load_document looks
            snap.journal.move_to(journal_path(path))
        except OSError:
            pass  # it stays as it is; the next save tries again
    return path


def save_snapshot(snap: Snapshot, image_path) -> Path:
    """Write ``snap`` beside ``image_path`` or, when that folder refuses (read-only, no space),
    in the per-user store; returns where it went (:func:`in_user_store` tells which)."""
    p = Path(image_path)
    path = sidecar_path(p)
    try:
        return write_snapshot(snap, path)
    except SaveError:
        if path == _user_path(p):
            raise
        return write_snapshot(snap, _user_path(p))


def in_user_store(sidecar_file) -> bool:
    return user_store() in Path(sidecar_file).parents


def save_sidecar(doc: Document, path=None) -> Path:
    """Save ``doc`` next to its image (or ``path``; else the per-user store); returns where it went."""
    if path is not None:
        return write_snapshot(snapshot(doc), path)
    if not doc.image.info.path:
        raise SaveError("This image has no file to save corrections beside.", hint="use File ▸ Save As")
    return save_snapshot(snapshot(doc), doc.image.info.path)


# -- reading --------------------------------------------------------------------------


def _edit_bbox(b) -> tuple[int, int, int, int]:
    box = tuple(int(v) for v in b)
    if len(box) != 4 or any(isinstance(v, str) for v in b):
        raise ValueError(f"an edit's bbox must be 4 numbers, not {b!r}")
    return box


def apply_sidecar(doc: Document, meta: dict, arrays: dict[str, np.ndarray], path="sidecar") -> list[str]:
    """Fill ``doc`` from parsed sidecar content; returns warnings (e.g. dropped markers)."""
    h, w = doc.shape
    warnings: list[str] = []
    img = meta.get("image") or {}
    if not isinstance(img, dict):
        raise _bad(path, "malformed document.json (image is not an object)")
    if (img.get("width"), img.get("height")) not in ((w, h), (None, None)):
        raise _bad(path, f"it belongs to a {img.get('width')!r}×{img.get('height')!r} image, this one is {w}×{h}")
    if img.get("sha256") and doc.image.info.sha256 and img["sha256"] != doc.image.info.sha256:
        warnings.append("The image file changed since these corrections were saved; check them.")
    labels = {}
    for c in CELL_CLASSES:
        a = arrays.get(f"labels/{c}.npy")
        if a is None:
            a = np.zeros((h, w), np.int32)
        if a.shape != (h, w) or a.dtype.kind not in "iu":
            raise _bad(path, f"the {c} labels have shape {a.shape} and type {a.dtype}, expected {h}×{w} integers")
        if a.size and (a.min() < 0 or a.max() > np.iinfo(np.int32).max):
            raise _bad(path, f"the {c} labels hold values outside 0…{np.iinfo(np.int32).max}")
        labels[c] = a.astype(np.int32)
    parts = arrays.get("parts.npy")
    if parts is None:
        parts = np.zeros((h, w), np.uint8)
    if parts.shape != (h, w) or parts.dtype.kind not in "iu":
        raise _bad(path, f"the WBC parts map has shape {parts.shape}, expected {h}×{w}")
    if parts.size and (parts.min() < 0 or parts.max() > max(PART_NAMES)):
        raise _bad(path, f"the WBC parts map holds values outside 0…{max(PART_NAMES)}")
    try:
        markers = {}
        for d in meta.get("markers", []):
            m = Marker(id=int(d["id"]), cls=str(d["cls"]), x=float(d["x"]), y=float(d["y"]),
                       origin=str(d.get("origin", "auto")), cell=int(d.get("cell", 0)),
                       score=float(d.get("score", 1.0)), reviewed=bool(d.get("reviewed", False)),
                       morph=str(d.get("morph", "") or ""), morph_p=float(d.get("morph_p", 0.0) or 0.0))
            if (m.cls not in CELL_CLASSES or not (0 <= m.x < w and 0 <= m.y < h) or m.id in markers
                    or not math.isfinite(m.score) or m.cell < 0 or not math.isfinite(m.morph_p)):
                warnings.append(f"Marker {m.id} ({m.cls} at {m.x:.0f},{m.y:.0f}) is invalid and was dropped.")
                continue
            markers[m.id] = m
        pv = meta.get("provenance") or {}
        edits = [EditRecord(action=str(e.get("action", "")), cls=None if e.get("cls") is None else str(e["cls"]),
                            bbox=_edit_bbox(e["bbox"]) if e.get("bbox") else None, time=str(e.get("time", "")),
                            user=str(e.get("user", "")), detail=str(e.get("detail", "")))
                 for e in pv.get("edits", [])]
        prov = Provenance(model_name=str(pv.get("model_name", "")), model_version=str(pv.get("model_version", "")),
                          params=dict(pv.get("params") or {}), segmented_at=str(pv.get("segmented_at", "")),
                          device=str(pv.get("device", "")), edits=edits)
        um = meta.get("um_per_px")
        um = float(um) if um is not None else None
        if um is not None and not (math.isfinite(um) and um > 0):
            raise ValueError(f"um_per_px must be a positive number, not {um}")
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise _bad(path, f"malformed document.json ({type(e).__name__}: {e})") from e
    doc.labels, doc.parts, doc.markers, doc.provenance = labels, parts.astype(np.uint8), markers, prov
    doc.um_per_px, doc.reviewed = um, bool(meta.get("reviewed", False))
    rule = str(meta.get("border_rule", "all"))
    doc.border_rule = rule_or_default(rule)
    if doc.border_rule != rule:
        warnings.append(f"Unknown border-cell rule '{rule}'; every cell is counted.")
    doc.notify_all()
    return warnings


def load_document(image_path) -> Document:
    """Read an image and restore its sidecar when there is one.

    Warnings about the sidecar are stored in ``doc.load_warnings``.
    """
    from cellviewer.core.io import read_image  # local: io pulls in Pillow/tifffile

    from cellviewer.core.journalfiles import left_over

    doc = Document(read_image(image_path))
    found, last, by = find_sidecar(image_path), None, None
    if found is not None:
        meta, arrays = read_sidecar(found)
        doc.load_warnings = apply_sidecar(doc, meta, arrays, found)
        last = meta.get("journal_last") if isinstance(meta.get("journal_last"), str) else None
        by = meta.get("journal_suffix") if isinstance(meta.get("journal_suffix"), str) else None
    # the journals of copies no longer open (a crash); records the sidecar already holds (a crash between
    # its rename and the journal trim) are skipped
    doc.left_over = left_over(found or sidecar_path(image_path), after=last, saved_by=by)
    doc.pending_journal = doc.left_over.entries
    return doc


def attach_journal(doc: Document) -> None:
    """Start logging every edit of ``doc`` beside its sidecar, in a journal of its own (call after any
    recovery; :func:`cellviewer.core.journalfiles.claim`): the left-over journals found at open
    (``doc.left_over``, unless declined and set aside) move into it."""
    from cellviewer.core.journalfiles import claim

    if doc.image.info.path:
        doc.journal = claim(find_sidecar(doc.image.info.path) or sidecar_path(doc.image.info.path), doc.left_over)
    doc.left_over = None
