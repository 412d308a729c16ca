"""Find damage inside a JPEG's compressed data, which decoders paper over.

A JPEG whose middle is damaged (a bad copy, a failing card) still decodes: libjpeg warns
"Corrupt JPEG data: premature end of data segment" and fills the rest with grey or garbled
blocks, and Pillow swallows the warning. Cells counted on such an image are wrong without
any sign. :func:`jpeg_damage` decodes the file once more at 1/8 size with OpenCV's libjpeg
(the entropy data is still decoded in full, the inverse DCT is cheap) while file
descriptor 2 is captured, and returns libjpeg's warnings. Whatever else reached stderr in
that moment is written back. If stderr cannot be captured (no descriptor 2, as in some
windowed builds) the check is skipped.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading

import numpy as np

_LOCK = threading.Lock()
_PREFIX = "Corrupt JPEG data"
# Padding before the end marker (zeros or 0xFF fill, written by some cameras) does no harm; data
# damaged inside makes the decoder stop early and leave compressed data unread before it.
_PADDING = re.compile(r"(\d+) extraneous bytes before marker 0xd9")


def jpeg_damage(data: bytes | bytearray | memoryview) -> list[str]:
    """libjpeg's "Corrupt JPEG data" warnings for these bytes (empty when the data is whole or
    the check could not run)."""
    import cv2  # local: OpenCV loads only when a JPEG is checked

    buf = np.frombuffer(data, np.uint8)
    with _LOCK:
        text = _captured_stderr(lambda: cv2.imdecode(buf, cv2.IMREAD_REDUCED_GRAYSCALE_8))
    if text is None:
        return []
    damage, other = [], []
    for line in text.splitlines():
        if line.startswith(_PREFIX):
            pad = _PADDING.search(line)
            if not (pad and _is_fill(buf, int(pad.group(1)))) and line.strip() not in damage:
                damage.append(line.strip())
        elif line.strip():
            other.append(line)
    if other:
        try:
            os.write(2, ("\n".join(other) + "\n").encode())
        except OSError:
            pass
    return damage


def _is_fill(buf: np.ndarray, n: int) -> bool:
    """The ``n`` bytes before the last end marker are all 0x00 or all 0xFF (padding, not data)."""
    raw = buf.tobytes()
    end = raw.rfind(b"\xff\xd9")
    if end < n or n <= 0:
        return False
    tail = raw[end - n:end]
    return tail.count(0) == n or tail.count(0xFF) == n


def _captured_stderr(fn) -> str | None:
    """Run ``fn`` with file descriptor 2 sent to a temporary file; the text written, or None
    when descriptor 2 cannot be redirected (then ``fn`` does not run)."""
    try:
        saved = os.dup(2)
    except OSError:
        return None
    try:
        with tempfile.TemporaryFile() as tf:
            os.dup2(tf.fileno(), 2)
            try:
                fn()
            finally:
                os.dup2(saved, 2)
            tf.seek(0)
            return tf.read().decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(saved)
