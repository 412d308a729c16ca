"""Byte-level mutators for the fuzzer: random damage to any file's bytes.

Each mutator takes a numpy ``Generator`` and a ``bytearray`` and returns the damaged bytes
(flips, truncation, runs, insertions, duplicated chunks, "interesting" integers over header
fields, garbage after a valid magic); :data:`BYTE_MUTATORS` names them and
:func:`mutate_bytes` applies one to three of them. Deterministic given the generator.
:mod:`cellviewer.core.mutate` builds the image, sidecar and journal mutations on these (and
re-exports them).
"""

from __future__ import annotations

import struct

import numpy as np

INTERESTING = [0, 1, 2, 7, 8, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 100_001, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF]


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
