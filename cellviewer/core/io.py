"""Read images as display-ready ``uint8`` RGB; list image files; write 8-bit PNG maps.

:func:`read_image` never guesses silently: the format comes from the magic bytes, the
size is checked from the header *before* decoding (decompression bombs; these checks are in
:mod:`cellviewer.core.imagehead`), and whatever is done to the pixels (bit-depth scaling,
alpha, orientation, palette/CMYK, page) is recorded in ``ImageInfo.notes``. Failures raise
:class:`ImageReadError`. Decoding holds a module lock because Pillow's size limit and
truncation flag are process-global.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import tifffile
from PIL import Image, ImageFile, ImageOps

from cellviewer.core.atomic import share_mode
from cellviewer.core.cautions import CAUTION, caution_headline  # noqa: F401 - CAUTION: notes that change what results mean
from cellviewer.core.document import ImageData, ImageInfo
from cellviewer.core.errors import ImageReadError, SaveError
from cellviewer.core.imagehead import (_MAGIC, _PIL_FORMATS, _check_png_chunks,  # noqa: F401 - header checks, moved
                                       _check_size, _read_head, _sniff)
from cellviewer.core.jpegcheck import jpeg_damage
from cellviewer.core.tone import alpha_unit, to_uint8

MAX_PIXELS = 250_000_000  #: largest width × height read_image accepts unless told otherwise
MAX_SIDE = 100_000  #: largest width or height accepted
SUPPORTED_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

_SUFFIX_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
# Pillow mode -> (mode to convert to, has alpha); P and I/F modes are handled apart.
_PIL_MODES = {"1": ("1", False), "L": ("L", False), "LA": ("LA", True), "La": ("LA", True),
              "RGB": ("RGB", False), "RGBX": ("RGB", False), "RGBA": ("RGBA", True), "RGBa": ("RGBA", True),
              "CMYK": ("RGB", False), "YCbCr": ("RGB", False), "LAB": ("RGB", False), "HSV": ("RGB", False)}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # PNG colour type -> channels in the file
_LOCK = threading.RLock()
# What decoders raise on malformed input: PIL (OSError incl. "truncated", SyntaxError, EOFError,
# struct/zlib errors, KeyError), tifffile (TiffFileError, ValueError, KeyError, IndexError, and
# TypeError when a tag holds several values where one is expected).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error,
                  KeyError, IndexError, TypeError, ArithmeticError, NotImplementedError, tifffile.TiffFileError)


class _Decoded(NamedTuple):
    arr: np.ndarray  # H×W gray or H×W×C: gray(+alpha) / RGB(+alpha)
    alpha: bool  # the last channel is alpha
    dtype: str  # dtype of the file's samples
    channels: int  # channels in the file


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the name ends in a supported suffix (case-insensitive); for folder browsing."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def list_images(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files and folders -> image files, without duplicates. A folder gives its image files
    (non-recursive, natural order, hidden files and unknown suffixes skipped); a named file is
    kept whatever its suffix; a path that does not exist raises :class:`ImageReadError`."""
    out: dict[str, Path] = {}
    for item in paths:
        p = Path(item)
        if p.is_dir():
            try:
                # not is_dir(): a broken link or a special file named *.png is listed (and reported), not hidden
                found = [c for c in p.iterdir() if not c.name.startswith(".") and is_image_file(c) and not c.is_dir()]
            except OSError as exc:
                raise ImageReadError(p, f"cannot list the folder ({exc.strerror or exc})") from exc
            found.sort(key=lambda f: [int(t) if t.isdigit() else t.casefold() for t in re.split(r"(\d+)", f.name)])
        elif p.exists():
            found = [p]
        else:
            raise ImageReadError(p, "no such file or folder", hint="check the path")
        for f in found:
            out.setdefault(os.path.normcase(os.path.abspath(f)), f)
    return list(out.values())


