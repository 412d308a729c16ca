"""The review queue: doubtful cells first, with reasons; marking reviewed is one undoable step."""

import numpy as np
import pytest

from cellviewer.core.edits import History
from cellviewer.core.errors import EditError
from cellviewer.core.review import doubt_queue, mark_reviewed, next_doubtful, remaining, set_reviewed_in_queue
from tests.synthdocs import disc_doc

R = 10  # red-cell radius


def _doc():
    discs = [("rbc", 20 + 30 * i, 20, R, 0.97) for i in range(5)]  # five plain red cells
    discs += [("rbc", 20, 60, R, 0.35)]  # the model was unsure
    discs += [("rbc", 140, 60, 3, 0.95)]  # far too small for a red cell
    discs += [("wbc", 60, 70, 16, 0.9), ("wbc", 200, 70, 16, 0.9), ("wbc", 240, 70, 16, 0.9)]
    doc = disc_doc(discs, size=(100, 280))
    # two touching red cells saved as one cell: a waist the counting methods split
    yy, xx = np.mgrid[:100, :280]
    pair = (((yy - 70) ** 2 + (xx - 100) ** 2) <= R * R) | (((yy - 70) ** 2 + (xx - 118) ** 2) <= R * R)
    doc.labels["rbc"][pair] = 8
    from cellviewer.core.document import Marker

    doc.markers[99] = Marker(99, "rbc", 100.0, 70.0, "auto", 8, 0.96)
    return doc


def test_doubtful_cells_come_first_with_their_reasons():
    doc = _doc()
    q = doubt_queue(doc, diameter=2 * R)
    assert len(q) == 8 + 3 and remaining(q) == len(q)
    assert [it.score for it in q] == sorted((it.score for it in q), reverse=True)
    by = {(it.cls, it.cell): it for it in q}
    low, small, pair = by[("rbc", 6)], by[("rbc", 7)], by[("rbc", 8)]
    plain = [by[("rbc", i)] for i in range(1, 6)]
    top = {(it.cls, it.cell) for it in q[:3]}
    assert top == {("rbc", 6), ("rbc", 7), ("rbc", 8)}
    assert max(p.score for p in plain) < 0.3 < min(low.score, small.score, pair.score)
    assert any("low model score" in r for r in low.reasons)
    assert any(r.startswith("small for an RBC") for r in small.reasons)
    assert any("counting methods disagree" in r for r in pair.reasons), pair.reasons
    assert all(not p.reasons for p in plain)
    assert all(doc.labels[it.cls][int(it.y), int(it.x)] == it.cell for it in q)
    # each item carries its cell's bounding box (the review panel shows the whole cell)
    ys, xs = np.nonzero(doc.labels["rbc"] == 8)
    assert pair.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_unsure_or_abnormal_red_cell_morphology_is_a_reason_to_look():
    from dataclasses import replace

    doc = _doc()
    base = {(it.cls, it.cell): it.score for it in doubt_queue(doc, diameter=2 * R)}
    ms = {m.cell: m for m in doc.markers.values() if m.cls == "rbc"}
    doc.markers[ms[1].id] = replace(ms[1], morph="normal", morph_p=0.95)  # sure and normal: no doubt
    doc.markers[ms[2].id] = replace(ms[2], morph="normal", morph_p=0.3)  # unsure
    doc.markers[ms[3].id] = replace(ms[3], morph="schistocyte", morph_p=0.9)  # abnormal: worth a look
    doc.markers[ms[4].id] = replace(ms[4], morph="schistocyte", morph_p=1.0)  # set by hand: not queued for it
    by = {(it.cls, it.cell): it for it in doubt_queue(doc, diameter=2 * R)}
    assert by[("rbc", 1)].score == pytest.approx(base[("rbc", 1)]) and not by[("rbc", 1)].reasons
    assert by[("rbc", 2)].signs["morphology"] == pytest.approx(0.75)
    assert "unsure morphology: normal (0.30)" in by[("rbc", 2)].reasons
    assert by[("rbc", 3)].signs["morphology"] == pytest.approx(0.35)
    assert "morphology: schistocyte (0.90)" in by[("rbc", 3)].reasons
    assert "morphology" not in by[("rbc", 4)].signs
    assert by[("rbc", 3)].score > base[("rbc", 3)]


def test_mark_reviewed_is_undoable_and_navigation_skips_reviewed():
    doc = _doc()
    q = doubt_queue(doc, diameter=2 * R)
    hist = History(doc)
    hist.push(mark_reviewed(doc, q[0].cls, q[0].cell))
    set_reviewed_in_queue(q, doc)
    assert q[0].reviewed and remaining(q) == len(q) - 1
    assert doubt_queue(doc, diameter=2 * R)[0].reviewed  # the flag is on the marker: it survives a rebuild
    assert next_doubtful(q, None) == 1 and next_doubtful(q, 1, -1) == len(q) - 1
    assert doc.provenance.edits[-1].action == "Review cell"
    hist.undo()
    set_reviewed_in_queue(q, doc)
    assert remaining(q) == len(q) and next_doubtful(q, None) == 0
    for it in q:
        hist.push(mark_reviewed(doc, it.cls, it.cell))
    set_reviewed_in_queue(q, doc)
    assert remaining(q) == 0 and next_doubtful(q, 3) is None


