"""Tone mapping for display: any numeric samples to ``uint8``, alpha samples to [0, 1].

Used by :func:`cellviewer.core.io.read_image` for 16-bit, signed and float images, converted
in chunks so temporary memory stays bounded; what was done is appended to the image's notes:

* **unsigned integers** (10/12/14/16-bit cameras) are scaled **linearly** by the bit depth
  the data use (the largest value's bits rounded up to 8, 10, 12, 14, 16, 24 or 32), so a
  16-bit copy of an 8-bit picture reads exactly as the 8-bit one, and a stained smear keeps
  the tones (bright background, stain colours) the models were trained on;
* unless the image is **dim** (its 99.5th percentile under a quarter of that range), and
  for **signed and float** samples: a deterministic 0.5–99.5 % stretch (percentiles of a
  fixed-stride sample, so the same file always gives the same pixels).
"""

from __future__ import annotations

import numpy as np

STRETCH_PERCENTILES = (0.5, 99.5)  #: display stretch of dim / float / signed images
DEPTHS = (8, 10, 12, 14, 16, 24, 32)  #: bit depths an unsigned image is taken to use
DIM = 0.25  #: below this share of its bit depth's range (99.5th percentile) an image is stretched
_PERCENTILE_SAMPLE = 1 << 22  # values used for the percentiles (fixed stride: deterministic)
_CHUNK = 1 << 22  # elements converted at a time (bounds temporary memory)


def alpha_unit(a: np.ndarray) -> np.ndarray:
    """Alpha samples as float32 in [0, 1] by their dtype's range (NaN = opaque)."""
    if a.dtype.kind in "ui":
        return np.clip(a.astype(np.float32) / np.iinfo(a.dtype).max, 0, 1)
    return np.clip(np.nan_to_num(a.astype(np.float32), nan=1.0), 0, 1)


def to_uint8(colour: np.ndarray, dtype: str, notes: list[str]) -> np.ndarray:
    """Any numeric samples -> uint8: unsigned integers linearly by the bit depth they use, dim
    images and signed/float samples by a deterministic 0.5–99.5 % stretch (NaN/inf -> 0)."""
    if colour.dtype == np.uint8:
        return colour
    if colour.dtype == bool:
        return colour.astype(np.uint8) * 255
    is_float = colour.dtype.kind == "f"
    flat = colour.reshape(-1)
    sample = flat[:: flat.size // _PERCENTILE_SAMPLE + 1]
    if is_float:
        sample = sample[np.isfinite(sample)]
    lo, hi = (float(v) for v in np.percentile(sample, STRETCH_PERCENTILES)) if sample.size else (0.0, 0.0)
    how = f"{STRETCH_PERCENTILES[0]:g}–{STRETCH_PERCENTILES[1]:g} % stretch of {lo:g}…{hi:g}"
    if colour.dtype.kind == "u" and sample.size:
        top = int(colour.max())
        bits = next((b for b in DEPTHS if top < 1 << b), DEPTHS[-1])
        full = float((1 << bits) - 1)
        if hi >= DIM * full:
            lo, hi, how = 0.0, full, f"linear, {bits} bits used: 0…{full:g}"
        else:
            how = f"dim image, {how}"
    if hi <= lo:  # constant image: map the dtype's natural range instead
        info = np.iinfo(colour.dtype) if colour.dtype.kind in "ui" else None
        lo, hi = (float(info.min), float(info.max)) if info else (0.0, 1.0)
        how = f"constant image, range {lo:g}…{hi:g}"
    scale, out, n_bad = 255.0 / (hi - lo), np.empty(flat.shape, np.uint8), 0
    for i in range(0, flat.size, _CHUNK):
        x = flat[i : i + _CHUNK].astype(np.float64)
        if is_float:
            bad = ~np.isfinite(x)
            n_bad += int(bad.sum())
            x[bad] = lo
        np.clip((x - lo) * scale, 0, 255, out=x)
        out[i : i + _CHUNK] = np.rint(x)
    dt = colour.dtype if dtype == "unknown" else np.dtype(dtype)
    kind = {"f": " float", "i": " signed"}.get(dt.kind, "")
    notes.append(f"{dt.itemsize * 8}-bit{kind} image scaled to 8 bits for display ({how})")
    if n_bad:
        notes.append(f"{n_bad} NaN/inf sample value(s) shown as 0")
    return out.reshape(colour.shape)