def read_image(path: str | os.PathLike, *, max_pixels: int | None = None, max_side: int | None = None) -> ImageData:
    """A JPG/PNG/BMP/TIFF file as contiguous ``uint8`` RGB (H×W×3) plus metadata. Images over
    ``max_pixels``/``max_side`` (default :data:`MAX_PIXELS`/:data:`MAX_SIDE`) are refused from
    the header, before decoding. Raises :class:`ImageReadError`."""
    p = Path(path)
    limits = (MAX_PIXELS if max_pixels is None else int(max_pixels), MAX_SIDE if max_side is None else int(max_side))
    head, sha256 = _read_head(p)
    fmt = _sniff(p, head)
    notes: list[str] = []
    if _SUFFIX_FORMAT.get(p.suffix.lower(), fmt) != fmt:
        notes.append(f"file content is {fmt} although its name ends in {p.suffix}")
    try:
        with _decoder_guard() as caught:
            if fmt == "TIFF":
                decoded = _read_tiff(p, limits, notes)
            elif fmt == "PNG" and head[12:16] == b"IHDR" and head[24] == 16:
                decoded = _read_png16(p, head, limits)
            else:
                decoded = _read_pillow(p, fmt, limits, notes)
            pixels = _to_display(decoded, notes)
        if fmt == "JPEG":
            _note_jpeg_damage(p, notes)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(p, f"image too large ({exc})", hint="crop or tile the image first") from exc
    except MemoryError as exc:
        raise ImageReadError(p, "not enough memory to decode it", hint="close other images or tile it") from exc
    except _DECODE_ERRORS as exc:
        raise ImageReadError(p, _failure_reason(fmt, exc)) from exc
    notes.extend(dict.fromkeys(f"decoder warning: {w.message}" for w in caught  # recorded, not shown; a file
                               if getattr(w, "category", None) is not ResourceWarning))  # left open elsewhere:
    # no note (tifffile's log lines come as plain records without a category)
    h, w = pixels.shape[:2]
    return ImageData(pixels, ImageInfo(str(p), w, h, decoded.dtype, decoded.channels, notes, sha256))


