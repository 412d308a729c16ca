"""Robustness contracts: what every reader of untrusted bytes promises.

Shared by ``tests/hostile`` and ``python -m cellviewer.core.fuzz``; needs no test
dependency.

* Contracts — what every reader promises on *any* input:
  :func:`check_image` (``read_image`` returns a well-formed ``uint8`` H×W×3 image or raises
  ``ImageReadError``), :func:`check_sidecar` (``read_sidecar`` + ``apply_sidecar`` give a
  consistent document or raise ``SidecarError`` naming the file and what to do),
  :func:`check_journal` (``read_entries`` never raises; ``recover`` never raises).
  Each returns an :class:`Outcome`: ``ok``, ``refused`` (the documented error) or
  ``crash`` (anything else, with the traceback).
* :func:`state_hash` — a digest of everything a sidecar saves (labels, parts, markers,
  provenance, flags), equal for a document and the same state reloaded.

The crash (SIGKILL) harness that uses these is :mod:`cellviewer.core.killcycles`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cellviewer.core.document import CELL_CLASSES, PART_NAMES, Document, EditRecord, ImageData, ImageInfo, Marker

CRASH, REFUSED, OK = "crash", "refused", "ok"


@dataclass
class Outcome:
    status: str  # OK | REFUSED | CRASH
    detail: str = ""
    seconds: float = 0.0
    value: object = None  # the ImageData / Document / entries on success

    @property
    def crashed(self) -> bool:
        return self.status == CRASH


def _tb(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


# -- contracts ---------------------------------------------------------------------------------
def image_problems(img) -> list[str]:
    """What is wrong with a ``read_image`` result (empty when it is well formed)."""
    if not isinstance(img, ImageData):
        return [f"read_image returned {type(img).__name__}, not ImageData"]
    px, info, out = img.pixels, img.info, []
    if not isinstance(px, np.ndarray) or px.dtype != np.uint8 or px.ndim != 3 or px.shape[2] != 3:
        out.append(f"pixels are {getattr(px, 'dtype', type(px))} {getattr(px, 'shape', '')}, not uint8 H×W×3")
    elif not px.flags.c_contiguous:
        out.append("pixels are not C-contiguous")
    elif min(px.shape[:2]) < 1:
        out.append(f"empty image {px.shape}")
    elif (info.width, info.height) != (px.shape[1], px.shape[0]):
        out.append(f"info says {info.width}×{info.height}, pixels are {px.shape[1]}×{px.shape[0]}")
    if not isinstance(info.sha256, str) or len(info.sha256) != 64:
        out.append("sha256 missing")
    return out


def _refused(e, path, t0: float) -> "Outcome":
    """A cellviewer error is a clean refusal only if its message names the file and says what to do."""
    msg = str(e)
    bad = "" if (str(path) in msg and e.hint) else "message does not name the file or say what to do: "
    return Outcome(CRASH if bad else REFUSED, bad + msg, time.perf_counter() - t0)


def check_image(path) -> Outcome:
    """``read_image(path)``: a well-formed image, or ``ImageReadError``; anything else is a crash."""
    from cellviewer.core.errors import ImageReadError
    from cellviewer.core.io import read_image

    t0 = time.perf_counter()
    try:
        img = read_image(path)
    except ImageReadError as e:
        return _refused(e, path, t0)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - that is the point: nothing else may escape
        return Outcome(CRASH, _tb(e), time.perf_counter() - t0)
    problems = image_problems(img)
    return Outcome(CRASH if problems else OK, "; ".join(problems), time.perf_counter() - t0, img)


def blank_document(h: int, w: int, path: str | None = None) -> Document:
    return Document(ImageData(np.zeros((h, w, 3), np.uint8), ImageInfo(path, w, h, sha256="")))


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def document_problems(doc: Document) -> list[str]:
    """What makes ``doc`` inconsistent (empty when every invariant the app relies on holds)."""
    h, w = doc.shape
    out = []
    if set(doc.labels) != set(CELL_CLASSES):
        out.append(f"label classes {sorted(doc.labels)}")
    for c, lab in doc.labels.items():
        if not isinstance(lab, np.ndarray) or lab.dtype != np.int32 or lab.shape != (h, w):
            out.append(f"{c} labels are {getattr(lab, 'dtype', type(lab))} {getattr(lab, 'shape', '')}")
        elif lab.size and lab.min() < 0:
            out.append(f"{c} labels negative")
    p = doc.parts
    if not isinstance(p, np.ndarray) or p.dtype != np.uint8 or p.shape != (h, w):
        out.append(f"parts are {getattr(p, 'dtype', type(p))} {getattr(p, 'shape', '')}")
    elif p.size and p.max() > max(PART_NAMES):
        out.append("parts value out of range")
    for k, m in doc.markers.items():
        if not isinstance(m, Marker) or k != m.id or not isinstance(m.id, int):
            out.append(f"marker key {k!r} -> {m!r}")
            continue
        if m.cls not in CELL_CLASSES or not (_finite(m.x) and _finite(m.y) and 0 <= m.x < w and 0 <= m.y < h):
            out.append(f"marker {m.id} class/position {m.cls!r} {m.x!r},{m.y!r}")
        if not (isinstance(m.cell, int) and m.cell >= 0 and _finite(m.score) and isinstance(m.origin, str)
                and isinstance(m.reviewed, bool)):
            out.append(f"marker {m.id} fields {m!r}")
    pv = doc.provenance
    if not isinstance(pv.edits, list) or not all(isinstance(e, EditRecord) for e in pv.edits):
        out.append("provenance edits are not EditRecords")
    else:
        for e in pv.edits:
            if not (isinstance(e.action, str) and (e.cls is None or isinstance(e.cls, str))
                    and (e.bbox is None or (isinstance(e.bbox, tuple) and len(e.bbox) == 4
                                            and all(isinstance(v, int) for v in e.bbox)))):
                out.append(f"edit record {e!r}")
    if not isinstance(pv.params, dict):
        out.append("params is not a dict")
    if doc.um_per_px is not None and not (_finite(doc.um_per_px) and doc.um_per_px > 0):
        out.append(f"um_per_px {doc.um_per_px!r}")
    if not isinstance(doc.reviewed, bool):
        out.append(f"reviewed {doc.reviewed!r}")
    return out


def check_sidecar(path, shape: tuple[int, int]) -> Outcome:
    """``read_sidecar`` + ``apply_sidecar`` onto an image of ``shape``: a consistent document, or a
    ``SidecarError`` naming the file and saying what to do; anything else is a crash."""
    from cellviewer.core.errors import SidecarError
    from cellviewer.core.sidecar import apply_sidecar, read_sidecar

    t0 = time.perf_counter()
    doc = blank_document(*shape, path=str(Path(path).with_suffix("")))
    try:
        meta, arrays = read_sidecar(path)
        warnings = apply_sidecar(doc, meta, arrays, path)
    except SidecarError as e:
        return _refused(e, path, t0)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001
        return Outcome(CRASH, _tb(e), time.perf_counter() - t0)
    problems = document_problems(doc)
    if not isinstance(warnings, list) or not all(isinstance(x, str) for x in warnings):
        problems.append(f"warnings {warnings!r}")
    return Outcome(CRASH if problems else OK, "; ".join(problems), time.perf_counter() - t0, doc)


def check_journal(path, shape: tuple[int, int] = (20, 30)) -> Outcome:
    """``read_entries`` never raises and yields (kind, Edit) pairs; ``recover`` onto a blank
    document of ``shape`` never raises and leaves it consistent."""
    from cellviewer.core.edits import Edit
    from cellviewer.core.journal import read_entries, recover

    t0 = time.perf_counter()
    try:
        entries = read_entries(path)
        bad = [e for e in entries if not (isinstance(e, tuple) and len(e) == 2 and e[0] in ("apply", "revert")
                                          and isinstance(e[1], Edit))]
        if bad:
            return Outcome(CRASH, f"malformed entries {bad[:3]!r}", time.perf_counter() - t0)
        doc = blank_document(*shape)
        n = recover(doc, entries)
        problems = document_problems(doc)
        if not (isinstance(n, int) and 0 <= n <= len(entries)):
            problems.append(f"recover returned {n!r}")
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001
        return Outcome(CRASH, _tb(e), time.perf_counter() - t0)
    return Outcome(CRASH if problems else OK, "; ".join(problems), time.perf_counter() - t0, entries)


# -- state hashing ------------------------------------------------------------------------------
def state_hash(doc: Document) -> str:
    """sha1 of everything a sidecar holds, in a canonical form (dtypes, order and tuples normalised)."""
    h = hashlib.sha1()
    for c in CELL_CLASSES:
        h.update(np.ascontiguousarray(doc.labels[c], np.int32))
    h.update(np.ascontiguousarray(doc.parts, np.uint8))
    meta = {"markers": [asdict(doc.markers[k]) for k in sorted(doc.markers)],
            "edits": [asdict(e) for e in doc.provenance.edits], "reviewed": bool(doc.reviewed),
            "um_per_px": doc.um_per_px}
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]
