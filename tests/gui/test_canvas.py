"""Canvas: incremental overlay updates, layer toggles, outline mode, speed on a 5-megapixel image."""

from __future__ import annotations


import numpy as np
import pytest

from cellviewer.core.document import CLASS_COLORS, Document, ImageData, ImageInfo, Marker
from cellviewer.core.edits import BrushStroke
from cellviewer.gui.canvas import TILE, Canvas
from cellviewer.gui.overlay import edges
from cellviewer.gui.state import ViewState


def grid_doc(h, w, step=80, r=35):
    doc = Document(ImageData(np.full((h, w, 3), 200, np.uint8), ImageInfo(None, w, h)))
    yy, xx = np.mgrid[-step // 2:step // 2, -step // 2:step // 2]
    disc = yy ** 2 + xx ** 2 < r * r
    k = 1
    for cy in range(step // 2, h - step // 2, step):
        for cx in range(step // 2, w - step // 2, step):
            doc.labels["rbc"][cy - step // 2:cy + step // 2, cx - step // 2:cx + step // 2][disc] = k
            doc.markers[k] = Marker(k, "rbc", float(cx), float(cy), "auto", k, 1.0)  # counted: tinted
            k += 1
    return doc


@pytest.fixture
def canvas(qtbot):
    c = Canvas()
    qtbot.addWidget(c)
    c.resize(800, 600)
    c.show()
    qtbot.waitExposed(c)
    return c


def test_edges_mark_cell_outlines_only():
    lab = np.zeros((6, 7), np.int32)
    lab[1:4, 1:4] = 1
    lab[1:4, 4:6] = 2
    e = edges(lab, (0, 0, 6, 7))
    assert e[1, 1] and e[2, 3] and e[2, 4] and not e[2, 2] and not e[0, 0]
    np.testing.assert_array_equal(edges(lab, (1, 2, 4, 5)), e[1:4, 2:5])  # a crop equals the full result


def test_dab_updates_only_its_rectangle(canvas):
    doc = grid_doc(600, 700)
    canvas.set_document(doc)
    rgba0 = canvas.overlay_rgba().copy()
    uploads = canvas.stats["tile_uploads"]
    s = BrushStroke(doc, "wbc", 5)
    s.dab(20, 20)  # background corner: a new WBC
    rgba = canvas.overlay_rgba()
    assert tuple(rgba[20, 20, :3]) == CLASS_COLORS["wbc"]
    changed = np.argwhere((rgba != rgba0).any(axis=2))
    assert changed[:, 0].max() <= 27 and changed[:, 1].max() <= 27
    assert canvas.stats["tile_uploads"] - uploads == 1  # one tile re-uploaded
    s.finish()


def test_layer_toggles_and_outline(canvas):
    doc = grid_doc(300, 300)
    canvas.set_document(doc)
    inside = (40, 40)
    assert canvas.overlay_rgba()[inside][3] > 0
    v = ViewState(outline=True)
    canvas.set_view_state(v, frozenset({"outline"}))
    assert canvas.overlay_rgba()[inside][3] == 0  # interior empty in outline mode
    assert canvas.overlay_rgba()[40, 40 - 34][3] == 255  # the outline is drawn
    v = ViewState(classes={"rbc": False, "wbc": True, "platelet": True})
    canvas.set_view_state(v, frozenset({"classes"}))
    assert not canvas.overlay_rgba().any()
    v = ViewState(hide_overlays=True, show_markers=True)
    canvas.set_view_state(v, frozenset({"hide_overlays"}))
    assert not canvas.overlay_rgba().any()
    assert not canvas.markers["rbc"].isVisible()


def test_brush_dab_uploads_only_the_tiles_it_touches_on_a_5_megapixel_image(canvas, qtbot):
    doc = grid_doc(1944, 2592)
    canvas.set_document(doc)
    qtbot.wait(10)
    s = BrushStroke(doc, "rbc", 10)
    s.dab(1000, 1000)
    for i in range(30):
        s.line_to(1000 + 4 * i, 1000 + 2 * i)  # paint + notify + overlay rectangle + tile upload
    s.finish()
    assert canvas.overlay_rgba().shape == (1944, 2592, 4)  # speed: `cellviewer bench` (GUI part)
    assert canvas.stats["tile_uploads"] < 31 * 4 + (1944 // TILE + 1) * (2592 // TILE + 1)


def test_markers_shrink_when_the_view_shows_cells_small(canvas, qtbot):
    from cellviewer.core.document import Marker
    from cellviewer.gui.canvas import MARKER_SIZE, MIN_MARKER_SIZE

    doc = grid_doc(4000, 6000, step=100, r=45)
    for i in range(1, 50):
        doc.markers[i] = Marker(id=i, cls="rbc", x=50.0 + 100 * i, y=50.0, origin="auto", cell=i)
    canvas.set_document(doc)
    canvas.refresh_markers()
    assert canvas.marker_size_for_zoom() == MARKER_SIZE  # no cell size known: the fixed size
    doc.provenance.params = {"diameter_px": 90.0}
    canvas.zoom_to_fit()  # 6000 px in an 800-px view: a red cell is ~11 screen px
    qtbot.wait(20)
    canvas.refresh_markers()
    small = canvas.marker_size_for_zoom()
    assert MIN_MARKER_SIZE <= small < MARKER_SIZE
    assert canvas.markers["rbc"].opts["size"] == small  # the points use the item's size
    canvas.vb.setRange(xRange=(0, 400), yRange=(0, 300), padding=0)  # zoomed in: full size again
    qtbot.wait(20)
    assert canvas.marker_size_for_zoom() == MARKER_SIZE
    assert canvas.markers["rbc"].opts["size"] == MARKER_SIZE
