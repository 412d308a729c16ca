"""What an image file is and whether it is safe to decode, from its first bytes and header.

The checks :func:`cellviewer.core.io.read_image` runs before any pixel is decoded: the file
must be a non-empty regular file (its sha256 is taken on the way), its format comes from the
magic bytes (not the suffix), and the size a header claims is refused when it is empty or too
large (decompression bombs), as is a PNG chunk whose length field runs past the end of the file.
Failures raise :class:`~cellviewer.core.errors.ImageReadError`.
"""

from __future__ import annotations

import hashlib
import stat
import struct
from pathlib import Path

from cellviewer.core.errors import ImageReadError

#: format -> the Pillow plugins allowed to open it (also the formats read_image supports)
_PIL_FORMATS = {"JPEG": ["JPEG", "MPO"], "PNG": ["PNG"], "BMP": ["BMP"], "TIFF": ["TIFF"]}
_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
          (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"), (b"GIF8", "GIF"), (b"%PDF", "PDF"),
          (b"\xffO\xffQ", "JPEG 2000"), (b"\x00\x00\x00\x0cjP", "JPEG 2000"))


def _read_head(p: Path) -> tuple[bytes, str]:
    """The first 32 bytes and the sha256 of a non-empty regular file."""
    try:
        st = p.stat()
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError)
        raise ImageReadError(p, "file not found" if missing else f"cannot access the file ({exc.strerror})",
                             hint="check the path: the file may have been moved, renamed or deleted" if missing
                             else "check that you may read the file and that its drive is still connected") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError(p, "this is a folder, not an image file", hint="open an image inside it")
    if not stat.S_ISREG(st.st_mode):
        raise ImageReadError(p, "not a regular file")
    if st.st_size == 0:
        raise ImageReadError(p, "file is empty (0 bytes)", hint="the copy or download probably failed")
    try:
        with open(p, "rb") as fh:
            head = fh.read(32)
            h = hashlib.sha256(head)
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise ImageReadError(p, f"cannot read the file ({exc.strerror or exc})") from exc
    return head, h.hexdigest()


def _sniff(p: Path, head: bytes) -> str:
    """The format by magic bytes (JPEG, PNG, BMP, TIFF/BigTIFF); anything else raises."""
    fmt = next((f for m, f in _MAGIC if head.startswith(m)), None)
    fmt = "WebP" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else fmt
    if fmt in ("PNG", "BMP") and len(head) < 26:
        raise ImageReadError(p, f"file is truncated (incomplete {fmt} header)")
    if fmt is None:
        raise ImageReadError(p, f"unknown file format, not a JPG/PNG/BMP/TIFF image (file starts with {head[:8]!r})")
    if fmt not in _PIL_FORMATS:
        raise ImageReadError(p, f"{fmt} files are not supported (only JPG/PNG/BMP/TIFF)")
    return fmt


def _check_size(p: Path, w: int, h: int, limits: tuple[int, int], depth: int = 1) -> None:
    """Refuse empty or too large images from header values, before any decoding."""
    max_pixels, max_side = limits
    if w < 1 or h < 1:
        raise ImageReadError(p, f"image has no pixels ({w}×{h})")
    if w > max_side or h > max_side or w * h * depth > max_pixels:
        raise ImageReadError(p, f"image too large ({w}×{h} = {w * h:,} pixels; limits: {max_side:,} px "
                             f"per side, {max_pixels:,} pixels)", hint="crop or tile the image first")


def _check_png_chunks(p: Path, data: memoryview) -> None:
    """Every chunk must fit in the file: OpenCV allocates what a chunk's length field claims
    (a 400-byte file claiming a 4 GB chunk took 9 s and 4 GB of memory)."""
    pos = 8
    while pos + 8 <= len(data):
        n, cid = struct.unpack_from(">I4s", data, pos)
        if n > len(data) - pos - 12:
            raise ImageReadError(p, f"file is truncated or corrupt (PNG chunk {cid!r} claims {n:,} bytes)")
        pos += n + 12
        if cid == b"IEND":
            return
