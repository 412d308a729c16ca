"""Whole-image work on the GUI thread in slices, between events, so a big field never freezes the window.

On a 48-megapixel field reading every label pixel once (a copy for the autosave, the red cells' areas, a
full overlay render) takes 0.1–1 s. Such work is written as a generator that does a few million pixels
per step and ``yield``\\ s in between; :class:`Stepper` runs its steps from a 0-ms timer, at most
:data:`BUDGET_S` of them per turn of the event loop, and hands the generator's return value to a
callback. Nothing here runs in another thread: the document is only ever read and written on the GUI
thread, so a step needs no lock; a generator that reads a document checks after each step whether it
changed meanwhile (:func:`copy_maps` copies the places an edit changed once more; it gives up, and its
caller starts again, only when a whole map was replaced).

Small images (at most :data:`SYNC_PX` pixels) are done at once, inside :meth:`Stepper.start`, as before.
"""

from __future__ import annotations

import time
from typing import Callable, Generator

import numpy as np
from PySide6.QtCore import QObject, QTimer

from cellviewer.core.document import CELL_CLASSES, Document

SYNC_PX = 12_000_000  # up to this many pixels whole-image work is done at once (a 12-MP camera field)
SLICE_PX = 2_000_000  # pixels per step of a sliced pass (a few ms of numpy)
BUDGET_S = 0.02  # steps per turn of the event loop: until this much time has passed


def is_big(shape) -> bool:
    return int(shape[0]) * int(shape[1]) > SYNC_PX


def row_slices(shape, px: int = SLICE_PX):
    """``slice``\\ s of rows of about ``px`` pixels each, covering ``shape``."""
    h, w = int(shape[0]), max(1, int(shape[1]))
    step = max(1, px // w)
    return [slice(y, min(h, y + step)) for y in range(0, h, step)]


class Stepper(QObject):
    """Runs one generator at a time, step by step, on the GUI thread (see the module docstring)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._gen: Generator | None = None
        self._done: Callable | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._run)

    @property
    def busy(self) -> bool:
        return self._gen is not None

    def start(self, gen: Generator, done: Callable[[object], None], sync: bool = False) -> None:
        """Run ``gen`` (a running one is dropped); ``done(result)`` when it returns. ``sync``: all of it now."""
        self.cancel()
        self._gen, self._done = gen, done
        if sync:
            self.finish()
        else:
            self._timer.start()

    def cancel(self) -> None:
        self._timer.stop()
        gen, self._gen, self._done = self._gen, None, None
        if gen is not None:
            gen.close()

    def finish(self) -> None:
        """Run the rest of the current generator now (up to a step that has to wait: later, from the timer)."""
        self._run(budget=None)

    def _run(self, budget: float | None = BUDGET_S) -> None:
        gen = self._gen
        if gen is None:
            return
        end = None if budget is None else time.monotonic() + budget
        try:
            while end is None or time.monotonic() < end:
                wait = next(gen)
                if wait:  # a step that has to wait (seconds): called again then, not spinning meanwhile
                    self._timer.start(max(1, int(wait * 1000)))
                    return
        except StopIteration as stop:
            done, self._gen, self._done = self._done, None, None
            if done is not None:
                done(stop.value)
            return
        except BaseException:
            self._gen, self._done = None, None
            raise
        self._timer.start(0)


#: how long a copy waits, between looks, for a brush stroke being painted to end (:func:`copy_maps`)
STROKE_WAIT_S = 0.03


def copy_maps(doc: Document, as_saved: bool = True, wait_stroke: bool = False):
    """Generator: the label maps and the part map of ``doc`` copied a slice per step, ``as_saved``: as
    :func:`cellviewer.core.sidecar.snapshot` stores them (labels ``uint16`` when every id fits, else
    ``int32``), else in their own type.

    An edit made between steps does not start it again: the places it changed (its ``Change``: box and
    maps) are copied once more before it returns, so what it returns is the document as it is then, whole.
    It returns ``None`` when a map was replaced (a segmentation result, its undo or redo: a change of
    everything) or an id past ``uint16`` came in — and, unless ``wait_stroke``, when a brush stroke is
    being painted at the end (never half a stroke); with ``wait_stroke`` it waits for the stroke to end
    (yields :data:`STROKE_WAIT_S`: :class:`Stepper` calls again then), copying what it paints meanwhile."""
    keys = tuple(CELL_CLASSES) + ("parts",)
    dirty: list[tuple[str, tuple]] = []  # (map, box) changed by edits while copying
    gone = [False]

    def changed(change) -> None:
        if change.bbox is None:
            gone[0] = gone[0] or any(k in keys for k in change.layers)  # (markers / flags only: not the maps)
        else:
            dirty.extend((k, tuple(change.bbox)) for k in change.layers if k in keys)

    srcs = {c: doc.labels[c] for c in CELL_CLASSES}
    srcs["parts"] = doc.parts
    doc.subscribe(changed)
    try:
        out: dict[str, np.ndarray] = {}
        for k in keys:
            src = srcs[k]
            wide = k == "parts" or not as_saved
            dst = np.empty(src.shape, src.dtype if wide else np.uint16)
            for rows in row_slices(src.shape):
                part = src[rows]
                if not wide and part.size and part.max() > 65535:  # ids past uint16: kept as they are
                    dst = src.copy()  # (at once: the edits that came before are in it)
                    dirty[:] = [d for d in dirty if d[0] != k]
                    break
                dst[rows] = part
                yield
                if gone[0]:
                    return None
            out[k] = dst
        while True:  # the places edits changed meanwhile, once more; then the end of a stroke being painted
            while dirty:
                k, (y0, x0, y1, x1) = dirty.pop()
                region = srcs[k][y0:y1, x0:x1]
                if out[k].dtype == np.uint16 and region.size and region.max() > 65535:
                    return None  # (an id past uint16 came in: the next copy keeps that map as int32)
                out[k][y0:y1, x0:x1] = region
                yield
                if gone[0]:
                    return None
            if any(doc.layer(k) is not srcs[k] for k in keys):
                return None
            if doc.open_stroke is None:
                break
            if not wait_stroke:
                return None
            yield STROKE_WAIT_S
            if gone[0]:
                return None
        return {(f"labels/{k}.npy" if k != "parts" else "parts.npy"): a for k, a in out.items()}
    finally:
        doc.unsubscribe(changed)


def rbc_areas(doc: Document):
    """Generator: :func:`cellviewer.core.report.whole_rbc_areas` of ``doc`` a slice per step (the caller
    throws the result away when the red-cell masks changed meanwhile)."""
    from cellviewer.core.countframe import edge_flags

    lab = doc.labels["rbc"]
    area = np.zeros(1, np.int64)
    for rows in row_slices(lab.shape):
        b = np.bincount(lab[rows].ravel())
        if b.size > area.size:
            b[:area.size] += area
            area = b
        else:
            area[:b.size] += b
        yield
    cut = edge_flags(lab, doc.field_edge())
    return {i: int(area[i]) for i in np.nonzero(area)[0].tolist() if i and i not in cut}
