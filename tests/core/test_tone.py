"""Tone mapping to 8 bits: linear by bits used, percentile stretch, constant images, NaN/inf, alpha units."""

import numpy as np

from cellviewer.core.tone import BRIGHT, STRETCH_PERCENTILES, alpha_unit, to_uint8


def test_dim_uint16_is_brightened_linearly_and_hot_pixels_do_not_set_the_depth():
    ramp = np.arange(0, 10001, dtype=np.uint16).reshape(1, -1, 1)
    ramp[0, :3] = 65535  # hot pixels: not the depth used (14 bits: the 99.9th percentile is under 16384)
    notes = []
    out = to_uint8(ramp, "uint16", notes)
    assert out.dtype == np.uint8 and out.shape == ramp.shape
    hi = np.percentile(ramp, STRETCH_PERCENTILES[1])
    assert hi < BRIGHT * 16383  # dim: the brightest 0.5 % is put at BRIGHT of the range, through zero
    for v in (3, 5000, 9000):
        assert abs(int(out[0, v, 0]) - v * BRIGHT * 255 / hi) <= 1
    assert out[0, 0, 0] == 255  # a hot pixel saturates
    assert notes and "dim image brightened" in notes[0] and "14 bits used" in notes[0]
    # a small change of exposure gives a small change (no switch between two mappings)
    a = (ramp * 0.99).astype(np.uint16)
    assert np.abs(to_uint8(a, "uint16", []).astype(int) - out).max() <= 1


def test_uint16_is_scaled_linearly_by_the_bits_it_uses():
    rng = np.random.default_rng(0)
    a8 = rng.integers(0, 256, (20, 30, 3)).astype(np.uint8)
    a8[0, 0] = 255
    notes = []
    assert np.array_equal(to_uint8(a8.astype(np.uint16) * 257, "uint16", notes), a8)  # a 16-bit copy of 8 bits
    assert "8-bit values stored as 16-bit" in notes[0]
    dim8 = (a8 // 2).astype(np.uint16) * 257  # a dim 8-bit image saved as 16-bit: read as the 8-bit one, not brightened
    notes = []
    assert np.array_equal(to_uint8(dim8, "uint16", notes), a8 // 2) and "8-bit values" in notes[0]
    assert np.array_equal(to_uint8(a8.astype(np.uint16), "uint16", []), a8)  # 8-bit values in a 16-bit file
    a12 = rng.integers(1000, 4096, (20, 30)).astype(np.uint16)  # a 12-bit camera, bright background
    a12[0, 0] = 4095
    notes = []
    out = to_uint8(a12, "uint16", notes)
    assert np.array_equal(out, np.rint(a12 * (255 / 4095)).astype(np.uint8)) and "12 bits used" in notes[0]


def test_uint8_passes_through_and_bool_maps_to_0_255():
    a = np.array([[0, 7, 255]], np.uint8)
    assert to_uint8(a, "uint8", []) is a
    assert to_uint8(np.array([[True, False]]), "bool", []).tolist() == [[255, 0]]


def test_constant_image_uses_the_dtype_range():
    notes = []
    out = to_uint8(np.full((2, 2), 65534, np.uint16), "uint16", notes)
    assert (out == 255).all() and "16 bits used" in notes[0]
    notes = []
    out = to_uint8(np.full((2, 2), -7, np.int16), "int16", notes)
    assert (out == 127).all() and "constant image" in notes[0]  # -7 in -32768…32767


def test_float_nan_and_inf_become_zero_and_are_counted():
    a = np.array([[0.0, 0.5, 1.0, np.nan, np.inf]] * 50, np.float32)
    notes = []
    out = to_uint8(a, "float32", notes)
    assert (out[:, 3:] == 0).all() and out[0, 2] == 255
    assert any("100 NaN/inf" in n for n in notes) and "32-bit float" in notes[0]


def test_float_intensities_keep_their_tones_other_floats_are_stretched():
    """A float smear in 0…1 (or 0…255) reads as the integer image of that scale would (bright background stays
    short of white, as the models were trained); a dim one is brightened by a gain; any other range is
    stretched."""
    smear = np.linspace(0.2, 0.9, 400, dtype=np.float32).reshape(20, 20)
    out = to_uint8(smear, "float32", notes := [])
    assert np.array_equal(out, np.rint(smear.astype(np.float64) * 255).astype(np.uint8)) and "0…1" in notes[0]
    out255 = to_uint8((smear * 255).astype(np.float64), "float64", notes := [])
    assert np.abs(out255.astype(int) - out).max() <= 1 and "0…255" in notes[0]
    dim = to_uint8(smear * 0.5, "float32", notes := [])
    assert "brightened" in notes[0] and 200 <= int(np.percentile(dim, 99.5)) <= 225 and dim.min() > 0
    wide = to_uint8(smear * 1000 - 300, "float32", notes := [])
    assert "stretch" in notes[0] and wide.min() == 0 and wide.max() == 255


def test_alpha_unit_by_dtype_range():
    np.testing.assert_allclose(alpha_unit(np.array([0, 32768, 65535], np.uint16)), [0.0, 32768 / 65535, 1.0], rtol=1e-6)
    np.testing.assert_allclose(alpha_unit(np.array([np.nan, 2.0, -1.0, 0.25])), [1.0, 1.0, 0.0, 0.25])
