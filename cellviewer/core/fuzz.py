"""The long robustness run: hostile corpus, mutation fuzzing and SIGKILL cycles.

    python -m cellviewer.core.fuzz --examples 10000 --kill-cycles 100

A plain random-mutation fuzzer (numpy's ``Generator``; no test dependency) for the
three readers of untrusted bytes — images (``read_image``), sidecars
(``read_sidecar`` + ``apply_sidecar``) and the edit journal (``read_entries`` +
``recover``) — checked against the contracts in :mod:`cellviewer.core.robustness`.
Prints the kinds of bad input tried, the cases run per target, the crashes
(unexpected exception types, malformed results or hangs; reproducers are saved under
``--out``) and the kill cycles survived. Exit status 0 only when nothing failed.

When run from the repository root the generated corpus of ``tests/hostile/corpus.py``
is checked as well (each case against its documented outcome).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import struct
import sys
import tempfile
import time
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from cellviewer.core.robustness import CRASH, OK, REFUSED, Outcome, check_image, check_journal, check_sidecar

SIDE_H, SIDE_W = 20, 30
INTERESTING = [0, 1, 2, 7, 8, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 100_001, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF]


# -- seeds ---------------------------------------------------------------------------------------
def _smear(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = np.full((h, w, 3), (236, 228, 232), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for _ in range(3):
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 30] = (205, 120, 135)
    return img


def image_seeds(rng: np.random.Generator) -> dict[str, bytes]:
    """Small valid files of many flavours: the material the image mutators start from."""
    import cv2
    import tifffile
    from PIL import Image

    px = _smear(24, 32, rng)

    def pil(arr_or_im, fmt, **kw) -> bytes:
        im = arr_or_im if isinstance(arr_or_im, Image.Image) else Image.fromarray(arr_or_im)
        b = io.BytesIO()
        im.save(b, format=fmt, **kw)
        return b.getvalue()

    def tif(arr, **kw) -> bytes:
        b = io.BytesIO()
        tifffile.imwrite(b, arr, **kw)
        return b.getvalue()

    pal = Image.fromarray(px).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    return {
        "png": pil(px, "PNG"), "png_pal_trns.png": pil(pal, "PNG", transparency=0),
        "png_la.png": pil(Image.fromarray(px).convert("LA"), "PNG"),
        "png16.png": cv2.imencode(".png", px.astype(np.uint16) * 257)[1].tobytes(),
        "jpg": pil(px, "JPEG", quality=80), "prog.jpg": pil(px, "JPEG", progressive=True),
        "cmyk.jpg": pil(Image.fromarray(px).convert("CMYK"), "JPEG"), "bmp": pil(px, "BMP"),
        "pal.bmp": pil(pal, "BMP"), "tif": tif(px), "gray16.tif": tif(px[..., 0].astype(np.uint16) * 257),
        "f32.tif": tif(px[..., 1].astype(np.float32) / 255), "tiled.tif": tif(_smear(32, 32, rng), tile=(16, 16)),
        "zlib.tif": tif(px, compression="zlib"), "be.tif": tif(px, byteorder=">"),
        "planar.tif": tif(np.moveaxis(px, -1, 0), planarconfig="separate", photometric="rgb"),
        "multi.tif": tif(np.stack([px, px])), "big.tif": tif(px, bigtiff=True),
        "pil.tif": pil(px, "TIFF", compression="tiff_lzw"),
    }


# -- byte mutators ---------------------------------------------------------------------------------
def _flip(rng, b: bytearray) -> bytearray:
    for _ in range(int(rng.integers(1, 17))):
        if b:
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
    return b


def _bitflip(rng, b: bytearray) -> bytearray:
    if b:
        i = int(rng.integers(len(b)))
        b[i] ^= 1 << int(rng.integers(8))
    return b


def _truncate(rng, b: bytearray) -> bytearray:
    return b[: int(rng.integers(0, len(b) + 1))]


def _run(rng, b: bytearray) -> bytearray:
    if b:
        i = int(rng.integers(len(b)))
        n = int(rng.integers(1, 64))
        b[i : i + n] = bytes([int(rng.choice([0, 0xFF]))]) * len(b[i : i + n])
    return b


def _insert(rng, b: bytearray) -> bytearray:
    i = int(rng.integers(len(b) + 1))
    b[i:i] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    return b


def _duplicate(rng, b: bytearray) -> bytearray:
    if b:
        i = int(rng.integers(len(b)))
        j = min(len(b), i + int(rng.integers(1, 256)))
        k = int(rng.integers(len(b) + 1))
        b[k:k] = b[i:j]
    return b


def _header_int(rng, b: bytearray) -> bytearray:
    """An 'interesting' integer (0, 65535, 2^31 ...) over a header field (first 256 bytes)."""
    if len(b) >= 4:
        i = int(rng.integers(0, max(1, min(len(b), 256) - 3)))
        v = int(rng.choice(INTERESTING))
        fmt = str(rng.choice(["<I", ">I", "<H", ">H"]))
        size = struct.calcsize(fmt)
        b[i : i + size] = struct.pack(fmt, v & (0xFFFFFFFF if size == 4 else 0xFFFF))
    return b


def _random_bytes(rng, b: bytearray) -> bytearray:
    return bytearray(rng.integers(0, 256, int(rng.integers(0, 2048)), dtype=np.uint8).tobytes())


def _magic_garbage(rng, b: bytearray) -> bytearray:
    """A real file's first 8-32 bytes followed by garbage."""
    keep = int(rng.integers(8, 33))
    return b[:keep] + bytearray(rng.integers(0, 256, int(rng.integers(0, 1024)), dtype=np.uint8).tobytes())


