"""Test-time augmentation: transforms invert exactly; averaging is the mean over views."""

import numpy as np
import pytest

from cellviewer.core import tta
from cellviewer.core.errors import CellviewerError
from cellviewer.core.jobs import Progress, run_job


def _net_like(image: np.ndarray):
    """A 'net' that is NOT flip-equivariant: output = image channels + a ramp along x."""
    yield Progress(0.5, "half")
    h, w = image.shape[:2]
    ramp = np.tile(np.arange(w, dtype=np.float32), (h, 1))
    return {"mask": np.stack([image[..., 0].astype(np.float32), ramp])}


@pytest.mark.parametrize("mode", list(tta.MODES))
def test_forward_then_inverse_is_identity(mode):
    img = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    chw = np.moveaxis(img, 2, 0)
    for t in tta.transforms(mode):
        out = tta.forward(img, t)
        assert out.flags.c_contiguous
        back = tta.inverse(np.moveaxis(out, 2, 0), t)
        np.testing.assert_array_equal(back, chw)


def test_modes_have_distinct_transforms():
    assert len(set(tta.MODES["d4"])) == 8 and len(set(tta.MODES["flips"])) == 4
    assert tta.MODES["none"] == ((False, False, False),)


def test_averaged_is_the_mean_of_the_views():
    img = np.random.default_rng(1).integers(0, 255, (6, 9, 3), dtype=np.uint8)
    progress = []
    job = tta.averaged(_net_like, img, "flips")
    out = run_job(job, progress.append)
    # channel 0 follows the image exactly under every view: unchanged by averaging
    np.testing.assert_allclose(out["mask"][0], img[..., 0])
    # the ramp is mirrored in half of the views: its mean over the 4 views is constant (w - 1) / 2
    np.testing.assert_allclose(out["mask"][1], np.full((6, 9), 4.0))
    assert [round(p.fraction, 3) for p in progress] == [0.125, 0.375, 0.625, 0.875]
    assert "view 4/4" in progress[-1].message


def test_none_is_one_plain_pass():
    img = np.zeros((4, 5, 3), np.uint8)
    out = run_job(tta.averaged(_net_like, img, None))
    np.testing.assert_array_equal(out["mask"][1], np.tile(np.arange(5, dtype=np.float32), (4, 1)))


def test_unknown_mode_names_the_valid_ones():
    with pytest.raises(CellviewerError) as e:
        tta.transforms("rot45")
    assert "flips" in str(e.value.hint) and "d4" in str(e.value.hint)
