"""Readers of the shared data, the split and the weak labels."""

import numpy as np
import pytest

from cellviewer.core import datasets as D


def test_split_is_deterministic_and_roughly_70_15_15():
    ids = [f"img_{i:04d}.jpg" for i in range(2000)]
    splits = [D.split_of(i) for i in ids]
    assert splits == [D.split_of(i) for i in ids]
    frac = {s: splits.count(s) / len(ids) for s in D.SPLITS}
    assert abs(frac["train"] - 0.70) < 0.04 and abs(frac["test"] - 0.15) < 0.03
    assert D.split_of("x.jpg", seed="other") in D.SPLITS


def test_weak_labels_ellipses_edges_and_overlap():
    boxes = {"rbc": np.array([[10, 10, 40, 40], [35, 10, 65, 40]], float), "wbc": np.zeros((0, 4)),
             "platelet": np.array([[70, 70, 78, 78]], float)}
    cm, edge = D.weak_labels((100, 100), boxes, edge_px=2)
    assert cm.shape == edge.shape == (100, 100) and cm.dtype == np.uint8
    assert cm[25, 25] == 1 and cm[74, 74] == 3 and cm[5, 5] == 0
    assert edge[25, 11] == 1 and edge[25, 25] == 0  # ring inside the boundary, not the centre
    assert edge[25, 37] == 1  # the overlap of the two red cells is edge
    # a scale factor draws the same thing smaller
    cm2, _ = D.weak_labels((50, 50), boxes, scale=0.5)
    assert cm2[12, 12] == 1 and cm2[37, 37] == 3


def test_mask_thresholds():
    m = np.array([[0, 63, 64, 128, 191, 192, 255]], np.uint8)
    assert D.mask_to_parts(m).tolist() == [[0, 0, 2, 2, 2, 1, 1]]


def test_synthetic_items_have_targets():
    items = D.synthetic_items(2, 16, seed=1, size=64)
    assert len(items) == 2
    it = items[0]
    assert it["image"].shape == (64, 64, 3) and it["classmap"].shape == (64, 64)
    assert set(np.unique(it["classmap"])) <= {0, 1, 2, 3} and it["edge"].any()


@pytest.mark.data
def test_box_readers_on_real_data(data_dir):
    bccd = D.load_samples("bccd", data_dir)
    assert len(bccd) == 255
    assert sum(s.weak for s in bccd) == 98  # no TXL re-annotation: original VOC boxes
    txl = [s for s in bccd if not s.weak]
    assert all(s.boxes["rbc"].shape[1] == 4 for s in txl)
    assert 80 < np.median([s.rbc_diameter for s in bccd]) < 125
    pbc = D.load_samples("txl_pbc", data_dir, "test")
    assert pbc and all(s.split == "test" for s in pbc)
    assert {s.origin for s in pbc} == {"pbc", "raabin_wbc"}
    item = D.working_item(bccd[0], 32.0)
    assert item["classmap"].shape == item["edge"].shape == item["image"].shape[:2]
    assert abs(item["image"].shape[1] - 640 * 32 / bccd[0].rbc_diameter) <= 1
    if bccd[0].weak:
        assert (item["classmap"] == D.IGNORE).any()


@pytest.mark.data
def test_mask_and_point_readers_on_real_data(data_dir):
    seg = D.load_samples("wbc_seg", data_dir, "test")
    assert {s.origin for s in seg} == {"d1", "d2"}
    parts = seg[0].read_parts()
    assert parts.shape == seg[0].read_image().shape[:2] and set(np.unique(parts)) <= {0, 1, 2}
    assert (parts == 1).any()
    chula = D.load_samples("chula_rbc12", data_dir)
    assert len(chula) == 105 and chula[0].points.shape[1] == 2


@pytest.mark.parametrize("n, new", [(120, 130), (300, 152), (300, 150), (121, 61)])
def test_resize_classmap_stays_registered_with_the_resized_image(n, new):
    import cv2

    yy, xx = np.mgrid[:n, :n]
    c = (n - 1) / 2
    cm = np.zeros((n, n), np.uint8)
    cm[(yy - c) ** 2 + (xx - 0.8 * c) ** 2 < (n / 3) ** 2] = 2  # cytoplasm
    cm[(yy - c) ** 2 + (xx - 0.8 * c) ** 2 < (n / 8) ** 2] = 1  # nucleus
    out = D.resize_classmap(cm, (new, new))
    assert out.shape == (new, new) and out.dtype == cm.dtype and set(np.unique(out)) == {0, 1, 2}
    # where the cell's centre lands in an image resized by cv2 (pixel centres aligned)
    expect = (np.array([c, 0.8 * c]) + 0.5) * new / n - 0.5
    got = np.argwhere(out > 0).mean(0)
    assert np.abs(got - expect).max() < 0.1
    # plain INTER_NEAREST (what training used before) is off by about half an output pixel
    if n % new:
        old = np.argwhere(cv2.resize(cm, (new, new), interpolation=cv2.INTER_NEAREST) > 0).mean(0)
        assert (old - expect).min() > 0.3
    # area kept within the resampling of the outline
    assert abs((out > 0).sum() / (cm > 0).sum() * (n / new) ** 2 - 1) < 0.03
    np.testing.assert_array_equal(D.resize_classmap(cm, (n, n)), cm)
