"""Edit journal: every applied/undone edit is appended (and fsync'ed) at once, so
a crash between two autosaves loses nothing.

The journal lives beside the sidecar (``<sidecar>.journal``). Saving the
sidecar empties it. On the next open, :func:`pending_entries` finds what was
not saved and :func:`recover` replays it onto the restored document.

Record layout: ``b"CVJ1"`` + 8-byte little-endian length + payload + CRC32.
The payload is an ``.npz`` (read with ``allow_pickle=False``) holding a JSON
header (as ``uint8``) and the arrays of the edit's label patches. A torn last
record (the process died while writing it) is ignored, and cut off before the
next record is appended (otherwise everything after it would be unreachable).

Every record carries a unique ``id``; a sidecar stores the id of the last record
it covers (``journal_last``), so records that a crash left in the journal after
they were already saved are not replayed twice. Records are validated on read:
a hostile or corrupt journal yields the intact prefix, never an exception.

Edits log through :meth:`Journal.log`, which never raises: when a record cannot be
written (disk full, read-only) the edit stays applied, ``on_error`` is told once, and
the journal is suspended until a save holds every edit it skipped (a replay must
never jump over an edit). Besides cell edits, document flags are logged (``reviewed``,
``um_per_px``, the ``border_rule``). Records the user declined to recover are kept aside
(:meth:`Journal.set_aside`: ``<journal>.declined-<time>``), never deleted.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import threading
import time
import uuid
import zipfile
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from cellviewer.core.atomic import atomic_write_bytes
from cellviewer.core.countframe import BORDER_RULES
from cellviewer.core.document import CELL_CLASSES, Document, EditRecord, Marker
from cellviewer.core.edits import Edit, FlagChange, LabelPatch, MarkerChange
from cellviewer.core.errors import SaveError

MAGIC = b"CVJ1"
SUFFIX = ".journal"
KINDS = ("apply", "revert", "barrier")  # barrier: the document was replaced (see Journal.barrier)
# FlagChange attributes a record may set (border_rule: also one of core.countframe.BORDER_RULES)
FLAGS = {"reviewed": (bool,), "um_per_px": (type(None), int, float), "border_rule": (str,)}
DECLINED = ".declined-"  # a journal whose recovery the user declined is kept as <journal>.declined-<time>
# what decoding a hostile payload may raise (besides ValueError, which validation raises)
_DECODE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, OSError, EOFError, zipfile.BadZipFile,
                  RecursionError, MemoryError, OverflowError, NotImplementedError, RuntimeError)


def journal_path(sidecar_file) -> Path:
    p = Path(sidecar_file)
    return p.with_name(p.name + SUFFIX)


def encode(kind: str, edit: Edit, rid: str | None = None) -> bytes:
    atoms, arrays = [], {}
    for i, a in enumerate(edit.atoms):
        if isinstance(a, LabelPatch):
            atoms.append({"t": "label", "layer": a.layer, "bbox": list(a.bbox)})
            for k in ("rows", "cols", "old", "new"):
                arrays[f"a{i}_{k}"] = getattr(a, k)
        elif isinstance(a, MarkerChange):
            atoms.append({"t": "marker", "old": a.old and asdict(a.old), "new": a.new and asdict(a.new)})
        elif isinstance(a, FlagChange):
            atoms.append({"t": "flag", "attr": a.attr, "old": a.old, "new": a.new})
    head = {"kind": kind, "name": edit.name, "record": edit.record and asdict(edit.record), "atoms": atoms,
            "id": rid}
    arrays["head"] = np.frombuffer(json.dumps(head).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    payload = buf.getvalue()
    return MAGIC + struct.pack("<Q", len(payload)) + payload + struct.pack("<I", zlib.crc32(payload))


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"invalid journal record: {what}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _marker(d) -> Marker | None:
    if d is None:
        return None
    _need(isinstance(d, dict) and set(d) <= set(Marker.__dataclass_fields__), "marker fields")
    m = Marker(**d)
    _need(_is_int(m.id) and m.cls in CELL_CLASSES and _is_num(m.x) and _is_num(m.y) and _is_int(m.cell)
          and m.cell >= 0 and _is_num(m.score) and isinstance(m.origin, str) and isinstance(m.reviewed, bool)
          and isinstance(m.morph, str) and _is_num(m.morph_p),
          "marker values")
    return m


def _bbox(b) -> tuple:
    _need(isinstance(b, list) and len(b) == 4 and all(_is_int(v) and v >= 0 for v in b)
          and b[0] <= b[2] and b[1] <= b[3], "bbox")
    return tuple(b)


def _record(rec) -> EditRecord | None:
    if rec is None:
        return None
    _need(isinstance(rec, dict) and set(rec) <= set(EditRecord.__dataclass_fields__), "audit record fields")
    rec = dict(rec)
    if rec.get("bbox") is not None:
        _need(isinstance(rec["bbox"], list) and len(rec["bbox"]) == 4 and all(_is_int(v) for v in rec["bbox"]),
              "audit bbox")
        rec["bbox"] = tuple(rec["bbox"])
    r = EditRecord(**rec)
    _need(all(isinstance(getattr(r, k), str) for k in ("action", "time", "user", "detail"))
          and (r.cls is None or isinstance(r.cls, str)), "audit record values")
    return r


def _decode(payload: bytes) -> tuple[str, Edit, str | None]:
    """(kind, edit, record id); raises on anything malformed (see :data:`_DECODE_ERRORS`)."""
    with np.load(io.BytesIO(payload), allow_pickle=False) as z:
        head = json.loads(bytes(z["head"]).decode())
        _need(isinstance(head, dict) and head.get("kind") in KINDS and isinstance(head.get("name"), str)
              and isinstance(head.get("atoms"), list), "head")
        rid = head.get("id")
        _need(rid is None or isinstance(rid, str), "id")
        atoms = []
        for i, a in enumerate(head["atoms"]):
            _need(isinstance(a, dict), "atom")
            if a.get("t") == "label":
                _need(a.get("layer") in CELL_CLASSES + ("parts",), "layer")
                y0, x0, y1, x1 = box = _bbox(a.get("bbox"))
                rows, cols, old, new = (z[f"a{i}_{k}"] for k in ("rows", "cols", "old", "new"))
                _need(all(v.ndim == 1 and v.dtype.kind in "iu" and len(v) == len(rows) for v in (rows, cols, old, new))
                      and (not len(rows) or (rows.min() >= 0 and cols.min() >= 0 and rows.max() < y1 - y0
                                             and cols.max() < x1 - x0)), "label patch arrays")
                atoms.append(LabelPatch(a["layer"], box, rows, cols, old, new))
            elif a.get("t") == "marker":
                atoms.append(MarkerChange(_marker(a.get("old")), _marker(a.get("new"))))
            elif a.get("t") == "flag":
                types = FLAGS.get(a.get("attr"))
                _need(types is not None and isinstance(a.get("old"), types) and isinstance(a.get("new"), types),
                      "flag")
                _need(a["attr"] != "border_rule" or {a["old"], a["new"]} <= set(BORDER_RULES), "border rule")
                atoms.append(FlagChange(a["attr"], a["old"], a["new"]))
            else:
                _need(False, "atom type")
        return head["kind"], Edit(head["name"], atoms, _record(head.get("record"))), rid


def decode(payload: bytes) -> tuple[str, Edit]:
    kind, edit, _ = _decode(payload)
    return kind, edit


def _parse(data: bytes) -> tuple[list[tuple[str, Edit, str | None]], int]:
    """Every complete, intact, valid record from the start; and where that prefix ends."""
    out, pos = [], 0
    while pos + 12 <= len(data) and data[pos : pos + 4] == MAGIC:
        (n,) = struct.unpack("<Q", data[pos + 4 : pos + 12])
        end = pos + 12 + n + 4
        if end > len(data):
            break
        payload = data[pos + 12 : pos + 12 + n]
        (crc,) = struct.unpack("<I", data[end - 4 : end])
        if zlib.crc32(payload) != crc:
            break
        try:
            out.append(_decode(payload))
        except _DECODE_ERRORS:
            break
        pos = end
    return out, pos


class Journal:
    """Append-only log attached to a document (``doc.journal``)."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._checked = False  # the file's tail was checked (torn records cut) and _last_id read
        self._last_id: str | None = None  # id of the last record in the file
        self.suspended = False  # a record failed: nothing is logged until a save covers everything
        self.skipped = 0  # records not written because the journal was suspended
        self.on_error: Callable[[SaveError], None] | None = None  # told when logging fails (see log)

    def _check(self) -> None:
        """Once, under the lock: cut a torn/corrupt tail (left by a crash) so that new records
        stay reachable, and learn the id of the last intact record."""
        if self._checked:
            return
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        entries, end = _parse(data)
        if end < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        self._last_id = entries[-1][2] if entries else None
        self._checked = True

    def record(self, kind: str, edit: Edit) -> None:
        """Append one record and fsync it. Raises :class:`SaveError` (the file is left as it was)."""
        rid = uuid.uuid4().hex
        data = encode(kind, edit, rid)
        with self._lock:
            try:
                self._check()
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as e:
                raise SaveError(f"Cannot log the edit to '{self.path}': {e.strerror or e}",
                                hint="free some disk space or check the folder's permissions; save soon") from e
            try:
                start = os.lseek(fd, 0, os.SEEK_END)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                except OSError as e:
                    try:  # no torn record: later records must stay readable
                        os.ftruncate(fd, start)
                    except OSError:
                        pass
                    raise SaveError(f"Cannot log the edit to '{self.path}': {e.strerror or e}",
                                    hint="free some disk space; the edit is kept in memory, save soon") from e
            finally:
                os.close(fd)
            self._last_id = rid

    def log(self, kind: str, edit: Edit) -> None:
        """:meth:`record` that never raises: the edit stays applied in memory (the autosave keeps
        it). A failure (disk full, read-only folder) suspends the journal — a replay must never
        skip an edit in the middle — until a save covers every skipped edit (:meth:`resume`), and
        is passed to :attr:`on_error` once per suspension."""
        with self._lock:
            if self.suspended:
                self.skipped += 1
                return
        try:
            self.record(kind, edit)
        except SaveError as e:
            with self._lock:
                self.suspended = True
                self.skipped += 1
            if self.on_error is not None:
                self.on_error(e)

    def barrier(self) -> None:
        """The whole document was replaced by something not journaled (a segmentation result, its
        undo/redo) and a save of it is on its way: records after this one apply to that new state, so
        a recovery from an older sidecar stops here (:func:`read_entries`). Never raises (:meth:`log`)."""
        self.log("barrier", Edit("replaced", []))

    def resume(self, skipped: int) -> None:
        """A save that holds everything up to a snapshot taken when :attr:`skipped` was ``skipped``
        went through: log again, unless more edits were skipped since."""
        with self._lock:
            if self.suspended and self.skipped == skipped:
                self.suspended = False

    def mark(self) -> int:
        """The journal's current length: what a snapshot taken now covers."""
        return self.position()[0]

    def position(self) -> tuple[int, str | None]:
        """(length, id of the last record): what a snapshot taken now covers."""
        with self._lock:
            try:
                self._check()
            except OSError:
                pass
            try:
                return self.path.stat().st_size, self._last_id
            except FileNotFoundError:
                return 0, None

    def drop_until(self, mark: int) -> None:
        """Forget the first ``mark`` bytes (they are saved in the sidecar now)."""
        with self._lock:
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                return
            rest = data[mark:]
            if not rest:
                os.unlink(self.path)
                return
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(rest)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)

    def move_to(self, path) -> None:
        """Continue in ``path`` (beside a sidecar that was saved elsewhere, e.g. in the user store):
        the records not yet saved move along, replacing whatever stale journal was there."""
        path = Path(path)
        with self._lock:
            if path == self.path:
                return
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                data = b""
            path.parent.mkdir(parents=True, exist_ok=True)
            if data:
                atomic_write_bytes(path, data)
            else:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = path

    def set_aside(self) -> Path | None:
        """Keep the records (the user declined to recover them) as ``<journal>.declined-<YYYYmmdd-HHMMSS>``
        instead of deleting them, and start afresh; where they went (None: no journal, or the rename failed)."""
        with self._lock:
            self._last_id, self._checked = None, False
            base, n = f"{self.path.name}{DECLINED}{time.strftime('%Y%m%d-%H%M%S')}", 1
            dst = self.path.with_name(base)
            while dst.exists():
                n += 1
                dst = self.path.with_name(f"{base}-{n}")
            try:
                os.rename(self.path, dst)  # (a file of that name made since the check: the rename replaces it)
            except OSError:
                return None
            return dst

    def clear(self) -> None:
        with self._lock:
            self._last_id = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def read_entries(path, after: str | None = None) -> list[tuple[str, Edit]]:
    """Every complete, intact record; stops at the first torn or corrupt one. With ``after``
    (a sidecar's ``journal_last``), only the records written after that one (when present)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    entries, _ = _parse(data)
    ids = [rid for _, _, rid in entries]
    if after is not None and after in ids:
        entries = entries[ids.index(after) + 1 :]
    kinds = [kind for kind, _, _ in entries]
    if "barrier" in kinds:  # the save that held the replaced document never landed: nothing after applies
        entries = entries[: kinds.index("barrier")]
    return [(kind, edit) for kind, edit, _ in entries]


def _fits(doc: Document, edit: Edit) -> bool:
    """Every patch and every new marker lies inside ``doc``'s image."""
    h, w = doc.shape
    for a in edit.atoms:
        if isinstance(a, LabelPatch) and not (a.bbox[2] <= h and a.bbox[3] <= w):
            return False
        if isinstance(a, MarkerChange) and any(m is not None and not (0 <= m.x < w and 0 <= m.y < h)
                                               for m in (a.old, a.new)):
            return False
    return True


def recover(doc: Document, entries: list[tuple[str, Edit]]) -> int:
    """Replay journal entries onto ``doc``; returns how many were replayed."""
    n = 0
    for kind, edit in entries:
        if kind == "barrier" or not _fits(doc, edit):
            break  # recorded on another image size: stop before changing anything
        try:
            if kind == "apply":
                edit.apply(doc)
            else:
                edit.applied = True
                edit.revert(doc)
        except (IndexError, KeyError, ValueError, TypeError):
            break  # the document does not match the journal any more: stop, keep what fits
        n += 1
    return n
