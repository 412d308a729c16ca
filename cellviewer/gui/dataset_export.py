"""File ▸ Export training set…: reviewed corrections become training data, written off the GUI thread.

:class:`DatasetExportDialog` edits a :class:`DatasetExportOptions` (folder, formats,
tiling, reviewed-only, folder or current image); :class:`DatasetExporter` runs
:func:`cellviewer.core.export_dataset.export_training_set` in a
:class:`~cellviewer.gui.workers.JobRunner` with a cancellable progress dialog.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLineEdit, QProgressDialog, QPushButton, QRadioButton, QSpinBox, QVBoxLayout,
                               QWidget)

from cellviewer.gui import notifications
from cellviewer.gui.workers import JobRunner


@dataclass
class DatasetExportOptions:
    out_dir: str = ""
    shared: bool = True  # the ../shared/data layout (image, class map, instances, edges, markers)
    coco: bool = True  # COCO JSON with instance polygons
    tile: int = 0  # tile side in px; 0 = whole images
    reviewed_only: bool = True
    whole_folder: bool = True  # every image of the open folder, else the open image only

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(f for f, on in (("shared", self.shared), ("coco", self.coco)) if on)


class DatasetExportDialog(QDialog):
    """The options of one export; ``options()`` reads them back (values, not widgets)."""

    def __init__(self, options: DatasetExportOptions, n_images: int = 0, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export training set")
        lay = QVBoxLayout(self)
        form = QFormLayout()
        row = QWidget()
        rl = QHBoxLayout(row)
        rl.setContentsMargins(0, 0, 0, 0)
        self.folder = QLineEdit(options.out_dir)
        self.folder.setPlaceholderText("an empty folder for the data set")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        rl.addWidget(self.folder, 1)
        rl.addWidget(browse)
        form.addRow("Folder", row)
        self.shared = QCheckBox("shared/data layout (image, class map, instances, edges, markers)")
        self.shared.setChecked(options.shared)
        self.coco = QCheckBox("COCO JSON (instance polygons)")
        self.coco.setChecked(options.coco)
        form.addRow("Formats", self.shared)
        form.addRow("", self.coco)
        self.tile = QSpinBox()
        self.tile.setRange(0, 8192)
        self.tile.setSingleStep(128)
        self.tile.setSpecialValueText("no tiling (whole images)")
        self.tile.setSuffix(" px")
        self.tile.setValue(int(options.tile))
        form.addRow("Tiles", self.tile)
        self.reviewed_only = QCheckBox("Only images marked reviewed")
        self.reviewed_only.setChecked(options.reviewed_only)
        form.addRow("", self.reviewed_only)
        self.whole_folder = QRadioButton(f"Every image of the open folder ({n_images})")
        self.current_only = QRadioButton("The open image only")
        (self.whole_folder if options.whole_folder else self.current_only).setChecked(True)
        form.addRow("Images", self.whole_folder)
        form.addRow("", self.current_only)
        lay.addLayout(form)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        for w in (self.shared, self.coco):
            w.toggled.connect(self._sync)
        self.folder.textChanged.connect(self._sync)
        self._sync()

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Export training set to", self.folder.text() or str(Path.home()))
        if d:
            self.folder.setText(d)

    def _sync(self, *_a) -> None:
        ok = bool(self.folder.text().strip()) and (self.shared.isChecked() or self.coco.isChecked())
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    def options(self) -> DatasetExportOptions:
        return DatasetExportOptions(out_dir=self.folder.text().strip(), shared=self.shared.isChecked(),
                                    coco=self.coco.isChecked(), tile=int(self.tile.value()),
                                    reviewed_only=self.reviewed_only.isChecked(),
                                    whole_folder=self.whole_folder.isChecked())


def export_job(items: list, opts: DatasetExportOptions):
    """``make_job`` for a JobRunner (values only)."""
    items, formats, tile = list(items), opts.formats, (int(opts.tile) or None)

    def make(token):
        from cellviewer.core.export_dataset import export_training_set

        return export_training_set(items, opts.out_dir, formats=formats, tile=tile,  # into an earlier
                                   reviewed_only=opts.reviewed_only, merge=True, cancel=token)  # export: adds

    return make


def describe_result(res) -> str:
    """One status line: what was written, what was skipped and why (the first reason)."""
    cells = sum(res.n_cells.values()) if isinstance(res.n_cells, dict) else int(res.n_cells)
    text = f"Training set written to {res.out_dir}: {res.n_images} image(s), {cells} cell(s)"
    if getattr(res, "uncounted", 0):
        text += f"; {res.uncounted} uncounted outline(s) left out"
    if res.skipped:
        name, why = res.skipped[0]
        text += f"; {len(res.skipped)} skipped ({Path(name).name}: {why}{', …' if len(res.skipped) > 1 else ''})"
    return text


class DatasetExporter(QObject):
    """Runs exports in a worker; a cancellable progress dialog while it runs."""

    done = Signal(object)  # the ExportResult

    def __init__(self, parent=None):
        super().__init__(parent)
        self.runner = JobRunner("training-set export", self)
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_done)
        self.runner.failed.connect(lambda exc: notifications.show_error(exc, "Export training set"))
        self.runner.cancelled.connect(lambda: notifications.status("Training-set export cancelled."))
        self.runner.running_changed.connect(self._on_running)
        self.options = DatasetExportOptions()
        self.last_result = None
        self._dialog: QProgressDialog | None = None

    def ask(self, parent, n_images: int) -> DatasetExportOptions | None:
        """Show the options dialog; the chosen options (remembered for next time) or None."""
        dlg = DatasetExportDialog(self.options, n_images, parent)
        if dlg.exec() != QDialog.DialogCode.Accepted:
            return None
        self.options = dlg.options()
        return replace(self.options)

    def export(self, items: list, opts: DatasetExportOptions) -> bool:
        if not items:
            notifications.warn("Nothing to export: open an image or a folder first.")
            return False
        if not opts.formats:
            notifications.warn("Choose at least one format (shared layout or COCO).")
            return False
        if not opts.out_dir:
            notifications.warn("Choose a folder for the training set.")
            return False
        return self.runner.start(export_job(items, opts), "training-set export")

    def _on_running(self, running: bool) -> None:
        if running:
            dlg = QProgressDialog("Exporting the training set…", "Cancel", 0, 1000, self.parent())
            dlg.setWindowTitle("Export training set")
            dlg.setWindowModality(Qt.WindowModality.NonModal)
            dlg.setMinimumDuration(800)
            dlg.setAutoClose(False)
            dlg.setAutoReset(False)
            dlg.canceled.connect(self.runner.cancel)
            self._dialog = dlg
        elif self._dialog is not None:
            dlg, self._dialog = self._dialog, None
            dlg.canceled.disconnect()
            dlg.close()
            dlg.deleteLater()

    def _on_progress(self, fraction: float, message: str) -> None:
        if self._dialog is not None:
            self._dialog.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
            self._dialog.setLabelText(message or "Exporting the training set…")
        notifications.status(f"Export {fraction:.0%}: {message}", 2000)

    def _on_done(self, res) -> None:
        self.last_result = res
        notifications.status(describe_result(res), 10000)
        self.done.emit(res)
