"""Property-based fuzzing of the three readers of untrusted bytes (hypothesis).

(a) ``read_image``: random bytes, and valid small PNG/JPEG/BMP/TIFF files with random byte
    flips, truncations and insertions -> a well-formed ``uint8`` H×W×3 image or
    ``ImageReadError``; nothing else, and within a per-example deadline.
(b) ``read_sidecar`` + ``apply_sidecar``: valid sidecars whose JSON fields get random JSON
    values, whose arrays get random dtypes/shapes, whose members vanish, whose zip bytes
    flip -> a consistent ``Document`` or ``SidecarError``.
(c) ``read_entries`` (+ ``recover``): random bytes and truncated/flipped journals never raise
    and yield a prefix of the intact entries.

Examples per target: ``CELLVIEWER_FUZZ_EXAMPLES`` (default 150). The long run is
``python -m cellviewer.core.fuzz`` (no hypothesis needed).
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import zipfile
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from cellviewer.core import fuzz, mutate  # noqa: E402
from cellviewer.core.robustness import CRASH, OK, check_image, check_journal, check_sidecar  # noqa: E402

EXAMPLES = int(os.environ.get("CELLVIEWER_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=5), database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WORK = Path(tempfile.mkdtemp(prefix="cellviewer-fuzz-test-"))
H, W = fuzz.SIDE_H, fuzz.SIDE_W

SEEDS = {k: v for k, v in fuzz.image_seeds(np.random.default_rng(0)).items()
         if k in ("png", "png_pal_trns.png", "png16.png", "jpg", "prog.jpg", "bmp", "pal.bmp", "tif", "gray16.tif",
                  "f32.tif", "tiled.tif", "zlib.tif", "planar.tif", "big.tif")}
SUFFIXES = [".png", ".jpg", ".bmp", ".tif"]


def teardown_module():
    import shutil

    shutil.rmtree(WORK, ignore_errors=True)


def _assert_contract(outcome, data: bytes):
    assert outcome.status != CRASH, f"{outcome.detail}\ninput ({len(data)} bytes): {data[:80]!r}..."


# -- (a) images -------------------------------------------------------------------------------------
@st.composite
def mutated_image(draw):
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for pos, val in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=12)):
        data[pos] = val
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else "." + name
    return bytes(data), draw(st.sampled_from([suffix, suffix, *SUFFIXES]))


@SETTINGS
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(SUFFIXES),
       magic=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"II+\x00"]))
def test_read_image_random_bytes(data, suffix, magic):
    p = WORK / f"random{suffix}"
    p.write_bytes(magic + data)
    _assert_contract(check_image(p), magic + data)


@SETTINGS
@given(case=mutated_image())
def test_read_image_mutated_valid_files(case):
    data, suffix = case
    p = WORK / f"mutated{suffix}"
    p.write_bytes(data)
    _assert_contract(check_image(p), data)


# -- (b) sidecars -----------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["rbc", "wbc", "platelet", "manual", "30", "20"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "cls", "x", "y", "cell", "score", "bbox", "action", "width", "k"]), children,
        max_size=4),
    max_leaves=8)

FIELDS = [("format",), ("format_version",), ("image",), ("image", "width"), ("image", "height"),
          ("image", "sha256"), ("um_per_px",), ("reviewed",), ("journal_last",), ("markers",), ("markers", 0),
          ("markers", 0, "id"), ("markers", 0, "cls"), ("markers", 0, "x"), ("markers", 0, "y"),
          ("markers", 1, "cell"), ("markers", 1, "score"), ("markers", 2, "origin"), ("markers", 2, "reviewed"),
          ("provenance",), ("provenance", "params"), ("provenance", "edits"), ("provenance", "edits", 0),
          ("provenance", "edits", 0, "bbox"), ("provenance", "edits", 0, "cls"), ("provenance", "model_name")]
MEMBERS = ["labels/rbc.npy", "labels/wbc.npy", "labels/platelet.npy", "parts.npy"]
DTYPES = st.sampled_from([np.uint8, np.uint16, np.int32, np.int64, np.uint64, np.float32, np.float64, np.bool_,
                          np.complex64, np.dtype(">i4"), np.int8])
SHAPES = st.sampled_from([(H, W), (W, H), (H, W, 3), (H * W,), (), (0, 0), (H + 1, W), (1, 1)])


def _set(doc, path, value):
    target = doc
    for k in path[:-1]:
        try:
            target = target[k]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(target, dict) or (isinstance(target, list) and isinstance(path[-1], int)
                                    and path[-1] < len(target)):
        target[path[-1]] = value


def _npy(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, a, allow_pickle=False)
    return b.getvalue()


@st.composite
def mutated_sidecar(draw):
    meta, arrays = mutate.valid_sidecar_parts(None)
    for path, value in draw(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4)).items():
        _set(meta, path, value)
    for path in draw(st.lists(st.sampled_from(FIELDS), max_size=2)):
        if len(path) == 1:
            meta.pop(path[0], None)
    for member in draw(st.lists(st.sampled_from(MEMBERS), max_size=2, unique=True)):
        how = draw(st.sampled_from(["array", "remove", "garbage", "truncate"]))
        if how == "array":
            arrays[member] = _npy(draw(hnp.arrays(DTYPES, SHAPES, elements=None)))
        elif how == "remove":
            arrays.pop(member, None)
        elif how == "garbage":
            arrays[member] = draw(st.binary(max_size=200))
        elif member in arrays:
            arrays[member] = arrays[member][: draw(st.integers(0, len(arrays[member])))]
    text = json.dumps(meta, allow_nan=True).encode()
    data = mutate.zip_bytes({"document.json": text, **arrays})
    flips = draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=3))
    if flips and draw(st.integers(0, 3)) == 0:  # mostly structured mutations; sometimes raw zip damage
        b = bytearray(data)
        for pos, val in flips:
            b[pos] = val
        data = bytes(b)
    return data


@SETTINGS
@given(data=mutated_sidecar())
def test_sidecar_mutations_give_a_consistent_document_or_sidecar_error(data):
    p = WORK / "img.png.cellviewer"
    p.write_bytes(data)
    out = check_sidecar(p, (H, W))
    _assert_contract(out, data)


@SETTINGS
@given(data=st.binary(max_size=2048))
def test_sidecar_random_bytes(data):
    p = WORK / "rnd.png.cellviewer"
    p.write_bytes(b"PK\x03\x04" + data if data[:1] == b"P" else data)
    _assert_contract(check_sidecar(p, (H, W)), data)


# -- (c) journals -----------------------------------------------------------------------------------
JOURNAL = fuzz.valid_journal(None)


def _reference():
    p = WORK / "reference.journal"
    p.write_bytes(JOURNAL)
    from cellviewer.core.journal import read_entries

    return [(k, e.name, e.record) for k, e in read_entries(p)]


REFERENCE = _reference()


def test_the_reference_journal_is_complete():
    assert [k for k, *_ in REFERENCE] == ["apply", "apply", "apply", "revert", "apply", "apply"]


@SETTINGS
@given(cut=st.integers(0, len(JOURNAL)),
       flips=st.lists(st.tuples(st.integers(0, len(JOURNAL) - 1), st.integers(0, 255)), max_size=4),
       tail=st.binary(max_size=64))
def test_journal_damage_yields_a_prefix(cut, flips, tail):
    b = bytearray(JOURNAL)
    for pos, val in flips:
        b[pos] = val
    data = bytes(b[:cut]) + tail
    p = WORK / "damaged.journal"
    p.write_bytes(data)
    out = check_journal(p, (H, W))
    _assert_contract(out, data)
    got = [(k, e.name, e.record) for k, e in out.value]
    assert got == REFERENCE[: len(got)]
    if not flips and not tail:
        whole = sum(1 for end in _record_ends(JOURNAL) if end <= cut)
        assert len(got) == whole  # a cut loses only the record it falls in (and later ones)


def _record_ends(data: bytes):
    pos = 0
    while pos + 12 <= len(data):
        (n,) = struct.unpack("<Q", data[pos + 4 : pos + 12])
        pos += 16 + n
        yield pos


@SETTINGS
@given(index=st.integers(0, 5), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1,
                                                 max_size=6))
def test_journal_payload_damage_behind_a_valid_crc_never_raises(index, flips):
    """Even a record whose CRC matches garbage (a bug, or a hostile file) is refused cleanly."""
    recs, pos = [], 0
    while pos + 12 <= len(JOURNAL):
        (n,) = struct.unpack("<Q", JOURNAL[pos + 4 : pos + 12])
        recs.append(bytearray(JOURNAL[pos + 12 : pos + 12 + n]))
        pos += 16 + n
    payload = recs[index % len(recs)]
    for at, val in flips:
        payload[at % len(payload)] = val
    data = b"".join(b"CVJ1" + struct.pack("<Q", len(r)) + bytes(r) + struct.pack("<I", zlib.crc32(r)) for r in recs)
    p = WORK / "crc.journal"
    p.write_bytes(data)
    _assert_contract(check_journal(p, (H, W)), data)


@SETTINGS
@given(data=st.binary(max_size=4096))
def test_journal_random_bytes(data):
    p = WORK / "random.journal"
    p.write_bytes(b"CVJ1" + data if data[:1] == b"C" else data)
    out = check_journal(p, (H, W))
    _assert_contract(out, data)
    assert out.status == OK


def test_zip_bytes_helper_round_trips():
    data = mutate.zip_bytes({"a": b"1"})
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.read("a") == b"1"
