"""What the screen says after a mouse tool's action (found by a mouse QA pass in the real window): the merge
pick's white ring goes when the pick is dropped (pyqtgraph's ``ScatterPlotItem.clear()`` repaints only its
new, empty box, so the ring stayed drawn until something else painted over that spot), an undo drops a stale
merge pick and its prompt, and a marker dragged off its cell says which cell it no longer counts."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject

from tests.gui.smear import RBC_CENTRES, WBC_CENTRE


class _Painted(QObject):
    """The regions the viewport paints."""

    def __init__(self):
        super().__init__()
        self.regions = []

    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            self.regions.append(event.region())
        return False


def _ring_then(win, qtbot, x, y, clear) -> tuple:
    canvas = win.canvas
    win.actions_by_id["tool.merge"].trigger()
    win.tools.click(float(x), float(y))
    qtbot.wait(150)
    ring = canvas.mapFromScene(canvas.highlight.sceneBoundingRect()).boundingRect()
    assert ring.width() > 0 and len(canvas.highlight.data) == 1
    spy = _Painted()
    canvas.viewport().installEventFilter(spy)
    clear()
    qtbot.wait(150)
    canvas.viewport().removeEventFilter(spy)
    return ring, spy.regions


def test_esc_after_a_merge_pick_repaints_where_the_ring_was(segmented, qtbot):
    win = segmented
    win.show()
    x, y = RBC_CENTRES[-1]
    ring, regions = _ring_then(win, qtbot, x, y, win.tools.cancel)
    assert len(win.canvas.highlight.data) == 0
    assert any(r.contains(ring.center()) for r in regions), (ring, [r.boundingRect() for r in regions])


def test_a_refused_merge_repaints_where_the_ring_was(segmented, qtbot):
    win = segmented
    win.show()
    x, y = RBC_CENTRES[-1]
    wx, wy = WBC_CENTRE  # a white cell: "Both cells must be RBC", the pick is dropped
    ring, regions = _ring_then(win, qtbot, x, y, lambda: win.tools.click(float(wx), float(wy)))
    assert "must be" in win.statusBar().currentMessage()
    assert len(win.canvas.highlight.data) == 0
    assert any(r.contains(ring.center()) for r in regions), (ring, [r.boundingRect() for r in regions])


def test_an_undo_drops_a_merge_pick_its_ring_and_its_prompt(segmented, qtbot):
    win = segmented
    doc = win.session.doc
    win.tool_state.update(cls="rbc", brush_radius=3)
    win.tools.stroke([(110.0, 160.0), (118.0, 160.0)])  # a new red cell ...
    assert doc.labels["rbc"][160, 114] > 0
    win.actions_by_id["tool.merge"].trigger()
    win.tools.click(114.0, 160.0)  # ... picked for a merge ...
    assert "picked" in win.statusBar().currentMessage()
    win.actions_by_id["edit.undo"].trigger()  # ... and undone: the pick named a cell that is gone
    assert doc.labels["rbc"][160, 114] == 0 and len(win.canvas.highlight.data) == 0
    assert "cancelled" in win.statusBar().currentMessage()
    x, y = RBC_CENTRES[0]
    win.tools.click(float(x), float(y))  # a new first pick, not "There is no RBC cell #…"
    assert "picked" in win.statusBar().currentMessage()


def test_a_marker_dragged_onto_a_counted_cell_says_what_it_now_counts(segmented, qtbot):
    from tests.gui.mouse import mouse_drag

    win = segmented
    doc = win.session.doc
    (ax, ay), (bx, by) = RBC_CENTRES[0], RBC_CENTRES[1]
    a, b = int(doc.labels["rbc"][ay, ax]), int(doc.labels["rbc"][by, bx])
    m = doc.markers_of_cell("rbc", a)[0]
    assert a and b and doc.markers_of_cell("rbc", b)
    win.actions_by_id["tool.navigate"].trigger()
    n = doc.counts()["rbc"]
    mouse_drag(qtbot, win.canvas, [(m.x, m.y), ((m.x + bx) / 2, m.y), (bx - 3.0, by + 3.0)])
    assert doc.markers[m.id].cell == 0 and doc.counts()["rbc"] == n  # the same count ...
    msg = win.statusBar().currentMessage()
    assert f"RBC #{a} is no longer counted" in msg and f"RBC #{b} now counts twice" in msg  # ... but not the same cells
    win.actions_by_id["edit.undo"].trigger()
    assert doc.markers[m.id].cell == a
