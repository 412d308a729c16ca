"""Journal records as bytes and back (see :mod:`cellviewer.core.journal`).

Record layout: ``b"CVJ1"`` + 8-byte little-endian length + payload + CRC32.
The payload is an ``.npz`` (read with ``allow_pickle=False``) holding a JSON
header (as ``uint8``: kind, edit name, audit record, atoms, the record's ``id`` and the
edit's ``edit`` id — absent in older journals) and the arrays of the edit's label patches. Records are
validated on read: :func:`_parse` of a hostile or corrupt journal yields the
intact prefix, never an exception.
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile
import zlib
from dataclasses import asdict

import numpy as np

from cellviewer.core.countframe import BORDER_RULES
from cellviewer.core.document import CELL_CLASSES, EditRecord, Marker
from cellviewer.core.edits import Edit, FlagChange, LabelPatch, MarkerChange, ParamChange

MAGIC = b"CVJ1"
KINDS = ("apply", "revert", "barrier")  # barrier: the document was replaced (see Journal.barrier)
# FlagChange attributes a record may set (border_rule: also one of core.countframe.BORDER_RULES)
FLAGS = {"reviewed": (bool,), "um_per_px": (type(None), int, float), "border_rule": (str,)}
# provenance params a record may set (ParamChange; None = absent)
PARAMS = {"morphology": (type(None), str)}
# what decoding a hostile payload may raise (besides ValueError, which validation raises)
_DECODE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, OSError, EOFError, zipfile.BadZipFile,
                  RecursionError, MemoryError, OverflowError, NotImplementedError, RuntimeError)


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
        elif isinstance(a, ParamChange):
            atoms.append({"t": "param", "key": a.key, "old": a.old, "new": a.new})
    head = {"kind": kind, "name": edit.name, "record": edit.record and asdict(edit.record), "atoms": atoms,
            "id": rid, "edit": edit.uid}
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
        rid, uid = head.get("id"), head.get("edit")
        _need((rid is None or isinstance(rid, str)) and (uid is None or isinstance(uid, str)), "id")
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
            elif a.get("t") == "param":
                types = PARAMS.get(a.get("key"))
                _need(types is not None and isinstance(a.get("old"), types) and isinstance(a.get("new"), types),
                      "param")
                atoms.append(ParamChange(a["key"], a["old"], a["new"]))
            else:
                _need(False, "atom type")
        return head["kind"], Edit(head["name"], atoms, _record(head.get("record")), uid=uid), rid


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
