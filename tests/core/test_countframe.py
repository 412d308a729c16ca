"""Border-cell counting rules (core.countframe) and the document, sidecar and report using them."""

import numpy as np
import pytest
from scipy import ndimage

from cellviewer.core import countframe as F
from cellviewer.core import report as R
from cellviewer.core import sidecar
from cellviewer.core.document import Document, ImageData, ImageInfo, Marker
from cellviewer.core.errors import OptionError


def _doc() -> Document:
    """Five red cells: top edge, left edge, bottom edge, top-right corner, inside; one manual marker."""
    h, w = 60, 80
    doc = Document(ImageData(np.full((h, w, 3), 220, np.uint8), ImageInfo("f.png", w, h)))
    lab = doc.labels["rbc"]
    lab[0:8, 20:30] = 1  # top
    lab[20:30, 0:6] = 2  # left
    lab[55:60, 40:50] = 3  # bottom
    lab[0:10, 70:80] = 4  # top + right corner
    lab[25:35, 30:40] = 5  # inside
    doc.markers = {i: Marker(i, "rbc", 1.0, 1.0, cell=i) for i in range(1, 6)}
    doc.markers[6] = Marker(6, "rbc", 79.0, 59.0, origin="manual")  # no mask: always counted
    return doc


def test_edge_flags_name_each_touched_edge():
    flags = F.edge_flags(_doc().labels["rbc"])
    assert flags == {1: F.TOP, 2: F.LEFT, 3: F.BOTTOM, 4: F.TOP | F.RIGHT}
    assert F.edge_flags(np.zeros((0, 0), np.int32)) == {}


@pytest.mark.parametrize("rule, counted", [("all", {1, 2, 3, 4, 5, 6}), ("frame", {1, 2, 5, 6}),
                                           ("inside", {5, 6})])
def test_document_counts_follow_the_rule(rule, counted):
    doc = _doc()
    seen = []
    doc.subscribe(seen.append)
    doc.set_border_rule(rule)
    assert doc.counts()["rbc"] == len(counted)
    assert set(doc.markers) - doc.uncounted() == counted
    assert bool(seen) == (rule != "all")  # a change notifies views (counts panel, markers)
    assert [r["cell_id"] for r in R.cell_rows(doc, "f.png")] == sorted(counted)  # one row per counted cell
    assert R.count_row(doc, "f.png")["rbc"] == len(counted)


def test_bad_rule_names_the_valid_ones():
    with pytest.raises(OptionError, match="all, frame, inside"):
        _doc().set_border_rule("half")


def test_counting_frame_counts_every_cell_of_a_mosaic_once():
    """Cut a field of separate disks into 3×4 tiles: summed over the tiles, the frame rule counts
    each disk exactly once; counting every cut piece counts too many, only whole cells too few."""
    rng = np.random.default_rng(1)
    h, w, r = 300, 400, 9
    field = np.zeros((h, w), bool)
    yy, xx = np.mgrid[:h, :w]
    n = 0
    for cy in range(20, h - 15, 26):
        for cx in range(20, w - 15, 26):
            y, x = cy + rng.integers(-3, 4), cx + rng.integers(-3, 4)
            field |= (yy - y) ** 2 + (xx - x) ** 2 <= r * r
            n += 1
    totals = {rule: 0 for rule in F.BORDER_RULES}
    for ty in range(3):
        for tx in range(4):
            lab, k = ndimage.label(field[ty * 100:(ty + 1) * 100, tx * 100:(tx + 1) * 100])
            flags = F.edge_flags(lab)
            for rule in totals:
                totals[rule] += sum(F.is_counted(flags.get(i, 0), rule) for i in range(1, k + 1))
    assert ndimage.label(field)[1] == n
    assert totals["frame"] == n
    assert totals["all"] > n > totals["inside"]