BYTE_MUTATORS = {"byte flips": _flip, "bit flip": _bitflip, "truncation": _truncate, "zero/0xFF run": _run,
                 "random insertion": _insert, "chunk duplication": _duplicate,
                 "interesting integer in the header": _header_int, "pure random bytes": _random_bytes,
                 "valid magic then garbage": _magic_garbage}


def mutate_bytes(rng, data: bytes, names=None) -> tuple[bytes, list[str]]:
    names = names or list(BYTE_MUTATORS)
    used = [str(rng.choice(names)) for _ in range(int(rng.integers(1, 4)))]
    b = bytearray(data)
    for n in used:
        b = BYTE_MUTATORS[n](rng, b)
    return bytes(b), used


# -- JSON / array values ----------------------------------------------------------------------------
def random_json(rng, depth: int = 0):
    r = int(rng.integers(0, 12 if depth < 3 else 8))
    if r == 0:
        return None
    if r == 1:
        return bool(rng.integers(2))
    if r == 2:
        return int(rng.choice([0, -1, 1, 7, 2**31, -(2**63), 10**30, int(rng.integers(-1000, 1000))]))
    if r == 3:
        return float(rng.choice([float("nan"), float("inf"), float("-inf"), -0.0, 1e308, 0.5, float(rng.normal())]))
    if r in (4, 5):
        return str(rng.choice(["", "rbc", "wbc", "platelet", "auto", "manual", "1", "x" * 300, "\u00e9\u2603\U0001f600",
                               "\x00", "NaN", "../../etc/passwd"]))
    if r == 6:
        return [float(rng.uniform(-5, 40)) for _ in range(int(rng.integers(0, 6)))]
    if r == 7:
        return [int(v) for v in rng.integers(-3, 40, int(rng.integers(0, 6)))]
    if r in (8, 9):
        return [random_json(rng, depth + 1) for _ in range(int(rng.integers(0, 4)))]
    return {str(rng.choice(["id", "cls", "x", "y", "cell", "bbox", "a", "edits"])): random_json(rng, depth + 1)
            for _ in range(int(rng.integers(0, 4)))}


