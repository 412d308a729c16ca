"""Tone mapping for viewing and analysis: any numeric samples to ``uint8``, alpha samples to [0, 1].

Used by :func:`cellviewer.core.io.read_image` for 16-bit, signed and float images, converted
in chunks so temporary memory stays bounded; what was done is appended to the image's notes:

* **unsigned integers** (10/12/14/16-bit cameras) are scaled **linearly** by the bit depth
  the data use (the bits of the 99.9th percentile, so a few hot pixels do not count, rounded
  up to 8, 10, 12, 14, 16, 24 or 32): a 16-bit copy of a well-exposed 8-bit picture reads
  exactly as the 8-bit one, and a stained smear keeps its tones (colour ratios, bright
  background) as the models were trained on them;
* a **dim** one (its 99.5th percentile — the bright background of a smear — under
  :data:`BRIGHT` of that range, as from a 16-bit file holding 15 bits or an under-exposed
  camera) is brightened by a gain that puts that percentile at :data:`BRIGHT`: still linear
  through zero, so tones are kept, and a small change in exposure gives a small change;
* **float** samples in 0…1 (or 0…255, some above 1) as an integer image of that full scale (linear, dim
  ones brightened); other **float** and **signed** samples: a 0.5–99.5 % stretch.

Percentiles come from a fixed-stride sample, so the same file always gives the same pixels.
"""

from __future__ import annotations

import numpy as np

STRETCH_PERCENTILES = (0.5, 99.5)  #: display stretch of dim / float / signed images
DEPTHS = (8, 10, 12, 14, 16, 24, 32)  #: bit depths an unsigned image is taken to use
BRIGHT = 0.85  #: an image whose 99.5th percentile is under this share of its depth's range is brightened to it
TOP_PERCENTILE = 99.9  #: the value whose bits are taken as the depth used
_PERCENTILE_SAMPLE = 1 << 22  # values used for the percentiles (fixed stride: deterministic)
_CHUNK = 1 << 22  # elements converted at a time (bounds temporary memory)


def alpha_unit(a: np.ndarray) -> np.ndarray:
    """Alpha samples as float32 in [0, 1] by their dtype's range (NaN = opaque)."""
    if a.dtype.kind in "ui":
        return np.clip(a.astype(np.float32) / np.iinfo(a.dtype).max, 0, 1)
    return np.clip(np.nan_to_num(a.astype(np.float32), nan=1.0), 0, 1)


def _float_unit(sample: np.ndarray) -> float | None:
    """The full scale of float intensities that lie in 0…1 (1.0) or 0…255 with some above 1 (255.0), as
    written by image libraries; ``None`` for any other range (those are stretched)."""
    if not sample.size:
        return None
    lo, hi = float(sample.min()), float(sample.max())
    if lo < 0:
        return None
    return 1.0 if hi <= 1.0 else 255.0 if hi <= 255.0 else None


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
    unit = _float_unit(sample) if is_float and hi > 0 else None
    if (colour.dtype.kind == "u" or unit) and sample.size and hi > 0:
        if unit:  # float intensities in 0…1 or 0…255 keep their tones, as an integer image does
            bits, full, used = 0, unit, f"float samples in 0…{unit:g}"
        else:
            top = float(np.percentile(sample, TOP_PERCENTILE))  # a few hot pixels do not set the depth
            bits = next((b for b in DEPTHS if top < 1 << b), DEPTHS[-1])
            full = float((1 << bits) - 1)
            used = f"{bits} bits used"
        if colour.dtype == np.uint16 and not np.any(sample % 257):  # an 8-bit image saved as 16-bit (× 257)
            lo, hi, how = 0.0, 65535.0, "linear: 8-bit values stored as 16-bit (× 257), read as the 8-bit image"
        elif hi >= BRIGHT * full:
            lo, hi, how = 0.0, full, f"linear, {used}: 0…{full:g}"
        else:
            gain = BRIGHT * full / hi
            lo, hi, how = 0.0, full / gain, (f"dim image brightened ×{gain:.2f}: {used}, its brightest "
                                             f"0.5 % put at {BRIGHT:.0%} of the range")
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
    notes.append(f"{dt.itemsize * 8}-bit{kind} image scaled to 8 bits for viewing and analysis ({how})")
    if n_bad:
        notes.append(f"{n_bad} NaN/inf sample value(s) shown as 0")
    return out.reshape(colour.shape)
