"""A report for a whole folder: every image's saved corrections, or a fresh segmentation.

:func:`folder_report` is a long job (yields :class:`~cellviewer.core.jobs.Progress`,
honours a :class:`~cellviewer.core.jobs.CancelToken`). For each image it uses the
sidecar (the reviewed corrections) when there is one; otherwise it segments the
image with the segmenter ``make_segmenter()`` returns (created once, on first need)
— nothing is saved beside the images. An image that cannot be read, whose sidecar
is unusable or that fails to segment is listed as skipped (in the PDF's summary and
in the result) and the others go on. It writes a PDF (summary page + one page per
image, like ``cellviewer analyze``) and the counts and cells CSVs (the columns of
:data:`cellviewer.core.report.COUNT_COLUMNS` / :data:`~cellviewer.core.report.CELL_COLUMNS`),
all at the end: a cancelled report writes nothing, and one that fails (a full disk) leaves the earlier CSVs
and PDF of that name as they were. A file name that is not valid UTF-8 is written in its
:func:`~cellviewer.core.csvtext.readable` form (``caf\\xe9.png``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from cellviewer.core.csvtext import readable
from cellviewer.core.errors import Cancelled, CellviewerError
from cellviewer.core.jobs import CancelToken, Job, Progress

#: detail pages (with an overview image) for at most this many images; the CSVs hold all
MAX_DETAIL_PAGES = 100


@dataclass
class FolderReport:
    pdf: Path
    counts_csv: Path
    cells_csv: Path
    from_sidecar: list[str] = field(default_factory=list)  # image names reported from saved corrections
    segmented: list[str] = field(default_factory=list)  # image names segmented for the report
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image name, reason)

    @property
    def n_images(self) -> int:
        return len(self.from_sidecar) + len(self.segmented)


def _reason(e: BaseException) -> str:
    if isinstance(e, CellviewerError):
        return getattr(e, "reason", None) or e.message
    return "out of memory" if isinstance(e, MemoryError) else f"{type(e).__name__}: {e}"


def folder_report(images: Sequence, pdf, counts_csv, cells_csv, make_segmenter: Callable[[], object],
                  cancel: CancelToken | None = None, title: str = "cellviewer folder report",
                  max_pages: int = MAX_DETAIL_PAGES, border_rule: str = "all") -> Job[FolderReport]:
    """Long job: report ``images`` (paths) into ``pdf`` + the two CSVs; returns a :class:`FolderReport`.

    Images with saved corrections keep their own border rule; the others are counted with ``border_rule``.
    """
    from cellviewer.core.document import Document
    from cellviewer.core.io import read_image
    from cellviewer.core.report import (CELL_COLUMNS, COUNT_COLUMNS, CsvStream, ReportEntry, cell_rows, count_row,
                                        write_pdf_report)
    from cellviewer.core.sidecar import find_sidecar, load_document

    images = [Path(p) for p in images]
    out = FolderReport(Path(pdf), Path(counts_csv), Path(cells_csv))
    entries, count_rows, cells, segmenter, n = [], [], [], None, max(1, len(images))
    for i, path in enumerate(images):
        if cancel is not None:
            cancel.check()
        shown = readable(path.name)
        yield Progress(i / n, f"{shown} ({i + 1}/{len(images)})")
        try:  # one bad image is listed and skipped; the others go on
            if find_sidecar(path) is not None:
                doc, done = load_document(path), out.from_sidecar
                if doc.pending_journal:
                    from cellviewer.core.journal import history

                    lost = history(doc.pending_journal).describe()
                    doc.load_warnings.append(f"Unsaved changes from a crash ({lost}) are not included "
                                             "(open the image to recover them)")
            else:
                doc, done = Document(read_image(path)), out.segmented
                segmenter = segmenter or make_segmenter()
                job = segmenter.segment(doc.image.pixels, cancel)
                while True:
                    try:
                        p = next(job)
                    except StopIteration as stop:
                        result = stop.value
                        break
                    yield Progress((i + 0.9 * p.fraction) / n, f"{shown}: {p.message}", note=p.note)
                doc.set_result(result)
                doc.border_rule = border_rule
                doc.load_warnings.append(f"segmented for this report by {result.model_name} (not reviewed)")
        except Cancelled:
            raise
        except Exception as e:  # noqa: BLE001 - one odd image must not end the report
            out.skipped.append((path.name, _reason(e)))
            continue
        done.append(path.name)
        count_rows.append(count_row(doc, path.name))
        cells += cell_rows(doc, path.name)
        entries.append(ReportEntry.from_document(doc, path.name, thumbnail=len(entries) < max_pages))
        del doc
    if cancel is not None:
        cancel.check()  # cancelled: nothing is written (no half report)
    yield Progress(0.96, "writing the CSVs")
    # the CSVs replace earlier ones only once the PDF is written too: a report that fails changes no file
    with CsvStream(out.counts_csv, COUNT_COLUMNS, keep_partial=False) as counts_out, \
            CsvStream(out.cells_csv, CELL_COLUMNS, keep_partial=False) as cells_out:
        counts_out.write(count_rows)
        cells_out.write(cells)
        yield Progress(0.97, "writing the PDF")
        write_pdf_report(out.pdf, entries, title=title, skipped=out.skipped, max_pages=max_pages)
    yield Progress(1.0, "done")
    return out
