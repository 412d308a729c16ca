"""Brushing a white cell that has nucleus / cytoplasm parts grows its cytoplasm; one drag stays one open stroke."""

import numpy as np

from cellviewer.core import edits, journal, sidecar
from cellviewer.core.brush import _grown_cytoplasm
from tests.core.test_edits import assert_same, seeded_doc, snapshot
from tests.core.test_sidecar import doc_at


def _wbc_with_nucleus():
    doc = seeded_doc()  # WBC 1 at (120, 80), radius 20, all cytoplasm
    yy, xx = np.mgrid[: doc.shape[0], : doc.shape[1]]
    doc.parts[(xx - 120) ** 2 + (yy - 80) ** 2 <= 8 ** 2] = 1  # a nucleus in its middle
    return doc


def test_brushing_a_wbc_with_parts_grows_its_cytoplasm_and_keeps_the_nucleus():
    doc = _wbc_with_nucleus()
    nucleus = doc.parts == 1
    before = snapshot(doc)
    h = edits.History(doc)
    s = edits.BrushStroke(doc, "wbc", 3)
    s.dab(120, 80)  # starts on the nucleus, inside the cell
    s.line_to(120, 105)  # ... and paints past its edge (radius 20) downwards
    e = s.finish()
    h.push(e)
    cell = doc.labels["wbc"] == 1
    assert cell[103, 120] and doc.parts[103, 120] == 2  # new pixels: cytoplasm
    assert ((doc.parts != 0) == cell).all()  # the parts cover exactly the cell
    assert (doc.parts[nucleus] == 1).all()  # the nucleus is as it was
    assert "parts" in e.change().layers
    h.undo()
    assert_same(doc, before)


def test_a_wbc_without_parts_stays_without():
    doc = seeded_doc()
    doc.parts[:] = 0
    s = edits.BrushStroke(doc, "wbc", 3)
    s.dab(120, 80)
    s.line_to(120, 105)
    e = s.finish()
    assert not doc.parts.any() and all(getattr(a, "layer", None) != "parts" for a in e.atoms)


def test_the_parts_check_looks_at_the_whole_cell_when_the_stroke_box_has_none():
    doc = _wbc_with_nucleus()
    doc.parts[doc.parts == 2] = 0  # only the nucleus has parts; a stroke at the cell's edge does not see it
    box = (95, 115, 112, 126)
    old = doc.labels["wbc"][95:112, 115:126].copy()
    new = old.copy()
    new[new == 0] = 1
    patch = _grown_cytoplasm(doc, box, old, new, 1)
    assert patch is not None and patch.layer == "parts" and set(patch.new.tolist()) == {2}
    doc.parts[:] = 0  # no parts at all: nothing to grow
    assert _grown_cytoplasm(doc, box, old, new, 1) is None


def test_the_grown_cytoplasm_is_journaled_and_recovered(tmp_path):
    doc = doc_at(tmp_path)
    yy, xx = np.mgrid[: doc.shape[0], : doc.shape[1]]
    doc.parts[(xx - 120) ** 2 + (yy - 80) ** 2 <= 8 ** 2] = 1
    sidecar.save_sidecar(doc)
    sidecar.attach_journal(doc)
    s = edits.BrushStroke(doc, "wbc", 3)
    s.dab(120, 90)
    s.line_to(120, 106)
    s.finish()
    fresh = seeded_doc()  # "crash": the sidecar from before the stroke + the journal
    fresh.image.info = doc.image.info
    meta, arrays = sidecar.read_sidecar(sidecar.find_sidecar(doc.image.info.path))
    sidecar.apply_sidecar(fresh, meta, arrays)
    assert journal.recover(fresh, journal.read_entries(doc.journal.path)) == 1
    np.testing.assert_array_equal(fresh.parts, doc.parts)
    assert fresh.parts[104, 120] == 2


def test_a_stroke_is_the_documents_open_stroke_until_it_ends():
    doc = seeded_doc()
    s = edits.BrushStroke(doc, "rbc", 3)
    assert doc.open_stroke is None  # nothing painted yet
    s.dab(10, 100)
    assert doc.open_stroke is s
    s.line_to(20, 100)
    assert doc.open_stroke is s
    s.finish()
    assert doc.open_stroke is None
