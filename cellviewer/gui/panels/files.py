"""The images of the current folder, with next/previous; a tick for saved corrections, a star once reviewed."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

TICK = "✔ "
REVIEWED = "★ "
NO_TICK = "    "


def folder_images(folder) -> list[Path]:
    from cellviewer.core.io import list_images

    return sorted((Path(p) for p in list_images([Path(folder)])), key=lambda p: p.name.lower())


def has_sidecar(path) -> bool:
    from cellviewer.core.sidecar import find_sidecar

    return find_sidecar(path) is not None


def image_state(path) -> str:
    """``"none"`` (nothing saved), ``"saved"`` (corrections saved) or ``"reviewed"`` (marked reviewed)."""
    from cellviewer.core.review import image_reviewed

    r = image_reviewed(path)
    return "none" if r is None else ("reviewed" if r else "saved")


class FilesPanel(QWidget):
    activated = Signal(str)  # an image path chosen by the user
    folder_changed = Signal()  # set_folder: another folder's images are listed

    def __init__(self, parent=None):
        super().__init__(parent)
        self.folder: Path | None = None
        self.paths: list[Path] = []
        self.current: Path | None = None
        self._cursor: Path | None = None  # a file that failed to open: Next / Previous step from it
        lay = QVBoxLayout(self)
        self.folder_label = QLabel("No folder")
        self.folder_label.setWordWrap(True)
        lay.addWidget(self.folder_label)
        self.list = QListWidget()
        self.list.itemActivated.connect(self._on_item)
        self.list.itemClicked.connect(self._on_item)
        lay.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.prev_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.prev_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(+1))
        row.addWidget(self.prev_button)
        row.addWidget(self.next_button)
        lay.addLayout(row)

    def set_folder(self, folder, current=None) -> None:
        folder = Path(folder)
        self.folder = folder
        self.paths = folder_images(folder) if folder.is_dir() else []
        n = len(self.paths)
        self.folder_label.setText(f"{folder}  ({n} image{'' if n == 1 else 's'})")
        self.list.clear()
        for p in self.paths:
            item = QListWidgetItem(p.name)
            item.setData(Qt.ItemDataRole.UserRole, str(p))
            self.list.addItem(item)
        self.refresh_marks()
        self.set_current(current)
        self.folder_changed.emit()

    def refresh_marks(self, only=None) -> None:
        """Update the ticks (all images, or just ``only``)."""
        indices = range(len(self.paths)) if only is None else [i for i in [self.index_of(only)] if i is not None]
        for i in indices:
            p, item = self.paths[i], self.list.item(i)
            state = image_state(p)
            item.setText({"none": NO_TICK, "saved": TICK, "reviewed": REVIEWED}[state] + p.name)
            item.setToolTip(f"{p}\n" + {"none": "not segmented / saved yet", "saved": "corrections saved",
                                        "reviewed": "corrections saved and marked reviewed"}[state])

    def refresh_saved(self, sidecar) -> None:
        """A sidecar was written: update the mark of its image, which need not be the open one (an autosave
        in flight when Next was pressed lands after the switch)."""
        from cellviewer.core.sidecar import SUFFIX, _candidates

        target = Path(sidecar)
        beside = target.with_name(target.name[:-len(SUFFIX)]) if target.name.endswith(SUFFIX) else None
        if beside is not None and self.index_of(beside) is not None:
            self.refresh_marks(only=beside)
            return
        for p in self.paths:  # in the user store (a read-only folder): by the names it may have there
            if target in _candidates(p):
                self.refresh_marks(only=p)

    def set_current(self, path) -> None:
        self.current = Path(path) if path else None
        self._cursor = None
        self.list.blockSignals(True)
        try:
            self.list.clearSelection()
            idx = self.index_of(self.current)
            if idx is not None:
                self.list.setCurrentRow(idx)
        finally:
            self.list.blockSignals(False)
        idx = self.index_of(self.current)
        self.prev_button.setEnabled(idx is not None and idx > 0)
        self.next_button.setEnabled(idx is not None and idx < len(self.paths) - 1)

    def index_of(self, path) -> int | None:
        if path is None:
            return None
        try:
            return [p.resolve() for p in self.paths].index(Path(path).resolve())
        except (ValueError, OSError, RuntimeError):  # not listed; a symlink loop cannot be resolved
            return None

    def skip_failed(self, path) -> None:
        """``path`` could not be opened: Next / Previous go on from it (the shown image stays current)."""
        if self.index_of(path) is not None:
            self._cursor = Path(path)
            idx = self.index_of(path)
            self.prev_button.setEnabled(idx > 0)
            self.next_button.setEnabled(idx < len(self.paths) - 1)

    def neighbour(self, step: int) -> Path | None:
        idx = self.index_of(self._cursor or self.current)
        if idx is None:
            return self.paths[0] if self.paths else None
        j = idx + step
        return self.paths[j] if 0 <= j < len(self.paths) else None

    def step(self, step: int) -> bool:
        p = self.neighbour(step)
        if p is None:
            return False
        self.activated.emit(str(p))
        return True

    def _on_item(self, item: QListWidgetItem) -> None:
        path = item.data(Qt.ItemDataRole.UserRole)
        if path and (self.current is None or Path(path) != self.current):
            self.activated.emit(path)
