"""The review queue's job: the doubt queue (:func:`cellviewer.core.review.doubt_queue`) of a copy of the
open document, computed in a worker thread (:class:`cellviewer.gui.workers.JobRunner`) at a low priority
and cancelled between cells and within its whole-image steps (a window closing does not wait for it)."""

from __future__ import annotations

from dataclasses import replace

from cellviewer.core.document import Document, ImageData
from cellviewer.core.jobs import Progress


def document_copy(doc: Document, maps: dict | None = None) -> Document:
    """An independent copy of what ``doubt_queue`` reads (labels, parts, markers), for a worker thread
    (``maps``: copies of its maps already made, as :func:`cellviewer.gui.slices.copy_maps` names them)."""
    copy = Document(ImageData(doc.image.pixels, doc.image.info))  # pixels are never edited in place
    if maps is None:
        maps = {**{f"labels/{c}.npy": a.copy() for c, a in doc.labels.items()}, "parts.npy": doc.parts.copy()}
    copy.labels = {c: maps[f"labels/{c}.npy"] for c in doc.labels}
    copy.parts = maps["parts.npy"]
    copy.markers = {k: replace(m) for k, m in doc.markers.items()}
    copy.um_per_px, copy.reviewed, copy.border_rule = doc.um_per_px, doc.reviewed, doc.border_rule
    copy.provenance = replace(doc.provenance, edits=list(doc.provenance.edits))
    return copy


def queue_job(doc: Document, diameter: float | None, maps: dict | None = None):
    """``make_job`` for a JobRunner: the doubt queue of a copy of ``doc`` (copied here, on the GUI thread;
    ``maps``: its maps copied already, :func:`cellviewer.gui.slices.copy_maps`); cancelled between cells and
    within its whole-image steps."""
    snap = document_copy(doc, maps)

    def make(token):
        from cellviewer.core.review import doubt_queue
        from cellviewer.gui.workers import lower_priority

        lower_priority()  # (seconds on a big field: the window goes first)
        yield Progress(0.0, "ordering cells by doubt")
        return doubt_queue(snap, diameter=diameter or None, token=token)

    return make
