"""File ▸ Report for folder…: every image of the open folder in one PDF + CSVs, off the GUI thread.

The images' saved corrections are used where they exist; the others are segmented
with the current segmentation settings (``core.folder_report``; nothing is saved
beside them). The open image is saved first so that its latest corrections count.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from cellviewer.gui import notifications
from cellviewer.gui.export import report_paths
from cellviewer.gui.workers import JobRunner


def folder_report_job(images: list, pdf_path, segmenter_name: str, options: dict, title: str,
                      border_rule: str = "all"):
    """``make_job`` for a JobRunner: values only (paths, a segmenter name and its options)."""
    pdf, counts_csv, cells_csv = report_paths(pdf_path)
    images = [Path(p) for p in images]

    def make(token):
        from cellviewer.core.folder_report import folder_report
        from cellviewer.core.segment import create_segmenter

        return folder_report(images, pdf, counts_csv, cells_csv, lambda: create_segmenter(segmenter_name, **options),
                             cancel=token, title=title, border_rule=border_rule)

    return make


class FolderReporter(QObject):
    """Owns the folder-report JobRunner; says what was done in the status bar (skipped files too)."""

    done = Signal(object)  # the core FolderReport

    def __init__(self, parent=None):
        super().__init__(parent)
        self.runner = JobRunner("folder report", self)
        self.runner.finished.connect(self._on_done)
        self.runner.failed.connect(lambda exc: notifications.show_error(exc, "Folder report"))
        self.runner.cancelled.connect(lambda: notifications.status("Folder report cancelled; nothing was written."))

    def start(self, images, pdf_path, segmenter_name: str, options: dict, folder_name: str = "",
              border_rule: str = "all") -> bool:
        images = list(images)
        if not images:
            notifications.status("Open a folder with images first.")
            return False
        title = f"cellviewer report — {folder_name or 'folder'} ({len(images)} image{'' if len(images) == 1 else 's'})"
        return self.runner.start(folder_report_job(images, pdf_path, segmenter_name, options, title, border_rule),
                                 "folder report")

    def _on_done(self, rep) -> None:
        msg = (f"Folder report written: {rep.pdf} (+ CSVs) — {len(rep.from_sidecar)} from saved corrections, "
               f"{len(rep.segmented)} segmented")
        if rep.skipped:
            msg += f", {len(rep.skipped)} skipped (listed in the report)"
            notifications.warn(msg, 15000)
        else:
            notifications.status(msg, 10000)
        self.done.emit(rep)
