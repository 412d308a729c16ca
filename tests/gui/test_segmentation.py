"""The segmentation controller: what a run and "Classify red cells again" record in the document."""

from __future__ import annotations

import pytest


def test_the_calibration_reaches_the_document_with_the_classical_model(window, smear_path, qtbot):
    from cellviewer.core.report import ReportEntry, rbc_size_summary

    window.seg_params.update(um_per_px=0.3)  # the Calibration box; the cell size stays estimated
    with qtbot.waitSignal(window.segmentation.runner.finished, timeout=30000):
        assert window.open_image(smear_path)
    qtbot.waitUntil(lambda: window.counts_panel.counts.get("rbc", 0) > 0, timeout=5000)
    doc = window.session.doc
    assert doc.provenance.model_name.startswith("classical") and doc.um_per_px == 0.3
    assert doc.provenance.params["diameter_source"] != "given"  # the calibration did not fix the scale
    assert rbc_size_summary(doc)["RBC diameter (whole cells)"].split(" (n")[0].endswith("µm")  # as the CLI
    assert "µm at 0.3 µm/px" in ReportEntry.from_document(doc, "smear.png", thumbnail=False).cell_size


def test_classify_again_records_the_morphology_model_it_used_and_undo_restores(segmented, qtbot):
    from cellviewer.core import morphology as MO
    from cellviewer.core.report import ReportEntry

    if MO.find_card() is None:
        pytest.skip("no morphology model installed")
    win = segmented
    doc, stack = win.session.doc, win.session.stack
    assert "morphology" not in doc.provenance.params  # the classical segmenter classes no red cells
    assert ReportEntry.from_document(doc, "s.png", thumbnail=False).morphology == ""
    card = MO.load_model()[1]
    n = stack.count()
    with qtbot.waitSignal(win.segmentation.classes_runner.finished, timeout=30000):
        win.actions_by_id["seg.reclassify"].trigger()
    qtbot.waitUntil(lambda: stack.count() == n + 1, timeout=5000)
    used = f"{card['name']} {card.get('version', '1')}"
    assert doc.provenance.params["morphology"] == used
    assert ReportEntry.from_document(doc, "s.png", thumbnail=False).morphology == used
    stack.undo()
    assert "morphology" not in doc.provenance.params
    stack.redo()
    assert doc.provenance.params["morphology"] == used


def test_classes_made_for_red_cells_edited_meanwhile_are_discarded(segmented, qtbot):
    """Classify again runs in the background while editing goes on; classes computed for cells that were
    edited since (or undone) would land on other cells by marker id."""
    from cellviewer.core import morphology as MO
    from cellviewer.core.operations import delete_cell
    from cellviewer.gui.commands import EditCommand

    if MO.find_card() is None:
        pytest.skip("no morphology model installed")
    win = segmented
    doc, stack = win.session.doc, win.session.stack
    cell = next(m.cell for m in doc.markers.values() if m.cls == "rbc" and m.cell)
    before = {i: (m.morph, m.morph_p) for i, m in doc.markers.items()}
    n = stack.count()
    with qtbot.waitSignal(win.segmentation.classes_runner.finished, timeout=30000):
        win.actions_by_id["seg.reclassify"].trigger()
        stack.push(EditCommand(doc, delete_cell(doc, "rbc", cell)))  # before the result comes back
    qtbot.wait(50)
    assert stack.count() == n + 1 and stack.undoText() == "Delete cell"  # no classify step on top
    assert "discarded" in win.statusBar().currentMessage()
    assert all((m.morph, m.morph_p) == before[i] for i, m in doc.markers.items())


def test_classify_again_without_red_cell_outlines_says_so(segmented, qtbot):
    win = segmented
    doc = win.session.doc
    doc.labels["rbc"][:] = 0
    assert win.segmentation.reclassify() is False
    assert "No red cell with an outline" in win.statusBar().currentMessage()


def test_a_new_segmentation_or_its_undo_drops_picks_made_by_cell_or_marker_id(segmented, qtbot):
    """A merge's first cell, a dragged marker and the review queue name cells by id; a segmentation result,
    its undo or redo gives the ids to other cells, so those picks are dropped (a merge had joined two
    unrelated cells, a drag moved another cell's marker, Y marked another cell)."""
    win = segmented
    tools, rp = win.tools, win.human_loop.review_panel
    qtbot.waitUntil(lambda: len(rp.queue) > 0, timeout=10000)
    assert rp.go_to(0)
    m = next(m for m in win.session.doc.markers.values() if m.cell)
    tools.set_tool("merge")
    tools.click(m.x, m.y)
    assert tools._merge_first is not None
    win.seg_params.update(counting="hough")
    with qtbot.waitSignal(win.segmentation.runner.finished, timeout=30000):
        win.segmentation.run(confirm=False)
    qtbot.wait(50)
    assert tools._merge_first is None and rp.current == -1
    tools.click(m.x, m.y)
    win.undo()  # back to the first segmentation: ids change again
    assert tools._merge_first is None
    n = win.session.stack.count()
    assert rp.mark_current() is False and win.session.stack.count() == n  # nothing marked on a stale queue
