"""Tiled inference: identity nets reproduce the input for any size."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cellviewer.core.tiling import predict_tiled, tile_starts, window_2d  # noqa: E402


class Identity(torch.nn.Module):
    def forward(self, x):
        return {"mask": x * 2.0, "edge": x[:, :1]}


class ValidIdentity(torch.nn.Module):
    """Crops 3 px per side, like a valid-convolution net."""

    def valid_input_size(self, at_least):
        return max(at_least, 8)

    def output_size(self, size):
        return size - 6

    def forward(self, x):
        return {"mask": x[..., 3:-3, 3:-3]}


@pytest.mark.parametrize("shape", [(37, 53), (101, 67), (16, 16)])
def test_identity_net_reproduces_the_input(shape):
    img = np.random.default_rng(0).random((*shape, 3)).astype(np.float32)
    out = predict_tiled(Identity(), img, tile=24, overlap=8, batch_size=3)
    assert out["mask"].shape == (3, *shape)
    assert np.allclose(out["mask"], 2 * img.transpose(2, 0, 1), atol=1e-5)
    assert np.allclose(out["edge"][0], img[..., 0], atol=1e-5)


def test_valid_net_is_padded_and_reproduces_the_input():
    img = np.random.default_rng(1).random((29, 41, 3)).astype(np.float32)
    out = predict_tiled(ValidIdentity(), img, tile=16, overlap=4)
    assert np.allclose(out["mask"], img.transpose(2, 0, 1), atol=1e-5)


def test_tiles_cover_and_windows_are_positive():
    for size, tile, ov in [(100, 32, 8), (33, 32, 8), (20, 32, 8)]:
        starts = tile_starts(size, tile, ov)
        assert starts[0] == 0 and starts[-1] + min(tile, size) == size
    w = window_2d(9, 7)
    assert w.min() > 0 and w[4, 3] == w.max()


def test_mirror_margin_and_crop_round_trip():
    from cellviewer.core.tiling import crop_margin, mirror_margin

    img = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    padded, m = mirror_margin(img, 2.4)
    assert m == 2 and padded.shape == (9, 10, 3)
    np.testing.assert_array_equal(padded[2:-2, 2:-2], img)
    np.testing.assert_array_equal(padded[0, 2:-2], img[2])  # reflected, edge row not repeated
    out = crop_margin({"mask": np.moveaxis(padded, 2, 0)}, m)
    np.testing.assert_array_equal(out["mask"], np.moveaxis(img, 2, 0))
    assert mirror_margin(img, 50)[1] == 4  # capped below the image size
    same, zero = mirror_margin(img, 0.2)
    assert zero == 0 and same is img and crop_margin({"a": img}, 0)["a"] is img
