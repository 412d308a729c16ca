"""Mutators for the fuzzer: valid seed files and random damage to bytes, JSON, sidecars, journals.

The byte-level mutators are in :mod:`cellviewer.core.bytemutators` (re-exported here).
Everything here is deterministic given a numpy ``Generator``; :mod:`cellviewer.core.fuzz`
runs the mutated inputs against the contracts of :mod:`cellviewer.core.robustness`, and
``tests/hostile`` uses the same seeds.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

import numpy as np

from cellviewer.core.bytemutators import BYTE_MUTATORS, INTERESTING, mutate_bytes  # noqa: F401 - part of this API

SIDE_H, SIDE_W = 20, 30


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