def test_rule_is_saved_with_the_document_and_noted_in_reports(tmp_path):
    doc = _doc()
    p = tmp_path / "f.png"
    p.write_bytes(b"x")
    doc.image.info.path = str(p)
    doc.set_border_rule("frame")
    path = sidecar.save_sidecar(doc)
    meta, arrays = sidecar.read_sidecar(path)
    fresh = _doc()
    assert sidecar.apply_sidecar(fresh, meta, arrays, path) == []
    assert fresh.border_rule == "frame" and fresh.counts()["rbc"] == 4
    entry = R.ReportEntry.from_document(fresh, "f.png", thumbnail=False)
    assert any("cut by the image edge" in n and "2 not counted" in n for n in entry.notes)
    meta["border_rule"] = "nonsense"
    again = _doc()
    warnings = sidecar.apply_sidecar(again, meta, arrays, path)
    assert again.border_rule == "all" and any("nonsense" in w for w in warnings)


def test_report_overlay_draws_uncounted_cells_as_rings():
    doc = _doc()
    doc.image.pixels[:] = 255
    doc.labels = {k: np.zeros_like(v) for k, v in doc.labels.items()}  # markers only: no tint
    doc.labels["rbc"][50:60, 0:10] = 1  # cell 1 now cut by the bottom edge
    doc.markers = {1: Marker(1, "rbc", 20.0, 30.0, cell=1), 2: Marker(2, "rbc", 60.0, 30.0)}
    before = R.overlay_rgb(doc, outlines=False)
    assert (before[30, 20] != 255).any() and (before[30, 60] != 255).any()  # two filled dots
    doc.set_border_rule("inside")
    after = R.overlay_rgb(doc, outlines=False)
    assert (after[30, 20] == 255).all() and (after[30, 24] == 255).all()  # a ring: a hollow as wide as a dot
    assert (after[30, 26] != 255).any() and (after[30, 14] != 255).any()
    np.testing.assert_array_equal(after[20:40, 50:70], before[20:40, 50:70])  # the counted cell's dot


def _stopped_field():
    """A 160×200 smear seen through a round field stop (radius 70 around (100, 80), black outside) and six red
    cells (radius 12) clipped to the field: cut by the stop on the right, left, bottom and top, one inside,
    and one 6 px short of the stop."""
    h, w = 160, 200
    yy, xx = np.mgrid[:h, :w]
    field = (xx - 100) ** 2 + (yy - 80) ** 2 <= 70 ** 2
    img = np.zeros((h, w, 3), np.uint8)
    img[field] = (225, 205, 215)
    lab = np.zeros((h, w), np.int32)
    for i, (cx, cy) in enumerate([(165, 80), (35, 80), (100, 145), (100, 15), (100, 80), (100 - 52, 80 - 0)], 1):
        lab[((xx - cx) ** 2 + (yy - cy) ** 2 <= 12 ** 2) & field] = i
    return img, lab


def test_cells_cut_by_a_round_field_stop_are_cut_cells_on_the_side_they_face():
    img, lab = _stopped_field()
    edge = F.field_edge(img)
    assert edge is not None and len(edge)
    flags = F.edge_flags(lab, edge)
    assert flags == {1: F.STOP | F.RIGHT, 2: F.STOP | F.LEFT, 3: F.STOP | F.BOTTOM, 4: F.STOP | F.TOP}
    assert F.edge_flags(lab) == {}  # the image edge alone cuts none of them
    counted = {v: F.is_counted(flags.get(v, 0), "frame") for v in range(1, 7)}
    assert counted == {1: False, 2: True, 3: False, 4: True, 5: True, 6: True}  # the top-left half is in


