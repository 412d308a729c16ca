"""A white cell's parts (nucleus / cytoplasm, ``doc.parts``) follow the edits that change its mask.

The mask edits (:mod:`cellviewer.core.operations`, :mod:`cellviewer.core.brush`) add these patches of the
``"parts"`` layer to the same undo step: pixels a cell loses lose their part (no part outside a white
cell), and pixels a cell with parts gains become cytoplasm (the brush, a Fill of a hole in it), so the
parts keep covering the cell; a cell without parts stays without.
"""

from __future__ import annotations

import numpy as np

from cellviewer.core.document import BBox, Document
from cellviewer.core.edits import LabelPatch

CYTOPLASM = 2  # core.document.PART_NAMES: 1 nucleus, 2 cytoplasm


def parts_clear(doc: Document, box: BBox, mask: np.ndarray) -> LabelPatch | None:
    """Clear the parts under ``mask`` (a boolean crop of ``box``); None when there are none."""
    y0, x0, y1, x1 = box
    old = doc.parts[y0:y1, x0:x1]
    if not old[mask].any():
        return None
    new = old.copy()
    new[mask] = 0
    return LabelPatch.from_arrays("parts", box, old, new)


def grown_cytoplasm(doc: Document, box: BBox, old: np.ndarray, new: np.ndarray, cell: int) -> LabelPatch | None:
    """Parts for the pixels an edit added to white cell ``cell`` (``old``/``new``: its label crops of ``box``):
    cytoplasm where the cell has parts already (its nucleus stays as it is); None when it has none (a cell
    without parts stays without) or nothing was added."""
    y0, x0, y1, x1 = box
    parts = doc.parts[y0:y1, x0:x1]
    added = (new == cell) & (old != cell) & (parts == 0)
    if not added.any():
        return None
    if not parts[old == cell].any() and not doc.parts[doc.labels["wbc"] == cell].any():  # (the whole cell: once,
        return None  # only when the box shows no parts of it)
    grown = parts.copy()
    grown[added] = CYTOPLASM
    return LabelPatch.from_arrays("parts", box, parts, grown)
