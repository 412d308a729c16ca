"""Overlay rendering on arrays (no Qt): the cut a Split makes through a white cell stays visible."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cellviewer.core.document import Document, ImageData, ImageInfo
from cellviewer.core.edits import split_cell
from cellviewer.gui.overlay import EDGE_ALPHA, render
from cellviewer.gui.state import ViewState


def _split_white_cell() -> Document:
    """A white cell (cytoplasm ring, nucleus disc) split in two along row 50."""
    h = w = 100
    doc = Document(ImageData(np.full((h, w, 3), 120, np.uint8), ImageInfo(None, w, h)))
    yy, xx = np.mgrid[:h, :w]
    r2 = (yy - 50) ** 2 + (xx - 50) ** 2
    doc.labels["wbc"][r2 < 30 ** 2] = 1
    doc.parts[r2 < 30 ** 2] = 2
    doc.parts[r2 < 15 ** 2] = 1
    split_cell(doc, "wbc", 1, [(10.0, 50.0), (90.0, 50.0)]).apply(doc)
    return doc


def _cut_rows(doc: Document, x: int) -> np.ndarray:
    """Rows of column ``x`` where the two halves meet."""
    col = doc.labels["wbc"][:, x]
    return np.flatnonzero((col[:-1] != col[1:]) & (col[:-1] > 0) & (col[1:] > 0))


@pytest.mark.parametrize("parts,wbc,outline", list(itertools.product((True, False), repeat=3)))
def test_a_split_cut_through_a_white_cell_is_outlined_in_every_layer_combination(parts, wbc, outline):
    doc = _split_white_cell()
    assert len(np.unique(doc.labels["wbc"])) == 3  # background + two halves
    view = ViewState(show_parts=parts, outline=outline)
    view.classes["wbc"] = wbc
    rgba = render(doc.labels, doc.parts, (0, 0, 100, 100), view.overlay_visible, outline)
    for x in (30, 50):  # through the cytoplasm and through the nucleus
        (r,) = _cut_rows(doc, x)
        if parts or wbc:
            assert rgba[r, x, 3] == EDGE_ALPHA and rgba[r + 1, x, 3] == EDGE_ALPHA, (x, r)
            inside = rgba[r - 5, x, 3]  # away from the cut: a fill (or nothing, outlines only)
            assert inside < EDGE_ALPHA
        else:
            assert rgba[r, x, 3] == 0  # neither layer shown: nothing drawn


def test_the_parts_outline_of_an_unsplit_white_cell_is_unchanged():
    doc = _split_white_cell()
    doc.labels["wbc"][doc.labels["wbc"] > 0] = 1  # one cell again
    view = ViewState()
    rgba = render(doc.labels, doc.parts, (0, 0, 100, 100), view.overlay_visible, False)
    assert rgba[50, 30, 3] < EDGE_ALPHA and rgba[50, 50, 3] < EDGE_ALPHA  # no line across the cell
    assert rgba[50, 35, 3] == EDGE_ALPHA  # the nucleus' own outline (radius 15 from x = 50)
