"""Edit builders of core.operations, without Qt: what "Classify red cells again" records."""

import pytest

from cellviewer.core import edits
from cellviewer.core.document import Marker
from tests.conftest import make_doc


def test_set_morphologies_records_the_model_in_the_provenance_and_undo_restores_it():
    doc = make_doc(60, 60)
    doc.labels["rbc"][10:20, 10:20] = 1
    doc.markers = {1: Marker(1, "rbc", 15, 15, cell=1, morph="normal", morph_p=0.6)}
    doc.provenance.params = {"diameter_px": 10.0, "morphology": "rbc-morphology 1"}
    h = edits.History(doc)
    h.push(edits.set_morphologies(doc, {1: ("spherocyte", 0.8)}, um_per_px=0.1, morphology="rbc-morphology 2"))
    assert doc.markers[1].morph == "spherocyte" and doc.um_per_px == 0.1
    assert doc.provenance.params == {"diameter_px": 10.0, "morphology": "rbc-morphology 2"}
    h.undo()
    assert doc.provenance.params == {"diameter_px": 10.0, "morphology": "rbc-morphology 1"}
    assert doc.markers[1].morph == "normal" and doc.um_per_px is None
    doc.provenance.params = {"diameter_px": 10.0}  # morphology was off at segmentation time
    h.push(edits.set_morphologies(doc, {1: ("target_cell", 0.7)}, morphology="rbc-morphology 2"))
    assert doc.provenance.params["morphology"] == "rbc-morphology 2"
    h.undo()
    assert "morphology" not in doc.provenance.params


@pytest.mark.parametrize("first, second", [(1, 2), (2, 1)])
def test_merging_keeps_a_red_cell_class_set_by_hand_whichever_cell_comes_first(first, second):
    from dataclasses import replace

    from cellviewer.core.operations import merge_cells
    from tests.core.test_edits import seeded_doc

    doc = seeded_doc()
    doc.markers[1] = replace(doc.markers[1], morph="schistocyte", morph_p=0.29)  # automatic
    doc.markers[2] = replace(doc.markers[2], morph="spherocyte", morph_p=1.0)  # set by hand
    merge_cells(doc, "rbc", first, second).apply(doc)
    rbc = [m for m in doc.markers.values() if m.cls == "rbc"]
    assert len(rbc) == 1 and (rbc[0].cell, rbc[0].morph, rbc[0].morph_p) == (first, "spherocyte", 1.0)


def test_splitting_links_a_hand_placed_second_marker_to_its_piece():
    """One outline over two cells, counted twice with a marker placed by hand (as the app advises), then split:
    two cells, two counts — the hand-placed marker becomes the second piece's."""
    from cellviewer.core.operations import split_cell

    doc = make_doc(60, 100)
    doc.labels["rbc"][20:40, 20:80] = 1
    doc.markers = {1: Marker(1, "rbc", 65, 30, cell=1), 2: Marker(2, "rbc", 30, 30, origin="manual")}
    assert doc.counts()["rbc"] == 2
    split_cell(doc, "rbc", 1, [(50, 10), (50, 50)]).apply(doc)
    assert doc.counts()["rbc"] == 2 and len(doc.markers) == 2
    assert doc.markers[2].cell and doc.markers[2].cell != doc.markers[1].cell
    assert (doc.markers[2].x, doc.markers[2].y) == (30, 30)  # placed by hand: stays where it was put
    assert doc.labels["rbc"][30, 30] == doc.markers[2].cell and doc.labels["rbc"][30, 65] == doc.markers[1].cell


def test_classify_again_with_another_model_giving_the_same_classes_records_that_model():
    doc = make_doc(60, 60)
    doc.labels["rbc"][10:20, 10:20] = 1
    doc.markers = {1: Marker(1, "rbc", 15, 15, cell=1, morph="normal", morph_p=0.8)}
    doc.provenance.params = {"morphology": "rbc-morphology 1"}
    h = edits.History(doc)
    h.push(edits.set_morphologies(doc, {1: ("normal", 0.8)}, morphology="rbc-morphology 2"))
    assert doc.provenance.params["morphology"] == "rbc-morphology 2" and doc.markers[1].morph_p == 0.8
    h.undo()
    assert doc.provenance.params["morphology"] == "rbc-morphology 1"
    from cellviewer.core.errors import EditError

    with pytest.raises(EditError):  # same model, same classes: nothing to do
        edits.set_morphologies(doc, {1: ("normal", 0.8)}, morphology="rbc-morphology 1")


def test_merging_clears_the_automatic_class_of_a_piece_and_undo_brings_it_back():
    """The model classed a piece (a fragment, a half), not the merged cell: as a Split's pieces, the merged cell is
    unclassified (and out of the report's morphology differential) until Classify again classes it."""
    from dataclasses import replace

    from cellviewer.core.report import morphology_differential
    from tests.core.test_edits import seeded_doc

    doc = seeded_doc()
    doc.markers[1] = replace(doc.markers[1], morph="schistocyte", morph_p=0.7)  # automatic, both pieces
    doc.markers[2] = replace(doc.markers[2], morph="schistocyte", morph_p=0.6)
    h = edits.History(doc)
    h.push(edits.merge_cells(doc, "rbc", 1, 2))
    rbc = [m for m in doc.markers.values() if m.cls == "rbc"]
    assert len(rbc) == 1 and (rbc[0].morph, rbc[0].morph_p) == ("", 0.0)
    assert morphology_differential(doc) == {}
    h.undo()
    assert (doc.markers[1].morph, doc.markers[1].morph_p) == ("schistocyte", 0.7)
