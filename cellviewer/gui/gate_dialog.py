"""The regression gate's verdict, old vs new side by side, and the Accept / Reject choice.

Shown (non-modal) after a fine-tuning run once
:func:`cellviewer.core.gate.regression_gate` has scored both models on held-out
reviewed images. ``decided(True)`` = Accept (store + activate the new version),
``decided(False)`` = Reject (discard it; closing the dialog asks first). Accept is only
offered when the gate passed; "Accept anyway" has to be ticked to override a refusal.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QHeaderView, QLabel, QTableWidget,
                               QTableWidgetItem, QVBoxLayout)

from cellviewer.gui import notifications

GOOD, BAD = QColor(40, 150, 60), QColor(200, 50, 50)


def _fmt(v, signed: bool = False) -> str:
    """A 0..1 metric as a percentage (a delta in points with its sign)."""
    if v is None:
        return "–"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "–" if math.isnan(f) else (f"{100 * f:+.2f}" if signed else f"{100 * f:.2f}")


class GateDialog(QDialog):
    decided = Signal(bool)  # True = accept the new model

    def __init__(self, result, old_name: str, new_name: str, parent=None):
        super().__init__(parent)
        self.result = result
        self.setWindowTitle("Regression gate")
        lay = QVBoxLayout(self)
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        ok = bool(result.accepted)
        self.verdict.setText(("✔ <b>The new model passed the gate.</b> " if ok else
                              "✘ <b>The new model did not pass the gate.</b> ") + str(result.reason or ""))
        lay.addWidget(self.verdict)
        rows = list(result.rows)
        self.table = QTableWidget(len(rows), 4)
        self.table.setHorizontalHeaderLabels(["Metric (%)", f"old: {old_name}", f"new: {new_name}", "Δ (points)"])
        for i, row in enumerate(rows):
            metric, old, new, delta = (tuple(row) + (None,) * 4)[:4]
            for j, text in enumerate((str(metric), _fmt(old), _fmt(new), _fmt(delta, signed=True))):
                item = QTableWidgetItem(text)
                if j == 3 and isinstance(delta, (int, float)) and not math.isnan(delta):
                    item.setForeground(GOOD if delta > 0 else BAD if delta < 0 else QColor(120, 120, 120))
                self.table.setItem(i, j, item)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.resizeColumnsToContents()
        lay.addWidget(self.table, 1)
        self.override = QCheckBox("Accept anyway (override the gate)")
        self.override.setVisible(not ok and not getattr(result, "nothing_new", False))  # a copy of the base
        self.override.toggled.connect(self._sync)
        lay.addWidget(self.override)
        self.buttons = QDialogButtonBox()
        self.accept_button = self.buttons.addButton("Accept — store and activate",
                                                    QDialogButtonBox.ButtonRole.AcceptRole)
        self.reject_button = self.buttons.addButton("Reject — discard", QDialogButtonBox.ButtonRole.RejectRole)
        self.accept_button.clicked.connect(self.accept)
        self.reject_button.clicked.connect(self.discard)
        lay.addWidget(self.buttons)
        self._sync()
        self.resize(620, 360)

    def _sync(self, *_a) -> None:
        self.accept_button.setEnabled(bool(self.result.accepted) or (
            self.override.isChecked() and not getattr(self.result, "nothing_new", False)))

    def accept(self) -> None:
        if not self.accept_button.isEnabled():
            return
        super().accept()
        self.decided.emit(True)

    def discard(self) -> None:
        """Reject: the new model is thrown away."""
        super().reject()
        self.decided.emit(False)

    def reject(self) -> None:  # Esc or the window's close button: only after a confirmation
        if notifications.ask("Discard the fine-tuned model?",
                             "Closing the regression gate without accepting discards the new model. Discard it?",
                             self):
            self.discard()
