"""The report overview shows what the viewer shows about counted and not counted cells: only counted cells
are tinted, and a cell the border rule leaves out gets a hollow ring."""

import numpy as np

from cellviewer.core.document import CLASS_COLORS, Document, ImageData, ImageInfo, Marker
from cellviewer.core.render import overlay_rgb

GREY = (220, 220, 220)


def _doc():
    """Two red cells: #1 cut by the top edge (marker 1), #2 inside (marker 2); a platelet inside (marker 3)."""
    px = np.full((120, 160, 3), 220, np.uint8)
    doc = Document(ImageData(px, ImageInfo(None, 160, 120)))
    doc.labels["rbc"][0:20, 30:50] = 1
    doc.labels["rbc"][60:80, 60:80] = 2
    doc.labels["platelet"][100:106, 120:126] = 1
    doc.markers = {1: Marker(1, "rbc", 40.0, 10.0, cell=1), 2: Marker(2, "rbc", 70.0, 70.0, cell=2),
                   3: Marker(3, "platelet", 123.0, 103.0, cell=1)}
    return doc


def _tinted(ov, y, x):
    return tuple(int(v) for v in ov[y, x]) != GREY


def test_a_cell_the_border_rule_leaves_out_is_not_tinted():
    doc = _doc()
    ov = overlay_rgb(doc, outlines=False, markers=False)
    assert _tinted(ov, 10, 40) and _tinted(ov, 70, 70)
    doc.border_rule = "inside"
    assert doc.uncounted() == {1}
    ov = overlay_rgb(doc, outlines=False, markers=False)
    assert not _tinted(ov, 10, 40) and _tinted(ov, 70, 70)  # as the viewer: the uncounted cell untinted
    outlined = overlay_rgb(doc, markers=False)
    assert tuple(outlined[19, 40]) == CLASS_COLORS["rbc"]  # its outline stays


def test_removing_the_last_marker_of_a_class_leaves_its_cell_untinted():
    doc = _doc()
    assert _tinted(overlay_rgb(doc, outlines=False, markers=False), 103, 123)
    del doc.markers[3]  # the only platelet's count removed by hand
    ov = overlay_rgb(doc, outlines=False, markers=False)
    assert not _tinted(ov, 103, 123) and _tinted(ov, 70, 70)


def test_an_uncounted_cell_gets_a_hollow_ring_at_thumbnail_size():
    doc = _doc()
    doc.border_rule = "inside"
    ov = overlay_rgb(doc, alpha=0, outlines=False)  # the smallest markers (radius 4 px)
    y, x = 10, 40
    hole = [ov[y, x + d] for d in range(0, 5)] + [ov[y + d, x] for d in range(0, 5)]
    assert all(tuple(p) == GREY for p in hole)  # the hole is as wide as a dot: the cell shows through
    assert tuple(ov[y, x + 6]) == CLASS_COLORS["rbc"] and tuple(ov[y, x - 6]) == CLASS_COLORS["rbc"]
    assert tuple(ov[y, x + 5]) == (0, 0, 0) and tuple(ov[y, x + 7]) == (0, 0, 0)  # black on both sides
    assert tuple(ov[70, 70]) == CLASS_COLORS["rbc"]  # a counted cell: a filled dot
    small = overlay_rgb(doc, alpha=0, outlines=False, max_width=80)  # a downscaled thumbnail: still hollow
    assert tuple(small[5, 20]) == GREY and tuple(small[5, 26]) == CLASS_COLORS["rbc"]
