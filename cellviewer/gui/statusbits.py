"""Permanent status-bar widgets: the open image's caution, and the running job's progress.

:class:`CautionLabel` — a lasting sign while the open image carries a caution.

A caution (``io.CAUTION`` notes: a damaged JPEG, a greyscale or fully transparent image)
is also a status-bar warning when the image opens, but that line goes after seconds and
the first segmentation's progress follows it. This label stays while the image is open:
a short orange "⚠ damaged JPEG", the whole text as its tooltip and, on a click, in a
dialog. The image's other notes (bit-depth scaling, orientation, ...) are in the tooltip.

:class:`JobProgressBar` — a small progress bar while a segmentation runs, so its progress
shows whichever panel is in front (the Segmentation panel's own bar and Cancel may be a
background tab or scrolled away on a small screen); a click on it cancels the run.

:class:`LastingWarning` — ``notifications.lasting``'s warning (e.g. corrections made during a
segmentation were replaced by its result; where the corrections a re-segmentation replaced were
kept): a short orange line (details in its tooltip) with a ✕ that stays until the user dismisses
it, makes the next successful edit, or its caller clears it (undoing that segmentation).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from cellviewer.core.document import CELL_CLASSES, DISPLAY_NAMES
from cellviewer.gui import notifications


MAX_CHARS = 100  # the most a lasting warning shows; longer texts are elided in the middle


def elide_middle(text: str, n: int) -> str:
    """``text`` if it has at most ``n`` characters, else its start and end around '…' (``n`` in all)."""
    if len(text) <= n:
        return text
    head = (n - 1) // 2
    return text[:head] + "…" + text[len(text) - (n - 1 - head):]


def where_kept(path, n: int = 72) -> str:
    """A file's name and its folder, the folder elided in the middle so that both fit ``n`` characters
    where the name allows (a line that must fit the status bar)."""
    from pathlib import Path

    p = Path(path)
    return f"{p.name} in {elide_middle(str(p.parent), max(12, n - len(p.name) - 4))}"


def cautions(doc) -> list[str]:
    """The caution texts of ``doc``'s image (without the prefix)."""
    from cellviewer.core.cautions import CAUTION

    if doc is None:
        return []
    return [n[len(CAUTION):] for n in doc.image.info.notes if n.startswith(CAUTION)]


def size_text(doc) -> tuple[str, str]:
    """The status bar's image size and the red-cell size the last segmentation used, and its tooltip."""
    if doc is None:
        return "", ""
    from cellviewer.core.cautions import CAUTION

    # how the file was read (16-bit scaled, EXIF orientation, alpha on white, ...): cautions have their own label
    read = [n for n in (getattr(doc.image.info, "notes", None) or []) if not n.startswith(CAUTION)
            and not n.startswith("decoder warning")]
    how_read = ("\n\nHow the file was read:\n" + "\n".join(f"• {n}" for n in read)) if read else ""
    params = doc.provenance.params or {}
    d, how = params.get("diameter_px"), str(params.get("diameter_source", ""))
    if not d:
        return f"{doc.shape[1]} × {doc.shape[0]} px", how_read.strip()
    cell = f" · red cell {float(d):.0f} px ({how.split('-')[0].split('+')[0] or 'given'})"
    return (f"{doc.shape[1]} × {doc.shape[0]} px{cell}",
            "The red-cell diameter the segmentation worked with; if it is wrong, "
            "set 'Cell diameter' in the Segmentation panel and run again" + how_read)


def cursor_text(doc, x: float, y: float) -> str:
    """Position and cell under the mouse: ``x 12, y 40 — Red cell #3`` ("" outside the image)."""
    ix, iy = int(x), int(y)
    if not (0 <= ix < doc.shape[1] and 0 <= iy < doc.shape[0]):
        return ""
    cell = doc.cell_at(ix, iy)
    what = f" — {DISPLAY_NAMES[cell[0]]} #{cell[1]}" if cell else ""
    return f"x {ix}, y {iy}{what}"


