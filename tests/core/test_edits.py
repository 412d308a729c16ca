"""Undo atoms and edit builders, without Qt."""

import numpy as np
import pytest

from cellviewer.core import edits
from cellviewer.core.errors import EditError
from tests.conftest import make_doc


def disc(doc, cls, label, cx, cy, r):
    yy, xx = np.mgrid[: doc.shape[0], : doc.shape[1]]
    doc.labels[cls][(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = label


def seeded_doc():
    """Two touching RBCs (1, 2) with markers and one WBC (1) with parts."""
    from cellviewer.core.document import Marker

    doc = make_doc(120, 160)
    disc(doc, "rbc", 1, 40, 40, 15)
    disc(doc, "rbc", 2, 68, 40, 15)
    disc(doc, "wbc", 1, 120, 80, 20)
    doc.parts[doc.labels["wbc"] == 1] = 2
    doc.markers = {1: Marker(1, "rbc", 40, 40, cell=1, score=0.9), 2: Marker(2, "rbc", 68, 40, cell=2, score=0.8),
                   3: Marker(3, "wbc", 120, 80, cell=1)}
    return doc


def snapshot(doc):
    return ({k: v.copy() for k, v in doc.labels.items()}, doc.parts.copy(),
            {k: (m.cls, m.x, m.y, m.cell) for k, m in doc.markers.items()})


def assert_same(doc, snap):
    labels, parts, markers = snap
    for k in labels:
        np.testing.assert_array_equal(doc.labels[k], labels[k])
    np.testing.assert_array_equal(doc.parts, parts)
    assert {k: (m.cls, m.x, m.y, m.cell) for k, m in doc.markers.items()} == markers


def test_brush_drag_is_one_undo_step_and_stores_only_touched_pixels():
    doc = make_doc(400, 600)
    h = edits.History(doc)
    before = snapshot(doc)
    s = edits.BrushStroke(doc, "rbc", radius=4)
    s.dab(10, 10)
    for x in range(12, 500, 7):  # a long, thin stroke across the image
        s.line_to(x, 10 + x // 3)
    e = s.finish()
    h.push(e)
    painted = int((doc.labels["rbc"] > 0).sum())
    assert len(h) == 1 and e.applied
    assert doc.counts()["rbc"] == 1  # a new cell gets its marker
    # memory grows with the painted pixels (12 bytes each), not with the bbox or the image
    assert e.nbytes < painted * 16 + 1024
    assert e.nbytes < doc.labels["rbc"].nbytes / 10
    h.undo()
    assert_same(doc, before)
    assert doc.provenance.edits == []
    h.redo()
    assert int((doc.labels["rbc"] > 0).sum()) == painted


def test_brush_does_not_paint_over_neighbour_and_extends_cell_under_first_dab():
    doc = seeded_doc()
    s = edits.BrushStroke(doc, "rbc", radius=6)
    s.dab(40, 40)
    s.line_to(70, 40)  # drags into cell 2
    s.finish()
    assert (doc.labels["rbc"] == 2).sum() > 600  # cell 2 is intact
    assert doc.counts()["rbc"] == 2


def test_eraser_removing_a_whole_cell_removes_its_marker_and_undo_restores():
    doc = seeded_doc()
    snap = snapshot(doc)
    h = edits.History(doc)
    s = edits.BrushStroke(doc, "rbc", radius=20, erase=True)
    s.dab(40, 40)
    h.push(s.finish())
    assert not (doc.labels["rbc"] == 1).any()
    assert doc.counts()["rbc"] == 1
    h.undo()
    assert_same(doc, snap)


def test_fill_hole_uses_enclosing_cell_and_refuses_open_background():
    doc = seeded_doc()
    doc.labels["rbc"][38:43, 38:43] = 0  # a hole in cell 1
    e = edits.fill(doc, "rbc", 40, 40)
    e.apply(doc)
    assert doc.labels["rbc"][40, 40] == 1
    with pytest.raises(EditError, match="not enclosed"):
        edits.fill(doc, "rbc", 2, 2)


def test_delete_merge_split_reclassify_round_trip():
    doc = seeded_doc()
    snap = snapshot(doc)
    h = edits.History(doc)
    h.push(edits.merge_cells(doc, "rbc", 1, 2))
    assert set(np.unique(doc.labels["rbc"])) == {0, 1} and doc.counts()["rbc"] == 1
    m = next(iter(doc.markers_of_cell("rbc", 1)))
    assert doc.labels["rbc"][int(m.y), int(m.x)] == 1  # marker inside the merged cell
    h.push(edits.split_cell(doc, "rbc", 1, [(54, 10), (54, 70)]))
    assert doc.counts()["rbc"] == 2
    ids = set(np.unique(doc.labels["rbc"])) - {0}
    assert len(ids) == 2
    for m in doc.markers.values():
        if m.cls == "rbc":
            assert doc.labels["rbc"][int(m.y), int(m.x)] == m.cell
    h.push(edits.reclassify_cell(doc, "wbc", 1, "platelet"))
    assert doc.counts() == {"rbc": 2, "wbc": 0, "platelet": 1}
    assert not doc.parts.any()  # WBC parts go with the WBC
    h.push(edits.delete_cell(doc, "platelet", 1))
    assert doc.counts()["platelet"] == 0
    assert len(doc.provenance.edits) == 4
    assert [r.action for r in doc.provenance.edits] == ["Merge cells", "Split cell", "Reclassify cell", "Delete cell"]
    while h.undo():
        pass
    assert_same(doc, snap)


def test_split_that_does_not_cut_is_refused():
    doc = seeded_doc()
    with pytest.raises(EditError, match="does not cut"):
        edits.split_cell(doc, "rbc", 1, [(30, 30), (35, 35)])


def test_markers_add_move_remove_reclassify():
    doc = seeded_doc()
    h = edits.History(doc)
    h.push(edits.add_marker(doc, "platelet", 5, 100))
    new = max(doc.markers)
    assert doc.markers[new].origin == "manual" and doc.markers[new].cell == 0
    h.push(edits.move_marker(doc, new, 10, 110))
    assert (doc.markers[new].x, doc.markers[new].y) == (10, 110)
    h.push(edits.reclassify_marker(doc, new, "rbc"))
    assert doc.counts() == {"rbc": 3, "wbc": 1, "platelet": 0}
    h.push(edits.reclassify_marker(doc, 3, "rbc"))  # a WBC marker takes its cell along
    assert doc.counts()["wbc"] == 0 and not (doc.labels["wbc"] > 0).any()
    h.push(edits.remove_marker(doc, new))
    assert new not in doc.markers
    for _ in range(5):
        h.undo()
    assert doc.counts() == {"rbc": 2, "wbc": 1, "platelet": 0}
    with pytest.raises(EditError):
        edits.remove_marker(doc, 999)


def test_edits_notify_with_bbox():
    doc = seeded_doc()
    seen = []
    doc.subscribe(seen.append)
    edits.delete_cell(doc, "rbc", 2).apply(doc)
    assert seen and seen[-1].bbox is not None
    y0, x0, y1, x1 = seen[-1].bbox
    assert (y1 - y0) <= 32 and (x1 - x0) <= 32 and seen[-1].markers


def test_after_a_split_an_automatic_marker_is_recentred_a_manual_one_stays():
    from dataclasses import replace as _replace

    from cellviewer.core.document import Marker

    for origin in ("auto", "manual"):
        doc = seeded_doc()
        h = edits.History(doc)
        h.push(edits.merge_cells(doc, "rbc", 1, 2))
        mids = [m.id for m in doc.markers_of_cell("rbc", 1)]
        assert len(mids) == 1
        doc.markers[mids[0]] = _replace(doc.markers[mids[0]], x=52.0, y=40.0, origin=origin)  # near the later cut
        h.push(edits.split_cell(doc, "rbc", 1, [(54, 10), (54, 70)]))
        kept = doc.markers[mids[0]]
        assert isinstance(kept, Marker) and doc.labels["rbc"][int(kept.y), int(kept.x)] == kept.cell
        if origin == "auto":  # moved to its piece's interior, well away from the cut at x = 54
            assert abs(kept.x - 40) < 6 and abs(kept.y - 40) < 6
        else:
            assert (kept.x, kept.y) == (52.0, 40.0)
        h.undo()
        assert {(m.x, m.y) for m in doc.markers_of_cell("rbc", 1)} == {(52.0, 40.0)}


def test_a_split_clears_the_automatic_morphology_class_a_hand_set_one_stays():
    from dataclasses import replace as _replace

    for p, kept_class in ((0.83, ""), (1.0, "elliptocyte")):
        doc = seeded_doc()
        h = edits.History(doc)
        h.push(edits.merge_cells(doc, "rbc", 1, 2))
        mid = doc.markers_of_cell("rbc", 1)[0].id
        doc.markers[mid] = _replace(doc.markers[mid], morph="elliptocyte", morph_p=p)  # the two cells as one
        h.push(edits.split_cell(doc, "rbc", 1, [(54, 10), (54, 70)]))
        pieces = [m for m in doc.markers.values() if m.cls == "rbc"]
        assert len(pieces) == 2 and doc.markers[mid].morph == kept_class
        assert all(m.morph == "" for m in pieces if m.id != mid)  # the new piece: not classified yet
        h.undo()
        assert (doc.markers[mid].morph, doc.markers[mid].morph_p) == ("elliptocyte", p)


def test_deleting_a_cell_takes_a_second_marker_added_by_hand_on_it():
    doc = seeded_doc()
    h = edits.History(doc)
    h.push(edits.add_marker(doc, "rbc", 42, 40))  # on RBC 1, which is counted already: not linked
    extra = max(doc.markers)
    assert doc.markers[extra].cell == 0 and doc.counts()["rbc"] == 3
    h.push(edits.add_marker(doc, "rbc", 100, 100))  # in no cell: stays
    h.push(edits.delete_cell(doc, "rbc", 1))
    assert extra not in doc.markers and doc.counts()["rbc"] == 2  # RBC 2 and the free marker
    h.undo()
    assert extra in doc.markers and doc.counts()["rbc"] == 4
