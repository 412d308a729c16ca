"""``operations.fill`` floods growing crops around the click (its cost follows the region, not the image):
the same edits and refusals as a whole-image labelling, also where a region outgrows the first crops."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from cellviewer.core import floodregion
from cellviewer.core import operations as ops
from cellviewer.core.edits import LabelPatch, MarkerChange, make_edit
from cellviewer.core.errors import EditError
from tests.conftest import make_doc


def reference_fill(doc, cls, x, y, value=None):
    """The straightforward fill: label the whole image, take the clicked component (what fill did before)."""
    ops._check_cls(cls)
    layer = doc.labels[cls]
    h, w = layer.shape
    if not (0 <= x < w and 0 <= y < h):
        raise EditError("The click is outside the image.", hint="click inside the image")
    src = int(layer[y, x])
    comp, _ = ndi.label(layer == src)
    region = comp == comp[y, x]
    box = ops.cell_bbox(region.astype(np.int8), 1)
    if src == 0 and (box[0] == 0 or box[1] == 0 or box[2] == h or box[3] == w):
        raise EditError("This area is not enclosed: filling it would flood the background.",
                        hint="click inside a closed outline or a hole in a cell")
    pbox = ops._pad_box(box, 1, (h, w))
    sub = region[pbox[0] : pbox[2], pbox[1] : pbox[3]]
    old = layer[pbox[0] : pbox[2], pbox[1] : pbox[3]]
    atoms: list = []
    if value is None:
        ring = ndi.binary_dilation(sub) & ~sub
        vals = old[ring]
        vals = vals[vals != 0]
        value = int(np.bincount(vals).argmax()) if vals.size else doc.next_label(cls)
    if value == src:
        raise EditError("Nothing to fill: the area already has that label.", hint="pick another cell or class")
    new = old.copy()
    new[sub] = value
    atoms.append(LabelPatch.from_arrays(cls, pbox, old, new))
    if value and not (layer == value).any():
        atoms.append(MarkerChange(None, ops._marker_for_cell(doc, cls, value, new == value, pbox,
                                                             doc.next_marker_id())))
    return make_edit("Fill", atoms, cls=cls, detail=f"value {value}")


def outcome(fn, *args):
    """What a fill builder gives, in comparable form: the refusal's text, or the edit's atoms and record."""
    try:
        e = fn(*args)
    except EditError as exc:
        return ("refused", str(exc), exc.hint)
    atoms = []
    for a in e.atoms:
        if isinstance(a, LabelPatch):
            atoms.append(("patch", a.layer, tuple(map(int, a.bbox)), a.rows.tolist(), a.cols.tolist(),
                          a.old.tolist(), a.new.tolist()))
        else:
            atoms.append(("marker", a.old, a.new))
    return ("edit", e.name, e.record.detail, tuple(map(int, e.record.bbox)), atoms)


def random_layer(rng, h, w):
    """Blocky labels with noise and hollow rectangles: cells, holes, enclosed and open background."""
    k = int(rng.integers(1, 5))
    base = rng.integers(0, 4, (h // k + 1, w // k + 1))
    lab = np.kron(base, np.ones((k, k), np.int64))[:h, :w]
    lab[rng.random((h, w)) < rng.uniform(0, 0.3)] = 0
    for _ in range(int(rng.integers(0, 4))):  # outlines that enclose background (some with a gap)
        y0, x0 = rng.integers(0, (h - 3, w - 3))
        y1, x1 = y0 + int(rng.integers(3, h - y0 + 1)), x0 + int(rng.integers(3, w - x0 + 1))
        v = int(rng.integers(1, 6))
        lab[y0:y1, x0:x1][[0, -1]] = v
        lab[y0:y1, x0:x1][:, [0, -1]] = v
        lab[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] = 0
        if rng.random() < 0.3:
            lab[y0, int(rng.integers(x0, x1))] = 0
    return lab.astype(np.int32)


@pytest.mark.parametrize("half", [1, 2, 3, 7, 128])
def test_fill_matches_a_whole_image_reference_on_random_label_maps(monkeypatch, half):
    monkeypatch.setattr(floodregion, "FILL_CROP_HALF", half)
    rng = np.random.default_rng(half)
    kinds = {"edit": 0, "refused": 0}
    for trial in range(40):
        h, w = (int(v) for v in rng.integers(4, 48, 2))
        doc = make_doc(h, w)
        lab = random_layer(rng, h, w)
        if trial % 4 == 1:  # another dtype, and a read-only layer: fill floods a 0/1 copy of each crop
            lab = lab.astype(np.uint16)
        elif trial % 4 == 2:
            lab.setflags(write=False)
        doc.labels["rbc"] = lab
        for _ in range(8):
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            value = [None, None, 0, int(lab[y, x]), int(rng.integers(1, 9))][int(rng.integers(0, 5))]
            got = outcome(ops.fill, doc, "rbc", x, y, value)
            want = outcome(reference_fill, doc, "rbc", x, y, value)
            assert got == want, (trial, x, y, value)
            kinds[got[0]] += 1
    assert kinds["edit"] > 50 and kinds["refused"] > 20  # both paths were exercised


def outline(doc, cls, y0, x0, y1, x1, label, gap=None):
    lab = doc.labels[cls]
    lab[y0:y1, x0:x1][[0, -1]] = label
    lab[y0:y1, x0:x1][:, [0, -1]] = label
    if gap is not None:
        lab[gap] = 0


def test_background_open_only_far_from_the_click_is_refused(monkeypatch):
    """The first crops see an enclosed region; it reaches the image border through a gap far away."""
    monkeypatch.setattr(floodregion, "FILL_CROP_HALF", 4)
    doc = make_doc(200, 300)
    outline(doc, "rbc", 20, 20, 180, 280, 5, gap=(100, 279))  # a 1-px gap in the right side
    for args in ((30, 30), (30, 30, 7)):
        with pytest.raises(EditError, match="not enclosed"):
            ops.fill(doc, "rbc", *args)
    assert outcome(ops.fill, doc, "rbc", 30, 30) == outcome(reference_fill, doc, "rbc", 30, 30)
    with pytest.raises(EditError, match="not enclosed"):  # background at the image edge itself
        ops.fill(doc, "rbc", 0, 199)


def test_enclosed_region_larger_than_the_first_crop_takes_its_outlines_label():
    doc = make_doc(600, 700)
    assert 2 * floodregion.FILL_CROP_HALF + 1 < 500  # the default first crop holds a small part of it
    outline(doc, "wbc", 10, 10, 590, 690, 3)
    doc.labels["wbc"][300:320, 300:320] = 2  # a cell inside the outline: not part of the region
    e = ops.fill(doc, "wbc", 20, 30)
    assert outcome(ops.fill, doc, "wbc", 20, 30) == outcome(reference_fill, doc, "wbc", 20, 30)
    (patch,) = e.atoms  # the outline's cell grows: it has its marker already
    assert patch.bbox == (11, 11, 589, 689)  # the undo atom holds the region's box, not the image
    assert len(patch.rows) == 578 * 678 - 400 and set(patch.new.tolist()) == {3}
    e.apply(doc)
    assert (doc.labels["wbc"] == 2).sum() == 400 and (doc.labels["wbc"] == 0).sum() == 600 * 700 - 580 * 680


def test_lone_cell_larger_than_the_first_crop_becomes_a_new_cell_with_a_marker():
    doc = make_doc(600, 700)
    doc.labels["platelet"][50:550, 100:600] = 7  # nothing around it: filled as a new cell
    doc.labels["platelet"][0:5, 0:5] = 9
    e = ops.fill(doc, "platelet", 590, 540)
    assert outcome(ops.fill, doc, "platelet", 590, 540) == outcome(reference_fill, doc, "platelet", 590, 540)
    patch, marker = e.atoms
    assert patch.bbox == (50, 100, 550, 600) and set(patch.new.tolist()) == {10}
    assert marker.old is None and marker.new.cell == 10 and marker.new.origin == "manual"
    e.apply(doc)
    assert doc.labels["platelet"][int(marker.new.y), int(marker.new.x)] == 10 and doc.counts()["platelet"] == 1


def test_hole_in_a_cell_cut_by_the_image_edge_takes_the_cells_label(monkeypatch):
    monkeypatch.setattr(floodregion, "FILL_CROP_HALF", 2)
    doc = make_doc(120, 160)
    yy, xx = np.mgrid[:120, :160]
    lab = doc.labels["rbc"]
    lab[(xx - 5) ** 2 + (yy - 60) ** 2 <= 30 ** 2] = 9  # cut by the left edge
    lab[50:70, 1:4] = 0  # a hole one pixel from the edge
    lab[0:3, 0:3] = 0
    e = ops.fill(doc, "rbc", 2, 60)
    assert outcome(ops.fill, doc, "rbc", 2, 60) == outcome(reference_fill, doc, "rbc", 2, 60)
    (patch,) = e.atoms
    assert patch.bbox == (50, 1, 70, 4) and set(patch.new.tolist()) == {9} and len(patch.rows) == 60
    lab[50:70, 0] = 0  # now the hole opens onto the edge: background, refused
    with pytest.raises(EditError, match="not enclosed"):
        ops.fill(doc, "rbc", 2, 60)


def test_cell_touching_the_image_edge_can_be_filled_with_another_label(monkeypatch):
    """Only background is refused at the border; a cell there is one region, across every crop."""
    monkeypatch.setattr(floodregion, "FILL_CROP_HALF", 1)
    doc = make_doc(80, 100)
    doc.labels["rbc"][0:50, 60:100] = 3
    for value in (0, 4):
        assert outcome(ops.fill, doc, "rbc", 99, 0, value) == outcome(reference_fill, doc, "rbc", 99, 0, value)
    e = ops.fill(doc, "rbc", 99, 0, 0)
    assert e.atoms[0].bbox == (0, 60, 50, 100) and len(e.atoms) == 1
    with pytest.raises(EditError, match="Nothing to fill"):
        ops.fill(doc, "rbc", 99, 0, 3)
