"""The parts brush (nucleus / cytoplasm correction), without Qt: clipped to one white cell, one drag one undo
step, parts given to a cell without them, journaled, saved, audited and exported."""

import cv2
import numpy as np
import pytest

from cellviewer.core import edits, journal, sidecar
from cellviewer.core.document import CLASS_MAP_VALUES, Marker
from cellviewer.core.errors import EditError
from cellviewer.core.export_dataset import export_training_set
from cellviewer.core.jobs import run_job
from cellviewer.core.partsbrush import ACTION, PartsStroke, part_value
from cellviewer.core.render import class_map
from cellviewer.core.report import differential
from tests.core.test_edits import assert_same, disc, seeded_doc, snapshot
from tests.core.test_sidecar import doc_at


def _paint(doc, part, points, radius=4):
    s = PartsStroke(doc, part, radius)
    s.dab(*points[0])
    for p in points[1:]:
        s.line_to(*p)
    return s, s.finish()


def test_a_nucleus_stroke_is_clipped_to_the_white_cell_and_is_one_undo_step():
    doc = seeded_doc()  # WBC 1 at (120, 80), radius 20, all cytoplasm; RBCs elsewhere
    cells = {k: v.copy() for k, v in doc.labels.items()}
    before = snapshot(doc)
    h = edits.History(doc)
    _, e = _paint(doc, "nucleus", [(120, 80), (120, 96), (120, 110)], radius=6)  # runs out of the cell (y > 100)
    h.push(e)
    cell = doc.labels["wbc"] == 1
    assert doc.parts[90, 120] == 1 and doc.parts[99, 120] == 1  # inside: nucleus
    assert not doc.parts[~cell].any()  # never outside the white cell
    assert ((doc.parts != 0) == cell).all()  # the parts still cover the cell exactly
    for k in cells:
        np.testing.assert_array_equal(doc.labels[k], cells[k])  # no cell mask changes
    assert [type(a).__name__ for a in e.atoms] == ["LabelPatch"] and e.atoms[0].layer == "parts"
    assert e.change().layers == ("parts",) and len(h) == 1
    h.undo()
    assert_same(doc, before)
    h.redo()
    assert doc.parts[90, 120] == 1


def test_cytoplasm_paints_over_a_nucleus():
    doc = seeded_doc()
    doc.parts[(doc.labels["wbc"] == 1) & (np.abs(np.mgrid[:120, :160][1] - 120) < 6)] = 1  # a band of nucleus
    _, e = _paint(doc, "cytoplasm", [(120, 70), (120, 90)], radius=3)
    assert e is not None and doc.parts[80, 120] == 2 and doc.parts[80, 124] == 1  # the rest of the band stays


def test_a_white_cell_without_parts_gets_them_and_undo_takes_them_all_away():
    doc = seeded_doc()
    doc.parts[:] = 0
    h = edits.History(doc)
    s, e = _paint(doc, "nucleus", [(120, 80)], radius=5)
    h.push(e)
    cell = doc.labels["wbc"] == 1
    assert s.seeded and s.cell == 1
    assert ((doc.parts != 0) == cell).all()  # the parts cover the whole cell ...
    assert doc.parts[80, 120] == 1 and doc.parts[80, 103] == 2  # ... nucleus under the brush, cytoplasm around
    assert "parts added" in e.record.detail
    h.undo()  # the whole drag, parts given included, is one step
    assert not doc.parts.any()


def test_a_stroke_never_spills_into_a_touching_white_cell():
    doc = seeded_doc()
    disc(doc, "wbc", 2, 152, 80, 12)  # touches WBC 1 (radius 20 at x 120) around x 140
    doc.parts[doc.labels["wbc"] == 2] = 2
    _, e = _paint(doc, "nucleus", [(130, 80), (150, 80)], radius=5)  # starts in 1, runs into 2
    assert (doc.parts[doc.labels["wbc"] == 2] == 2).all()
    assert doc.parts[80, 130] == 1 and "cell 1" in e.record.detail
    s, _ = _paint(doc, "nucleus", [(100.0, 65.0)], radius=12)  # starts off every cell: the cell it covers most
    assert s.cell == 1


def test_a_stroke_that_meets_no_white_cell_changes_nothing():
    doc = seeded_doc()
    before, rev = snapshot(doc), doc.revision
    s = PartsStroke(doc, "nucleus", 4)
    s.dab(40, 40)  # a red cell
    assert doc.open_stroke is s
    s.line_to(10, 100)
    assert s.finish() is None and s.cell is None and doc.open_stroke is None
    assert_same(doc, before)
    assert doc.revision == rev and doc.provenance.edits == []


