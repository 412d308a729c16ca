"""Whole-image work on the GUI thread in slices, between events, so a big field never freezes the window.

On a 48-megapixel field reading every label pixel once (a copy for the autosave, the red cells' areas, a
full overlay render) takes 0.1–1 s. Such work is written as a generator that does a few million pixels
per step and ``yield``\\ s in between; :class:`Stepper` runs its steps from a 0-ms timer, at most
:data:`BUDGET_S` of them per turn of the event loop, and hands the generator's return value to a
callback. Nothing here runs in another thread: the document is only ever read and written on the GUI
thread, so a step needs no lock; a generator that reads a document checks after each step whether it
changed meanwhile (:func:`copy_maps` gives up then, and its caller starts again).

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
        """Run the rest of the current generator now."""
        self._run(budget=None)

    def _run(self, budget: float | None = BUDGET_S) -> None:
        gen = self._gen
        if gen is None:
            return
        end = None if budget is None else time.monotonic() + budget
        try:
            while end is None or time.monotonic() < end:
                next(gen)
        except StopIteration as stop:
            done, self._gen, self._done = self._done, None, None
            if done is not None:
                done(stop.value)
            return
        except BaseException:
            self._gen, self._done = None, None
            raise
        self._timer.start()


def copy_maps(doc: Document, as_saved: bool = True):
    """Generator: the label maps and the part map of ``doc`` copied a slice per step, ``as_saved``: as
    :func:`cellviewer.core.sidecar.snapshot` stores them (labels ``uint16`` when every id fits, else
    ``int32``), else in their own type; returns ``None`` when the document changed (or a brush stroke was
    painting) before the copy was complete."""
    rev = doc.revision
    out: dict[str, np.ndarray] = {}
    for c in CELL_CLASSES:
        lab = doc.labels[c]
        dst = np.empty(lab.shape, np.uint16 if as_saved else lab.dtype)
        for rows in row_slices(lab.shape):
            part = lab[rows]
            if as_saved and part.size and part.max() > 65535:  # ids past uint16: kept as they are
                dst = lab.copy()
                break
            dst[rows] = part
            yield
            if doc.revision != rev or doc.labels[c] is not lab:
                return None
        out[f"labels/{c}.npy"] = dst
    parts = doc.parts
    dst = np.empty_like(parts)
    for rows in row_slices(parts.shape):
        dst[rows] = parts[rows]
        yield
        if doc.revision != rev or doc.parts is not parts:
            return None
    out["parts.npy"] = dst
    if doc.revision != rev or doc.open_stroke is not None:
        return None
    return out


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
