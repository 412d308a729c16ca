"""Markers stay on their cells and parts on their white cells through the mouse tools' edits (found by a
mouse QA pass in the real window): an eraser stroke through a cell's marker, a Reclassify onto a cell of the
new class, a Fill of a hole in a white cell with parts."""

import numpy as np
import pytest

from cellviewer.core import edits
from cellviewer.core.errors import EditError
from tests.core.test_edits import assert_same, disc, seeded_doc, snapshot


def _on_own_cell(doc, m) -> bool:
    return int(doc.labels[m.cls][int(m.y), int(m.x)]) == m.cell


def test_an_eraser_stroke_through_a_marker_moves_it_onto_what_is_left_of_its_cell():
    doc = seeded_doc()  # RBC 1 at (40, 40) r 15, its marker on its centre
    before = snapshot(doc)
    h = edits.History(doc)
    s = edits.BrushStroke(doc, "rbc", 3, erase=True)
    s.dab(40, 40)  # starts on the cell's marker ...
    s.line_to(40, 10)  # ... and cuts the top of the cell through it
    h.push(s.finish())
    m = doc.markers[1]
    assert (doc.labels["rbc"] == 1).any() and m.cell == 1
    assert _on_own_cell(doc, m), (m.x, m.y)
    assert doc.markers[2].x == 68 and doc.markers[2].y == 40  # the untouched neighbour's marker stays
    h.undo()
    assert_same(doc, before)  # marker back where it was
    h.redo()
    assert _on_own_cell(doc, doc.markers[1])


def test_an_eraser_stroke_beside_a_marker_leaves_it_where_it_is():
    doc = seeded_doc()
    s = edits.BrushStroke(doc, "rbc", 2, erase=True)
    s.dab(30, 28)
    s.line_to(30, 52)
    e = s.finish()
    assert (doc.markers[1].x, doc.markers[1].y) == (40, 40)
    assert not any(isinstance(a, edits.MarkerChange) for a in e.atoms)


def test_reclassify_onto_a_cell_of_the_new_class_keeps_that_cell_and_its_marker():
    from cellviewer.core.document import Marker

    doc = seeded_doc()
    disc(doc, "platelet", 1, 40, 40, 5)  # a platelet lying on red cell 1, under its marker
    doc.markers[4] = Marker(4, "platelet", 40, 40, cell=1)
    platelet = doc.labels["platelet"] == 1
    before = snapshot(doc)
    h = edits.History(doc)
    h.push(edits.reclassify_cell(doc, "rbc", 1, "platelet"))
    assert (doc.labels["platelet"][platelet] == 1).all()  # the platelet keeps every pixel
    assert not (doc.labels["rbc"] == 1).any()
    for m in doc.markers.values():
        assert _on_own_cell(doc, m), (m.id, m.cls, m.cell, m.x, m.y)
    assert doc.counts()["platelet"] == 2 and doc.markers[1].cell != 1
    h.undo()
    assert_same(doc, before)


def test_reclassify_of_a_cell_wholly_on_cells_of_the_new_class_is_refused():
    doc = seeded_doc()
    disc(doc, "rbc", 3, 120, 80, 6)  # a red cell inside WBC 1
    with pytest.raises(EditError):
        edits.reclassify_cell(doc, "rbc", 3, "wbc")


def test_filling_a_hole_in_a_white_cell_with_parts_makes_it_cytoplasm():
    doc = seeded_doc()  # WBC 1 at (120, 80) r 20, all cytoplasm
    doc.parts[(doc.labels["wbc"] == 1) & (np.arange(doc.shape[1])[None, :] < 118)] = 1  # a nucleus half
    h = edits.History(doc)
    s = edits.BrushStroke(doc, "wbc", 3, erase=True)
    s.dab(126, 80)  # a hole in the cytoplasm
    h.push(s.finish())
    hole = (doc.labels["wbc"] == 0) & (doc.parts == 0)
    before = snapshot(doc)
    h.push(edits.fill(doc, "wbc", 126, 80))
    cell = doc.labels["wbc"] == 1
    assert ((doc.parts != 0) == cell).all()  # no pixel of the cell without a part
    assert doc.parts[80, 126] == 2 and (doc.parts[:, :117][cell[:, :117]] == 1).all()
    h.undo()
    assert_same(doc, before)
    assert hole[80, 126]


def test_filling_a_white_cell_without_parts_gives_it_none():
    doc = seeded_doc()
    doc.parts[:] = 0
    s = edits.BrushStroke(doc, "wbc", 3, erase=True)
    s.dab(126, 80)
    s.finish()
    e = edits.fill(doc, "wbc", 126, 80)
    e.apply(doc)
    assert not doc.parts.any() and all(getattr(a, "layer", None) != "parts" for a in e.atoms)


def test_a_cancelled_brush_stroke_puts_every_pixel_back_and_makes_no_edit():
    doc = seeded_doc()
    before = snapshot(doc)
    s = edits.BrushStroke(doc, "rbc", 4)
    s.dab(40, 40)  # grows RBC 1 ...
    s.line_to(40, 80)  # ... down over empty ground
    assert doc.open_stroke is s and (doc.labels["rbc"][70, 40] == 1)
    s.cancel()
    assert doc.open_stroke is None
    assert_same(doc, before)
    assert doc.provenance.edits == []


def test_a_cancelled_parts_stroke_takes_back_the_parts_it_seeded():
    from cellviewer.core.partsbrush import PartsStroke

    doc = seeded_doc()
    doc.parts[:] = 0  # a white cell without parts: the stroke seeds cytoplasm first
    before = snapshot(doc)
    s = PartsStroke(doc, "nucleus", 3)
    s.dab(120, 80)
    assert doc.parts.any()
    s.cancel()
    assert_same(doc, before) and doc.open_stroke is None
