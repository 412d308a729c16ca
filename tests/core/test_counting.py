"""The four counting algorithms, the per-cell helpers and the scale parameters."""

import numpy as np
import pytest

from cellviewer.core.counting import (
    METHODS, areas, centroids, components, count_params, distance_peaks, hough, inside_points,
    instances_from_mask, remove_small, shape_scores, watershed,
)
from cellviewer.core.errors import SegmentationError
from cellviewer.core.scale import DEFAULT_RBC_DIAMETER_UM, CountParams, diameter_from

R = 20  # disc radius of the synthetic cells


def disc(mask, cy, cx, r=R):
    yy, xx = np.ogrid[: mask.shape[0], : mask.shape[1]]
    mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return mask


@pytest.fixture
def scene():
    """5 separate discs + one pair of touching (overlapping) discs."""
    m = np.zeros((240, 320), bool)
    for cy, cx in [(35, 35), (35, 110), (35, 190), (120, 35), (200, 40)]:
        disc(m, cy, cx)
    disc(m, 150, 160)
    disc(m, 150, 190)  # centres 30 px apart: the discs overlap by 10 px
    return m


@pytest.fixture
def params():
    return count_params(2 * R)


def n_cells(labels):
    return int(len(np.unique(labels[labels > 0])))


def test_components_counts_separate_blobs(scene, params):
    lab = components(scene, params)
    assert lab.dtype == np.int32
    assert n_cells(lab) == 6  # the touching pair is one component
    assert lab.max() == 6  # numbered without gaps


@pytest.mark.parametrize("fn", [watershed, distance_peaks, hough])
def test_splitting_methods_separate_touching_discs(scene, params, fn):
    lab = fn(scene, params)
    assert lab.dtype == np.int32 and lab.shape == scene.shape
    assert n_cells(lab) == 7
    assert lab.max() == 7
    # the two discs of the pair get different labels near their centres
    assert lab[150, 156] != lab[150, 194] and lab[150, 156] > 0 and lab[150, 194] > 0
    # instances stay inside the mask
    assert not (lab[~scene] > 0).any()


@pytest.mark.parametrize("method", METHODS)
def test_dispatcher_and_small_objects(method, params):
    m = np.zeros((200, 200), bool)
    disc(m, 60, 60)
    disc(m, 140, 140)
    m[100:103, 20:23] = True  # 9-px speck, far below min_area
    lab = instances_from_mask(m, method, params)
    assert n_cells(lab) == 2
    assert lab[101, 21] == 0


@pytest.mark.parametrize("method", METHODS)
def test_empty_mask(method, params):
    lab = instances_from_mask(np.zeros((50, 60), bool), method, params)
    assert lab.shape == (50, 60) and lab.max() == 0


def test_bad_method_lists_valid_ones(params):
    with pytest.raises(SegmentationError) as e:
        instances_from_mask(np.zeros((10, 10), bool), "magic", params)
    for m in METHODS:
        assert m in str(e.value)


def test_border_cut_cells_need_less_area(params):
    m = np.zeros((100, 100), bool)
    disc(m, 50, -12)  # a cap of a cell cut by the left border (~0.12 of a cell)
    lab = components(m, params)
    assert n_cells(lab) == 1
    lab2 = components(m, params.with_(min_area_border_frac=0.3))
    assert n_cells(lab2) == 0


def test_centroids_areas_and_inside_points():
    lab = np.zeros((60, 80), np.int32)
    lab[10:20, 10:30] = 1  # a 10×20 rectangle
    lab[40:50, 60:70] = 3  # ids need not be contiguous
    # a C-shaped cell whose centroid falls in its (empty) middle
    lab[30:58, 30:34] = 5
    lab[30:34, 30:50] = 5
    lab[54:58, 30:50] = 5
    ids, a = areas(lab)
    assert ids.tolist() == [1, 3, 5]
    assert a.tolist() == [200, 100, 28 * 4 + 2 * 16 * 4]
    ids, ys, xs = centroids(lab)
    assert ys[0] == pytest.approx(14.5) and xs[0] == pytest.approx(19.5)
    ids, ys, xs = inside_points(lab)
    for i, y, x in zip(ids, ys, xs):
        assert lab[int(round(y)), int(round(x))] == i


def test_shape_scores_prefer_expected_discs(params):
    m = np.zeros((200, 300), bool)
    disc(m, 60, 60)  # the expected cell
    disc(m, 60, 200, r=8)  # far too small
    lab = components(m, params.with_(min_area_frac=0.01))
    ids, sc = shape_scores(lab, params)
    assert len(ids) == 2
    assert sc[0] > 0.9 and sc[1] < 0.5
    assert ((sc >= 0) & (sc <= 1)).all()


def test_remove_small_relabels():
    lab = np.array([[0, 2, 2, 5], [0, 2, 7, 5]], np.int32)
    out = remove_small(lab, 2)
    assert sorted(np.unique(out).tolist()) == [0, 1, 2]
    assert out[1, 2] == 0


def test_scale_derivation():
    assert DEFAULT_RBC_DIAMETER_UM == 7.5
    assert diameter_from(um_per_px=0.1) == pytest.approx(75.0)
    assert diameter_from(diameter_px=42) == 42.0
    assert diameter_from(diameter_um=8.0, um_per_px=0.2) == pytest.approx(40.0)
    assert diameter_from() is None
    p = count_params(diameter_um=7.5, um_per_px=0.25)
    assert isinstance(p, CountParams) and p.diameter_px == pytest.approx(30.0)
    assert p.min_area < p.expected_area < p.max_area
    lo, hi = p.hough_radii
    assert lo < 15 < hi
    for bad in (dict(um_per_px=-1), dict(diameter_px=0.5), dict(diameter_px=float("nan"))):
        with pytest.raises(SegmentationError):
            count_params(**bad)
    with pytest.raises(SegmentationError):
        count_params(40, no_such_option=1)
    with pytest.raises(SegmentationError):
        count_params(40, min_area_frac=3.0)


def test_remove_small_border_rule_can_be_stricter_or_looser():
    lab = np.zeros((20, 20), np.int32)
    lab[0:3, 5:9] = 1  # 12 px touching the top border
    lab[8:12, 8:12] = 2  # 16 px inside
    assert remove_small(lab, 10).max() == 2
    assert remove_small(lab, 14).max() == 1  # only the interior one is big enough
    assert remove_small(lab, 14, min_area_border=5).max() == 2  # a border cut needs less
    kept = remove_small(lab, 10, min_area_border=13)  # ... or more
    assert kept.max() == 1 and kept[10, 10] == 1 and kept[1, 6] == 0
