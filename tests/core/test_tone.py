"""Tone mapping to 8 bits: percentile stretch, constant images, NaN/inf, alpha units."""

import numpy as np

from cellviewer.core.tone import STRETCH_PERCENTILES, alpha_unit, to_uint8


def test_uint16_ramp_is_stretched_between_the_percentiles():
    ramp = np.arange(0, 10001, dtype=np.uint16).reshape(1, -1, 1)
    notes = []
    out = to_uint8(ramp, "uint16", notes)
    assert out.dtype == np.uint8 and out.shape == ramp.shape
    lo, hi = np.percentile(ramp, STRETCH_PERCENTILES)
    # below the low percentile -> 0, above the high -> 255, the middle maps linearly
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255
    mid = 5000
    assert abs(int(out[0, mid, 0]) - round((mid - lo) * 255 / (hi - lo))) <= 1
    assert notes and notes[0].startswith("16-bit image scaled to 8 bits")


def test_uint8_passes_through_and_bool_maps_to_0_255():
    a = np.array([[0, 7, 255]], np.uint8)
    assert to_uint8(a, "uint8", []) is a
    assert to_uint8(np.array([[True, False]]), "bool", []).tolist() == [[255, 0]]


def test_constant_image_uses_the_dtype_range():
    notes = []
    out = to_uint8(np.full((2, 2), 65535, np.uint16), "uint16", notes)
    assert (out == 255).all() and "constant image" in notes[0]


def test_float_nan_and_inf_become_zero_and_are_counted():
    a = np.array([[0.0, 0.5, 1.0, np.nan, np.inf]] * 50, np.float32)
    notes = []
    out = to_uint8(a, "float32", notes)
    assert (out[:, 3:] == 0).all() and out[0, 2] == 255
    assert any("100 NaN/inf" in n for n in notes) and "32-bit float" in notes[0]


def test_alpha_unit_by_dtype_range():
    np.testing.assert_allclose(alpha_unit(np.array([0, 32768, 65535], np.uint16)), [0.0, 32768 / 65535, 1.0], rtol=1e-6)
    np.testing.assert_allclose(alpha_unit(np.array([np.nan, 2.0, -1.0, 0.25])), [1.0, 1.0, 0.0, 0.25])