def test_a_white_frame_is_a_field_edge_but_a_saturated_background_is_not():
    img = np.full((100, 140, 3), (225, 205, 215), np.uint8)
    assert F.field_edge(img) is None  # the field fills the image
    framed = img.copy()
    framed[:, 120:] = 255  # a white strip on the right
    lab = np.zeros((100, 140), np.int32)
    lab[40:60, 105:120] = 1  # against the strip
    lab[40:60, 60:80] = 2
    assert F.edge_flags(lab, F.field_edge(framed)) == {1: F.STOP | F.RIGHT}
    yy, xx = np.mgrid[:100, :140]
    bright = np.full((100, 140, 3), 255, np.uint8)  # overexposed: the background between the cells is blank
    for cx, cy in [(30, 30), (70, 30), (110, 30), (30, 70), (70, 70), (110, 70)]:
        bright[(xx - cx) ** 2 + (yy - cy) ** 2 <= 12 ** 2] = (200, 150, 170)
    assert F.field_edge(bright) is None


def _stopped_doc() -> Document:
    """:func:`_stopped_field` as a document, one count marker per cell."""
    img, lab = _stopped_field()
    h, w = lab.shape
    doc = Document(ImageData(img, ImageInfo("f.png", w, h)))
    doc.labels["rbc"][:] = lab
    doc.markers = {i: Marker(i, "rbc", 1.0, 1.0, cell=i) for i in range(1, 7)}
    return doc


def test_document_rules_and_whole_cell_sizes_leave_out_cells_cut_by_the_field_stop():
    doc = _stopped_doc()
    doc.set_border_rule("inside")
    assert doc.uncounted() == {1, 2, 3, 4} and doc.counts()["rbc"] == 2
    doc.set_border_rule("frame")
    assert doc.uncounted() == {1, 3}
    assert sorted(R.whole_rbc_areas(doc)) == [5, 6]


def test_a_large_field_is_measured_on_a_copy_and_still_finds_the_cut_cells():
    h, w = 2400, 3000  # measured on every 2nd pixel (FIELD_SIDE_PX)
    yy, xx = np.ogrid[:h, :w]
    field = (xx - 1500) ** 2 + (yy - 1200) ** 2 <= 1100 ** 2
    img = np.zeros((h, w, 3), np.uint8)
    img[field] = (225, 205, 215)
    lab = np.zeros((h, w), np.int32)
    lab[((xx - 2580) ** 2 + (yy - 1200) ** 2 <= 40 ** 2) & field] = 1  # cut on the right
    lab[((xx - 1500) ** 2 + (yy - 2280) ** 2 <= 40 ** 2) & field] = 2  # cut at the bottom
    lab[((xx - 1500) ** 2 + (yy - 1200) ** 2 <= 40 ** 2)] = 3  # inside
    lab[((xx - 1500) ** 2 + (yy - 135) ** 2 <= 25 ** 2)] = 4  # whole, 10 px short of the stop at the top
    assert F.edge_flags(lab, F.field_edge(img)) == {1: F.STOP | F.RIGHT, 2: F.STOP | F.BOTTOM}


def test_the_report_note_names_the_field_edge_when_there_is_one():
    doc = _stopped_doc()
    assert not any("cut by" in n for n in R.ReportEntry.from_document(doc, "f.png", thumbnail=False).notes)
    doc.set_border_rule("inside")
    notes = R.ReportEntry.from_document(doc, "f.png", thumbnail=False).notes
    assert any("cut by the image edge or the edge of the field of view" in n and "4 not counted" in n for n in notes)


def test_a_cell_crop_on_white_has_no_field_edge_and_its_cell_counts_under_every_rule():
    """wbc_seg-style crops: one white cell on a saturated white background is no field of view."""
    yy, xx = np.mgrid[:140, :140]
    crop = np.full((140, 140, 3), 255, np.uint8)
    crop[(yy - 70) ** 2 + (xx - 70) ** 2 <= 55 ** 2] = (170, 120, 190)
    assert F.field_edge(crop) is None
    doc = Document(ImageData(crop, ImageInfo("c.png", 140, 140)))
    doc.labels["wbc"][(yy - 70) ** 2 + (xx - 70) ** 2 <= 55 ** 2] = 1
    doc.markers = {1: Marker(1, "wbc", 70.0, 70.0, cell=1)}
    for rule in ("all", "frame", "inside"):
        doc.set_border_rule(rule)
        assert doc.counts()["wbc"] == 1, rule
