"""``cellviewer analyze``: segment and count images; counts.csv, cells.csv, class maps, classes.json, report.pdf.

``run.json`` records the run: cellviewer version, command, model and version, options, and per output
image its name (same-named files get ``_2``, ``_3`` ...), source file, mask and the red-cell size used
(``rbc_diameter_px``, how it was found) and its ``cautions`` (a damaged JPEG, a greyscale image: counts
to check); the skipped files with the reason; ``options.tta`` the test-time augmentation actually used;
``status`` complete, interrupted (Ctrl-C, SIGTERM) or failed (an error ended the run, e.g. a full disk:
``error`` says which) and ``remaining`` (the files not reached), so a reused output folder says which files
belong to this run. A file name that is not valid UTF-8 is written (CSVs, report, run.json) and shown in its
:func:`~cellviewer.core.csvtext.readable` form (``caf\\xe9.png``); ``remaining.txt`` keeps its bytes.

Each image's mask is written before its CSV rows (a row never names a missing mask). An interrupted run
(exit 130) keeps the rows and masks done, lists the files left in ``remaining.txt`` and says how to
finish (``--from-list remaining.txt`` with the run's options). ``run.json`` is written with ``"status":
"running"`` when the run starts (a run killed hard keeps saying so). A ``report.pdf`` of an earlier run in the
folder is kept as ``report-earlier-run.pdf`` (then ``-2``, ``-3`` ...); a run that analyses no image leaves the
earlier run's CSVs, report and run.json as they were (see :mod:`cellviewer.commands.analyze_run`). Entries of the folders given that are not taken as images (sub-folders,
hidden files, other suffixes) are named in one ``cellviewer: note: passed over ...`` line."""

from __future__ import annotations

import argparse
import os
import sys
import time

from cellviewer.cli import EPILOG, EXIT_OK, EXIT_SOME_FAILED, PROG, UsageError
from cellviewer.commands.analyze_run import (REMAINING, interrupted as _interrupted, keep_earlier_report, read_list,
                                             run_record, sweep_stale_temps, unique_stem, write_json)
from cellviewer.core.cliopts import positive_float, whole_number
from cellviewer.core.csvtext import readable
from cellviewer.core.errors import CellviewerError


