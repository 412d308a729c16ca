"""Hostile inputs, generated on the fly (nothing binary is committed).

``make_corpus(folder)`` writes every case under ``folder`` and returns a list of
:class:`Case`. Each case says what must happen:

* ``kind`` — ``"image"`` (give it to ``read_image`` / ``cellviewer analyze``),
  ``"path"`` (an odd file-system object where an image is expected),
  ``"sidecar"`` (a ``<image>.cellviewer`` beside a valid image ``case.image``),
  ``"journal"`` (a ``<sidecar>.journal``; ``case.expected`` is the number of
  intact entries ``read_entries`` must return).
* ``expected`` — ``"ok"``, an error class (``ImageReadError`` / ``SidecarError``),
  :data:`EITHER` (a decoder may legitimately recover: either a well-formed image or
  ``ImageReadError``), or an ``int`` for journals.
* ``exit_code`` — what ``cellviewer analyze CASE --out DIR`` returns for it alone.

135 cases (55 images, 6 odd paths, 55 sidecars, 19 journals; ~2.5 MB on disk, built
in under a second). ``python -m cellviewer.core.fuzz`` checks this corpus too when run
from the repository root (its mutation fuzzers have their own seeds).
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from cellviewer.core.errors import ImageReadError, SidecarError

EITHER = "ok-or-ImageReadError"
OK = "ok"
#: exit codes of an image io loads but the classical segmenter refuses as too small (SegmentationError,
#: one clear line) — or 0 should a segmenter accept it
TOO_SMALL = (0, 7)


@dataclass
class Case:
    name: str
    path: Path
    kind: str  # "image" | "path" | "sidecar" | "journal"
    expected: object  # "ok" | EITHER | an exception class | int (journal entries)
    exit_code: int | tuple | None = None  # cellviewer analyze CASE alone: a code or the allowed codes
    image: Path | None = None  # sidecar/journal cases: the image the file belongs to
    note: str = ""
    tags: set = field(default_factory=set)

    @property
    def bad(self) -> bool:
        return self.expected not in (OK, EITHER) and not isinstance(self.expected, int)


# -- pixels -------------------------------------------------------------------------------
def smear(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    """A tiny smear: light background, a few reddish discs, one purple disc."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (236, 228, 232)
    yy, xx = np.mgrid[:h, :w]
    for _ in range(4):
        cy, cx = rng.integers(6, max(7, h - 6)), rng.integers(6, max(7, w - 6))
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = (205, 120, 135)
    img[(yy - h // 2) ** 2 + (xx - w // 2) ** 2 <= 25] = (90, 60, 160)
    noise = rng.integers(-4, 5, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    """Bytes of ``arr`` saved by Pillow (JPEG/PNG/BMP) or tifffile (TIFF)."""
    buf = io.BytesIO()
    if fmt == "TIFF":
        tifffile.imwrite(buf, arr, **kw)
    else:
        Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def valid_images(seed: int = 0) -> dict[str, bytes]:
    """Small valid files of every container (the fuzzers mutate these)."""
    px = smear(24, 32, seed)
    return {"png": encode(px, "PNG"), "jpg": encode(px, "JPEG", quality=85), "bmp": encode(px, "BMP"),
            "tif": encode(px, "TIFF"), "tif16": encode((px[..., 0].astype(np.uint16) << 8), "TIFF"),
            "png_pal": _palette_png(px), "tif_tiled": encode(smear(32, 32, seed), "TIFF", tile=(16, 16)),
            "tif_zlib": encode(px, "TIFF", compression="zlib")}


def _png_chunk(cid: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + cid + data + struct.pack(">I", zlib.crc32(cid + data))


def png_bomb_header(w: int, h: int, colour_type: int = 2) -> bytes:
    """A PNG whose IHDR claims w×h but holds a few bytes of IDAT."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def tiff_bomb_header(w: int, h: int, big_endian: bool = False) -> bytes:
    """A baseline TIFF whose IFD claims w×h×3 uint8 in one strip of 16 bytes."""
    e = ">" if big_endian else "<"
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, 16)]
    ifd = struct.pack(e + "H", len(entries))
    for tag, typ, count, value in entries:
        val = struct.pack(e + "HH", value, 0) if typ == 3 and e == "<" else (
            struct.pack(e + "H", value) + b"\0\0" if typ == 3 else struct.pack(e + "I", value))
        ifd += struct.pack(e + "HHI", tag, typ, count) + val
    ifd += struct.pack(e + "I", 0)
    head = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(e + "I", 8)
    return head + ifd + b"\x80" * 16


def jpeg_bomb_header(w: int = 65000, h: int = 65000) -> bytes:
    """A real JPEG whose SOF0 height/width fields are rewritten to w×h."""
    data = bytearray(encode(smear(16, 16), "JPEG"))
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def bmp_bomb_header(w: int = 90000, h: int = 90000) -> bytes:
    data = bytearray(encode(smear(8, 8), "BMP"))
    data[18:26] = struct.pack("<ii", w, h)
    return bytes(data)


def _palette_png(px: np.ndarray) -> bytes:
    im = Image.fromarray(px).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    buf = io.BytesIO()
    im.save(buf, format="PNG", transparency=0)
    return buf.getvalue()


def _cmyk_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(smear()).convert("CMYK").save(buf, format="JPEG")
    return buf.getvalue()


def _exif_rotated_jpeg() -> bytes:
    im = Image.fromarray(smear(20, 40))
    exif = im.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def _multipage_tiff() -> bytes:
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tw:
        for s in range(3):
            tw.write(smear(20, 30, s))
    return buf.getvalue()


def _ztxt_bomb_png() -> bytes:
    """A valid PNG with a zTXt chunk that inflates to 16 MB (Pillow limits text chunks to 1 MB)."""
    good = encode(smear(8, 8), "PNG")
    co = zlib.compressobj(9)
    blob = co.compress(b"\0" * (16 << 20)) + co.flush()
    chunk = _png_chunk(b"zTXt", b"Comment\x00\x00" + blob)
    cut = good.index(b"IDAT") - 4
    return good[:cut] + chunk + good[cut:]


def _flip(data: bytes, at: float, n: int = 16, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    b = bytearray(data)
    i = int(len(b) * at)
    b[i : i + n] = rng.integers(0, 256, min(n, len(b) - i), dtype=np.uint8).tobytes()
    return bytes(b)


def _xor(data: bytes, i: int) -> bytes:
    b = bytearray(data)
    b[i] ^= 1
    return bytes(b)


def _cut(data: bytes, frac_or_n) -> bytes:
    n = frac_or_n if isinstance(frac_or_n, int) else int(len(data) * frac_or_n)
    return data[:n]


def image_cases(folder: Path) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    px = smear()
    jpg, png, bmp = encode(px, "JPEG", quality=90), encode(px, "PNG"), encode(px, "BMP")
    tif = encode(px, "TIFF")
    f32 = (px[..., 0].astype(np.float32) / 255.0) - 0.25
    nanf = f32.copy()
    nanf[::3, ::5], nanf[1::4, ::7], nanf[2, 2] = np.nan, np.inf, -np.inf
    gray16 = (px[..., 1].astype(np.uint16) * 257)
    rgb16 = (px.astype(np.uint16) * 257)
    i16 = px[..., 2].astype(np.int16) * 100 - 12000
    rgba = np.dstack([px, np.linspace(0, 255, px.shape[1], dtype=np.uint8)[None, :].repeat(px.shape[0], 0)])
    E, R = ImageReadError, EITHER
    # (file name, bytes, expected, exit code, note)
    spec = [
        ("zero_bytes.png", b"", E, 3, "empty file"),
        ("trunc_header.jpg", _cut(jpg, 10), E, 3, "JPEG cut inside its first marker"),
        ("trunc_40pct.jpg", _cut(jpg, 0.4), E, 3, "JPEG cut in the scan data"),
        ("trunc_80pct.jpg", _cut(jpg, 0.8), E, 3, "JPEG cut near the end"),
        ("trunc_ihdr.png", _cut(png, 20), E, 3, "PNG cut inside IHDR"),
        ("trunc_idat.png", _cut(png, 0.5), E, 3, "PNG cut inside IDAT"),
        ("trunc_no_iend.png", _cut(png, len(png) - 12), R, (0, 3), "PNG without IEND (all pixels present)"),
        ("trunc_header.bmp", _cut(bmp, 30), E, 3, "BMP cut inside its header"),
        ("trunc_pixels.bmp", _cut(bmp, 0.5), E, 3, "BMP with half its pixels"),
        ("trunc_header.tif", _cut(tif, 8), E, 3, "TIFF with only its 8-byte header"),
        ("trunc_ifd.tif", _cut(tif, len(tif) - 40), E, 3, "TIFF cut inside its IFD"),
        ("trunc_strip.tif", _cut(tif, 0.5), E, 3, "TIFF cut in its pixel strip"),
        ("corrupt_mid.png", _flip(png, 0.5), E, 3, "random bytes over the middle of IDAT (CRC fails)"),
        ("corrupt_mid.jpg", _flip(jpg, 0.6), R, (0, 3), "random bytes in JPEG scan data (decoders may recover)"),
        ("corrupt_ihdr.png", png[:16] + b"\xff" * 13 + png[29:], E, 3, "IHDR fields garbled (CRC fails)"),
        ("png_named.jpg", png, OK, 0, "valid PNG with a .jpg name: loads (with a note)"),
        ("jpeg_named.tif", jpg, OK, 0, "valid JPEG with a .tif name"),
        ("text_named.png", b"just some text, not a picture\n" * 4, E, 3, "text file renamed .png"),
        ("html_named.jpg", b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n", E, 3,
         "an HTML error page saved as .jpg"),
        ("gif_named.png", encode(px, "GIF"), E, 3, "GIF (unsupported) renamed .png"),
        ("pdf_named.tif", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n", E, 3, "PDF renamed .tif"),
        ("webp_named.png", encode(px, "WEBP"), E, 3, "WebP (unsupported) renamed .png"),
        ("png_sig_only.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, E, 3,
         "PNG signature then zeros"),
        ("one_by_one.png", encode(px[:1, :1], "PNG"), OK, TOO_SMALL, "1×1 image: loads; too small to segment"),
        ("row_1x100000.png", encode(np.full((1, 100000, 3), 200, np.uint8), "PNG"), OK, TOO_SMALL,
         "1 px high, 100000 px wide (= MAX_SIDE): loads; too thin to segment"),
        ("col_100000x1.png", encode(np.full((100000, 1, 3), 200, np.uint8), "PNG"), OK, TOO_SMALL,
         "100000 px high, 1 px wide: loads; too thin to segment"),
        ("bomb_header.png", png_bomb_header(100000, 100000), E, 3, "IHDR claims 100000×100000"),
        ("bomb_header_side.png", png_bomb_header(200000, 1), E, 3, "IHDR claims 200000×1 (over MAX_SIDE)"),
        ("bomb_header.tif", tiff_bomb_header(100000, 100000), E, 3, "IFD claims 100000×100000"),
        ("bomb_header_be.tif", tiff_bomb_header(100000, 100000, True), E, 3, "big-endian IFD claims 100000²"),
        ("bomb_header.jpg", jpeg_bomb_header(), E, 3, "SOF claims 65000×65000"),
        ("bomb_header.bmp", bmp_bomb_header(), E, 3, "BMP header claims 90000×90000"),
        ("zero_size.png", png_bomb_header(0, 0), E, 3, "IHDR claims 0×0"),
        ("ztxt_bomb.png", _ztxt_bomb_png(), E, 3, "zTXt chunk inflating to 16 MB"),
        ("gray16.tif", encode(gray16, "TIFF"), OK, 0, "16-bit gray TIFF"),
        ("rgb16.png", _png16(rgb16), OK, 0, "16-bit RGB PNG"),
        ("float32.tif", encode(f32, "TIFF"), OK, 0, "32-bit float TIFF with negatives"),
        ("int16_signed.tif", encode(i16, "TIFF"), OK, 0, "signed int16 TIFF"),
        ("nan_inf.tif", encode(nanf, "TIFF"), OK, 0, "float TIFF with NaN/+inf/-inf pixels"),
        ("all_nan.tif", encode(np.full((12, 14), np.nan, np.float32), "TIFF"), OK, 0, "float TIFF, all NaN"),
        ("cmyk.jpg", _cmyk_jpeg(), OK, 0, "CMYK JPEG"),
        ("exif_rot6.jpg", _exif_rotated_jpeg(), OK, 0, "JPEG with EXIF orientation 6"),
        ("palette_transparent.png", _palette_png(px), OK, 0, "palette PNG with a transparent index"),
        ("rgba.png", encode(rgba, "PNG"), OK, 0, "RGBA PNG with a gradient alpha"),
        ("bilevel.png", encode(px[..., 0] > 200, "PNG"), OK, 0, "1-bit PNG"),
        ("multipage.tif", _multipage_tiff(), OK, 0, "3-page TIFF (page 1 shown)"),
        ("tiled.tif", encode(smear(48, 48), "TIFF", tile=(16, 16)), OK, 0, "tiled TIFF"),
        ("big_endian.tif", encode(rgb16.byteswap().view(rgb16.dtype.newbyteorder()), "TIFF"), OK, 0,
         "big-endian 16-bit RGB TIFF"),
        ("bigtiff.tif", encode(px, "TIFF", bigtiff=True), OK, 0, "BigTIFF"),
        ("planar.tif", encode(np.moveaxis(px, -1, 0), "TIFF", planarconfig="separate", photometric="rgb"), OK,
         0, "planar (separate) RGB TIFF"),
        ("five_samples.tif", encode(np.dstack([px, px[..., :2]]), "TIFF", photometric="rgb",
                                    extrasamples=["unspecified", "unspecified"]), OK, 0, "RGB + 2 extra samples"),
        ("deflate.tif", encode(px, "TIFF", compression="zlib"), OK, 0, "deflate-compressed TIFF"),
        ("nonascii_смесь_血液_ü.png", png, OK, 0, "non-ASCII file name"),
        ("spaces and 'quotes' & $dollar.png", png, OK, 0, "shell-hostile file name"),
        ("L" * 245 + ".png", png, OK, 0, "249-byte file name (limit 255)"),
    ]
    cases = []
    for name, data, expected, code, note in spec:
        p = folder / name
        p.write_bytes(data)
        cases.append(Case(name, p, "image", expected, code, note=note))
    return cases


def _png16(arr: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", arr[..., ::-1] if arr.ndim == 3 else arr)
    assert ok
    return buf.tobytes()


def path_cases(folder: Path) -> list[Case]:
    """Odd file-system objects where an image is expected (``read_image`` refuses; the CLI's code)."""
    folder.mkdir(parents=True, exist_ok=True)
    E = ImageReadError
    cases = []
    d = folder / "folder_named.png"
    d.mkdir(exist_ok=True)
    cases.append(Case("folder_named.png", d, "path", E, 2, note="a folder named like an image (CLI: no images in it)"))
    loop = folder / "loop.png"
    if not loop.is_symlink():
        os.symlink(loop.name, loop)  # points at itself: ELOOP
    cases.append(Case("symlink_loop.png", loop, "path", E, 3, note="a symlink to itself"))
    dangling = folder / "dangling.png"
    if not dangling.is_symlink():
        os.symlink("no_such_target.png", dangling)
    cases.append(Case("dangling.png", dangling, "path", E, 3, note="a symlink to nothing"))
    cases.append(Case("missing.png", folder / "missing.png", "path", E, 3, note="no such file"))
    fifo = folder / "fifo.png"
    if hasattr(os, "mkfifo"):
        if not fifo.exists():
            os.mkfifo(fifo)
        cases.append(Case("fifo.png", fifo, "path", E, 3, note="a FIFO (must not block)"))
    deep = folder / ("d" * 200) / ("e" * 200) / ("f" * 200)
    deep.mkdir(parents=True, exist_ok=True)
    (deep / "deep.png").write_bytes(encode(smear(), "PNG"))
    cases.append(Case("deep_path", deep / "deep.png", "path", OK, 0, note="a 600+ character path"))
    return cases


# -- sidecars ------------------------------------------------------------------------------
SIDE_H, SIDE_W = 20, 30


def npy_bytes(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def valid_meta(h: int = SIDE_H, w: int = SIDE_W) -> dict:
    return {"format": "cellviewer-sidecar", "format_version": 1, "app_version": "0", "saved_at": "2024-01-01",
            "image": {"name": "img.png", "width": w, "height": h, "sha256": ""}, "um_per_px": 0.1,
            "reviewed": False,
            "markers": [{"id": 1, "cls": "rbc", "x": 5.0, "y": 6.0, "origin": "auto", "cell": 1, "score": 0.9,
                         "reviewed": False}],
            "provenance": {"model_name": "m", "model_version": "1", "params": {"a": 1}, "segmented_at": "",
                           "device": "cpu", "edits": [{"action": "Fill", "cls": "rbc", "bbox": [0, 0, 2, 2],
                                                       "time": "t", "user": "u", "detail": ""}]}}


def valid_arrays(h: int = SIDE_H, w: int = SIDE_W) -> dict[str, np.ndarray]:
    lab = np.zeros((h, w), np.uint16)
    lab[4:9, 3:8] = 1
    return {"labels/rbc.npy": lab, "labels/wbc.npy": np.zeros((h, w), np.uint16),
            "labels/platelet.npy": np.zeros((h, w), np.uint16), "parts.npy": np.zeros((h, w), np.uint8)}


def sidecar_zip(meta=None, arrays=None, *, raw_json: bytes | None = None, extra: dict | None = None,
                skip: tuple = ()) -> bytes:
    """A sidecar's bytes from parts; ``raw_json`` replaces document.json, ``extra`` adds raw members."""
    meta = valid_meta() if meta is None else meta
    arrays = valid_arrays() if arrays is None else arrays
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        if "document.json" not in skip:
            z.writestr("document.json", raw_json if raw_json is not None else json.dumps(meta))
        for k, v in arrays.items():
            if k not in skip:
                z.writestr(k, v if isinstance(v, bytes) else npy_bytes(v))
        for k, v in (extra or {}).items():
            z.writestr(k, v)
    return buf.getvalue()


def _zip_bomb_member(declared: int) -> bytes:
    """A sidecar whose labels member claims ``declared`` bytes uncompressed (a zip bomb's header)."""
    data = bytearray(sidecar_zip())
    name = b"labels/wbc.npy"
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        i = 0
        while (i := data.find(sig, i)) >= 0:
            fn_off = 30 if sig == b"PK\x03\x04" else 46
            fn_len = struct.unpack("<H", data[i + (26 if sig == b"PK\x03\x04" else 28) :][:2])[0]
            if data[i + fn_off : i + fn_off + fn_len] == name:
                data[i + off : i + off + 4] = struct.pack("<I", min(declared, 0xFFFFFFFF))
            i += 4
    return bytes(data)


def _real_zip_bomb(n_bytes: int = 264 << 20) -> bytes:
    """A genuine bomb: a 277 MB ``document.json`` of spaces deflated to ~1.2 MB (over MAX_JSON_BYTES)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("document.json", "w", force_zip64=True) as f:
            chunk = b" " * (8 << 20)
            for _ in range(n_bytes // len(chunk)):
                f.write(chunk)
        for k, v in valid_arrays().items():
            z.writestr(k, npy_bytes(v))
    return buf.getvalue()


def _encrypted_flag(data: bytes) -> bytes:
    """Set the 'encrypted' flag on every member (zipfile then asks for a password)."""
    b = bytearray(data)
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = 0
        while (i := b.find(sig, i)) >= 0:
            b[i + off] |= 1
            i += 4
    return bytes(b)


def _method(data: bytes, method: int) -> bytes:
    """Rewrite every member's compression method (e.g. 98 = PPMd, which zipfile lacks)."""
    b = bytearray(data)
    for sig, off in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        i = 0
        while (i := b.find(sig, i)) >= 0:
            b[i + off : i + off + 2] = struct.pack("<H", method)
            i += 4
    return bytes(b)


def _npy_lying_header(shape=(100000, 100000)) -> bytes:
    """An .npy whose header claims a huge int64 array followed by 64 bytes."""
    good = npy_bytes(np.zeros(8, np.int64))
    hdr = good[10 : 10 + struct.unpack("<H", good[8:10])[0]].decode("latin1")
    new = hdr.replace("(8,)", repr(tuple(shape))).rstrip("\n")
    pad = 64 - (10 + len(new) + 1) % 64
    new = new + " " * pad + "\n"
    return good[:8] + struct.pack("<H", len(new)) + new.encode("latin1") + b"\0" * 64


def _meta(**changes) -> dict:
    m = valid_meta()
    for k, v in changes.items():
        if "." in k:
            a, b = k.split(".", 1)
            m[a] = dict(m[a], **{b: v})
        else:
            m[k] = v
    return m


def _marker(**changes) -> dict:
    return _meta(markers=[dict(valid_meta()["markers"][0], **changes)])


def sidecar_specs() -> list[tuple[str, bytes, object, str]]:
    """(name, sidecar bytes, expected, note). ``"ok"`` ones load with warnings or as is."""
    S = SidecarError
    good = sidecar_zip()
    h, w = SIDE_H, SIDE_W
    arr = valid_arrays()
    nested = b"[" * 100000 + b"]" * 100000
    obj = np.empty((h, w), object)
    obj[:] = 1
    return [
        ("valid", good, OK, "a correct sidecar (control)"),
        ("empty", b"", S, "0 bytes"),
        ("truncated_half", good[: len(good) // 2], S, "cut in the middle"),
        ("truncated_tail", good[:-10], S, "end of central directory cut"),
        ("text", b"these are not the corrections you are looking for", S, "a text file"),
        ("future_version", sidecar_zip(_meta(format_version=99)), S, "format_version 99"),
        ("version_string", sidecar_zip(_meta(format_version="1")), S, "format_version is a string"),
        ("version_missing", sidecar_zip({k: v for k, v in valid_meta().items() if k != "format_version"}), S,
         "no format_version"),
        ("wrong_format", sidecar_zip(_meta(format="something-else")), S, "another program's zip"),
        ("no_document_json", sidecar_zip(skip=("document.json",)), S, "document.json missing"),
        ("labels_wrong_shape", sidecar_zip(arrays=dict(arr, **{"labels/rbc.npy": np.zeros((h + 1, w), np.uint16)})),
         S, "labels one row too many"),
        ("labels_transposed", sidecar_zip(arrays=dict(arr, **{"labels/rbc.npy": np.zeros((w, h), np.uint16)})), S,
         "labels transposed"),
        ("labels_3d", sidecar_zip(arrays=dict(arr, **{"labels/wbc.npy": np.zeros((h, w, 3), np.uint16)})), S,
         "labels with a channel axis"),
        ("labels_float", sidecar_zip(arrays=dict(arr, **{"labels/rbc.npy": np.zeros((h, w), np.float32)})), S,
         "float labels"),
        ("labels_negative", sidecar_zip(arrays=dict(arr, **{"labels/rbc.npy": np.full((h, w), -3, np.int32)})), S,
         "negative instance labels"),
        ("labels_overflow", sidecar_zip(arrays=dict(arr, **{"labels/rbc.npy": np.full((h, w), 2**40, np.int64)})),
         S, "labels beyond int32 (would wrap)"),
        ("labels_structured", sidecar_zip(arrays=dict(arr, **{"labels/rbc.npy": np.zeros((h, w), "i4,i4")})), S,
         "structured dtype"),
        ("parts_wrong_shape", sidecar_zip(arrays=dict(arr, **{"parts.npy": np.zeros((3, 3), np.uint8)})), S,
         "parts map 3×3"),
        ("parts_bad_values", sidecar_zip(arrays=dict(arr, **{"parts.npy": np.full((h, w), 300, np.int32)})), S,
         "parts values outside 0..2 (would wrap)"),
        ("pickled_object_array", sidecar_zip(arrays=dict(arr, **{"labels/rbc.npy": npy_bytes(obj, True)})), S,
         "an object array (needs pickle): refused"),
        ("npy_garbage", sidecar_zip(arrays=dict(arr, **{"parts.npy": b"\x93NUMPY garbage"})), S, "bad .npy"),
        ("npy_lying_header", sidecar_zip(arrays=dict(arr, **{"labels/rbc.npy": _npy_lying_header()})), S,
         ".npy header claims 100000×100000 int64 (80 GB)"),
        ("zip_bomb_header", _zip_bomb_member(3_000_000_000), S, "member claims 3 GB uncompressed"),
        ("zip_bomb_json", _real_zip_bomb(), S, "document.json inflates to 277 MB of spaces"),
        ("encrypted", _encrypted_flag(good), S, "members flagged as encrypted"),
        ("unknown_compression", _method(good, 98), S, "PPMd-compressed members"),
        ("crc_mismatch", _flip_member_crc(good), S, "a member whose CRC is wrong"),
        ("json_not_utf8", sidecar_zip(raw_json=json.dumps(valid_meta()).encode("utf-16")), S, "UTF-16 JSON"),
        ("json_latin1", sidecar_zip(raw_json=json.dumps(valid_meta()).replace("u\"", "\xe9\"").encode("latin1")),
         S, "latin-1 bytes in JSON"),
        ("json_list", sidecar_zip(raw_json=b"[1, 2, 3]"), S, "JSON that is a list"),
        ("json_null", sidecar_zip(raw_json=b"null"), S, "JSON null"),
        ("json_syntax", sidecar_zip(raw_json=b'{"format": "cellviewer-sidecar", '), S, "JSON cut short"),
        ("json_deep_nesting", sidecar_zip(raw_json=nested), S, "100000 nested lists (recursion)"),
        ("image_not_dict", sidecar_zip(_meta(image=[1, 2])), S, "image is a list"),
        ("image_size_mismatch", sidecar_zip(_meta(**{"image.width": w + 5})), S, "saved for another image size"),
        ("image_width_string", sidecar_zip(_meta(**{"image.width": "30"})), S, "width is a string"),
        ("markers_not_list", sidecar_zip(_meta(markers=5)), S, "markers is a number"),
        ("markers_dict", sidecar_zip(_meta(markers={"a": 1})), S, "markers is an object"),
        ("marker_not_dict", sidecar_zip(_meta(markers=["x"])), S, "a marker is a string"),
        ("marker_x_text", sidecar_zip(_marker(x="left")), S, "marker x is text"),
        ("marker_missing_id", sidecar_zip(_meta(markers=[{"cls": "rbc", "x": 1, "y": 1}])), S, "marker without id"),
        ("marker_id_huge", sidecar_zip(raw_json=json.dumps(valid_meta()).replace('"id": 1', '"id": 1e400').encode()),
         S, "marker id 1e400 (inf)"),
        ("marker_id_nan", sidecar_zip(raw_json=json.dumps(valid_meta()).replace('"id": 1', '"id": NaN').encode()),
         S, "marker id NaN"),
        ("marker_outside", sidecar_zip(_marker(x=w + 10.0)), OK, "marker outside the image: dropped with a warning"),
        ("marker_negative", sidecar_zip(_marker(y=-1.0)), OK, "marker at y = -1: dropped with a warning"),
        ("marker_nan_xy", sidecar_zip(raw_json=json.dumps(_marker(x=1.5)).replace("1.5", "NaN").encode()), OK,
         "marker at NaN: dropped with a warning"),
        ("marker_unknown_class", sidecar_zip(_marker(cls="neutrophil")), OK, "unknown class: dropped"),
        ("marker_duplicate_id", sidecar_zip(_meta(markers=valid_meta()["markers"] * 2)), OK,
         "the same marker id twice: second dropped"),
        ("provenance_not_dict", sidecar_zip(_meta(provenance=[1])), S, "provenance is a list"),
        ("edits_not_list", sidecar_zip(_meta(**{"provenance.edits": 7})), S, "provenance.edits is a number"),
        ("edit_bbox_text", sidecar_zip(_meta(**{"provenance.edits": [{"action": "x", "bbox": 5}]})), S,
         "edit bbox is a number"),
        ("params_text", sidecar_zip(_meta(**{"provenance.params": "abc"})), S, "params is a string"),
        ("um_per_px_text", sidecar_zip(_meta(um_per_px="tiny")), S, "um_per_px is text"),
        ("um_per_px_negative", sidecar_zip(_meta(um_per_px=-0.5)), S, "negative pixel size"),
    ]


def _flip_member_crc(data: bytes) -> bytes:
    b = bytearray(data)
    i = b.find(b"PK\x03\x04", 1)  # the second member's local header: make its data wrong
    j = i + 30 + struct.unpack("<H", b[i + 26 : i + 28])[0] + struct.unpack("<H", b[i + 28 : i + 30])[0]
    b[j + 3] ^= 0xFF
    return bytes(b)


def sidecar_cases(folder: Path) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    img = encode(smear(SIDE_H, SIDE_W), "PNG")
    cases = []
    for name, data, expected, note in sidecar_specs():
        d = folder / name
        d.mkdir(exist_ok=True)
        (d / "img.png").write_bytes(img)
        p = d / "img.png.cellviewer"
        p.write_bytes(data)
        cases.append(Case(f"sidecar:{name}", p, "sidecar", expected, None, image=d / "img.png", note=note))
    d = folder / "sidecar_is_folder"
    d.mkdir(exist_ok=True)
    (d / "img.png").write_bytes(img)
    (d / "img.png.cellviewer").mkdir(exist_ok=True)
    cases.append(Case("sidecar:is_folder", d / "img.png.cellviewer", "sidecar", SidecarError, image=d / "img.png",
                      note="a folder where the sidecar should be"))
    return cases


# -- journals ------------------------------------------------------------------------------
def journal_bytes(n: int = 3) -> bytes:
    """``n`` intact records of small marker edits (via the real encoder)."""
    from cellviewer.core import journal
    from cellviewer.core.document import Marker
    from cellviewer.core.edits import MarkerChange, make_edit

    out = b""
    for i in range(n):
        e = make_edit("Add marker", [MarkerChange(None, Marker(100 + i, "rbc", 2.0 + i, 3.0))], cls="rbc")
        out += journal.encode("apply", e)
    return out


def _record(payload: bytes) -> bytes:
    from cellviewer.core.journal import MAGIC

    return MAGIC + struct.pack("<Q", len(payload)) + payload + struct.pack("<I", zlib.crc32(payload))


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _json_u8(obj) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), np.uint8)


def _head(obj) -> bytes:
    return _npz(head=_json_u8(obj))


def journal_specs() -> list[tuple[str, bytes, int, str]]:
    good = journal_bytes(3)
    one = journal_bytes(1)
    return [
        ("intact", good, 3, "3 intact records (control)"),
        ("torn_last", good[:-7], 2, "the last record cut short"),
        ("torn_length", good + b"CVJ1\x05", 3, "a record cut inside its length field"),
        ("garbage_tail", good + bytes(range(256)) * 4, 3, "garbage after 3 records"),
        ("garbage_only", bytes(range(256)) * 8, 0, "garbage only"),
        ("empty", b"", 0, "0 bytes"),
        ("crc_flip", _xor(good, len(one) + 40), 1, "second record's payload flipped (CRC fails)"),
        ("huge_length", one + b"CVJ1" + struct.pack("<Q", 2**63) + b"\0" * 16, 1, "length field 2^63"),
        ("valid_crc_not_npz", one + _record(b"not an npz at all"), 1, "CRC-valid record that is not an npz"),
        ("valid_crc_zip_garbage", one + _record(b"PK\x03\x04" + b"\0" * 60), 1, "CRC-valid record, broken zip"),
        ("head_is_list", one + _record(_head([1, 2])), 1, "record head is a JSON list"),
        ("head_no_atoms", one + _record(_head({"kind": "apply", "name": "x"})), 1, "record head without atoms"),
        ("head_bad_kind", one + _record(_head({"kind": "explode", "name": "x", "atoms": [], "record": None})), 1,
         "unknown record kind"),
        ("flag_attr_hostile", one + _record(_head({"kind": "apply", "name": "x", "record": None, "atoms": [
            {"t": "flag", "attr": "labels", "old": None, "new": 5}]})), 1, "flag atom that would replace labels"),
        ("marker_bad_fields", one + _record(_head({"kind": "apply", "name": "x", "record": None, "atoms": [
            {"t": "marker", "old": None, "new": {"id": 1, "cls": "rbc", "x": "a", "y": 2, "bogus": 1}}]})), 1,
         "marker atom with unknown fields"),
        ("record_is_list", one + _record(_head({"kind": "apply", "name": "x", "record": [1], "atoms": []})), 1,
         "audit record is a list"),
        ("label_missing_arrays", one + _record(_head({"kind": "apply", "name": "x", "record": None, "atoms": [
            {"t": "label", "layer": "rbc", "bbox": [0, 0, 2, 2]}]})), 1, "label atom without its arrays"),
        ("pickled_array", one + _record(_npz(head=_json_u8({"kind": "apply", "name": "x", "record": None, "atoms": [
            {"t": "label", "layer": "rbc", "bbox": [0, 0, 1, 1]}]}), a0_rows=np.array([object()]),
            a0_cols=np.zeros(1, np.uint16), a0_old=np.zeros(1, np.int32), a0_new=np.ones(1, np.int32))), 1,
         "a label patch holding an object array"),
        ("deep_json", one + _record(_npz(head=np.frombuffer(b"[" * 50000 + b"]" * 50000, np.uint8))), 1,
         "record head nested 50000 deep"),
    ]


def journal_cases(folder: Path) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    img = encode(smear(SIDE_H, SIDE_W), "PNG")
    cases = []
    for name, data, n, note in journal_specs():
        d = folder / name
        d.mkdir(exist_ok=True)
        (d / "img.png").write_bytes(img)
        p = d / "img.png.cellviewer.journal"
        p.write_bytes(data)
        cases.append(Case(f"journal:{name}", p, "journal", n, image=d / "img.png", note=note))
    return cases


def make_corpus(folder) -> list[Case]:
    """Write every hostile case under ``folder``; returns them (images, paths, sidecars, journals)."""
    folder = Path(folder)
    return (image_cases(folder / "images") + path_cases(folder / "paths") + sidecar_cases(folder / "sidecars")
            + journal_cases(folder / "journals"))


#: conditions exercised by the tests without a corpus file (counted in the kinds of bad input)
CONDITIONS = ["read-only image folder (sidecar goes to the user store)", "unwritable output folder (CLI exit 5)",
              "disk full while writing the sidecar (ENOSPC in write / fsync / rename)",
              "disk full while writing the CLI outputs (exit 5)",
              "disk full while appending to the journal (short write, then ENOSPC)",
              "SIGKILL at random moments while editing and autosaving",
              "crash between the sidecar rename and the journal trim",
              "image name too long for a sidecar beside it", "a folder where the sidecar should be",
              "partial saves left behind by crashes"]


_CACHE: dict[str, list[Case]] = {}


def cached_corpus() -> list[Case]:
    """The corpus built once per process in a temporary folder (removed at exit); for parametrizing."""
    if "cases" not in _CACHE:
        import atexit
        import shutil
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="cellviewer-hostile-"))
        atexit.register(shutil.rmtree, folder, True)
        _CACHE["cases"] = make_corpus(folder)
    return _CACHE["cases"]


def cases_of(*kinds: str) -> list[Case]:
    return [c for c in cached_corpus() if c.kind in kinds]
