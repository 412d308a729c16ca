"""Whole-image undo states pack to a small fraction and unpack to equal arrays."""

import numpy as np

from cellviewer.core.packstate import PackedArray, pack, packed_bytes, unpack


def test_label_maps_pack_small_and_come_back_equal():
    rng = np.random.default_rng(0)
    h, w = 1200, 1600
    lab = np.zeros((h, w), np.int32)
    for i in range(1, 400):  # 400 square "cells"
        y, x = rng.integers(0, h - 40), rng.integers(0, w - 40)
        lab[y:y + 30, x:x + 30] = i
    parts = (lab % 3).astype(np.uint8)
    state = {"labels": {"rbc": lab, "wbc": np.zeros_like(lab), "platelet": lab * 0 + 70000},
             "parts": parts, "markers": {1: "kept as is"}, "prov": {"params": {"diameter_px": 31.5}},
             "small": np.arange(5)}
    packed = pack(state)
    assert isinstance(packed["labels"]["rbc"], PackedArray) and packed["labels"]["rbc"].stored == "<u2"
    assert packed["labels"]["platelet"].stored == "<u4"  # values beyond 16 bits keep a wide type
    assert packed["markers"] == {1: "kept as is"} and packed["small"] is state["small"]
    assert packed_bytes(packed) < packed_bytes(state) / 50  # 13 bytes per pixel -> a few hundred KB
    back = unpack(packed)
    for c in ("rbc", "wbc", "platelet"):
        assert back["labels"][c].dtype == np.int32 and np.array_equal(back["labels"][c], state["labels"][c])
    assert back["parts"].dtype == np.uint8 and np.array_equal(back["parts"], parts)
    assert back["prov"] == state["prov"]


def test_negative_and_float_arrays_round_trip():
    a = np.linspace(-3, 3, 100_000).astype(np.float32)
    b = (np.arange(100_000) - 50_000).astype(np.int64)
    assert np.array_equal(unpack(pack(a)), a) and unpack(pack(a)).dtype == np.float32
    assert np.array_equal(unpack(pack(b)), b) and unpack(pack(b)).dtype == np.int64


def test_an_all_zero_map_keeps_no_data_and_comes_back_as_zeros():
    for dt in (np.int32, np.uint8):
        a = np.zeros((400, 500), dt)
        p = pack(a)
        assert isinstance(p, PackedArray) and p.nbytes == 0
        back = unpack(p)
        assert back.dtype == dt and back.shape == a.shape and not back.any()
        back[0, 0] = 1  # an array of its own
        assert not unpack(p).any()