class _Reporter:
    """A tqdm bar on a terminal; plain per-image lines on stderr otherwise."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet, self.bar = total, quiet, None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=sys.stderr, unit="img", dynamic_ncols=True)

    def progress(self, p, path=None) -> None:
        if p.note:  # e.g. a tiny red-cell size: said when the work starts, not after minutes
            self.note(f"{path}: {p.note}" if path is not None else p.note)
        if self.bar is not None and p.message:
            self.bar.set_postfix_str(readable(p.message)[:40], refresh=False)

    def done(self, i: int, line: str) -> None:
        if self.bar is not None:
            self.bar.update(1)
        elif not self.quiet:
            print(readable(f"[{i}/{self.total}] {line}"), file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        msg = readable(f"{PROG}: note: {text}")
        self.bar.write(msg, file=sys.stderr) if self.bar is not None else print(msg, file=sys.stderr, flush=True)

    def skipped(self, path, reason: str) -> None:
        msg = readable(f"{PROG}: skipped {path}: {reason}")
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
            self.bar.update(1)
        else:
            print(msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_analyze(args) -> int:
    from cellviewer.core import io
    from cellviewer.core.document import Document
    from cellviewer.core.errors import Cancelled, SaveError
    from cellviewer.core.jobs import CancelToken, run_job
    from cellviewer.core.report import (CELL_COLUMNS, COUNT_COLUMNS, CsvStream, ReportEntry, cell_rows, class_map,
                                        classes_json, count_row, write_pdf_report)
    from cellviewer.core.segment import create_segmenter, default_segmenter_name

    t0 = time.perf_counter()
    inputs = list(args.inputs) + (read_list(args.from_list) if args.from_list else [])
    if not inputs:
        raise UsageError("No images given.", hint="give image files or folders, or --from-list FILE")
    images = io.list_images(inputs)
    if not images:
        raise UsageError(f"No images found in: {', '.join(inputs)}.",
                         hint=f"give image files or folders holding {'/'.join(sorted(io.SUPPORTED_SUFFIXES))} files")
    if args.device not in ("auto", "cpu"):  # a device that is not there is an option error (2), for any model
        from cellviewer.core.device import resolve_device

        resolve_device(args.device)
    model = args.model or default_segmenter_name()
    from cellviewer.core.memory import release, tune_for_batch

    tune_for_batch()  # bounded oneDNN kernel cache, large arrays back to the OS: flat memory over a batch
    extra = {"tta": args.tta} if args.tta else {}  # trained nets average over flipped copies; classical ignores it
    if args.no_morphology:
        extra["morphology"] = False
    if args.diameter_px:
        extra["diameter_px"] = args.diameter_px
    if args.um_per_px:
        extra["um_per_px"] = args.um_per_px
    seg = create_segmenter(model, device=args.device, **extra)  # fails fast (exit 6) before touching the output
    out = os.path.abspath(args.out)
    masks = os.path.join(out, "masks")
    try:
        os.makedirs(masks, exist_ok=True)
        if not os.access(masks, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as e:
        what = "write into" if os.path.isdir(out) else "create"
        raise SaveError(f"Cannot {what} the output folder '{out}': {e.strerror or e}",
                        hint="choose a writable folder with --out") from e

    entries, skipped, used, failure_code = [], [], set(), EXIT_SOME_FAILED
    reporter, cancel = _Reporter(len(images), args.quiet), CancelToken()
    from cellviewer.core.folderwalk import passed_over

    passed = passed_over(inputs, io.SUPPORTED_SUFFIXES)
    if passed:  # one line, so nothing in a folder is dropped silently
        reporter.note(passed.summary())
    if args.tta not in (None, "none") and getattr(seg, "tta", None) is None:
        reporter.note(f"--tta {args.tta} does not apply to classical segmenters ('{model}'): it is ignored")
    earlier = _Earlier(out, reporter)
    run = run_record(args, seg, model, len(images))
    write_json(os.path.join(out, "run.json"), run)  # "running": a run killed hard is recognisable
    busy = 0.0  # seconds spent on the analyzed images (not the model load or the report)
    done: list[dict] = []
    counts = _LazyCsv(os.path.join(out, "counts.csv"), COUNT_COLUMNS, CsvStream)
    cells, interrupted = _LazyCsv(os.path.join(out, "cells.csv"), CELL_COLUMNS, CsvStream), False
    failure = None  # the error that ended the run (not a Ctrl-C): run.json says "failed"
    try:
        for i, path in enumerate(images, 1):
            t_img = time.perf_counter()
            try:  # reading and segmenting may fail for one image: list it, go on
                img = io.read_image(path)
                doc = Document(img)
                on_progress = lambda p, path=path: reporter.progress(p, path)  # noqa: E731
                doc.set_result(run_job(seg.segment(img.pixels, cancel), on_progress))
                doc.border_rule = args.border_cells
                doc.um_per_px = args.um_per_px
                for note in doc.provenance.params.get("fallback", ()):  # out of memory: smaller tiles / CPU
                    reporter.note(f"{path}: {note}")
                if doc.provenance.params.get("calibration_warning"):
                    reporter.note(f"{path}: {doc.provenance.params['calibration_warning']}")
                for note in img.info.notes:  # e.g. a greyscale image: white cells and platelets may be missed
                    if note.startswith(io.CAUTION):
                        reporter.note(f"{path}: {note[len(io.CAUTION):]}")
            except Cancelled:
                raise
            except Exception as e:  # noqa: BLE001 - one odd image must not end a batch
                reason = (getattr(e, "reason", None) or e.message) if isinstance(e, CellviewerError) else (
                    "out of memory" if isinstance(e, MemoryError) else f"{type(e).__name__}: {e}")
                skipped.append((str(path), reason))
                failure_code = e.exit_code if isinstance(e, CellviewerError) else EXIT_SOME_FAILED
                reporter.skipped(path, reason)
                continue
            # writing failures (disk full ...) end the command; names equal up to letter case get "_2", "_3" ...
            stem, suffix = os.path.splitext(os.path.basename(str(path)))
            stem = unique_stem(stem, used)
            name = stem + suffix
            crow = count_row(doc, name)
            io.write_png(os.path.join(masks, stem + ".png"), class_map(doc))  # first: rows never name a missing mask
            counts.write(crow)
            cells.write(cell_rows(doc, name))
            done.append({"name": name, "file": os.path.abspath(str(path)), "mask": f"masks/{stem}.png",
                         "rbc_diameter_px": doc.provenance.params.get("diameter_px"),
                         "diameter_source": doc.provenance.params.get("diameter_source"),
                         "cautions": [n[len(io.CAUTION):] for n in img.info.notes if n.startswith(io.CAUTION)]})
            entries.append(ReportEntry.from_document(doc, name, thumbnail=len(entries) < args.report_pages))
            del doc, img
            release()
            busy += time.perf_counter() - t_img
            reporter.done(i, f"{name}: {crow['rbc']} RBC, {crow['wbc']} WBC, {crow['platelets']} platelets "
                             f"({time.perf_counter() - t_img:.2f} s)")
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: keep what is done, say what and how to go on
        interrupted = True
    except BaseException as e:  # an error ends the run (disk full ...): the rows done are kept, run.json says so
        failure = e
        raise
    finally:
        reporter.close()
        untouched = not done and earlier.had_csv  # nothing analysed: the earlier run's CSVs stay as they were
        try:
            try:
                counts.close(create=not untouched)
            finally:  # both temp files go, even when the first close fails (disk full)
                cells.close(create=not untouched)
        except BaseException as e:
            failure = failure or e
            raise
        finally:
            tried = {os.path.abspath(d["file"]) for d in done} | {os.path.abspath(f) for f, _ in skipped}
            left = [os.path.abspath(str(p)) for p in images if os.path.abspath(str(p)) not in tried]
            status = "failed" if failure is not None else "interrupted" if interrupted or left else "complete"
            run.update(images=done, skipped=[{"file": os.path.abspath(f), "reason": r} for f, r in skipped],
                       status=status, remaining=left)
            if failure is not None:
                run["error"] = _failure_text(failure)
                reporter.note(f"the run ended with an error after {len(done)} of {len(images)} image"
                              f"{'s' if len(images) != 1 else ''}: run.json says 'failed' and lists the {len(left)} "
                              "not reached under 'remaining'; report.pdf was not written")
            try:
                if untouched:  # (also when interrupted: the earlier run's rows must not pass for this run's)
                    earlier.restore(run)
                else:
                    write_json(os.path.join(out, "classes.json"), classes_json())  # the masks' values, also
                    write_json(os.path.join(out, "run.json"), run)  # for the images of an interrupted run
            except SaveError as e:  # never hides why the run ended
                reporter.note(f"run.json not written: {e.message}")
    if interrupted:
        return _interrupted(args, model, out, done, left, len(images), earlier_kept=untouched)
    if untouched:
        reporter.note(f"no image was analysed: the earlier run's counts.csv, cells.csv, report.pdf and run.json "
                      f"in {out} are left as they were")
    else:
        n = len(entries)
        title = f"cellviewer report — {n} image{'s' if n != 1 else ''} ({model})"
        write_pdf_report(os.path.join(out, "report.pdf"), entries, title=title, skipped=skipped,
                         max_pages=args.report_pages)
    n = len(entries)
    dt = time.perf_counter() - t0
    per = f"{busy / n:.2f} s/image analyzed" if n else "no image analyzed"
    extra = f", {len(skipped)} skipped" if skipped else ""
    print(readable(f"{PROG}: analyzed {n} of {len(images)} images with '{model}' in {dt:.1f} s ({per}){extra}; "
                   f"results in {out}"))
    if skipped and len(images) == 1:  # one image, and it failed: the command failed (e.g. 3 unreadable)
        return failure_code
    return EXIT_SOME_FAILED if skipped else EXIT_OK


def _failure_text(e: BaseException) -> str:
    """What ended a run, for run.json's ``error``."""
    if isinstance(e, CellviewerError):
        return e.message
    return "out of memory" if isinstance(e, MemoryError) else f"{type(e).__name__}: {e}"


