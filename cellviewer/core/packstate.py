"""Keep whole-image undo states small: label maps packed (smallest integer type + zlib).

A re-segmentation is one undo step that keeps the maps it replaced: three ``int32`` label
maps and the part map, 13 bytes per pixel — 230 MB for a 4500 × 3900 field, every time the
user runs the model again. Label maps are long runs of equal values, so they pack to a
few MB: :func:`pack` stores each array in the smallest integer type that holds its values,
zlib-compressed (level 1: ~0.1 s per 20 MP map, and zlib lets other threads run meanwhile);
:func:`unpack` gives back arrays equal to the originals, dtype included. An all-zero map (the state
before an image's first segmentation) keeps no data and comes back as ``np.zeros`` (memory the OS
hands out zeroed when first touched: no work to unpack it). Anything that is not a numeric array
passes through untouched.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

#: arrays smaller than this stay as they are (packing them saves nothing worth the time)
MIN_PACK_BYTES = 1 << 16


@dataclass(frozen=True)
class PackedArray:
    data: bytes  # zlib of the array in ``stored`` dtype, C order
    shape: tuple
    dtype: str  # the original dtype
    stored: str  # the dtype the values were stored in
    zero: bool = False  # every value is 0: ``data`` is empty

    @property
    def nbytes(self) -> int:
        return len(self.data)


def _smallest(a: np.ndarray, lo: int, hi: int) -> np.dtype:
    if a.dtype.kind not in "iu" or a.size == 0:
        return a.dtype
    for t in (np.uint8, np.uint16, np.int16, np.uint32, np.int32):
        info = np.iinfo(t)
        if info.min <= lo and hi <= info.max:
            return np.dtype(t)
    return a.dtype


def pack_array(a):
    """A :class:`PackedArray` for a numeric array of at least :data:`MIN_PACK_BYTES`; else ``a``."""
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf" or a.nbytes < MIN_PACK_BYTES:
        return a
    lo, hi = (int(a.min()), int(a.max())) if a.dtype.kind in "iu" and a.size else (None, None)
    small = _smallest(a, lo, hi)
    if lo == hi == 0:
        return PackedArray(b"", tuple(a.shape), a.dtype.str, small.str, zero=True)
    raw = np.ascontiguousarray(a, dtype=small)
    return PackedArray(zlib.compress(memoryview(raw).cast("B"), 1), tuple(a.shape), a.dtype.str, small.str)


def unpack_array(p):
    """The array a :class:`PackedArray` was made from (anything else is returned as it is)."""
    if not isinstance(p, PackedArray):
        return p
    if p.zero:
        return np.zeros(p.shape, np.dtype(p.dtype))
    flat = np.frombuffer(zlib.decompress(p.data), dtype=np.dtype(p.stored))
    return flat.reshape(p.shape).astype(np.dtype(p.dtype))


def _walk(obj, leaf):
    """``obj`` with ``leaf`` applied to everything that is not a dict, list or tuple inside it."""
    if isinstance(obj, dict):
        return {k: _walk(v, leaf) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_walk(v, leaf) for v in obj)
    return leaf(obj)


def pack(obj):
    """``obj`` with every large numeric array inside (dicts, lists, tuples) packed."""
    return _walk(obj, pack_array)


def unpack(obj):
    """The inverse of :func:`pack`."""
    return _walk(obj, unpack_array)


def packed_bytes(obj) -> int:
    """Bytes held by the arrays in ``obj`` (packed or not)."""
    if isinstance(obj, dict):
        return sum(packed_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(packed_bytes(v) for v in obj)
    return int(getattr(obj, "nbytes", 0))
