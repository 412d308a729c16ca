"""``cellviewer review``: list the most doubtful cells of images with saved corrections.

Prints :func:`cellviewer.core.review.doubt_queue` of each image's document (restored from
its sidecar): class, cell, position, doubt and reasons, most doubtful first, and how many
cells are left to review. ``--csv FILE`` writes every queued cell.
"""

from __future__ import annotations

import sys

EPILOG = ("exit codes: 0 done; 1 some images failed (listed on stderr); 2 usage error; 3 image unreadable; 4 sidecar"
          " unreadable; 5 cannot write the --csv file")


def add_parser(sub) -> None:
    p = sub.add_parser("review", help="list the most doubtful cells (the review queue) of segmented images",
                       description="Order the cells of each image by doubt: low model score, disagreement between "
                                   "counting methods, unusual size or shape for their class.", epilog=EPILOG)
    p.add_argument("inputs", nargs="+", metavar="IMAGES_OR_DIRS", help="image files and/or folders")
    p.add_argument("--top", type=int, default=10, metavar="N", help="cells shown per image (default 10)")
    p.add_argument("--csv", metavar="FILE", help="write every queued cell to this CSV")
    p.set_defaults(func=handler)


def handler(args) -> int:
    import csv
    import io as io_text

    from cellviewer.cli import PROG, UsageError
    from cellviewer.core import io
    from cellviewer.core.atomic import check_writable, write_output
    from cellviewer.core.errors import CellviewerError
    from cellviewer.core.report import spreadsheet_safe
    from cellviewer.core.review import doubt_queue, remaining
    from cellviewer.core.sidecar import load_document

    if args.csv is not None:  # a bad path (or an empty name) fails before the images are read
        check_writable(args.csv, "--csv")
    images = io.list_images(args.inputs)
    if not images:
        raise UsageError("No images found in: " + ", ".join(f"'{p}'" for p in args.inputs) + ".",
                         hint="give image files or folders")
    rows, failed = [], 0
    for path in images:
        try:
            doc = load_document(path)
        except CellviewerError as e:
            if len(images) == 1:
                raise
            print(f"{PROG}: skipped {path}: {e.message}", file=sys.stderr)
            failed += 1
            continue
        q = doubt_queue(doc)
        print(f"{path.name}: {len(q)} cells, {remaining(q)} left to review"
              + ("" if doc.markers else " (no cells: segment and save it in the GUI first)"))
        for it in q[: args.top]:
            mark = "✓" if it.reviewed else " "
            print(f"  {mark} {it.cls:<8} cell {it.cell:<5} at ({it.x:6.0f}, {it.y:6.0f})  doubt {it.score:.2f}  "
                  + "; ".join(it.reasons))
        rows += [{"image": path.name, "cls": it.cls, "cell": it.cell, "x": round(it.x, 1), "y": round(it.y, 1),
                  "doubt": round(it.score, 4), "reviewed": int(it.reviewed), "reasons": "; ".join(it.reasons)}
                 for it in q]
    if args.csv is not None:  # atomically: never half a file
        buf = io_text.StringIO(newline="")
        w = csv.DictWriter(buf, ["image", "cls", "cell", "x", "y", "doubt", "reviewed", "reasons"])
        w.writeheader()
        w.writerows([{k: spreadsheet_safe(v) for k, v in r.items()} for r in rows])  # '=1+1.jpg' stays text
        write_output(args.csv, buf.getvalue(), "--csv")
    return 1 if failed else 0