def test_an_outline_whose_marker_was_removed_is_not_queued_and_settles_the_queue():
    from cellviewer.core import operations as ops

    doc = _doc()
    q = doubt_queue(doc, diameter=2 * R)
    assert any(it.cls == "rbc" and it.cell == 1 for it in q)
    ops.remove_marker(doc, doc.markers_of_cell("rbc", 1)[0].id).apply(doc)  # "not a cell"
    set_reviewed_in_queue(q, doc)  # the queue shown when it was removed: that cell is settled
    assert next(it for it in q if it.cls == "rbc" and it.cell == 1).reviewed and remaining(q) == len(q) - 1
    assert not any(it.cls == "rbc" and it.cell == 1 for it in doubt_queue(doc, diameter=2 * R))  # rebuilt: gone
    with pytest.raises(EditError, match="no count marker"):
        mark_reviewed(doc, "rbc", 1)


def test_cells_the_border_rule_does_not_count_are_not_queued():
    from cellviewer.core.document import Marker

    doc = _doc()
    yy, xx = np.mgrid[:100, :280]
    doc.labels["rbc"][((yy - 50) ** 2 + (xx - 276) ** 2) <= R * R] = 20  # cut by the right edge
    doc.markers[120] = Marker(120, "rbc", 274.0, 50.0, "auto", 20, 0.3)  # and doubtful: it would come first
    assert ("rbc", 20) in {(it.cls, it.cell) for it in doubt_queue(doc, diameter=2 * R)}  # "all" counts it
    doc.border_rule = "frame"  # cells cut by the bottom or right edge are not counted
    q = doubt_queue(doc, diameter=2 * R)
    assert ("rbc", 20) not in {(it.cls, it.cell) for it in q}
    assert remaining(q) == len(q) == sum(doc.counts().values())  # "left to review" counts counted cells only


def test_empty_document_gives_an_empty_queue(blank_doc):
    assert doubt_queue(blank_doc) == [] and remaining([]) == 0 and next_doubtful([], None) is None


def test_image_reviewed_reads_only_the_saved_flag(tmp_path):
    from cellviewer.core.review import image_reviewed
    from cellviewer.core.sidecar import save_sidecar, sidecar_path

    doc = _doc()
    doc.reviewed = False
    img = tmp_path / "field.png"
    img.write_bytes(b"")  # only the sidecar is read
    assert image_reviewed(img) is None  # nothing saved yet
    save_sidecar(doc, sidecar_path(img))
    assert image_reviewed(img) is False
    doc.reviewed = True
    save_sidecar(doc, sidecar_path(img))
    assert image_reviewed(img) is True
    sidecar_path(img).write_bytes(b"not a zip")
    assert image_reviewed(img) is False  # unreadable: not reviewed (opening it says why)


def test_a_queued_cell_always_says_why():
    from cellviewer.core.review import REASON_AT, _reasons

    texts = {"model": "low model score (0.80)", "size": "large for an RBC (1.3× typical)",
             "shape": "irregular shape (roundness 0.70)"}
    strong = {"model": 0.5, "size": 0.1, "shape": 0.0}
    assert _reasons(strong, texts, 0.55) == ["low model score (0.80)"]
    weak = {"model": 0.2, "size": 0.25, "shape": 0.1}  # none a reason alone, together a doubt ≥ REASON_AT
    score = 1 - (1 - 0.2) * (1 - 0.25) * (1 - 0.1)
    assert score >= REASON_AT
    assert _reasons(weak, texts, score) == ["mildly large for an RBC (1.3× typical)", "low model score (0.80) (mild)"]
    assert _reasons({"model": 0.1, "size": 0.1}, texts, 0.19) == []  # not doubtful: nothing to explain


def test_a_cancelled_queue_stops_between_cells_and_a_token_changes_nothing_else():
    from cellviewer.core.errors import Cancelled
    from cellviewer.core.jobs import CancelToken

    doc, token = _doc(), CancelToken()
    assert doubt_queue(doc, diameter=2 * R, token=token) == doubt_queue(doc, diameter=2 * R)
    token.cancel()
    with pytest.raises(Cancelled):
        doubt_queue(doc, diameter=2 * R, token=token)


def test_cells_cut_by_a_field_stop_get_the_leniency_of_cells_cut_by_the_image_edge():
    from cellviewer.core.document import Document, ImageData, ImageInfo, Marker

    h, w = 200, 240
    yy, xx = np.mgrid[:h, :w]
    field = (xx - 120) ** 2 + (yy - 100) ** 2 <= 95 ** 2  # a round field stop, black outside
    img = np.zeros((h, w, 3), np.uint8)
    img[field] = (225, 205, 215)
    doc = Document(ImageData(img, ImageInfo("f.png", w, h)))
    lab = doc.labels["rbc"]
    centres = [(90, 70), (150, 70), (90, 130), (150, 130), (120, 100), (60, 100), (180, 100)]
    for i, (cx, cy) in enumerate(centres, 1):  # whole cells, radius 14
        lab[(xx - cx) ** 2 + (yy - cy) ** 2 <= 14 ** 2] = i
    lab[((xx - 212) ** 2 + (yy - 100) ** 2 <= 14 ** 2) & field] = 8  # a sliver cut by the stop on the right
    doc.markers = {i: Marker(i, "rbc", float(cx), float(cy), cell=i) for i, (cx, cy) in enumerate(centres, 1)}
    doc.markers[8] = Marker(8, "rbc", 205.0, 100.0, cell=8)
    item = next(it for it in doubt_queue(doc, diameter=28.0) if it.cell == 8)
    assert not any("small" in r or "irregular" in r for r in item.reasons), item.reasons