def _paths(obj, prefix=()):
    """Every (path) to a value inside a JSON document."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def mutate_json(rng, doc):
    """Replace, delete or add one value somewhere in a JSON document (a copy)."""
    doc = json.loads(json.dumps(doc))
    paths = [p for p in _paths(doc) if p]
    if not paths:
        return random_json(rng)
    path = paths[int(rng.integers(len(paths)))]
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    op = int(rng.integers(3))
    if op == 0 or not isinstance(parent, dict):
        parent[path[-1]] = random_json(rng)
    elif op == 1:
        del parent[path[-1]]
    else:
        parent[str(rng.choice(["extra", "id", "bbox", "format_version"]))] = random_json(rng)
    return doc


DTYPES = ["u1", "u2", "i4", "i8", "u8", "f4", "f8", "?", "c8", ">i4", "<U3", "i4,i4", "O"]


def random_array(rng, shape=(SIDE_H, SIDE_W)) -> bytes:
    """An .npy member of a random dtype, shape and content (an object array needs pickle)."""
    dt = str(rng.choice(DTYPES))
    shapes = [shape, shape[::-1], (shape[0], shape[1], 3), (shape[0] * shape[1],), (), (0, 0), (3, 3),
              (shape[0] + 1, shape[1])]
    sh = shapes[int(rng.integers(len(shapes)))]
    if dt == "O":
        a = np.empty(sh, object)
        a[...] = 1
    else:
        a = np.zeros(sh, dt)
        if a.size and dt not in ("<U3", "i4,i4"):
            vals = rng.choice([0, 1, 2, 3, 255, 65535, 2**31 - 1, -1, -(2**31)], a.size)
            with np.errstate(all="ignore"):
                a[...] = vals.reshape(sh).astype(a.dtype, casting="unsafe") if dt != "?" else vals.reshape(sh) > 1
    b = io.BytesIO()
    np.save(b, a, allow_pickle=True)
    return b.getvalue()


# -- sidecars --------------------------------------------------------------------------------------
def valid_sidecar_parts(rng) -> tuple[dict, dict[str, bytes]]:
    h, w = SIDE_H, SIDE_W
    lab = np.zeros((h, w), np.uint16)
    lab[3:9, 4:10], lab[10:16, 15:22] = 1, 2
    wbc = np.zeros((h, w), np.uint16)
    wbc[12:18, 2:8] = 1
    parts = np.zeros((h, w), np.uint8)
    parts[12:18, 2:8] = 2
    parts[14:16, 4:6] = 1

    def npy(a):
        b = io.BytesIO()
        np.save(b, a, allow_pickle=False)
        return b.getvalue()

    meta = {"format": "cellviewer-sidecar", "format_version": 1, "app_version": "0.1", "saved_at": "2024-05-01",
            "image": {"name": "img.png", "width": w, "height": h, "sha256": ""}, "um_per_px": 0.12,
            "reviewed": False, "journal_last": None,
            "markers": [{"id": 1, "cls": "rbc", "x": 6.5, "y": 5.5, "origin": "auto", "cell": 1, "score": 0.9,
                         "reviewed": False},
                        {"id": 2, "cls": "rbc", "x": 18.0, "y": 13.0, "origin": "manual", "cell": 2, "score": 1.0,
                         "reviewed": True},
                        {"id": 3, "cls": "wbc", "x": 5.0, "y": 15.0, "origin": "auto", "cell": 1, "score": 0.7,
                         "reviewed": False}],
            "provenance": {"model_name": "classical", "model_version": "1", "params": {"d": 7.5},
                           "segmented_at": "2024-05-01", "device": "cpu",
                           "edits": [{"action": "Brush", "cls": "rbc", "bbox": [3, 4, 9, 10], "time": "t",
                                      "user": "u", "detail": "radius 3"}]}}
    return meta, {"labels/rbc.npy": npy(lab), "labels/wbc.npy": npy(wbc),
                  "labels/platelet.npy": npy(np.zeros((h, w), np.uint16)), "parts.npy": npy(parts)}


def zip_bytes(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", method) as z:
        for k, v in members.items():
            z.writestr(k, v)
    return b.getvalue()


SIDECAR_MUTATORS = ["JSON value replaced/deleted/added", "several JSON values", "JSON text bytes flipped",
                    "NaN/Infinity/deep nesting in JSON", "array of a random dtype/shape", "member removed",
                    "member of garbage bytes", "member truncated", "zip bytes mutated", "stored (uncompressed) zip",
                    "extra / duplicate members", "non-UTF-8 JSON"]


def mutate_sidecar(rng) -> tuple[bytes, list[str]]:
    meta, arrays = valid_sidecar_parts(rng)
    ops = [SIDECAR_MUTATORS[int(i)] for i in rng.integers(0, len(SIDECAR_MUTATORS), int(rng.integers(1, 4)))]
    text: bytes | None = None
    method = zipfile.ZIP_DEFLATED
    extra: dict[str, bytes] = {}
    post = False
    for op in ops:
        if op == "JSON value replaced/deleted/added":
            meta = mutate_json(rng, meta)
        elif op == "several JSON values":
            for _ in range(int(rng.integers(2, 6))):
                meta = mutate_json(rng, meta)
        elif op == "JSON text bytes flipped":
            text, _ = mutate_bytes(rng, json.dumps(meta).encode(), ["byte flips", "truncation", "bit flip"])
        elif op == "NaN/Infinity/deep nesting in JSON":
            s = json.dumps(meta)
            s = s.replace(str(rng.choice(['"x": 6.5', '"id": 1', '"width": 30', '"score": 0.9'])),
                          str(rng.choice(['"x": NaN', '"id": Infinity', '"width": -Infinity', '"score": 1e999',
                                          '"x": ' + "[" * 5000 + "]" * 5000])))
            text = s.encode()
        elif op == "array of a random dtype/shape":
            arrays[str(rng.choice(list(arrays)))] = random_array(rng)
        elif op == "member removed":
            arrays.pop(str(rng.choice(list(arrays))), None)
        elif op == "member of garbage bytes":
            arrays[str(rng.choice(list(arrays) or ["parts.npy"]))] = mutate_bytes(rng, b"\x93NUMPY" + bytes(64))[0]
        elif op == "member truncated" and arrays:
            k = str(rng.choice(list(arrays)))
            arrays[k] = arrays[k][: int(rng.integers(0, len(arrays[k])))]
        elif op == "zip bytes mutated":
            post = True
        elif op == "stored (uncompressed) zip":
            method = zipfile.ZIP_STORED
        elif op == "extra / duplicate members":
            extra[str(rng.choice(["labels/rbc.npy", "x/../../evil", "document.json", "labels/neutrophil.npy"]))] = \
                bytes(rng.integers(0, 256, 32, dtype=np.uint8))
        elif op == "non-UTF-8 JSON":
            text = json.dumps(meta, ensure_ascii=False).encode(str(rng.choice(["utf-16", "latin-1"])), "replace")
    members = {"document.json": text if text is not None else json.dumps(meta).encode(), **arrays}
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", method) as z:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate names are the point
            for k, v in list(members.items()) + list(extra.items()):
                z.writestr(k, v)
    data = b.getvalue()
    if post:
        data, _ = mutate_bytes(rng, data)
    return data, ops


# -- journals --------------------------------------------------------------------------------------
def valid_journal(rng) -> bytes:
    """A journal of real edits on a 20×30 document (label patches, markers, a flag, an undo)."""
    from cellviewer.core import journal, operations as ops
    from cellviewer.core.brush import BrushStroke
    from cellviewer.core.edits import History
    from cellviewer.core.robustness import blank_document

    doc = blank_document(SIDE_H, SIDE_W)
    doc.labels["rbc"][3:9, 4:10] = 1
    doc.labels["rbc"][10:16, 15:22] = 2
    h = History(doc)
    records = []

    class Rec:
        def record(self, kind, edit):
            records.append(journal.encode(kind, edit, f"id{len(records)}"))

        log = record

    doc.journal = Rec()
    s = BrushStroke(doc, "platelet", 2)
    s.dab(25, 3)
    s.line_to(27, 6)
    h.push(s.finish())
    h.push(ops.merge_cells(doc, "rbc", 1, 2))
    h.push(ops.add_marker(doc, "wbc", 12.5, 17.0))
    h.undo()
    h.push(ops.set_image_reviewed(doc, True))
    h.push(ops.delete_cell(doc, "rbc", 1))
    return b"".join(records)


JOURNAL_MUTATORS = ["bytes mutated (CRC intact)", "payload mutated, CRC recomputed",
                    "header JSON value replaced, CRC recomputed", "patch array replaced, CRC recomputed",
                    "record length field changed", "records reordered / duplicated"]


def _records(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 12 <= len(data):
        (n,) = struct.unpack("<Q", data[pos + 4 : pos + 12])
        out.append(data[pos + 12 : pos + 12 + n])
        pos += 16 + n
    return out


def _record(payload: bytes) -> bytes:
    return b"CVJ1" + struct.pack("<Q", len(payload)) + payload + struct.pack("<I", zlib.crc32(payload))


def mutate_journal(rng, data: bytes) -> tuple[bytes, str]:
    """(mutated journal, mutator). With "bytes mutated (CRC intact)" the result must be a prefix."""
    op = JOURNAL_MUTATORS[int(rng.integers(len(JOURNAL_MUTATORS)))]
    recs = _records(data)
    i = int(rng.integers(len(recs)))
    if op == "bytes mutated (CRC intact)":
        return mutate_bytes(rng, data)[0], op
    if op == "payload mutated, CRC recomputed":
        recs[i] = mutate_bytes(rng, recs[i], ["byte flips", "bit flip", "truncation", "zero/0xFF run"])[0]
    elif op in ("header JSON value replaced, CRC recomputed", "patch array replaced, CRC recomputed"):
        with np.load(io.BytesIO(recs[i]), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if op.startswith("header"):
            head = mutate_json(rng, json.loads(bytes(arrays["head"]).decode()))
            arrays["head"] = np.frombuffer(json.dumps(head).encode(), np.uint8)
        else:
            keys = [k for k in arrays if k != "head"] or ["a0_rows"]
            arrays[str(rng.choice(keys))] = np.load(io.BytesIO(random_array(rng, (4, 4))), allow_pickle=True)
        b = io.BytesIO()
        np.savez(b, **arrays)
        recs[i] = b.getvalue()
    elif op == "record length field changed":
        out = b"".join(_record(r) for r in recs)
        pos = sum(16 + len(r) for r in recs[:i])
        b = bytearray(out)
        b[pos + 4 : pos + 12] = struct.pack("<Q", int(rng.choice([0, 1, len(recs[i]) - 1, len(recs[i]) + 1, 2**40])))
        return bytes(b), op
    else:
        recs = [recs[int(j)] for j in rng.integers(0, len(recs), len(recs))]
    return b"".join(_record(r) for r in recs), op


# -- running ---------------------------------------------------------------------------------------
class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang("no result within the hard time limit")


class Target:
    def __init__(self, name: str, out: Path, keep: int = 5):
        self.name, self.out, self.keep = name, out, keep
        self.cases, self.crashes, self.slowest = 0, 0, 0.0
        self.status: Counter = Counter()
        self.first: list[str] = []

    def record(self, outcome: Outcome, data: bytes, suffix: str, how, deadline: float) -> None:
        self.cases += 1
        self.slowest = max(self.slowest, outcome.seconds)
        if outcome.status != CRASH and outcome.seconds > deadline:
            outcome = Outcome(CRASH, f"took {outcome.seconds:.1f} s (deadline {deadline:g} s)", outcome.seconds)
        self.status[outcome.status] += 1
        if outcome.status == CRASH:
            self.crashes += 1
            if len(self.first) < self.keep:
                self.out.mkdir(parents=True, exist_ok=True)
                stem = self.out / f"{self.name}_{self.crashes:03d}"
                stem.with_suffix(suffix if suffix.startswith(".") else "." + suffix).write_bytes(data)
                stem.with_suffix(".txt").write_text(f"mutators: {how}\n\n{outcome.detail}\n", encoding="utf-8")
                self.first.append(f"{stem.name}: {how}: {outcome.detail.strip().splitlines()[-1][:200]}")

    def line(self) -> str:
        parts = ", ".join(f"{v} {k}" for k, v in sorted(self.status.items()))
        return (f"  {self.name:8s} {self.cases:6d} cases ({parts}); crashes: {self.crashes}; "
                f"slowest {self.slowest:.2f} s")


def _guarded(fn, hard_s: float):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, hard_s)
    try:
        return fn()
    except _Hang as e:
        return Outcome(CRASH, f"hang: {e}", hard_s)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def fuzz_images(n: int, rng, work: Path, target: Target, deadline: float) -> None:
    seeds = image_seeds(rng)
    names = list(seeds)
    suffixes = [".png", ".jpg", ".bmp", ".tif", ".tiff", ".jpeg"]
    for i in range(n):
        name = names[int(rng.integers(len(names)))]
        data, how = mutate_bytes(rng, seeds[name])
        suffix = str(rng.choice(suffixes)) if rng.random() < 0.2 else ("." + name.rsplit(".", 1)[-1]
                                                                       if "." in name else "." + name)
        p = work / f"img{i % 8}{suffix}"
        p.write_bytes(data)
        target.record(_guarded(lambda: check_image(p), deadline * 4), data, suffix, f"{name} + {how}", deadline)
        p.unlink()


def fuzz_sidecars(n: int, rng, work: Path, target: Target, deadline: float) -> None:
    for i in range(n):
        data, how = mutate_sidecar(rng)
        p = work / "img.png.cellviewer"
        p.write_bytes(data)
        target.record(_guarded(lambda: check_sidecar(p, (SIDE_H, SIDE_W)), deadline * 4), data, ".cellviewer",
                      how, deadline)


def fuzz_journals(n: int, rng, work: Path, target: Target, deadline: float) -> None:
    from cellviewer.core.journal import read_entries

    good = valid_journal(rng)
    p0 = work / "good.journal"
    p0.write_bytes(good)
    reference = [(k, e.name, e.record) for k, e in read_entries(p0)]
    for i in range(n):
        data, how = mutate_journal(rng, good)
        p = work / "img.png.cellviewer.journal"
        p.write_bytes(data)
        out = _guarded(lambda: check_journal(p, (SIDE_H, SIDE_W)), deadline * 4)
        if out.status == OK and how == "bytes mutated (CRC intact)":
            got = [(k, e.name, e.record) for k, e in out.value]
            if got != reference[: len(got)]:
                out = Outcome(CRASH, "entries are not a prefix of the intact journal's", out.seconds)
        target.record(out, data, ".journal", how, deadline)


def check_corpus(work: Path, log) -> tuple[list, list[str], list[str]]:
    """The generated corpus of tests/hostile (when importable): (cases, conditions, problems)."""
    try:
        from tests.hostile.corpus import CONDITIONS, EITHER, make_corpus
    except ImportError:
        log("  corpus: tests/hostile/corpus.py not importable (run from the repository root to include it)")
        return [], [], []
    from cellviewer.core.journal import read_entries

    problems = []
    cases = make_corpus(work / "corpus")
    for c in cases:
        if c.kind in ("image", "path"):
            out = check_image(c.path)
            want = {OK} if c.expected == "ok" else ({OK, REFUSED} if c.expected == EITHER else {REFUSED})
        elif c.kind == "sidecar":
            out = check_sidecar(c.path, (20, 30))
            want = {OK} if c.expected == "ok" else {REFUSED}
        else:
            n = len(read_entries(c.path))
            out, want = Outcome(OK if n == c.expected else CRASH, f"{n} entries, expected {c.expected}"), {OK}
        if out.status not in want:
            last = out.detail.strip().splitlines()[-1][:200] if out.detail.strip() else ""
            problems.append(f"{c.name}: {out.status}: {last}")
    return cases, list(CONDITIONS), problems


def _kinds_line(cases, conditions) -> str:
    hostile = [c for c in cases if c.name not in ("sidecar:valid", "journal:intact")]  # minus the controls
    by = Counter(c.kind for c in hostile)
    refused = sum(c.bad for c in hostile if c.kind in ("image", "path"))
    return (f"{len(hostile) + len(conditions)} hand-made kinds: {by['image'] + by['path']} image files/paths "
            f"({refused} to refuse, the rest odd but valid), {by['sidecar']} sidecars, {by['journal']} journals, "
            f"{len(conditions)} conditions ({'; '.join(conditions)})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cellviewer.core.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=1000, help="fuzz cases per target (default 1000)")
    ap.add_argument("--kill-cycles", type=int, default=10, help="SIGKILL cycles (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    default_out = os.path.join(tempfile.gettempdir(), "cellviewer-fuzz-out")
    ap.add_argument("--out", default=default_out, help=f"folder for crash reproducers (default {default_out})")
    ap.add_argument("--deadline", type=float, default=5.0, help="seconds one case may take (default 5)")
    ap.add_argument("--shape", type=int, nargs=2, default=(1500, 2000), metavar=("H", "W"),
                    help="document size for the kill cycles (default 1500 2000)")
    ap.add_argument("--targets", default="corpus,image,sidecar,journal,kill")
    args = ap.parse_args(argv)
    targets = set(args.targets.split(","))
    log = lambda s: print(s, flush=True)  # noqa: E731
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    t0 = time.perf_counter()
    failed = False
    log(f"cellviewer robustness run — seed {args.seed}, {args.examples} cases per target, "
        f"{args.kill_cycles} kill cycles")
    for old in out.glob("*_[0-9][0-9][0-9].*") if out.is_dir() else []:  # reproducers of an earlier run
        if old.name.split("_")[0] in ("image", "sidecar", "journal"):
            old.unlink()
    work = Path(tempfile.mkdtemp(prefix="cellviewer-fuzz-"))
    try:
        cases, conditions, problems = check_corpus(work, log) if "corpus" in targets else ([], [], [])
        mut = {"image": len(BYTE_MUTATORS), "sidecar": len(SIDECAR_MUTATORS) + len(BYTE_MUTATORS),
               "journal": len(JOURNAL_MUTATORS) + len(BYTE_MUTATORS)}
        log("kinds of bad input tried:")
        if cases:
            log(f"  {_kinds_line(cases, conditions)}")
        log(f"  mutation operators: image {mut['image']} (on {len(image_seeds(np.random.default_rng(0)))} valid "
            f"seed flavours), sidecar {mut['sidecar']}, journal {mut['journal']}")
        if cases:
            log(f"  corpus   {len(cases):6d} generated files checked against their documented outcome; "
                f"unexpected: {len(problems)}")
            for p in problems[:10]:
                log(f"    {p}")
            failed |= bool(problems)
        tgts = []
        for name, fn in (("image", fuzz_images), ("sidecar", fuzz_sidecars), ("journal", fuzz_journals)):
            if name in targets and args.examples > 0:
                t = Target(name, out)
                ts = time.perf_counter()
                (work / name).mkdir()
                fn(args.examples, rng, work / name, t, args.deadline)
                log(t.line() + f"  [{time.perf_counter() - ts:.0f} s]")
                tgts.append(t)
        crashes = sum(t.crashes for t in tgts)
        log(f"fuzz cases run: {sum(t.cases for t in tgts)} ("
            + ", ".join(f"{t.name} {t.cases}" for t in tgts) + f"); crashes: {crashes}"
            + (f" — first reproducers in {out.resolve()}:" if crashes else ""))
        for t in tgts:
            for line in t.first:
                log(f"    {line}")
        failed |= crashes > 0
        if "kill" in targets and args.kill_cycles > 0:
            from cellviewer.core.robustness import kill_cycles

            log(f"kill cycles: {args.kill_cycles} SIGKILLs of a process editing and autosaving a "
                f"{args.shape[1]}×{args.shape[0]} document")
            every = 1 if args.kill_cycles <= 20 else 10
            rep = kill_cycles(args.kill_cycles, work / "kill", tuple(args.shape), seed=args.seed, log=log,
                              log_every=every)
            log(f"  {rep.summary()}")
            for f in rep.failures[:10]:
                log(f"    {f[:500]}")
            failed |= rep.survived != rep.cycles or rep.cycles != args.kill_cycles
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"RESULT: {'FAIL' if failed else 'PASS'} in {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
