"""Edit journal: every applied/undone edit is appended (and fsync'ed) at once, so
a crash between two autosaves loses nothing.

The journal lives beside the sidecar (``<sidecar>.journal``). Saving the
sidecar empties it. On the next open, :func:`pending_entries` finds what was
not saved and :func:`recover` replays it onto the restored document.

Record layout: ``b"CVJ1"`` + 8-byte little-endian length + payload + CRC32.
The payload is an ``.npz`` (read with ``allow_pickle=False``) holding a JSON
header (as ``uint8``) and the arrays of the edit's label patches. A torn last
record (the process died while writing it) is ignored.
"""

from __future__ import annotations

import io
import json
import os
import struct
import threading
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from cellviewer.core.document import Document, EditRecord, Marker
from cellviewer.core.edits import Edit, FlagChange, LabelPatch, MarkerChange

MAGIC = b"CVJ1"
SUFFIX = ".journal"


def journal_path(sidecar_file) -> Path:
    p = Path(sidecar_file)
    return p.with_name(p.name + SUFFIX)


def encode(kind: str, edit: Edit) -> bytes:
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
    head = {"kind": kind, "name": edit.name, "record": edit.record and asdict(edit.record), "atoms": atoms}
    arrays["head"] = np.frombuffer(json.dumps(head).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    payload = buf.getvalue()
    return MAGIC + struct.pack("<Q", len(payload)) + payload + struct.pack("<I", zlib.crc32(payload))


def decode(payload: bytes) -> tuple[str, Edit]:
    with np.load(io.BytesIO(payload), allow_pickle=False) as z:
        head = json.loads(bytes(z["head"]).decode())
        atoms = []
        for i, a in enumerate(head["atoms"]):
            if a["t"] == "label":
                atoms.append(LabelPatch(a["layer"], tuple(a["bbox"]), z[f"a{i}_rows"], z[f"a{i}_cols"],
                                        z[f"a{i}_old"], z[f"a{i}_new"]))
            elif a["t"] == "marker":
                atoms.append(MarkerChange(a["old"] and Marker(**a["old"]), a["new"] and Marker(**a["new"])))
            elif a["t"] == "flag":
                atoms.append(FlagChange(a["attr"], a["old"], a["new"]))
    rec = head.get("record")
    if rec and rec.get("bbox") is not None:
        rec["bbox"] = tuple(rec["bbox"])
    return head["kind"], Edit(head["name"], atoms, EditRecord(**rec) if rec else None)


class Journal:
    """Append-only log attached to a document (``doc.journal``)."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, kind: str, edit: Edit) -> None:
        data = encode(kind, edit)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)

    def mark(self) -> int:
        """The journal's current length: what a snapshot taken now covers."""
        with self._lock:
            try:
                return self.path.stat().st_size
            except FileNotFoundError:
                return 0

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

    def clear(self) -> None:
        with self._lock:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def read_entries(path) -> list[tuple[str, Edit]]:
    """Every complete, intact record; stops at the first torn or corrupt one."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
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
            out.append(decode(payload))
        except (ValueError, KeyError, TypeError, OSError, json.JSONDecodeError):
            break
        pos = end
    return out


def recover(doc: Document, entries: list[tuple[str, Edit]]) -> int:
    """Replay journal entries onto ``doc``; returns how many were replayed."""
    n = 0
    for kind, edit in entries:
        try:
            if kind == "apply":
                edit.apply(doc)
            else:
                edit.applied = True
                edit.revert(doc)
        except (IndexError, KeyError, ValueError):
            break  # the document does not match the journal any more: stop, keep what fits
        n += 1
    return n
