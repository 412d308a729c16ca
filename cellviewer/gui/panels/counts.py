"""Live counts per class, total, RBC:WBC ratio and the WBC-part differential.

Counts are markers per class (``Document.counts``). Every document change
schedules one refresh (coalesced: a brush drag of 100 dabs recomputes a few
times, not 100 times). The "Cells on the edge" choice is the document's
``border_rule`` (saved with it; see :mod:`cellviewer.core.countframe`): the panel
shows it and writes the user's choice into the document (and into the window's
``CountSettings``: images opened later without saved corrections start with it), never
keeps its own copy.
"""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from cellviewer.core.countframe import BORDER_RULE_NAMES, BORDER_RULES
from cellviewer.core.document import CELL_CLASSES, CLASS_COLORS, DISPLAY_NAMES, Document

REFRESH_MS = 60


def summary(doc: Document | None, sizes: dict[str, str] | None = None) -> tuple[dict[str, int], dict[str, str]]:
    """(counts per class, differential lines) for a document (``sizes``: its red-cell size lines, when known)."""
    if doc is None:
        return {c: 0 for c in CELL_CLASSES}, {}
    from cellviewer.core.report import differential

    return doc.counts(), differential(doc, sizes)


class CountsPanel(QWidget):
    updated = Signal(object)  # the counts dict

    def __init__(self, settings=None, parent=None):
        super().__init__(parent)
        self.settings = settings  # Observable[CountSettings]: the rule for images opened without one
        self.doc: Document | None = None
        self.push = None  # where edits go (the window's undo stack; wired by the main window)
        self.counts: dict[str, int] = {c: 0 for c in CELL_CLASSES}
        self.diff: dict[str, str] = {}
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Cells on the edge:"))
        self.border = QComboBox()
        for key, name in BORDER_RULE_NAMES.items():
            self.border.addItem(name, key)
            self.border.setItemData(self.border.count() - 1, BORDER_RULES[key], Qt.ItemDataRole.ToolTipRole)
        self.border.setToolTip("Which cells cut by the image edge are counted (saved with the image)")
        self.border.currentIndexChanged.connect(self._on_border)
        row.addWidget(self.border, 1)
        lay.addLayout(row)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.label)
        lay.addStretch(1)
        self._sizes: dict | None = None  # the whole red cells' areas, kept until the red-cell masks change
        self._sizes_key = None  # the document they were measured for
        from cellviewer.gui.slices import Stepper

        self._stepper = Stepper(self)  # a big image's red cells measured a slice at a time
        self._measuring = None  # the document being measured
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self.refresh()

    def set_document(self, doc: Document | None) -> None:
        if self.doc is not None:
            self.doc.unsubscribe(self._on_change)
        self.doc = doc
        self._sizes, self._sizes_key, self._measuring = None, None, None
        self._stepper.cancel()
        if doc is not None:
            doc.subscribe(self._on_change)
        self.refresh()

    def _on_change(self, change) -> None:
        if change.bbox is None or "rbc" in change.layers:  # the red-cell sizes read every label pixel
            self._sizes_key = None  # (0.5 s on a 120-MP field): only when red-cell masks changed; until they
            self._stepper.cancel()  # are measured again (a big image) the last sizes show; one going on is stale
            self._measuring = None
        if not self._timer.isActive():
            self._timer.start()

    def _on_border(self, index: int) -> None:
        if self.doc is not None and index >= 0:
            rule = self.border.itemData(index)
            edit = self.doc.border_rule_edit(rule)
            if edit is not None:  # one undo step (Ctrl+Z after it undid the edit before: the segmentation)
                self.push(edit) if self.push is not None else edit.apply(self.doc)
            if self.settings is not None:
                self.settings.update(border_rule=rule)

    def _measure(self) -> None:
        """The whole red cells' areas: at once on an image up to :data:`cellviewer.gui.slices.SYNC_PX`, else a
        slice per turn of the event loop (the counts show at once, the size lines when they are measured)."""
        from cellviewer.core import report
        from cellviewer.gui.slices import is_big, rbc_areas

        doc = self.doc
        if not is_big(doc.shape):
            self._sizes, self._sizes_key = report.whole_rbc_areas(doc), id(doc)
            return
        if self._measuring is doc:
            return
        self._measuring = doc

        def done(areas):
            self._measuring = None
            if doc is self.doc and self._sizes_key != id(doc):  # (else the masks changed: measured again)
                self._sizes, self._sizes_key = areas, id(doc)
                self.refresh()

        self._stepper.start(rbc_areas(doc), done)

    def refresh(self) -> None:
        self._timer.stop()
        sizes = None
        if self.doc is not None:
            from cellviewer.core.report import rbc_size_summary

            if self._sizes is None or self._sizes_key != id(self.doc):
                self._measure()
            # cheap: which are counted, the calibration; none yet (a big image being measured): no size lines
            sizes = {} if self._sizes is None else rbc_size_summary(self.doc, self._sizes)
        self.counts, self.diff = summary(self.doc, sizes)
        rule = self.doc.border_rule if self.doc is not None else "all"
        self.border.blockSignals(True)
        self.border.setCurrentIndex(max(0, self.border.findData(rule)))
        self.border.blockSignals(False)
        self.border.setEnabled(self.doc is not None)
        rows = []
        for c in CELL_CLASSES:
            r, g, b = CLASS_COLORS[c]
            rows.append(f"<tr><td><span style='color:rgb({r},{g},{b})'>■</span> {DISPLAY_NAMES[c]}</td>"
                        f"<td align='right'><b>{self.counts.get(c, 0)}</b></td></tr>")
        rows.append(f"<tr><td>Total</td><td align='right'><b>{sum(self.counts.values())}</b></td></tr>")
        n_out = len(self.doc.markers) - sum(self.counts.values()) if self.doc is not None else 0  # not counted
        if n_out:
            rows.append(f"<tr><td colspan='2'><i>{n_out} cut cell{'s' if n_out != 1 else ''} not counted</i></td></tr>")
        html = "<table width='100%'>" + "".join(rows) + "</table>"
        if self.diff:
            html += "<hr><table width='100%'>" + "".join(
                f"<tr><td>{escape(k)}</td><td align='right'>{escape(v)}</td></tr>" for k, v in self.diff.items()
            ) + "</table>"
        self.label.setText(html)
        self.updated.emit(dict(self.counts))

    def text(self) -> str:
        """Plain-text counts, e.g. ``RBC: 12, WBC: 1, Platelets: 3``."""
        return ", ".join(f"{DISPLAY_NAMES[c]}: {self.counts.get(c, 0)}" for c in CELL_CLASSES)