def counts_text(counts: dict) -> str:
    return "  ".join(f"{DISPLAY_NAMES[c]} {counts.get(c, 0)}" for c in CELL_CLASSES)


def headline(text: str) -> str:
    """The short name of a caution: its words before the first ':' or '('."""
    from cellviewer.core.cautions import caution_headline

    return caution_headline(text)


class CautionLabel(QLabel):
    """Status-bar label: empty without cautions; else '⚠ <headline>' (click for the whole text)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setStyleSheet("QLabel { color: #b35900; font-weight: bold; margin-left: 12px; }")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._texts: list[str] = []
        self._name = ""
        self.hide()

    def set_document(self, doc, name: str = "") -> None:
        self._texts, self._name = cautions(doc), name
        others = [n for n in (doc.image.info.notes if doc is not None else []) if n not in
                  ["caution: " + t for t in self._texts]]
        if not self._texts:
            self.setText("")
            self.hide()
            return
        heads = [headline(t) for t in self._texts]
        self.setText("⚠ " + heads[0] + (f" (+{len(heads) - 1})" if len(heads) > 1 else ""))
        tip = "\n\n".join(self._texts) + ("\n\nAlso: " + "; ".join(others) if others else "")
        self.setToolTip(tip + "\n\n(click for details)")
        self.show()

    def texts(self) -> list[str]:
        return list(self._texts)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._texts:
            notifications.info(f"Caution: {self._name}" if self._name else "Caution",
                               "\n\n".join(f"• {t}" for t in self._texts))
        super().mousePressEvent(event)


class LastingWarning(QWidget):
    """'⚠ <text>' and a ✕ button; hidden when there is nothing to say."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 0, 0, 0)
        self.label = QLabel()
        self.label.setStyleSheet("QLabel { color: #b35900; font-weight: bold; }")
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss this warning")
        self.close_button.clicked.connect(self.dismiss)
        lay.addWidget(self.label)
        lay.addWidget(self.close_button)
        self._text = ""
        self.hide()

    def show_text(self, text: str, tooltip: str = "") -> None:
        """Show '⚠ ``text``' (keep it short: the status bar's other fields clip a long one); ``tooltip``:
        the details (default: ``text``)."""
        self._text = text
        self.label.setText("⚠ " + elide_middle(text, MAX_CHARS))
        self.setToolTip(tooltip or text)
        self.show()

    def text(self) -> str:
        return self._text

    def dismiss(self) -> None:
        self._text = ""
        self.label.setText("")
        self.hide()


class JobProgressBar(QProgressBar):
    """Shown while ``runner`` runs: its fraction done and message (tooltip); a click cancels it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setRange(0, 100)
        self.setMaximumWidth(140)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setTextVisible(True)
        self._cancel = None
        self.hide()

    def attach(self, runner, cancel) -> None:
        """Follow ``runner`` (a JobRunner: ``running_changed(bool)``, ``progress(float, str)``); ``cancel()``
        is called on a click."""
        self._cancel = cancel
        runner.running_changed.connect(self._running)
        runner.progress.connect(self._progress)

    def _running(self, on: bool) -> None:
        self.setValue(0)
        self.setVisible(bool(on))

    def _progress(self, fraction: float, message: str) -> None:
        self.setValue(int(round(100 * max(0.0, min(1.0, float(fraction))))))
        self.setFormat("Segmenting %p%")
        self.setToolTip(f"{message} — click to cancel")

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._cancel is not None and self.isVisible():
            self._cancel()
        super().mousePressEvent(event)


class _KeepStatusLine(QObject):
    """Hovering a widget or menu entry without a status tip sends an empty status tip, and
    QMainWindow clears the status bar with it: a segmentation's summary vanished as soon as the
    mouse moved. Empty tips are dropped; non-empty ones (menu entries) still show."""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        return event.type() == QEvent.Type.StatusTip and not event.tip()


def keep_status_line(window) -> None:
    """Install :class:`_KeepStatusLine` on ``window`` (kept alive as its child)."""
    f = _KeepStatusLine(window)
    window.installEventFilter(f)
