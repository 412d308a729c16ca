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
"running"`` when the run starts (a run killed hard keeps saying so) and says ``complete`` only once
``report.pdf`` is written (an interruption while it is written: ``interrupted``, the rows kept). An input that
does not exist is skipped like a bad file (``file not found``), unless none exists (exit 3, nothing written).
One run at a time writes into a folder (its lock), and an earlier run's files there are set aside together
(``run-earlier-run.json``, ``counts-earlier-run.csv`` ...), put back when this run analyses no image (see
:mod:`cellviewer.commands.analyze_out`). Entries of the folders given that are not taken as images (sub-folders,
hidden files, other suffixes) are named in one ``cellviewer: note: passed over ...`` line."""

from __future__ import annotations

import argparse
import os
import sys
import time

from cellviewer.cli import EPILOG, EXIT_OK, EXIT_SOME_FAILED, PROG, UsageError
from cellviewer.commands.analyze_out import EarlierRun, LazyCsv, lock_folder, unlock_folder
from cellviewer.commands.analyze_run import (interrupted as _interrupted, read_list, run_record, split_missing,
                                             unique_stem, write_json)
from cellviewer.core.cliopts import positive_float, whole_number
from cellviewer.core.csvtext import readable
from cellviewer.core.errors import CellviewerError

MISSING = "file not found"  # the reason a missing input is skipped with (run.json, the report's table)


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
            self.bar = None


def cmd_analyze(args) -> int:
    from cellviewer.core import io
    from cellviewer.core.errors import ImageReadError, SaveError
    from cellviewer.core.segment import create_segmenter, default_segmenter_name

    t0 = time.perf_counter()
    inputs = list(args.inputs) + (read_list(args.from_list) if args.from_list else [])
    if not inputs:
        raise UsageError("No images given.", hint="give image files or folders, or --from-list FILE")
    found, missing = split_missing(inputs)  # skipped like a bad file, unless nothing given exists
    if not found:
        more = f" (nor do the other {len(missing) - 1} paths given)" if len(missing) > 1 else ""
        raise ImageReadError(missing[0], f"no such file or folder{more}", hint="check the path")
    images = io.list_images(found)
    if not images:
        raise UsageError("No images found in: " + ", ".join(f"'{p}'" for p in inputs) + ".",
                         hint=f"give image files or folders holding {'/'.join(sorted(io.SUPPORTED_SUFFIXES))} files")
    if args.device not in ("auto", "cpu"):  # a device that is not there is an option error (2), for any model
        from cellviewer.core.device import resolve_device

        resolve_device(args.device)
    model = args.model or default_segmenter_name()
    from cellviewer.core.memory import tune_for_batch

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
    made = [d for d in (out, masks) if not os.path.isdir(d)]  # removed again if a run that wrote nothing ends in error
    try:
        os.makedirs(masks, exist_ok=True)
        if not os.access(masks, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as e:
        what = "write into" if os.path.isdir(out) else "create"
        raise SaveError(f"Cannot {what} the output folder '{out}': {e.strerror or e}",
                        hint="choose a writable folder with --out") from e
    reporter = _Reporter(len(images) + len(missing), args.quiet)
    lock = None
    try:
        lock = lock_folder(out, reporter.note)  # a second run into the folder is refused (exit 2)
        return _run(args, seg, model, out, images, missing, inputs, reporter, t0)
    except BaseException:
        unlock_folder(lock)
        lock = None
        for d in reversed(made):  # e.g. a model that failed to load at the first image: no empty masks/ left
            try:
                os.rmdir(d)  # only when empty
            except OSError:
                pass
        raise
    finally:
        reporter.close()
        unlock_folder(lock)


def _run(args, seg, model: str, out: str, images: list, missing: list[str], inputs: list[str], reporter,
         t0: float) -> int:
    """Analyse ``images`` into ``out`` (locked); ``missing``: the inputs that do not exist (skipped)."""
    from cellviewer.core import io
    from cellviewer.core.document import Document
    from cellviewer.core.errors import Cancelled
    from cellviewer.core.jobs import CancelToken, run_job
    from cellviewer.core.memory import release
    from cellviewer.core.report import (CELL_COLUMNS, COUNT_COLUMNS, CsvStream, ReportEntry, cell_rows, class_map,
                                        count_row)

    total = len(images) + len(missing)
    masks = os.path.join(out, "masks")
    entries, skipped, used, failure_code = [], [], set(), EXIT_SOME_FAILED
    cancel = CancelToken()
    from cellviewer.core.folderwalk import passed_over

    passed = passed_over(inputs, io.SUPPORTED_SUFFIXES)
    if passed:  # one line, so nothing in a folder is dropped silently
        reporter.note(passed.summary())
    if args.tta not in (None, "none") and getattr(seg, "tta", None) is None:
        reporter.note(f"--tta {args.tta} does not apply to classical segmenters ('{model}'): it is ignored")
    for path in missing:  # said at once, listed in run.json and the report like any bad file
        skipped.append((path, MISSING))
        reporter.skipped(path, MISSING)
    earlier = EarlierRun(out, reporter.note)  # the earlier run's files, set aside together
    run = run_record(args, seg, model, total)
    write_json(os.path.join(out, "run.json"), run)  # "running": a run killed hard is recognisable
    busy = 0.0  # seconds spent on the analyzed images (not the model load or the report)
    done: list[dict] = []
    counts = LazyCsv(os.path.join(out, "counts.csv"), COUNT_COLUMNS, CsvStream)
    cells, interrupted = LazyCsv(os.path.join(out, "cells.csv"), CELL_COLUMNS, CsvStream), False
    failure = None  # the error that ended the run (not a Ctrl-C): run.json says "failed"
    try:
        for i, path in enumerate(images, len(missing) + 1):
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
        untouched = not done and bool(earlier.kept)  # nothing analysed: the earlier run's files are put back
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
            run.update(images=done, skipped=[{"file": os.path.abspath(f), "reason": r} for f, r in skipped],
                       remaining=left)
            if failure is not None or interrupted or untouched or left:  # (else: once the report is written)
                status = "failed" if failure is not None else "interrupted" if interrupted or left else "complete"
                _end(out, run, status, reporter, failure, earlier if untouched else None,
                     f"after {len(done)} of {total} image{'s' if total != 1 else ''}")
    if interrupted or run["status"] == "interrupted":
        return _interrupted(args, model, out, done, left, total, earlier_kept=untouched)
    if untouched:
        reporter.note(f"no image was analysed: the earlier run's counts.csv, cells.csv, report.pdf and run.json "
                      f"in {out} are left as they were")
    elif not _report(out, run, entries, skipped, model, args, reporter):
        return _interrupted(args, model, out, done, [], total)
    n = len(entries)
    dt = time.perf_counter() - t0
    per = f"{busy / n:.2f} s/image analyzed" if n else "no image analyzed"
    extra = f", {len(skipped)} skipped" if skipped else ""
    print(readable(f"{PROG}: analyzed {n} of {total} images with '{model}' in {dt:.1f} s ({per}){extra}; "
                   f"results in {out}"))
    if skipped and total == 1:  # one image, and it failed: the command failed (e.g. 3 unreadable)
        return failure_code
    return EXIT_SOME_FAILED if skipped else EXIT_OK


def _report(out: str, run: dict, entries, skipped, model: str, args, reporter) -> bool:
    """Write ``report.pdf``, then run.json's ``complete``; False when Ctrl-C / SIGTERM stopped it (run.json:
    ``interrupted``). Until then run.json says ``running`` (listing the images), so a run killed hard while
    writing the report never passes for complete."""
    from cellviewer.core.report import classes_json, write_pdf_report

    try:
        write_json(os.path.join(out, "classes.json"), classes_json())  # the masks' values
        write_json(os.path.join(out, "run.json"), run)  # still "running", now with the images
        n = len(entries)
        title = f"cellviewer report — {n} image{'s' if n != 1 else ''} ({model})"
        write_pdf_report(os.path.join(out, "report.pdf"), entries, title=title, skipped=skipped,
                         max_pages=args.report_pages)
    except KeyboardInterrupt:
        _end(out, run, "interrupted", reporter)
        return False
    except BaseException as e:
        _end(out, run, "failed", reporter, e, what="while writing the report")
        raise
    _end(out, run, "complete", reporter)
    return True


def _end(out: str, run: dict, status: str, reporter, failure: BaseException | None = None, earlier=None,
         what: str = "") -> None:
    """Write run.json with its final ``status`` (``earlier``: put the earlier run's files back instead); a
    failure is said in a note. A run.json that cannot be written is a note: it never hides why the run ended."""
    from cellviewer.core.errors import SaveError

    run["status"] = status
    if failure is not None:
        run["error"] = _failure_text(failure)
        n_left = len(run.get("remaining") or ())
        reporter.note(f"the run ended with an error {what}: run.json says 'failed' and lists the {n_left} "
                      "not reached under 'remaining'; report.pdf was not written")
    try:
        if earlier is not None:  # (also when interrupted: the earlier run's rows must not pass for this run's)
            earlier.restore(run)
        else:
            from cellviewer.core.report import classes_json

            write_json(os.path.join(out, "classes.json"), classes_json())  # the masks' values, also
            write_json(os.path.join(out, "run.json"), run)  # for the images of an interrupted run
    except SaveError as e:
        reporter.note(f"run.json not written: {e.message}")


def _failure_text(e: BaseException) -> str:
    """What ended a run, for run.json's ``error``."""
    if isinstance(e, CellviewerError):
        return e.message
    return "out of memory" if isinstance(e, MemoryError) else f"{type(e).__name__}: {e}"


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
                        "interrupted run leaves); a path that does not exist is skipped like a bad file")
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
