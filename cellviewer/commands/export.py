"""``cellviewer export``: reviewed corrections -> a training set (shared-data layout and/or COCO).

Wraps :func:`cellviewer.core.export_dataset.export_training_set` (layout in its docstring
and the README). Each image's corrections come from its sidecar; images without a sidecar,
or whose corrections are not marked reviewed (unless ``--all``), are listed on stderr as
skipped. Into a folder that already holds an export it merges (new images added, images exported
again replaced, the rest kept with their split; :mod:`cellviewer.core.export_merge`); ``--tile`` and
``--format`` must then be the earlier export's (else exit code 2).
"""

from __future__ import annotations

import sys

EPILOG = ("exit codes: 0 every image exported; 1 some images skipped (listed on stderr) or none exported; "
          "2 usage error (no images found, a tile under 16 px, other --format / --tile than the earlier export "
          "in --out); 5 cannot write; 130 interrupted")


def add_parser(sub) -> None:
    import argparse

    p = sub.add_parser("export", help="export reviewed corrections as a training set (shared layout / COCO)",
                       description="Write image + class map + instance labels per class + edge masks + markers "
                                   "(layout of shared/data) and/or COCO JSON (instance polygons) for every image "
                                   "whose corrections are marked reviewed.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="IMAGES_OR_DIRS", help="image files and/or folders (with sidecars)")
    p.add_argument("-o", "--out", required=True, metavar="DIR",
                   help="output folder (created if needed); an earlier export there is added to, not replaced")
    p.add_argument("--format", default="both", choices=("shared", "coco", "both"),
                   help="shared-data layout, COCO JSON, or both (default both)")
    p.add_argument("--tile", type=int, default=None, metavar="N", help="cut every image into N×N tiles (N ≥ 16)")
    p.add_argument("--all", action="store_true", help="also export images whose corrections are not marked reviewed")
    p.add_argument("--holdout", type=float, default=0.2, metavar="F",
                   help="share of the images in the held-out test split the regression gate uses (default 0.2)")
    p.add_argument("--val", type=float, default=0.1, metavar="F",
                   help="share of the images in the val split (model selection; default 0.1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=handler)


def handler(args) -> int:
    from cellviewer.cli import PROG, UsageError
    from cellviewer.core import io
    from cellviewer.core.export_dataset import check_options, export_training_set
    from cellviewer.core.jobs import run_job

    if not (0 <= args.holdout < 1 and 0 <= args.val < 1 and args.holdout + args.val < 1):
        raise UsageError("--holdout and --val must be shares between 0 and 1 that leave room for training.",
                         hint="e.g. --holdout 0.2 --val 0.1")
    formats = check_options(("shared", "coco") if args.format == "both" else (args.format,), args.tile)
    images = io.list_images(args.inputs)
    if not images:
        raise UsageError("No images found in: " + ", ".join(f"'{p}'" for p in args.inputs) + ".",
                         hint="give image files or folders")
    last = [""]

    def show(p) -> None:
        if not args.quiet and p.message != last[0]:
            last[0] = p.message
            print(f"[{int(100 * p.fraction):3d}%] {p.message}", file=sys.stderr, flush=True)

    res = run_job(export_training_set(images, args.out, formats=formats, tile=args.tile,
                                      reviewed_only=not args.all, merge=True,
                                      fractions=(1 - args.holdout - args.val, args.val, args.holdout)), show)
    for path, reason in res.skipped:
        print(f"{PROG}: skipped {path}: {reason}", file=sys.stderr)
    cells = ", ".join(f"{n} {c}" for c, n in res.n_cells.items())
    splits = ", ".join(f"{n} {s}" for s, n in sorted(res.splits.items()))
    print(f"{PROG}: exported {res.n_images} image{'s' if res.n_images != 1 else ''} ({cells}; {splits or 'none'}) "
          f"to {res.out_dir}" + (f"; {len(res.skipped)} skipped" if res.skipped else ""))
    if res.merged and res.n_images:
        print(f"{PROG}: added to the earlier export there: {res.added} new, {res.replaced} exported again "
              f"(replaced), {res.kept} kept; {res.added + res.replaced + res.kept} images in all (export.json)")
    for note in res.notes:  # e.g. no test image: the gate has nothing held out
        print(f"{PROG}: note: {note}", file=sys.stderr)
    if res.ignored_px:
        print(f"{PROG}: note: markers without an outline, or two on one outline, are marked 'not taught' in "
              f"ignore/ ({res.ignored_px} px)", file=sys.stderr)
    if res.uncounted:
        print(f"{PROG}: {res.uncounted} outline{'s' if res.uncounted != 1 else ''} without a count marker "
              "(marker removed by hand) left out", file=sys.stderr)
    if res.n_images == 0:
        why = ("no image has saved corrections (open and segment them in the GUI first)" if args.all
               else "mark corrected images as reviewed, or use --all")
        print(f"{PROG}: error: nothing was exported — {why}", file=sys.stderr)
        return 1
    return 1 if res.skipped else 0