class _LazyCsv:
    """A :class:`~cellviewer.core.report.CsvStream` opened at its first row, so a run that analyses nothing
    need not replace an earlier run's CSV (``close(create=False)``)."""

    def __init__(self, path: str, columns, stream):
        self.path, self.columns, self._make, self._s = path, columns, stream, None

    def write(self, rows) -> None:
        if self._s is None:
            self._s = self._make(self.path, self.columns)
        self._s.write(rows)

    def close(self, create: bool = True) -> None:
        if self._s is None and create:
            self._s = self._make(self.path, self.columns)
        if self._s is not None:
            self._s.close()


class _Earlier:
    """What an earlier run left in the output folder when this one starts: its dead temp files are swept,
    its ``remaining.txt`` removed, its ``report.pdf`` kept under a numbered name and its ``run.json``
    remembered (put back by :meth:`restore` when this run analyses nothing)."""

    def __init__(self, out: str, reporter):
        self.out = out
        for name in sweep_stale_temps(out):
            reporter.note(f"removed {name}, a temporary file of an earlier run that was killed")
        self.had_csv = os.path.exists(os.path.join(out, "counts.csv"))
        try:
            with open(os.path.join(out, "run.json"), "rb") as f:
                self.run_json = f.read()
        except OSError:
            self.run_json = None
        self.report = keep_earlier_report(out)
        try:  # an earlier interrupted run's list of images left belongs to that run (its paths are in `inputs`)
            with open(os.path.join(out, REMAINING), "rb") as f:
                self.remaining = f.read()  # (put back with the rest when this run analyses nothing)
            os.unlink(os.path.join(out, REMAINING))
        except OSError:
            self.remaining = None
        if self.had_csv or self.report:
            reporter.note(f"{out} holds an earlier run: its counts.csv, cells.csv, classes.json and run.json are "
                          "replaced once this run has analysed an image"
                          + (f", its report is kept as {self.report}" if self.report else "")
                          + "; masks of images not in this run stay (run.json lists this run's)")

    def restore(self, run: dict) -> None:
        """Put the earlier ``run.json``, ``report.pdf`` and ``remaining.txt`` back (this run analysed nothing)."""
        from cellviewer.core.atomic import atomic_write_bytes

        path = os.path.join(self.out, "run.json")
        try:
            if self.run_json is not None:
                atomic_write_bytes(path, self.run_json)
            else:
                write_json(path, run)
            if self.report:
                os.replace(os.path.join(self.out, self.report), os.path.join(self.out, "report.pdf"))
            if self.remaining is not None:
                atomic_write_bytes(os.path.join(self.out, REMAINING), self.remaining)
        except OSError as e:
            raise SaveError(f"Cannot put back the earlier run's files in '{self.out}': {e.strerror or e}",
                            hint="check the folder is writable") from e


