"""The ``cellviewer`` command line (no Qt; heavy imports happen inside the commands).

Commands::

    cellviewer                      open the GUI (same as ``cellviewer gui``)
    cellviewer gui [IMAGE]          open the GUI, optionally with an image
    cellviewer analyze IMAGES_OR_DIRS... --out DIR [--model NAME] [--device auto|cpu|cuda|mps]
    cellviewer models               list the available segmenters

``analyze`` writes into DIR: ``counts.csv`` (image,rbc,wbc,platelets),
``cells.csv`` (image,cell_id,cls,x,y,area_px,xmin,ymin,xmax,ymax,score; bounding
boxes are inclusive pixel indices), ``masks/<image stem>.png`` (8-bit class map),
``classes.json`` (pixel value -> class name) and ``report.pdf``. Rows are streamed
to the CSVs image by image, so batches of any size run in bounded memory; the PDF
has a summary table of every image (and of skipped files) plus detail pages
(overview image, counts, details) for the first ``--report-pages`` images (default
100; only their ≤ 800 px thumbnails are kept in memory). The ``image`` column is
the file name; files of the same name from different folders become ``NAME_2.ext``
... (in the CSVs and masks alike). After Ctrl-C the CSVs keep the images done so far.

Exit codes:
  0    every image was processed
  1    some images failed (each listed on stderr as ``cellviewer: skipped FILE: REASON``),
       or an unexpected internal error; a single image that fails returns its error's code
       (e.g. 3 when it is unreadable)
  2    usage error (bad arguments, no images found)
  3-9  the whole command failed with a cellviewer error: 3 image unreadable,
       4 sidecar, 5 cannot save, 6 unknown/broken model, 7 segmentation, 8 edit,
       9 no display for the review window (``cellviewer gui`` over ssh without X ...)
  130  interrupted (Ctrl-C or SIGTERM)

Errors are printed as one line: ``cellviewer: error: <message>``; notes that are not failures (a GPU
out-of-memory fallback to smaller tiles or the CPU) as ``cellviewer: note: <image>: <what>``.

Adding a command (evaluate, train, bench, export, selftest ...): write
``_add_<name>(subparsers)`` that builds its sub-parser and sets ``func=<handler>``
(``handler(args) -> int``, heavy imports inside it) and append it to
:data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from cellviewer import __version__
from cellviewer.core.errors import CellviewerError

PROG = "cellviewer"
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EPILOG = """exit codes: 0 all images ok; 1 some images failed (listed on stderr) or internal error;
2 usage error; 3 image unreadable; 4 sidecar; 5 cannot save; 6 unknown or broken model;
7 segmentation failed; 8 edit; 9 no display for the GUI; 130 interrupted"""


class UsageError(CellviewerError):
    """Arguments are valid for argparse but make no sense (e.g. no images found)."""

    exit_code = EXIT_USAGE


def _err(msg: str) -> None:
    print(f"{PROG}: error: {msg}", file=sys.stderr)


# -- gui -------------------------------------------------------------------------------
def cmd_gui(args) -> int:
    from cellviewer.display import check_display

    check_display()  # before Qt: without a display Qt aborts the process
    try:
        from cellviewer.gui.app import run_gui
    except ImportError as e:
        raise CellviewerError(f"The GUI cannot start: {e}.",
                              hint="install PySide6 and pyqtgraph, or use 'cellviewer analyze'") from e
    rc = run_gui(getattr(args, "image", None))
    return int(rc or 0)


def _add_gui(sub) -> None:
    p = sub.add_parser("gui", help="open the review window (the default without a command)")
    p.add_argument("image", nargs="?", default=None, help="an image to open")
    p.set_defaults(func=cmd_gui)


# -- models ----------------------------------------------------------------------------
def cmd_models(args) -> int:
    from cellviewer.core.segment import default_segmenter_name, list_segmenters

    from cellviewer.core.modelcards import model_summaries

    default = default_segmenter_name()
    cards = model_summaries()  # trained models: architecture, classes, scale, version, test numbers
    for name, desc in sorted(list_segmenters().items()):
        star = " (default)" if name == default else ""
        print(f"{name}{star}" + (f" — {desc}" if desc else ""))
        if name in cards:
            print("    " + cards[name].text().replace("\n", "\n    "))
    from cellviewer.core.morphology import describe_installed

    line = describe_installed()
    if line:
        print(line)
    return EXIT_OK


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the available segmenters / models")
    p.set_defaults(func=cmd_models)


# -- analyze ---------------------------------------------------------------------------
class _Reporter:
    """A tqdm bar on a terminal; plain per-image lines on stderr otherwise."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet, self.bar = total, quiet, None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=sys.stderr, unit="img", dynamic_ncols=True)

    def progress(self, p) -> None:
        if self.bar is not None and p.message:
            self.bar.set_postfix_str(p.message[:40], refresh=False)

    def done(self, i: int, line: str) -> None:
        if self.bar is not None:
            self.bar.update(1)
        elif not self.quiet:
            print(f"[{i}/{self.total}] {line}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        msg = f"{PROG}: note: {text}"
        self.bar.write(msg, file=sys.stderr) if self.bar is not None else print(msg, file=sys.stderr, flush=True)

    def skipped(self, path, reason: str) -> None:
        msg = f"{PROG}: skipped {path}: {reason}"
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
            self.bar.update(1)
        else:
            print(msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _unique_stem(stem: str, used: set[str]) -> str:
    name, k = stem, 2
    while name in used:
        name, k = f"{stem}_{k}", k + 1
    used.add(name)
    return name


def cmd_analyze(args) -> int:
    import json

    from cellviewer.core import io
    from cellviewer.core.document import Document
    from cellviewer.core.errors import Cancelled, SaveError
    from cellviewer.core.jobs import CancelToken, run_job
    from cellviewer.core.report import (CELL_COLUMNS, COUNT_COLUMNS, CsvStream, ReportEntry, cell_rows, class_map,
                                        classes_json, count_row, write_pdf_report)
    from cellviewer.core.segment import create_segmenter, default_segmenter_name

    t0 = time.perf_counter()
    images = io.list_images(args.inputs)
    if not images:
        raise UsageError(f"No images found in: {', '.join(args.inputs)}.",
                         hint=f"give image files or folders holding {'/'.join(sorted(io.SUPPORTED_SUFFIXES))} files")
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
    except OSError as e:
        raise SaveError(f"Cannot create the output folder '{out}': {e.strerror or e}",
                        hint="choose a writable folder with --out") from e

    entries, skipped, used, failure_code = [], [], set(), EXIT_SOME_FAILED
    reporter, cancel = _Reporter(len(images), args.quiet), CancelToken()
    counts = CsvStream(os.path.join(out, "counts.csv"), COUNT_COLUMNS)
    cells = None
    try:
        cells = CsvStream(os.path.join(out, "cells.csv"), CELL_COLUMNS)
        for i, path in enumerate(images, 1):
            t_img = time.perf_counter()
            try:  # reading and segmenting may fail for one image: list it, go on
                img = io.read_image(path)
                doc = Document(img)
                doc.set_result(run_job(seg.segment(img.pixels, cancel), reporter.progress))
                doc.border_rule = args.border_cells
                doc.um_per_px = args.um_per_px
                for note in doc.provenance.params.get("fallback", ()):  # out of memory: smaller tiles / CPU
                    reporter.note(f"{path}: {note}")
            except Cancelled:
                raise
            except Exception as e:  # noqa: BLE001 - one odd image must not end a batch
                reason = (getattr(e, "reason", None) or e.message) if isinstance(e, CellviewerError) else (
                    "out of memory" if isinstance(e, MemoryError) else f"{type(e).__name__}: {e}")
                skipped.append((str(path), reason))
                failure_code = e.exit_code if isinstance(e, CellviewerError) else EXIT_SOME_FAILED
                reporter.skipped(path, reason)
                continue
            # writing failures (disk full ...) end the command; same-named files get "_2", "_3" ...
            stem, suffix = os.path.splitext(os.path.basename(str(path)))
            stem = _unique_stem(stem, used)
            name = stem + suffix
            crow = count_row(doc, name)
            counts.write(crow)
            cells.write(cell_rows(doc, name))
            io.write_png(os.path.join(masks, stem + ".png"), class_map(doc))
            entries.append(ReportEntry.from_document(doc, name, thumbnail=len(entries) < args.report_pages))
            del doc, img
            release()
            reporter.done(i, f"{name}: {crow['rbc']} RBC, {crow['wbc']} WBC, {crow['platelets']} platelets "
                             f"({time.perf_counter() - t_img:.2f} s)")
    finally:
        reporter.close()
        try:
            counts.close()
        finally:  # both temp files go, even when the first close fails (disk full)
            if cells is not None:
                cells.close()

    _write_json(os.path.join(out, "classes.json"), classes_json(), json)
    n = len(entries)
    title = f"cellviewer report — {n} image{'s' if n != 1 else ''} ({model})"
    write_pdf_report(os.path.join(out, "report.pdf"), entries, title=title, skipped=skipped,
                     max_pages=args.report_pages)
    dt = time.perf_counter() - t0
    per = f"{dt / max(1, len(images)):.2f} s/image"
    extra = f", {len(skipped)} skipped" if skipped else ""
    print(f"{PROG}: analyzed {n} of {len(images)} images with '{model}' in {dt:.1f} s ({per}){extra}; results in {out}")
    if skipped and len(images) == 1:  # one image, and it failed: the command failed (e.g. 3 unreadable)
        return failure_code
    return EXIT_SOME_FAILED if skipped else EXIT_OK


def _write_json(path: str, data, json) -> None:
    from cellviewer.core.errors import SaveError

    from cellviewer.core.atomic import atomic_write_bytes

    try:
        atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
    except OSError as e:
        raise SaveError(f"Cannot write '{path}': {e.strerror or e}",
                        hint="free some disk space or choose another folder with --out") from e


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError("must be a positive number")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if v < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return v


def _add_analyze(sub) -> None:
    from cellviewer.core.countframe import BORDER_RULES

    p = sub.add_parser(
        "analyze", help="segment and count images; write CSVs, masks and a PDF report",
        description="Segment and count every image; write counts.csv, cells.csv, masks/<stem>.png, "
                    "classes.json and report.pdf into --out.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="IMAGES_OR_DIRS", help="image files and/or folders of images")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument("-m", "--model", default=None, help="segmenter name (see 'cellviewer models'; default: the best available)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"), help="compute device (default auto)")
    p.add_argument("--tta", choices=("none", "flips", "d4"), default=None,
                   help="test-time augmentation of a trained model: average over 4 flips or all 8 flips and "
                        "transposes (4-8x slower; default: the model card's own)")
    p.add_argument("--border-cells", choices=tuple(BORDER_RULES), default="all",
                   help="which cells cut by the image edge are counted: " + "; ".join(
                       f"{k} = {v}" for k, v in BORDER_RULES.items()) + " (default all; cut cells keep their masks)")
    p.add_argument("--diameter-px", type=_positive_float, default=None, metavar="PX",
                   help="expected red-cell diameter in pixels, the same for every image (default: estimated per "
                        "image); set it when the estimate is off, e.g. on very large fields")
    p.add_argument("--um-per-px", type=_positive_float, default=None, metavar="UM",
                   help="pixel size of the images in µm (from a stage micrometer): a trained model then weighs "
                        "each red cell's measured size in its morphology class (microcyte, macrocyte); the "
                        "classical model takes its red-cell size from it (7.5 µm)")
    p.add_argument("--no-morphology", action="store_true",
                   help="do not give red cells a morphology class (cells.csv 'morphology'; trained models "
                        "with the rbc-morphology model installed do by default)")
    p.add_argument("--report-pages", type=_positive_int, default=100, metavar="N",
                   help="detail pages in report.pdf for the first N images; the summary lists all (default 100)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output (errors and skipped files still show)")
    p.set_defaults(func=cmd_analyze)


#: Sub-command builders, in --help order. Add new commands here (see the module docstring).
COMMANDS = [_add_analyze, _add_models, _add_gui]

#: Commands that live in their own module ``cellviewer.commands.<name>``; each module defines
#: ``add_parser(subparsers)`` (sets ``func=handler``, ``handler(args) -> int``) and imports
#: nothing heavy at module level (``cellviewer --help`` must not import torch or Qt).
COMMAND_MODULES = ["train", "evaluate", "bench", "export", "review", "versions", "finetune_demo", "selftest"]


def _add_command_modules(sub) -> None:
    import importlib

    for name in COMMAND_MODULES:
        modname = f"cellviewer.commands.{name}"
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:  # not part of this build
                continue
            raise
        mod.add_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Review, correct and count blood-smear segmentations (RBC, WBC, platelets). "
                               "Without a command the review window opens.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of unexpected errors")
    parser.add_argument("--selftest", action="store_true",
                        help="headless self-test: load the default model, segment the bundled sample, "
                             "check the counts, write a report to a temporary folder; exit 0 when all is well")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    _add_command_modules(sub)
    return parser


def _terminate_as_interrupt():
    """SIGTERM (``kill``, a batch scheduler's time limit) ends a command as Ctrl-C does: the CSVs keep
    the images done so far and no temporary file is left (the GUI installs its own handler while it runs).
    Returns the function that restores the previous handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return lambda: None

    def stop(_signum, _frame):
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, stop)
    except (ValueError, OSError):  # not allowed here (embedded interpreter)
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, old)


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) or a usage error (2)
        return e.code if isinstance(e.code, int) else (EXIT_OK if e.code is None else EXIT_USAGE)
    func = getattr(args, "func", None) or cmd_gui
    if getattr(args, "selftest", False):
        from cellviewer.commands.selftest import run_selftest as func
    restore = _terminate_as_interrupt()
    try:
        return func(args)
    except CellviewerError as e:
        _err(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the one place an unexpected error becomes a message
        if args.debug:
            raise
        _err(f"unexpected {type(e).__name__}: {e} (run with --debug for the traceback)")
        return EXIT_SOME_FAILED
    finally:
        restore()


if __name__ == "__main__":
    raise SystemExit(main())
