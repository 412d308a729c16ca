"""QUndoCommand wrappers: one user action = one undo step.

* :class:`EditCommand` wraps a :class:`cellviewer.core.edits.Edit` (an unapplied
  builder edit is applied by the first ``redo``; an already applied brush stroke
  is left as it is — ``Edit.apply`` is a no-op then).
* :class:`SegmentationCommand` replaces the whole automatic content of the
  document by a ``SegmentationResult`` and keeps the previous state (compact
  copies) so that even a re-segmentation over manual corrections is undoable.

One ``QUndoStack`` per document, unlimited (``make_stack``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
from PySide6.QtGui import QUndoCommand, QUndoStack

from cellviewer.core.document import CELL_CLASSES, Document
from cellviewer.core.edits import Edit

_PROV_FIELDS = ("model_name", "model_version", "params", "segmented_at", "device")


def make_stack(parent=None) -> QUndoStack:
    stack = QUndoStack(parent)
    stack.setUndoLimit(0)  # unlimited
    return stack


class EditCommand(QUndoCommand):
    def __init__(self, doc: Document, edit: Edit):
        super().__init__(edit.name)
        self.doc = doc
        self.edit = edit

    def redo(self) -> None:
        self.edit.apply(self.doc)

    def undo(self) -> None:
        self.edit.revert(self.doc)


def _compact(a: np.ndarray) -> np.ndarray:
    return a.astype(np.uint16) if a.size and int(a.max()) < 65536 and int(a.min()) >= 0 else a.copy()


def capture_state(doc: Document) -> dict:
    """A compact, independent copy of everything segmentation replaces."""
    return {
        "labels": {c: _compact(doc.labels[c]) for c in CELL_CLASSES},
        "parts": doc.parts.copy(),
        "markers": {k: replace(m) for k, m in doc.markers.items()},
        "prov": {k: getattr(doc.provenance, k) for k in _PROV_FIELDS},
    }


def restore_state(doc: Document, state: dict) -> None:
    for c in CELL_CLASSES:
        doc.labels[c] = state["labels"][c].astype(np.int32)
    doc.parts = state["parts"].copy()
    doc.markers = {k: replace(m) for k, m in state["markers"].items()}
    for k, v in state["prov"].items():
        setattr(doc.provenance, k, v)
    doc.notify_all()


class SegmentationCommand(QUndoCommand):
    """Apply a segmentation result; undo restores the labels, parts and markers before it."""

    def __init__(self, doc: Document, result, on_replaced: Callable[[], None] | None = None):
        super().__init__(f"Segmentation ({result.model_name or 'model'})")
        self.doc = doc
        self._result = result
        self._old = capture_state(doc)
        self._new: dict | None = None
        self._on_replaced = on_replaced

    def redo(self) -> None:
        if self._new is None:
            self.doc.set_result(self._result)
            self._result = None  # keep one copy only
            self._new = capture_state(self.doc)
        else:
            restore_state(self.doc, self._new)
        if self._on_replaced:
            self._on_replaced()

    def undo(self) -> None:
        restore_state(self.doc, self._old)
        if self._on_replaced:
            self._on_replaced()
