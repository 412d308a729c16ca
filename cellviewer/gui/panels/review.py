"""The review queue: the open image's cells ordered by doubt, most doubtful first.

The queue comes from :func:`cellviewer.core.review.doubt_queue` (low model score,
counting methods that disagree, unusual size or shape for the class). It is
computed off the GUI thread on a copy of the document and recomputed (debounced)
when masks change; marking a cell reviewed only updates the ticks.

* a click on a row (or N / P: next / previous cell still to review) centres the
  canvas on the cell (``focus_requested``);
* "Mark reviewed" (Y) marks the current cell reviewed and moves on — one undo step
  (:class:`cellviewer.gui.commands.EditCommand` on the document's ``QUndoStack``);
* "Morphology" shows the current red cell's morphology class (:mod:`cellviewer.core.morphology`)
  and sets it by hand — one undo step;
* "Image reviewed" is the image-level flag (saved in the sidecar) that the
  training-set export and the retrain panel filter on — undoable too.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSignalBlocker, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QHBoxLayout, QHeaderView, QLabel,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from cellviewer.core.document import DISPLAY_NAMES, Document
from cellviewer.gui import keyboard, notifications
from cellviewer.gui.panels.reviewqueue import document_copy, queue_job  # noqa: F401 - (this module's API)
from cellviewer.gui.workers import JobRunner

RECOMPUTE_MS = 400
TICK = "✔"
#: half the side of the square shown around a cell (image px), at least
FOCUS_HALF_PX = 60.0


def centre_on(canvas, x: float, y: float, half: float = FOCUS_HALF_PX) -> None:
    """Show the square of side ``2 * half`` around image point (x, y) on a :class:`Canvas`."""
    canvas.vb.setRange(QRectF(x - half, y - half, 2 * half, 2 * half), padding=0.0)


class ReviewPanel(QWidget):
    focus_requested = Signal(float, float, float)  # x, y, half side (image px)
    cell_shown = Signal(float, float)  # a point inside the cell just shown (its marker): ringed on the canvas
    queue_changed = Signal(int, int)  # cells left, cells in the queue

    def __init__(self, parent=None):
        super().__init__(parent)
        self.doc: Document | None = None
        self.stack = None
        self.queue: list = []
        self.current = -1
        self._resume = None  # where N goes on when the current cell disappeared from the queue (_on_queue)
        self.diameter: float | None = None  # expected RBC diameter; None = the core estimates it
        self._pending = False
        self.runner = JobRunner("review queue", self)
        from cellviewer.gui.slices import Stepper

        self._copier = Stepper(self)  # a big image's maps copied for the queue, a slice at a time
        self.runner.finished.connect(self._on_queue)
        self.runner.failed.connect(lambda exc: notifications.show_error(exc, "Review queue"))
        self.runner.running_changed.connect(lambda _running: self._sync_controls())
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RECOMPUTE_MS)
        self._timer.timeout.connect(self.recompute)
        lay = QVBoxLayout(self)
        self.image_reviewed = QCheckBox("Image reviewed (use it for training)")
        self.image_reviewed.setToolTip("Only reviewed images are exported as training data (undoable)")
        self.image_reviewed.toggled.connect(self.set_image_reviewed)
        lay.addWidget(self.image_reviewed)
        self.counter = QLabel("No image")
        lay.addWidget(self.counter)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["", "Class", "Doubt", "Why"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)  # one line per cell; the full reasons are in the tooltip
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        self.table.cellClicked.connect(lambda row, _col: self.go_to(row))
        # the arrow keys in the table move to a cell as a click does (Y then marks the cell shown)
        self.table.currentCellChanged.connect(lambda row, _c, _pr, _pc: row >= 0 and row != self.current
                                              and self.go_to(row))
        lay.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.prev_button = QPushButton("◀ Previous (P)")
        self.next_button = QPushButton("Next (N) ▶")
        self.mark_button = QPushButton("Mark reviewed (Y)")
        self.prev_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(+1))
        self.mark_button.clicked.connect(lambda: self.mark_current())
        for b in (self.prev_button, self.next_button, self.mark_button):
            row.addWidget(b)
        lay.addLayout(row)
        morph_row = QHBoxLayout()
        morph_row.addWidget(QLabel("Red-cell morphology"))
        self.morph = QComboBox()
        self.morph.setToolTip("The current red cell's morphology class (automatic, with its probability, "
                              "or set by hand); choosing one is one undo step")
        self.morph.addItem("– (not classified)", "")
        from cellviewer.core.morphology import CLASSES

        for name in CLASSES:
            self.morph.addItem(name.replace("_", " "), name)
        self.morph.activated.connect(lambda i: self.set_morphology(self.morph.itemData(i)))
        keyboard.arrows_open_list(self.morph)  # Up / Down open the list: not one class (and undo step) per press
        morph_row.addWidget(self.morph, 1)
        self.morph_p = QLabel("")
        morph_row.addWidget(self.morph_p)
        lay.addLayout(morph_row)
        self._sync_controls()

    # -- document --------------------------------------------------------------------------
    def set_document(self, doc: Document | None, stack=None) -> None:
        if self.doc is not None:
            self.doc.unsubscribe(self._on_change)
        self.doc, self.stack = doc, stack
        self._copier.cancel()
        self.queue, self.current, self._resume = [], -1, None
        self._fill()
        if doc is not None:
            doc.subscribe(self._on_change)
            self.recompute()
        self._sync_controls()

    def _on_change(self, change) -> None:
        if change.layers or change.markers:
            self._timer.start()  # masks or markers changed: so may the doubts (debounced)
        if change.markers or not change.layers:  # not on every brush dab: ticks follow markers only
            self.refresh_ticks()
        self._sync_image_flag()

    def recompute(self) -> None:
        """Recompute the queue in the worker (once more afterwards when asked while it runs)."""
        self._timer.stop()
        if self.doc is None:
            return
        if self.runner.is_running:
            self._pending = True
            return
        self._pending = False
        if not any(lab.any() for lab in self.doc.labels.values()):  # nothing segmented yet: no thread
            self._on_queue([])
            return
        from cellviewer.gui.slices import copy_maps, is_big

        if not is_big(self.doc.shape):
            self.runner.start(queue_job(self.doc, self.diameter), "review queue")
            return
        doc = self.doc  # a big image: its maps copied a slice per turn of the event loop, then the queue

        def copied(maps):
            if doc is not self.doc or self.runner.is_running:
                return
            if maps is None:  # edited meanwhile: once more (debounced)
                self._timer.start()
            else:
                self.runner.start(queue_job(doc, self.diameter, maps), "review queue")

        self._copier.start(copy_maps(doc, as_saved=False), copied)

    def _on_queue(self, queue) -> None:
        if self._pending:
            self.recompute()
            return
        if self.doc is None:
            return
        key, old = self._key(self.current), [(it.cls, it.cell) for it in self.queue]
        self.queue = list(queue)
        keys = [(it.cls, it.cell) for it in self.queue]
        self._resume = None
        if key is not None and key not in keys:  # the current cell is gone (deleted, merged): N goes on after it
            later = [keys.index(k) for k in old[self.current + 1:] if k in keys]
            self._resume = later[0] if later else None
        self.current = keys.index(key) if key in keys else -1
        self._fill()
        self.refresh_ticks()

    def forget_queue(self) -> None:
        """The masks and markers were replaced wholesale (a segmentation, its undo or redo): the queue's cell
        ids name other cells now, so it is emptied until it is computed again (Y must not mark another cell)."""
        self.queue, self.current, self._resume = [], -1, None
        self._fill()
        self.refresh_ticks()
        if self.doc is not None:
            self._timer.start()

    # -- the table -------------------------------------------------------------------------
    def _key(self, index: int):
        return (self.queue[index].cls, self.queue[index].cell) if 0 <= index < len(self.queue) else None

    def _first_markers(self) -> dict:
        """``(cls, cell) -> its first marker`` (one pass over the markers)."""
        out: dict = {}
        for m in (self.doc.markers.values() if self.doc is not None else ()):
            if m.cell:
                out.setdefault((m.cls, m.cell), m)
        return out

    @staticmethod
    def _name(it, first: dict) -> str:
        m = first.get((it.cls, it.cell))
        morph = f" · {m.morph.replace('_', ' ')}" if m is not None and m.morph else ""
        return f"{DISPLAY_NAMES.get(it.cls, it.cls)} #{it.cell}{morph}"

    def _fill(self) -> None:
        first = self._first_markers()
        self.table.setRowCount(len(self.queue))
        for i, it in enumerate(self.queue):
            reasons = ", ".join(it.reasons) if not isinstance(it.reasons, str) else it.reasons
            cells = ("", self._name(it, first), f"{float(it.score):.2f}", reasons)
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j == 3:
                    item.setToolTip(reasons)
                self.table.setItem(i, j, item)
        self.table.resizeColumnToContents(0)
        self.table.resizeColumnToContents(1)
        self.table.resizeColumnToContents(2)
        self._select(self.current)

    def refresh_ticks(self) -> None:
        """Take the reviewed flags from the document (cheap: after Mark reviewed, undo, redo)."""
        if self.doc is not None and self.queue:
            reviewed: dict = {}  # (cls, cell) -> all its markers reviewed; one pass over the markers
            for m in self.doc.markers.values():
                if m.cell:
                    key = (m.cls, m.cell)
                    reviewed[key] = reviewed.get(key, True) and bool(m.reviewed)
            for it in self.queue:
                it.reviewed = reviewed.get((it.cls, it.cell), False)
        first = self._first_markers()
        for i, it in enumerate(self.queue):
            cell, name = self.table.item(i, 0), self.table.item(i, 1)
            if cell is not None:
                cell.setText(TICK if it.reviewed else "")
            if name is not None:
                name.setText(self._name(it, first))  # the morphology may have changed (set, undone)
        self._sync_controls()

    @property
    def left(self) -> int:
        from cellviewer.core.review import remaining

        return remaining(self.queue)

    def _sync_controls(self) -> None:
        has = self.doc is not None
        n, left = len(self.queue), self.left
        if not has:
            self.counter.setText("No image")
        elif self.runner.is_running and not self.queue:
            self.counter.setText("Ordering cells by doubt…")
        else:
            self.counter.setText(f"{left} cell{'s' if left != 1 else ''} left to review (of {n})")
        for b in (self.prev_button, self.next_button):
            b.setEnabled(has and left > 0)
        self.mark_button.setEnabled(has and 0 <= self.current < n)
        self.image_reviewed.setEnabled(has)
        self._sync_image_flag()
        self._sync_morph()
        self.queue_changed.emit(left, n)

    def _sync_image_flag(self) -> None:
        with QSignalBlocker(self.image_reviewed):
            self.image_reviewed.setChecked(bool(self.doc is not None and self.doc.reviewed))

    def _marker(self, it):
        """The first marker of a queue item's cell (None when it has none)."""
        if self.doc is None or it is None:
            return None
        ms = self.doc.markers_of_cell(it.cls, it.cell)
        return ms[0] if ms else None

    def _sync_morph(self) -> None:
        it = self.queue[self.current] if 0 <= self.current < len(self.queue) else None
        m = self._marker(it) if it is not None and it.cls == "rbc" else None
        self.morph.setEnabled(m is not None)
        with QSignalBlocker(self.morph):
            self.morph.setCurrentIndex(max(0, self.morph.findData(m.morph if m is not None else "")))
        self.morph_p.setText("" if m is None or not m.morph else
                             ("set by hand" if m.morph_p >= 1.0 else f"p = {m.morph_p:.2f}"))

    def set_morphology(self, morph: str) -> bool:
        """Set the current red cell's morphology class by hand (one undo step)."""
        it = self.queue[self.current] if 0 <= self.current < len(self.queue) else None
        m = self._marker(it) if it is not None else None
        if m is None:
            notifications.status("Pick a red cell in the review queue first (N).")
            return False
        from cellviewer.core.errors import CellviewerError
        from cellviewer.core.operations import set_morphology

        try:
            edit = set_morphology(self.doc, m.id, morph or "")
        except CellviewerError as e:
            notifications.show_error(e, "Red-cell morphology")
            self._sync_morph()
            return False
        self._push(edit)
        self.refresh_ticks()
        return True

    def _select(self, index: int) -> None:
        with QSignalBlocker(self.table):
            self.table.clearSelection()
            if 0 <= index < self.table.rowCount():
                self.table.selectRow(index)
                self.table.scrollToItem(self.table.item(index, 1))

    # -- navigation and marking ------------------------------------------------------------
    def go_to(self, index: int) -> bool:
        if not 0 <= index < len(self.queue):
            return False
        self.current = index
        self._select(index)
        it = self.queue[index]
        half = max(FOCUS_HALF_PX, 1.5 * float(self.diameter or 0))
        x, y = float(it.x), float(it.y)
        if it.box is not None:  # the whole cell with a margin, however large (a merged pair is the one to see)
            x0, y0, x1, y1 = it.box
            x, y = (x0 + x1) / 2, (y0 + y1) / 2
            half = max(half, 0.6 * max(x1 - x0, y1 - y0))
        self.focus_requested.emit(x, y, half)
        self.cell_shown.emit(float(it.x), float(it.y))
        self._sync_controls()
        return True

    def step(self, direction: int) -> bool:
        """Go to the next (+1) / previous (-1) cell still to review, wrapping around; False when none is left."""
        from cellviewer.core.review import next_doubtful

        start = self.current if self.current >= 0 else None
        if start is None and self._resume is not None:  # the current cell was deleted: on from where it was
            start = self._resume - 1 if direction > 0 else self._resume
        self._resume = None
        i = next_doubtful(self.queue, start, 1 if direction > 0 else -1)
        if i is None:
            if self.queue:
                notifications.status("Every cell of this image in the review queue is reviewed.")
            return False
        return self.go_to(i)

    def mark_current(self, reviewed: bool = True, advance: bool = True) -> bool:
        """Mark the current cell reviewed (one undo step), then go to the next one still to review."""
        if self.doc is None or not 0 <= self.current < len(self.queue):
            notifications.status("Pick a cell in the review queue first (N).")
            return False
        it = self.queue[self.current]
        from cellviewer.core.errors import CellviewerError
        from cellviewer.core.review import mark_reviewed

        try:
            edit = mark_reviewed(self.doc, it.cls, it.cell, reviewed)
        except CellviewerError as e:  # the queue is behind an edit (it is recomputed a moment after one)
            notifications.status(f"Mark reviewed: {e.message}")
            self.recompute()
            return False
        if edit.atoms:  # nothing to change: no empty undo step
            self._push(edit)
        self.refresh_ticks()
        if advance and self.left:
            self.step(+1)
        return True

    def set_image_reviewed(self, reviewed: bool) -> bool:
        """Set the image-level reviewed flag (one undo step)."""
        if self.doc is None:
            return False
        if bool(self.doc.reviewed) == bool(reviewed):
            return True
        from cellviewer.core.operations import set_image_reviewed

        self._push(set_image_reviewed(self.doc, bool(reviewed)))
        notifications.status("Image marked reviewed." if reviewed else "Image marked not reviewed.")
        return True

    def toggle_image_reviewed(self) -> bool:
        return self.set_image_reviewed(not (self.doc is not None and self.doc.reviewed))

    def _push(self, edit) -> None:
        from cellviewer.gui.commands import EditCommand

        if self.stack is not None:
            mark = notifications.mark()
            self.stack.push(EditCommand(self.doc, edit))
            notifications.edit_done(mark)
        else:
            edit.apply(self.doc)
        self._sync_image_flag()

    def shutdown(self) -> None:
        self._timer.stop()
        self._copier.cancel()
        self.runner.shutdown()  # (cancelled between cells)
