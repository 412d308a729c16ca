"""Red-cell size estimate (core.cellsize): small fields unchanged, large fields of view measured in windows."""

import cv2
import numpy as np
import pytest

from cellviewer.core import cellsize
from cellviewer.core.io import read_image
from cellviewer.core.resources import sample_image


@pytest.fixture(scope="module")
def sample():
    path = sample_image()
    if path is None:
        pytest.skip("no bundled sample image")
    return read_image(path).pixels


def _mosaic(img: np.ndarray, k: int, gap: int = 24) -> np.ndarray:
    """k × k copies of a field on its background colour, a gap between them (cut cells stay cut)."""
    h, w = img.shape[:2]
    out = np.empty((k * (h + gap), k * (w + gap), 3), np.uint8)
    out[:] = np.percentile(img.reshape(-1, 3), 95, axis=0).astype(np.uint8)  # the bright background
    for r in range(k):
        for c in range(k):
            out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = img
    return out


def test_small_field_is_measured_on_one_copy(sample):
    d, how = cellsize.estimate_rbc_diameter(sample)
    assert how == "estimated" and 80 < d < 130  # the sample's red cells are ~100 px across


@pytest.mark.parametrize("k, zoom", [(4, 1.0), (8, 1.0), (8, 0.5), (2, 2.0)])
def test_large_field_of_view_gets_the_fields_own_size(sample, k, zoom):
    own, _ = cellsize.estimate_rbc_diameter(sample)
    big = _mosaic(sample, k)
    if zoom != 1.0:
        big = cv2.resize(big, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
    d, how = cellsize.estimate_rbc_diameter(big)
    assert how == "estimated-windows"
    assert abs(d / (own * zoom) - 1) < 0.15, (d, own * zoom)


def test_enlarged_field_keeps_its_scale(sample):
    own, _ = cellsize.estimate_rbc_diameter(sample)
    big = cv2.resize(sample, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    d, _ = cellsize.estimate_rbc_diameter(big)
    assert abs(d / (4 * own) - 1) < 0.1


def test_blank_or_tiny_images_fall_back():
    assert cellsize.estimate_rbc_diameter(np.full((2000, 3000, 3), 230, np.uint8)) == (
        cellsize.FALLBACK_DIAMETER_PX, "fallback")
    assert cellsize.estimate_rbc_diameter(np.full((1, 1, 3), 200, np.uint8))[1] == "fallback"


def test_windows_cover_quadrants_and_centre():
    assert cellsize._windows(300, 300, 400) == [(0, 0)]
    corners = cellsize._windows(4000, 6000, 1000)
    assert len(corners) == 5 and (1500, 2500) in corners
    assert all(0 <= y <= 3000 and 0 <= x <= 5000 for y, x in corners)


@pytest.mark.parametrize("zoom", [1.0, 0.4])
def test_mosaic_of_real_fields(data_dir, zoom):
    """16 different BCCD fields in one image: the estimate matches their own median estimate."""
    paths = sorted((data_dir / "bccd").rglob("*.jpg"))[:16]
    if len(paths) < 16:
        pytest.skip("BCCD images not found")
    fields = [read_image(p).pixels for p in paths]
    own = float(np.median([cellsize.estimate_rbc_diameter(f)[0] for f in fields]))
    h, w = fields[0].shape[:2]
    big = np.empty((4 * h, 4 * w, 3), np.uint8)
    for i, f in enumerate(fields):
        big[(i // 4) * h:(i // 4 + 1) * h, (i % 4) * w:(i % 4 + 1) * w] = f
    big = cv2.resize(big, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA) if zoom != 1 else big
    d, how = cellsize.estimate_rbc_diameter(big)
    assert how == "estimated-windows" and abs(d / (own * zoom) - 1) < 0.12, (d, own * zoom)


def _framed(img, kind):
    h, w = img.shape[:2]
    out = img.copy()
    yy, xx = np.mgrid[:h, :w]
    if kind == "white frame":
        out[:20] = out[-20:] = 255
        out[:, :20] = out[:, -20:] = 255
    elif kind == "field stop":  # the dark ring outside a round field of view
        out[(xx - w / 2) ** 2 + (yy - h / 2) ** 2 > (0.47 * w) ** 2] = 0
    elif kind == "tight field stop":  # a round field just as high as the image: its dark rim once closed a ring
        out[(xx - w / 2) ** 2 + (yy - h / 2) ** 2 > (h / 2) ** 2] = 0  # around the plasma (3 RBC found, at 184 px)
    elif kind == "transparent strip":  # a transparent fifth flattened onto white
        out[:, :w // 5] = 255
    return out


@pytest.mark.parametrize("kind", ["white frame", "field stop", "tight field stop", "transparent strip"])
def test_a_blank_margin_is_not_measured_as_a_cell(sample, kind):
    own, _ = cellsize.estimate_rbc_diameter(sample)
    d, how = cellsize.estimate_rbc_diameter(_framed(sample, kind))
    assert how == "estimated" and 0.8 * own < d < 1.25 * own, (d, own)  # before: 2–12× the own size


def test_blank_margin_is_only_border_connected_and_large():
    from cellviewer.core.weaklabels import blank_margin

    img = np.full((100, 120, 3), (220, 200, 210), np.uint8)
    assert blank_margin(img) is None
    img[40:60, 50:70] = 255  # a glare spot inside the field
    img[0:5, 0:5] = 0  # a dark corner speck, 0.2 % of the image
    assert blank_margin(img) is None
    img[:, :15] = 252  # a near-white strip at the border
    m = blank_margin(img)
    assert m is not None and m[:, :15].all() and not m[40:60, 50:70].any() and m.sum() == 100 * 15


def test_cells_lying_in_the_blank_margin_are_dropped_and_the_rest_renumbered():
    from cellviewer.core.weaklabels import drop_blank_cells

    lab = np.zeros((40, 60), np.int32)
    lab[2:8, 2:8] = 1  # all in the margin
    lab[10:20, 10:20] = 2  # inside the field
    lab[25:35, 0:10] = 3  # 40 % in the margin: a cell cut by the field stop, kept
    blank = np.zeros((40, 60), bool)
    blank[:9, :] = True
    blank[:, :4] = True
    scores = {"rbc": np.array([0.5, 0.9, 0.7]), "wbc": np.zeros(0)}
    out, sc, n = drop_blank_cells({"rbc": lab, "wbc": np.zeros_like(lab)}, scores, blank)
    assert n == 1 and out["rbc"].max() == 2 and sc["rbc"].tolist() == [0.9, 0.7]
    assert (out["rbc"][10:20, 10:20] == 1).all() and (out["rbc"][25:35, 4:10] == 2).all()
    assert not out["rbc"][blank].any()  # the kept cell is cut back to the field
    assert drop_blank_cells({"rbc": lab}, scores, None)[0]["rbc"] is lab  # no margin: unchanged


@pytest.mark.parametrize("level", [0, 40])
def test_the_net_finds_no_cells_in_a_black_or_grey_field_stop(sample, level):
    pytest.importorskip("torch")
    from cellviewer.core.jobs import run_job
    from cellviewer.core.segment import create_segmenter

    stopped = _framed(sample, "field stop")
    stopped[stopped.max(axis=2) == 0] = level  # 40: stray light (before: 6 red cells found, 3 in the stop, at 233 px)
    res = run_job(create_segmenter("blood-cells").segment(stopped))
    assert 0.8 < res.params["diameter_px"] / 104.6 < 1.2  # the sample's own red-cell size
    h, w = stopped.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    outside = (xx - w / 2) ** 2 + (yy - h / 2) ** 2 > (0.47 * w) ** 2
    for m in res.markers:  # every count marker lies on the smear (before: dark "cells" in the black corners)
        assert not outside[int(round(m.y)), int(round(m.x))], (m.cls, m.x, m.y)
    from cellviewer.core.weaklabels import blank_margin

    blank = blank_margin(stopped)
    assert blank is not None and blank[outside].mean() > 0.99
    for cls, lab in res.labels.items():  # and no outline reaches into the black (before: 11 487 red-cell pixels)
        assert not lab[blank].any(), cls


def test_the_measured_size_leaves_out_cells_cut_by_a_field_stop():
    lab = np.zeros((100, 200), np.int32)
    for i in range(5):  # five whole cells of diameter ~20
        lab[40:60, 10 + 30 * i:30 + 30 * i] = i + 1
    for i in range(6):  # six cells cut to a sliver by a black band on the right
        lab[2 + 16 * i:14 + 16 * i, 176:180] = 6 + i
    blank = np.zeros_like(lab, bool)
    blank[:, 180:] = True
    with_cut = cellsize.measured_rbc_diameter(lab)
    whole = cellsize.measured_rbc_diameter(lab, blank)
    assert whole == pytest.approx(2 * np.sqrt(400 / np.pi)) and with_cut < 0.9 * whole


def _smear_on(background, n_side=4, seed=0):
    """Red cells (radius 14) on a ``background`` colour, 140 × 140."""
    yy, xx = np.mgrid[:140, :140]
    img = np.empty((140, 140, 3), np.uint8)
    img[:] = background
    for i in range(n_side):
        for j in range(n_side):
            img[(yy - 18 - 35 * i) ** 2 + (xx - 18 - 35 * j) ** 2 <= 14 ** 2] = (200, 120, 140)
    return img


def test_a_white_smear_background_or_a_cell_on_white_is_no_margin():
    from cellviewer.core.weaklabels import blank_margin, field_of_view

    assert blank_margin(_smear_on((255, 255, 255))) is None  # overexposed: the plasma is pure white
    yy, xx = np.mgrid[:140, :140]
    crop = np.full((140, 140, 3), 255, np.uint8)  # one white cell on white, as the wbc_seg crops
    crop[(yy - 70) ** 2 + (xx - 70) ** 2 <= 55 ** 2] = (170, 120, 190)
    assert field_of_view(crop) is None
    framed = _smear_on((225, 205, 215))
    framed[:, 120:] = 255  # a white strip: a margin
    assert blank_margin(framed) is not None and blank_margin(framed)[:, 120:].all()


@pytest.mark.parametrize("level, noise", [(0, 0), (12, 3), (18, 4), (35, 3), (45, 3)])
def test_a_dark_field_stop_with_camera_noise_is_a_margin(level, noise):
    from cellviewer.core.weaklabels import blank_margin

    img = _smear_on((225, 205, 215))
    yy, xx = np.mgrid[:140, :140]
    out = (yy - 70) ** 2 + (xx - 70) ** 2 > 66 ** 2
    rng = np.random.default_rng(1)
    img[out] = np.clip(level + rng.normal(0, noise, (int(out.sum()), 3)), 0, 255).astype(np.uint8)
    m = blank_margin(img)
    assert m is not None and m[out].mean() > 0.8 and not m[~out].any()  # (noise above 24 leaves specks)


def test_a_grey_stop_counts_only_on_a_bright_smear_and_a_dim_smear_is_no_margin():
    from cellviewer.core.weaklabels import blank_margin

    yy, xx = np.mgrid[:140, :140]
    out = (yy - 70) ** 2 + (xx - 70) ** 2 > 66 ** 2
    grey = _smear_on((225, 205, 215))
    grey[out] = 45  # stray light on the stop
    assert blank_margin(grey) is not None
    dim = (_smear_on((225, 205, 215)).astype(np.float32) * 0.2).astype(np.uint8)  # underexposed: plasma ~45
    assert blank_margin(dim) is None  # its plasma is no stop
    dim[out] = 5
    m = blank_margin(dim)
    assert m is not None and not m[~out].any()  # a black stop on it still is one
    lit = _smear_on((225, 205, 215))
    lit[out] = 70  # brighter than any stop: part of the picture
    assert blank_margin(lit) is None


def test_the_plasma_inside_a_field_stop_is_not_taken_for_stain():
    from cellviewer.core.weaklabels import blank_margin, stained_foreground

    n = 300
    yy, xx = np.mgrid[:n, :n]
    img = np.empty((n, n, 3), np.uint8)
    img[:] = (225, 205, 215)
    for j in range(10):  # columns of touching cells: narrow plasma channels, open only at the field's edge
        for i in range(13):
            img[(yy - 5 - 25 * i) ** 2 + (xx - 10 - 34 * j) ** 2 <= 14 ** 2] = (200, 120, 140)
    out = (yy - 150) ** 2 + (xx - 150) ** 2 > 145 ** 2
    img[out] = 0
    fg = stained_foreground(img, ~blank_margin(img))
    plasma = ~out & (img != (200, 120, 140)).any(axis=2) & ((yy - 150) ** 2 + (xx - 150) ** 2 < 135 ** 2)
    assert fg[plasma].mean() < 0.01  # before: 6 %, the field's dark rim closed the channels and they were filled
