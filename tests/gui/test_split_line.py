"""The split tool in the real window with the parts layer shown: its line is drawn over the white
cell's nucleus / cytoplasm while dragging, and the cut it makes stays outlined afterwards."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF

from cellviewer.gui.overlay import EDGE_ALPHA
from tests.gui.smear import WBC_CENTRE, WBC_R
from tests.gui.mouse import mouse_drag


def _white_pixels_on_row(canvas, y: float, x0: float, x1: float) -> int:
    """Near-white screen pixels along image row ``y`` between ``x0`` and ``x1`` (the dashed line)."""
    img = canvas.grab().toImage()
    a, b = canvas.map_to_view(x0, y), canvas.map_to_view(x1, y)
    n = 0
    for x in range(a.x(), b.x()):
        for d in (-1, 0, 1):
            c = img.pixelColor(x, a.y() + d)
            n += min(c.red(), c.green(), c.blue()) > 235
    return n


def test_the_split_line_shows_over_the_parts_and_its_cut_stays_outlined(segmented, qtbot):
    win = segmented
    doc = win.session.doc
    cx, cy = WBC_CENTRE
    assert doc.parts[cy, cx] and doc.parts[cy, cx - WBC_R + 3]  # the white cell has parts
    win.view_state.update(show_parts=True, outline=False, hide_overlays=False, opacity=1.0)
    win.canvas.vb.setRange(QRectF(cx - 30, cy - 30, 60, 60), padding=0)
    qtbot.wait(50)
    win.actions_by_id["tool.split"].trigger()
    y = cy + 0.5
    n = win.session.stack.count()

    def mid_drag():  # the dashed white line is on screen across the nucleus and the cytoplasm
        assert _white_pixels_on_row(win.canvas, y, cx - 8, cx + 8) > 10  # nucleus
        assert _white_pixels_on_row(win.canvas, y, cx - WBC_R + 1, cx - 12) > 3  # cytoplasm

    mouse_drag(qtbot, win.canvas, [(x, y) for x in (cx - 28.0, cx - 10.0, cx + 10.0, cx + 28.0)], mid_drag)
    qtbot.wait(20)
    assert win.session.stack.count() == n + 1 and win.session.stack.undoText().startswith("Split")
    wbc = doc.labels["wbc"]
    col = wbc[:, cx]
    cut = np.flatnonzero((col[:-1] != col[1:]) & (col[:-1] > 0) & (col[1:] > 0))
    assert cut.size == 1  # two white cells now, meeting on the line
    r = int(cut[0])
    for shown_wbc in (True, False):  # the parts on top outline the cut, with or without the white-cell layer
        classes = dict(win.view_state.value.classes, wbc=shown_wbc)
        win.view_state.update(classes=classes)
        rgba = win.canvas.overlay_rgba()
        assert rgba[r, cx, 3] == EDGE_ALPHA and rgba[r + 1, cx, 3] == EDGE_ALPHA
        assert rgba[r, cx - WBC_R + 4, 3] == EDGE_ALPHA  # through the cytoplasm too
