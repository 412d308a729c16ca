"""Export the open image's report (PDF + CSVs) through ``core.report``, off the GUI thread.

The report entry and the rows are read from the Document on the GUI thread
(consistent with what is on screen); writing the files runs in a worker. An export that fails or is
cancelled leaves the earlier files of that name as they were (the CSVs replace theirs once the PDF is written).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from cellviewer.core.jobs import Progress
from cellviewer.gui import notifications
from cellviewer.gui.workers import JobRunner


def report_paths(pdf_path) -> tuple[Path, Path, Path]:
    """(pdf, counts csv, cells csv) for a chosen PDF path ``x.pdf`` -> ``x_counts.csv``, ``x_cells.csv``."""
    pdf = Path(pdf_path)
    if pdf.suffix.lower() != ".pdf":
        pdf = pdf.with_name(pdf.name + ".pdf")
    return pdf, pdf.with_name(pdf.stem + "_counts.csv"), pdf.with_name(pdf.stem + "_cells.csv")


def export_job(doc, image_name: str, pdf_path):
    """``make_job`` for a JobRunner; the Document is read here, on the calling (GUI) thread."""
    from cellviewer.core.report import (CELL_COLUMNS, COUNT_COLUMNS, CsvStream, ReportEntry, cell_rows,
                                        count_row, write_pdf_report)

    entry = ReportEntry.from_document(doc, image_name)
    cells, count = cell_rows(doc, image_name), count_row(doc, image_name)
    pdf, counts_csv, cells_csv = report_paths(pdf_path)

    def make(token):
        yield Progress(0.05, "writing the CSVs")
        with CsvStream(counts_csv, COUNT_COLUMNS, keep_partial=False) as counts_out, \
                CsvStream(cells_csv, CELL_COLUMNS, keep_partial=False) as cells_out:
            counts_out.write([count])
            cells_out.write(cells)
            token.check()
            yield Progress(0.2, "writing the PDF")
            write_pdf_report(pdf, [entry], title=f"cellviewer report — {image_name}")
        return pdf

    return make


class Exporter(QObject):
    done = Signal(str)  # the PDF path

    def __init__(self, parent=None):
        super().__init__(parent)
        self.runner = JobRunner("report export", self)
        self.runner.finished.connect(self._on_done)
        self.runner.failed.connect(lambda exc: notifications.show_error(exc, "Export"))

    def export(self, doc, image_name: str, pdf_path) -> bool:
        if doc is None:
            notifications.status("Open an image first.")
            return False
        return self.runner.start(export_job(doc, image_name, pdf_path), "report export")

    def _on_done(self, pdf) -> None:
        notifications.status(f"Report written: {pdf} (+ CSVs)", 8000)
        self.done.emit(str(pdf))
