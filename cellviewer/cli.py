"""The ``cellviewer`` command line (no Qt; heavy imports happen inside the commands).

Commands::

    cellviewer                      open the GUI (same as ``cellviewer gui``)
    cellviewer gui [IMAGE]          open the GUI, optionally with an image
    cellviewer IMAGE                the same (a file manager's "Open with", a file dropped on the icon)
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
  2    usage error (bad arguments, no images found) or a bad option value: an expected cell diameter
       out of range, a device that is not there (``--device cuda`` without a GPU), an export tile too small
  3-9  the whole command failed with a cellviewer error: 3 image unreadable,
       4 sidecar, 5 cannot save, 6 unknown/broken model, 7 segmentation, 8 edit,
       9 no display for the review window (``cellviewer gui`` over ssh without X ...)
  130  interrupted (Ctrl-C or SIGTERM; ``analyze`` says what it wrote and lists the images left in
       ``remaining.txt`` for ``--from-list``)
  141  the output's reader closed the pipe (``cellviewer models | head -1``), as a shell reports SIGPIPE

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

from cellviewer import __version__
from cellviewer.core.errors import CellviewerError

PROG = "cellviewer"
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 130, 141
EPILOG = """exit codes: 0 all images ok; 1 some images failed (listed on stderr) or internal error;
2 usage error or bad option (a diameter out of range, --device cuda without a GPU, an --out folder another
analyze run is writing into ...); 3 image unreadable;
4 sidecar; 5 cannot save; 6 unknown or broken model; 7 segmentation failed; 8 edit; 9 no display for the GUI;
130 interrupted"""


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


def _add_analyze(sub) -> None:
    from cellviewer.commands.analyze import add_parser  # its own module (lazy: --help stays light)

    add_parser(sub)


#: Sub-command builders, in --help order. Add new commands here (see the module docstring).
COMMANDS = [_add_analyze, _add_models, _add_gui]

#: Commands that live in their own module ``cellviewer.commands.<name>``; each module defines
#: ``add_parser(subparsers)`` (sets ``func=handler``, ``handler(args) -> int``) and imports
#: nothing heavy at module level (``cellviewer --help`` must not import torch or Qt).
COMMAND_MODULES = ["train", "evaluate", "bench", "export", "review", "versions", "finetune", "finetune_demo", "selftest"]


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


def _unrecognized(parser, command, extra) -> None:
    """Exit 2 with the command's usage: ``extra`` are arguments nobody took (e.g. a file ``-dash.png``)."""
    sub = None
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        sub = getattr(action, "choices", {}).get(command) or sub
    msg = f"unrecognized arguments: {' '.join(extra)}"
    files = [a for a in extra if a.startswith("-") and ("." in a or os.path.exists(a))]
    if files:
        msg += (f" (a file whose name starts with '-': write it as ./{files[0]}, or put -- before the file names)")
    (sub or parser).error(msg)


def _image_means_gui(parser, argv):
    """``cellviewer IMAGE`` (an existing file or folder where a command goes) is ``cellviewer gui IMAGE``."""
    args = list(sys.argv[1:] if argv is None else argv)
    commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    first = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if first is None or args[first] in commands or not os.path.exists(args[first]):
        return argv
    return args[:first] + ["gui"] + args[first:]


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    parser = build_parser()
    argv = _image_means_gui(parser, argv)
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # said by the command's own parser (its usage), with a hint for a file named like an option
            _unrecognized(parser, getattr(args, "command", None), extra)
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
    except BrokenPipeError:  # the reader went away (``cellviewer models | head -1``): not an error of ours
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        except (OSError, ValueError):
            pass
        return EXIT_BROKEN_PIPE
    except Exception as e:  # noqa: BLE001 - the one place an unexpected error becomes a message
        if args.debug:
            raise
        _err(f"unexpected {type(e).__name__}: {e} (run with --debug for the traceback)")
        return EXIT_SOME_FAILED
    finally:
        restore()


if __name__ == "__main__":
    raise SystemExit(main())