def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a 2-D ``uint8`` map (e.g. a class map) as PNG atomically (temp file + rename)."""
    p, a = Path(path), np.asarray(array)
    if a.ndim != 2 or a.dtype != np.uint8 or a.size == 0:
        raise SaveError(f"Cannot write '{p}': expected a non-empty 2-D uint8 array, got {a.dtype} {a.shape}",
                        hint="convert the map with .astype(np.uint8) first")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        short = p.name if len(os.fsencode(p.name)) <= 200 else p.name[:40]  # a temp name must fit in 255 bytes
        fd, tmp = tempfile.mkstemp(prefix=f".{short}.", suffix=".tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                Image.fromarray(np.ascontiguousarray(a)).save(fh, format="PNG")
                fh.flush()
                os.fsync(fh.fileno())
            share_mode(tmp, p)  # mkstemp makes 0600 files
            os.replace(tmp, p)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise SaveError(f"Cannot write '{p}': {exc.strerror or exc}",
                        hint="check that the folder is writable and the disk is not full") from exc
    return p


def _failure_reason(fmt: str, exc: BaseException) -> str:
    msg = str(exc) or type(exc).__name__
    if "truncated" in msg.lower() or isinstance(exc, EOFError):
        return f"file is truncated or corrupt ({msg})"
    return f"corrupt or unsupported {fmt} data ({type(exc).__name__}: {msg})"


class _LogToWarnings(logging.Handler):
    """tifffile reports malformed files through ``logging`` (on stderr by default): record them."""

    def __init__(self, caught: list):
        super().__init__(logging.WARNING)
        self.caught = caught

    def emit(self, record: logging.LogRecord) -> None:
        self.caught.append(SimpleNamespace(message=record.getMessage()))


@contextmanager
def _decoder_guard() -> Iterator[list]:
    """Pillow's own size check off (ours decides, from the header, right after open), truncated
    images refused, warnings (and tifffile's log messages) recorded instead of shown; the
    globals are restored afterwards."""
    with _LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
        log, handler = logging.getLogger("tifffile"), _LogToWarnings(caught)
        propagate, log.propagate = log.propagate, False
        log.addHandler(handler)
        try:
            yield caught
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved
            log.removeHandler(handler)
            log.propagate = propagate


def _read_pillow(p: Path, fmt: str, limits: tuple[int, int], notes: list[str]) -> _Decoded:
    """JPEG / 8-bit PNG / BMP (and TIFFs tifffile cannot decode) through Pillow."""
    with Image.open(p, formats=_PIL_FORMATS[fmt]) as im:
        _check_size(p, im.width, im.height, limits)  # from the header: nothing decoded yet
        frames = getattr(im, "n_frames", 1)
        if frames > 1 and fmt != "TIFF":
            notes.append(f"{fmt} has {frames} frames: showing frame 1")
        im.load()
        if fmt in ("JPEG", "TIFF"):
            im = _exif_transpose(im, notes)
        return _pil_to_array(p, im, notes)


def _note_jpeg_damage(p: Path, notes: list[str]) -> None:
    with open(p, "rb") as fh:
        damage = jpeg_damage(fh.read())
    if damage:
        what = "; ".join(d.removeprefix("Corrupt JPEG data: ") for d in damage)
        notes.insert(0, CAUTION + f"damaged JPEG ({what}): from the damage on the picture is grey or garbled, and "
                     "the counts of the whole image are unreliable (the damage also throws off the red-cell size); "
                     "copy the file again from its source")


def _exif_transpose(im: Image.Image, notes: list[str]) -> Image.Image:
    try:
        orientation = int(im.getexif().get(0x0112, 1))
    except (OSError, ValueError, SyntaxError, struct.error, KeyError, TypeError):
        notes.append("EXIF data unreadable: orientation not applied")
        return im
    if 2 <= orientation <= 8:
        im = ImageOps.exif_transpose(im)
        notes.append(f"EXIF orientation applied (tag value {orientation})")
    return im


def _pil_to_array(p: Path, im: Image.Image, notes: list[str]) -> _Decoded:
    mode = im.mode
    if mode in ("P", "PA"):
        alpha = mode == "PA" or "transparency" in im.info
        notes.append("palette image converted to RGB")
        return _Decoded(np.asarray(im.convert("RGBA" if alpha else "RGB")), alpha, "uint8", 3 + alpha)
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im)
        return _Decoded(arr, False, arr.dtype.name, 1)
    if mode not in _PIL_MODES:
        raise ImageReadError(p, f"unsupported image mode '{mode}'", hint="save it as 8/16-bit gray or RGB")
    target, alpha = _PIL_MODES[mode]
    if target == "RGB" and mode not in ("RGB", "RGBX"):
        notes.append(f"{mode} converted to RGB")
    arr = np.asarray(im if target == mode else im.convert(target))
    return _Decoded(arr, alpha, "bool" if mode == "1" else "uint8", len(im.getbands()))


def _read_png16(p: Path, head: bytes, limits: tuple[int, int]) -> _Decoded:
    """16-bit PNG through OpenCV: Pillow would cut RGB(A)/LA to 8 bits before our scaling."""
    import cv2  # local: only needed here
    w, h = struct.unpack(">II", head[16:24])
    _check_size(p, w, h, limits)
    data = np.fromfile(p, np.uint8)
    _check_png_chunks(p, memoryview(data))
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.shape[:2] != (h, w):
        raise ImageReadError(p, "file is truncated or corrupt (16-bit PNG could not be decoded)")
    if arr.ndim == 3:  # OpenCV's BGR(A) -> RGB(A); gray+alpha back to 2 channels
        arr = arr[..., [0, 3] if head[25] == 4 else [2, 1, 0, 3][: arr.shape[2]]]
    alpha = arr.ndim == 3 and arr.shape[2] in (2, 4)
    return _Decoded(arr, alpha, arr.dtype.name, _PNG_CHANNELS.get(head[25], 1))


def _tiff_by_opencv(p: Path, h: int, w: int, s: int, dtype: np.dtype, notes: list[str]) -> np.ndarray | None:
    """A 16-bit gray / RGB(A) TIFF page whose compression (LZW, Deflate: what ``cv2.imwrite`` writes) tifffile
    cannot decode without imagecodecs, through OpenCV's libtiff; None when that fails too. Pillow would cut it to
    8 bits (the high byte: a 12-bit camera image went almost black, and no cell was found)."""
    import cv2  # local: only needed here

    arr = cv2.imdecode(np.fromfile(p, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.shape[:2] != (h, w) or arr.dtype != dtype or (arr.shape[2] if arr.ndim == 3 else 1) != s:
        return None
    notes.append("TIFF decoded with OpenCV")
    return arr[..., [2, 1, 0, 3][:s]] if arr.ndim == 3 and s in (3, 4) else arr  # BGR(A) -> RGB(A)


def _read_tiff(p: Path, limits: tuple[int, int], notes: list[str]) -> _Decoded:
    """First page of a TIFF through tifffile (Pillow for palette/CMYK/... or missing codecs)."""
    with tifffile.TiffFile(p) as tf:
        n_pages = len(tf.pages)
        if n_pages == 0:
            raise ImageReadError(p, "TIFF file holds no image (no pages)")
        page = tf.pages[0]
        h, w, d, s = page.imagelength, page.imagewidth, page.imagedepth, page.samplesperpixel
        _check_size(p, w, h, limits, d)  # from the IFD: nothing decoded yet
        if not 1 <= s <= 8:  # a corrupt count would make tifffile allocate w×h×s samples
            raise ImageReadError(p, f"TIFF with {s} samples per pixel is not supported",
                                 hint="export one channel or an RGB image")
        if n_pages > 1:
            notes.append(CAUTION + f"multi-page TIFF: showing page 1 of {n_pages}; only it is counted "
                         "(save each page as its own image to count the others)")
        if any(c and o + c > tf.filehandle.size for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)):
            raise ImageReadError(p, "file is truncated (image data ends after the end of the file)")
        dtype = np.dtype(page.dtype).name if page.dtype is not None else "unknown"
        photometric, planar = int(page.photometric), page.planarconfig == 2
        orientation = int(getattr(page.tags.get("Orientation"), "value", 1))
        extras = [int(e) for e in page.extrasamples]
        arr = None
        if photometric in (0, 1, 2):  # gray / RGB; Pillow does palette, CMYK, YCbCr ...
            try:
                arr = page.asarray()
            except (KeyError, ValueError, NotImplementedError) as exc:
                if "imagecodecs" not in str(exc):
                    raise
                if page.dtype is not None and np.dtype(page.dtype).itemsize > 1 and photometric in (1, 2):
                    arr = _tiff_by_opencv(p, h, w, s, np.dtype(page.dtype), notes)  # LZW, Deflate, ...
                    planar = False
    if arr is None:  # colour space, or compression tifffile cannot decode without imagecodecs
        decoded = _read_pillow(p, "TIFF", limits, notes)
        notes.append("TIFF decoded with Pillow")
        return decoded._replace(dtype=dtype)
    if arr.size != d * h * w * s:
        raise ImageReadError(p, f"unexpected TIFF data layout {arr.shape} for {w}×{h}×{s}")
    arr = arr.reshape(s, d, h, w)[:, 0].transpose(1, 2, 0) if planar and s > 1 else arr.reshape(d, h, w, s)[0]
    if d > 1:
        notes.append(f"volumetric TIFF: showing plane 1 of {d}")
    if 2 <= orientation <= 8:
        arr = _orient(arr, orientation)
        notes.append(f"EXIF orientation applied (tag value {orientation})")
    return _tiff_colour(p, arr, dtype, photometric, extras, notes)


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF/TIFF orientation (1..8) to H×W[×C] as PIL's exif_transpose does."""
    if orientation >= 5:  # 5..8 swap rows and columns, then flip
        arr = arr.swapaxes(0, 1)
    if orientation in (2, 3, 6, 7):
        arr = arr[:, ::-1]
    if orientation in (3, 4, 7, 8):
        arr = arr[::-1]
    return arr


def _tiff_colour(p: Path, arr: np.ndarray, dtype: str, photometric: int, extras: list[int],
                 notes: list[str]) -> _Decoded:
    """H×W×S gray (0 MINISWHITE, 1 MINISBLACK) or RGB (2) samples -> a _Decoded."""
    s, n = arr.shape[2], (3 if photometric == 2 else 1)
    if not n <= s <= n + 3:
        raise ImageReadError(p, f"TIFF with {s} samples per pixel (photometric {photometric}) is not supported",
                             hint="export one channel or an RGB image")
    alpha = s > n and bool(extras) and extras[0] in (1, 2)  # associated / unassociated alpha
    if s > n + alpha:
        notes.append(f"{s - n - alpha} extra sample(s) per pixel ignored")
    arr = arr[..., : n + alpha]
    if photometric == 0:
        g = arr[..., 0]
        g = ~g if g.dtype == bool else (np.iinfo(g.dtype).max - g if g.dtype.kind == "u" else -g)
        arr = np.concatenate([g[..., None], arr[..., 1:]], -1)
        notes.append("MINISWHITE TIFF inverted")
    return _Decoded(arr, alpha, dtype, s)


#: a pixel with less alpha than this (and some) is faded by the composite on white ...
SEMI_OPAQUE = 0.9
#: ... and more than this share of such pixels is a caution
SEMI_TRANSPARENT_SHARE = 0.01


def _to_display(dec: _Decoded, notes: list[str]) -> np.ndarray:
    """A _Decoded -> contiguous uint8 RGB H×W×3: tone map, composite alpha on white, replicate gray."""
    arr = dec.arr if dec.arr.ndim == 3 else dec.arr[..., None]
    rgb = to_uint8(arr[..., :-1] if dec.alpha else arr, dec.dtype, notes)
    empty = False
    if dec.alpha:
        a = alpha_unit(arr[..., -1])[..., None]
        if (a < 1).any():
            rgb = np.rint(rgb * a + 255.0 * (1 - a)).astype(np.uint8)
            notes.append("alpha composited on white")
        empty = not (a > 0).any()
        partial = float(np.count_nonzero((a > 0) & (a < SEMI_OPAQUE))) / max(1, a.size)
        if empty:
            notes.append(CAUTION + "the image is fully transparent: there is nothing to count")
        elif partial > SEMI_TRANSPARENT_SHARE:  # a transparent margin is white and left out; a faded smear is not
            notes.append(CAUTION + f"semi-transparent image: {100 * partial:.0f} % of its pixels were blended with "
                         "white, which fades the stain colours and may change the counts (save it without "
                         "transparency)")
    grey = rgb.shape[2] == 1 or _grey(rgb)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    if grey and not empty:
        notes.append(CAUTION + "greyscale image: white cells and platelets are told apart by their stain "
                     "colour, so they may be missed; red-cell counts hold")
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def _grey(rgb: np.ndarray) -> bool:
    """All three channels equal (a strided sample: a grey picture saved as RGB)."""
    step = max(1, rgb.shape[0] * rgb.shape[1] // 250_000)
    flat = rgb.reshape(-1, rgb.shape[2])[::step]
    return rgb.shape[2] == 3 and bool((flat[:, 0] == flat[:, 1]).all() and (flat[:, 1] == flat[:, 2]).all())
