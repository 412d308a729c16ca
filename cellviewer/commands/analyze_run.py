"""The output folder of ``cellviewer analyze``: its run record and what a run leaves behind.

* :func:`run_record` / :func:`write_json`: ``run.json`` (written with ``"status": "running"`` when a run
  starts, so a run killed hard — SIGKILL, a power cut — is recognisable, and with its final status at the end);
* what an earlier run left in the folder, and the folder's lock: :mod:`cellviewer.commands.analyze_out`;
* :func:`split_missing`: the inputs that do not exist (skipped like a bad file, unless nothing given exists);
* :func:`finish_command`: after Ctrl-C, the command that analyses the images left with the same options;
* :func:`unique_stem`: output names that differ in letter case only get ``_2``, ``_3`` ... (masks stay
  distinct on case-insensitive file systems);
* :func:`read_list`: a ``--from-list`` file (UTF-8, a byte-order mark allowed; ``remaining.txt`` keeps the bytes
  of a file name that is not valid UTF-8, so it is read back as the same path; a name holding a line break
  cannot be listed there: :func:`interrupted` names it on stderr instead).
"""

from __future__ import annotations

import os
import shlex
import sys

from cellviewer.cli import PROG, UsageError
from cellviewer.core.errors import SaveError

REMAINING = "remaining.txt"


