"""Reading a sidecar archive: its format identity, and the checks before anything is trusted.

:func:`read_sidecar` opens a ``.cellviewer`` ZIP (layout: :mod:`cellviewer.core.sidecar`) and
validates its structure, not yet against an image: ``document.json`` present, of this format
and of a version this cellviewer reads; no member implausibly large (zip bombs); every
``.npy`` header consistent with its member's size and free of Python objects before it is
loaded (``allow_pickle=False``). Whatever is wrong raises
:class:`~cellviewer.core.errors.SidecarError` (:func:`_bad`: "cannot be used", with a hint).
"""

from __future__ import annotations

import io as _io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from cellviewer.core.document import CELL_CLASSES
from cellviewer.core.errors import SidecarError

FORMAT = "cellviewer-sidecar"
FORMAT_VERSION = 1
MAX_MEMBER_BYTES = 2_000_000_000  # refuse absurd members (zip bombs)
MAX_JSON_BYTES = 256_000_000  # document.json: ~1 million markers and edits
try:  # what a corrupt LZMA member raises (zipfile reads LZMA; Python may be built without it)
    from lzma import LZMAError as _LZMAError

    _LZMA_ERROR: tuple = (_LZMAError,)
except ImportError:
    _LZMA_ERROR = ()


def _bad(path, why: str) -> SidecarError:
    return SidecarError(f"The saved corrections '{path}' cannot be used: {why}.",
                        hint="rename or delete that file to start afresh (the image itself is fine)")


def _check_npy(path, z: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Refuse an ``.npy`` member whose header disagrees with its size (a lying header would
    make ``np.load`` allocate whatever it claims) or that holds objects, before loading it."""
    with z.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unsupported .npy format version {version}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f, max_header_size=10_000)
        offset = f.tell()
    if dtype.hasobject:
        raise _bad(path, f"{info.filename} holds Python objects (refused: it would need unpickling)")
    expected = offset + int(np.prod(shape, dtype=object)) * dtype.itemsize
    if expected != info.file_size:
        raise _bad(path, f"{info.filename} is corrupt (its header announces {shape} {dtype}, "
                         f"{expected:,} bytes, the member holds {info.file_size:,})")


def read_sidecar(path) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse and validate a sidecar file's structure (not yet against an image)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "document.json" not in names:
                raise _bad(path, "document.json is missing")
            for info in z.infolist():
                if info.file_size > MAX_MEMBER_BYTES:
                    raise _bad(path, f"member {info.filename} is implausibly large")
            if z.getinfo("document.json").file_size > MAX_JSON_BYTES:
                raise _bad(path, "document.json is implausibly large")
            meta = json.loads(z.read("document.json").decode("utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise _bad(path, "it is not a cellviewer sidecar")
            ver = meta.get("format_version")
            if not isinstance(ver, int) or ver < 1:
                raise _bad(path, f"unknown format version {ver!r}")
            if ver > FORMAT_VERSION:
                raise SidecarError(
                    f"'{path}' was saved by a newer cellviewer (format {ver}; this one reads up to {FORMAT_VERSION}).",
                    hint="update cellviewer to open these corrections")
            arrays = {}
            for name in [f"labels/{c}.npy" for c in CELL_CLASSES] + ["parts.npy"]:
                if name in names:
                    _check_npy(path, z, z.getinfo(name))
                    arrays[name] = np.load(_io.BytesIO(z.read(name)), allow_pickle=False)
    except SidecarError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError,
            UnicodeDecodeError, json.JSONDecodeError, NotImplementedError, RuntimeError, RecursionError,
            MemoryError, OverflowError, TypeError, zlib.error, *_LZMA_ERROR) as e:
        # RuntimeError: an encrypted member; RecursionError: absurdly nested JSON; zlib.error: a corrupt
        # deflate stream
        raise _bad(path, f"{type(e).__name__}: {e}") from e
    return meta, arrays