def _count(text: str) -> int:
    return whole_number(text, 0)


def add_parser(sub) -> None:
    from cellviewer.core.countframe import BORDER_RULES

    p = sub.add_parser(
        "analyze", help="segment and count images; write CSVs, masks and a PDF report",
        description="Segment and count every image; write counts.csv, cells.csv, masks/<stem>.png, "
                    "classes.json, report.pdf and run.json (what was run, on which files, with which red-cell "
                    "size) into --out.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="IMAGES_OR_DIRS",
                   help="image files and/or folders of images (a folder's sub-folders are not entered)")
    p.add_argument("--from-list", metavar="FILE", default=None,
                   help="also analyze the image paths listed in FILE, one a line (e.g. the remaining.txt an "
                        "interrupted run leaves)")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument("-m", "--model", default=None,
                   help="segmenter name (see 'cellviewer models') or the path of a trained model's .json card "
                        "(default: the best available)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"), help="compute device (default auto)")
    p.add_argument("--tta", choices=("none", "flips", "d4"), default=None,
                   help="test-time augmentation of a trained model: average over 4 flips or all 8 flips and "
                        "transposes (4-8x slower; default: the model card's own)")
    p.add_argument("--border-cells", choices=tuple(BORDER_RULES), default="all",
                   help="which cells cut by the image edge are counted: " + "; ".join(
                       f"{k} = {v}" for k, v in BORDER_RULES.items()) + " (default all; cut cells keep their masks)")
    p.add_argument("--diameter-px", type=positive_float, default=None, metavar="PX",
                   help="expected red-cell diameter in pixels, the same for every image (default: estimated per "
                        "image); set it when the estimate is off, e.g. on very large fields")
    p.add_argument("--um-per-px", type=positive_float, default=None, metavar="UM",
                   help="pixel size of the images in µm (from a stage micrometer): a trained model then weighs "
                        "each red cell's measured size in its morphology class (microcyte, macrocyte); the "
                        "classical model takes its red-cell size from it (7.5 µm)")
    p.add_argument("--no-morphology", action="store_true",
                   help="do not give red cells a morphology class (cells.csv 'morphology'; trained models "
                        "with the rbc-morphology model installed do by default)")
    p.add_argument("--report-pages", type=_count, default=100, metavar="N",
                   help="detail pages in report.pdf for the first N images; the summary lists all (default 100)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output (errors and skipped files still show)")
    p.set_defaults(func=cmd_analyze)