def unique_stem(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3`` ... when one that differs at most in letter case is taken
    (``used`` holds casefolded names)."""
    name, k = stem, 2
    while name.casefold() in used:
        name, k = f"{stem}_{k}", k + 1
    used.add(name.casefold())
    return name


def _num(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


def finish_command(args, model: str, rest_list: str, rest_out: str) -> str:
    """``cellviewer analyze --from-list REST_LIST --out REST_OUT`` with every option of the run ``args``
    (the model actually used included), shell-quoted: the images left are analysed as the others were."""
    words = [PROG, "analyze", "--from-list", rest_list, "--out", rest_out, "--model", model,
             "--device", args.device]
    if args.tta is not None:
        words += ["--tta", args.tta]
    words += ["--border-cells", args.border_cells]
    if args.diameter_px is not None:
        words += ["--diameter-px", _num(args.diameter_px)]
    if args.um_per_px is not None:
        words += ["--um-per-px", _num(args.um_per_px)]
    if args.no_morphology:
        words.append("--no-morphology")
    words += ["--report-pages", str(args.report_pages)]
    if args.quiet:
        words.append("-q")
    return " ".join(shlex.quote(w) for w in words)


def listable(path: str) -> bool:
    """Whether ``path`` can be a line of ``remaining.txt`` (:func:`read_list` reads one path a line)."""
    return "\n" not in path and "\r" not in path


def interrupted(args, model: str, out: str, done: list[dict], left: list[str], total: int,
                earlier_kept: bool = False) -> int:
    """After Ctrl-C / SIGTERM: list the images not analyzed in ``remaining.txt`` and say what was written
    and how to finish (:func:`finish_command`); returns the exit code 130. ``earlier_kept``: no image was
    analysed and an earlier run's files in ``out`` were put back as they were (nothing of this run is there).
    An image whose name holds a line break cannot be listed: it is named on stderr (and is in run.json)."""
    from cellviewer.cli import EXIT_INTERRUPTED
    from cellviewer.core.csvtext import readable

    if earlier_kept:
        print(f"{PROG}: interrupted before any image was analyzed: the earlier run's files in {out} are as they "
              f"were (its counts.csv, cells.csv, report and run.json); run the same command again to analyze the "
              f"{total} image{'s' if total != 1 else ''}.", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED

    rest = os.path.join(out, REMAINING)
    listed = [p for p in left if listable(p)]
    for p in left:
        if not listable(p):
            shown = readable(p).replace("\r", "\\r").replace("\n", "\\n")
            print(f"{PROG}: note: {shown} cannot be listed in {REMAINING} (its name holds a line break): analyze "
                  "it by name, or rename it", file=sys.stderr, flush=True)
    how = ""
    if listed:
        try:
            with open(rest, "w", encoding="utf-8", errors="surrogateescape") as f:  # a non-UTF-8 name: its bytes
                f.write("".join(p + "\n" for p in listed))
            how = (f" To finish, analyze the {len(listed)} image{'s' if len(listed) != 1 else ''} left into another "
                   f"folder: {finish_command(args, model, rest, out.rstrip(os.sep) + '-rest')}"
                   " (or run the same command again to redo them all).")
        except OSError:
            how = " Run the same command again to finish (run.json lists the images left)."
    elif left:
        how = " Run the same command again to finish (run.json lists the images left)."
    else:  # every image was analysed: the report was being written
        how = " All images were analyzed: run the same command again to write the report."
    print(f"{PROG}: interrupted: {len(done)} of {total} image{'s' if total != 1 else ''} analyzed; their rows are "
          f"in {os.path.join(out, 'counts.csv')} and cells.csv, their masks in masks/, and run.json says "
          f"'interrupted'; report.pdf was not written.{how}", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


def split_missing(inputs: list[str]) -> tuple[list[str], list[str]]:
    """``inputs`` as (those that exist, those that do not: each once, in order)."""
    found, missing, seen = [], [], set()
    for p in inputs:
        if os.path.exists(p):
            found.append(p)
        else:
            key = os.path.normcase(os.path.abspath(p))
            if key not in seen:
                seen.add(key)
                missing.append(p)
    return found, missing


def read_list(path: str) -> list[str]:
    """The image paths of a ``--from-list`` file: one per line; blank lines and ``#`` comments skipped; a
    UTF-8 byte-order mark (Windows Notepad) is not part of the first path. A relative path is taken from the
    working directory, or from the list's own folder when it is found only there."""
    try:
        with open(path, encoding="utf-8-sig", errors="surrogateescape") as f:  # as remaining.txt writes them
            lines = [ln.rstrip("\r\n") for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError as e:
        raise UsageError(f"Cannot read --from-list '{path}': {getattr(e, 'strerror', None) or e}.",
                         hint="give a text file with one image path a line") from e
    here = os.path.dirname(os.path.abspath(path))  # a relative path found only beside the list: that one
    return [os.path.join(here, p) if not os.path.isabs(p) and not os.path.exists(p)
            and os.path.exists(os.path.join(here, p)) else p for p in lines]


def run_record(args, seg, model: str, n_images: int) -> dict:
    """What ``run.json`` says about a run: the command, the model and options, and (filled in at the end)
    each output name with its source file and red-cell size, the skipped files, and its status."""
    from cellviewer import __version__
    from cellviewer.core.document import now_iso

    return {"cellviewer": __version__, "command": " ".join([PROG] + sys.argv[1:]), "started": now_iso(),
            "model": model, "model_version": str(getattr(seg, "version", "")),
            # tta: what the segmenter does (the card's own unless --tta; classical models have none);
            # morphology: whether red cells get a morphology class (never with a classical model)
            "options": {"device": args.device, "tta": str(getattr(seg, "tta", None) or "none"),
                        "tta_given": args.tta, "border_cells": args.border_cells,
                        "morphology": bool(getattr(seg, "morphology", False)) and not args.no_morphology,
                        "diameter_px": args.diameter_px, "um_per_px": args.um_per_px},
            "images_given": n_images, "status": "running"}


def _readable(data):
    """``data`` with every string in its :func:`~cellviewer.core.csvtext.readable` form (valid UTF-8 JSON)."""
    from cellviewer.core.csvtext import readable

    if isinstance(data, dict):
        return {readable(k): _readable(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_readable(v) for v in data]
    return readable(data)


def write_json(path: str, data) -> None:
    """Write ``data`` as JSON atomically (never half a file); :class:`SaveError` (exit 5) when it fails. A file
    name that is not valid UTF-8 is written in its readable form (``caf\\xe9.png``)."""
    import json

    from cellviewer.core.atomic import atomic_write_bytes

    try:
        atomic_write_bytes(path, (json.dumps(_readable(data), indent=2) + "\n").encode("utf-8"))
    except OSError as e:
        raise SaveError(f"Cannot write '{path}': {e.strerror or e}",
                        hint="free some disk space or choose another folder with --out") from e