def test_it_is_a_correction_in_the_audit_trail():
    doc = seeded_doc()
    _, e = _paint(doc, 2, [(120, 80)])
    assert e is None  # cytoplasm on cytoplasm changes nothing: no step, no record
    _, e = _paint(doc, 1, [(120, 80)])
    assert [r.action for r in doc.corrections()] == [ACTION] and doc.n_manual_edits == 1
    assert e.record.cls == "wbc" and e.record.detail.startswith("nucleus, radius 4")


@pytest.mark.parametrize("bad", ["", "membrane", 0, 3, True, None])
def test_unknown_parts_are_refused(bad):
    with pytest.raises(EditError):
        part_value(bad)
    assert part_value("cytoplasm") == 2 and part_value(np.uint8(1)) == 1


def test_the_stroke_is_journaled_recovered_and_saved(tmp_path):
    doc = doc_at(tmp_path)
    sidecar.save_sidecar(doc)
    sidecar.attach_journal(doc)
    _paint(doc, "nucleus", [(120, 75), (120, 85)])
    fresh = seeded_doc()  # "crash": the sidecar from before the stroke + the journal
    fresh.image.info = doc.image.info
    meta, arrays = sidecar.read_sidecar(sidecar.find_sidecar(doc.image.info.path))
    sidecar.apply_sidecar(fresh, meta, arrays)
    assert not (fresh.parts == 1).any()
    assert journal.recover(fresh, journal.read_entries(doc.journal.path)) == 1
    np.testing.assert_array_equal(fresh.parts, doc.parts)
    assert [r.action for r in fresh.provenance.edits] == [ACTION]
    sidecar.save_sidecar(doc)  # and the saved sidecar holds the parts and the audit record
    meta, arrays = sidecar.read_sidecar(sidecar.find_sidecar(doc.image.info.path))
    again = seeded_doc()
    sidecar.apply_sidecar(again, meta, arrays)
    np.testing.assert_array_equal(again.parts, doc.parts)
    assert again.parts[80, 120] == 1 and [r.action for r in again.provenance.edits] == [ACTION]


def test_an_edited_nucleus_shows_in_the_class_maps_of_reports_and_exports(tmp_path):
    img = tmp_path / "smear.png"
    cv2.imwrite(str(img), np.full((120, 160, 3), 220, np.uint8))
    doc = seeded_doc()
    doc.image.info.path = str(img)
    doc.parts[:] = 0  # a white cell without parts: the whole-WBC value in the maps, no parts in the report
    assert class_map(doc)[80, 120] == CLASS_MAP_VALUES["wbc"] and "WBC area: nucleus" not in differential(doc)
    _paint(doc, "nucleus", [(120, 80)], radius=5)
    cmap = class_map(doc)  # analyze's masks and the report
    assert cmap[80, 120] == CLASS_MAP_VALUES["nucleus"] and cmap[80, 103] == CLASS_MAP_VALUES["cytoplasm"]
    nuc = int((doc.parts == 1).sum())
    assert differential(doc)["WBC area: nucleus"] == f"{100.0 * nuc / (doc.labels['wbc'] > 0).sum():.1f} %"
    doc.reviewed = True
    sidecar.save_sidecar(doc)
    res = run_job(export_training_set([img], tmp_path / "out", formats=("shared",)))  # from the saved sidecar
    assert res.n_images == 1
    mask = cv2.imread(str(tmp_path / "out" / "masks" / "smear.png"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(mask, cmap)
    assert mask[80, 120] == CLASS_MAP_VALUES["nucleus"] and mask[80, 103] == CLASS_MAP_VALUES["cytoplasm"]


def test_part_shares_count_only_white_cells_with_parts_and_add_up_to_100():
    from tests.core.test_edits import disc

    doc = seeded_doc()
    _paint(doc, "nucleus", [(120, 80)], radius=8)  # white cell 1: nucleus and cytoplasm
    d = differential(doc)
    assert "WBC parts from" not in d  # all white cells have parts
    disc(doc, "wbc", 2, 40, 95, 12)  # a white cell brushed as a whole: no parts
    doc.markers[99] = Marker(99, "wbc", 40.0, 95.0, cell=2)  # (with its count marker: it counts)
    d = differential(doc)
    nuc, cyt = (float(d[f"WBC area: {p}"].rstrip(" %")) for p in ("nucleus", "cytoplasm"))
    assert nuc + cyt == pytest.approx(100.0, abs=0.11)
    cell1 = doc.labels["wbc"] == 1
    assert d["WBC area: nucleus"] == f"{100.0 * (doc.parts[cell1] == 1).sum() / cell1.sum():.1f} %"
    assert d["WBC parts from"] == "1 of 2 white cells with parts"
