"""``cellviewer evaluate``: the papers' metric table of a model on a split of the shared data.

Wraps :func:`cellviewer.core.evaluate.evaluate_model` (options from
:func:`cellviewer.core.cliopts.add_evaluate_arguments`, shared with ``python -m
cellviewer.core.evaluate``) and prints :func:`~cellviewer.core.evaluate.format_table`:
per cell class counting accuracy, total counting accuracy, MAE and detection
precision / recall / F1 (box datasets); Dice/F1, IoU, precision, recall, specificity,
FPR, FNR, pixel accuracy and boundary F1 of the whole WBC, nucleus and cytoplasm plus
pixel accuracy, class pixel accuracy, mean IoU and misclassification error of the
3-class map (mask datasets); the share of points inside a predicted red cell (points).

``--check-card`` compares the numbers with the ones stored in the model card and
returns 1 when any differs (by more than ``--tolerance``); ``--write-card`` stores them.
"""

from __future__ import annotations

import argparse
import shlex
import sys

EPILOG = ("exit codes: 0 done (and, with --check-card, the card's numbers reproduced); 1 numbers differ "
          "from the card; 2 usage error or bad option (e.g. --device cuda without a GPU); 5 cannot write --json "
          "(checked before the run); 6 unknown model; 130 interrupted. A score that is 0/0 (precision with "
          "nothing predicted) is shown as — (null in --json)")


def add_parser(sub) -> None:
    from cellviewer.core.cliopts import add_evaluate_arguments

    p = sub.add_parser("evaluate", help="score a model on a split of the shared data (the papers' metrics)",
                       description="Run a model on a split of data in the shared layout (default: the test split "
                                   "of the development data, every image of any other --data folder) and "
                                   "print the full metric table.", epilog=EPILOG)
    add_evaluate_arguments(p)
    p.add_argument("--check-card", action="store_true",
                   help="compare with the metrics stored in the model card; exit 1 when they differ")
    p.add_argument("--tolerance", type=float, default=1e-4, metavar="T",
                   help="--check-card: largest absolute difference that counts as equal (default 1e-4)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=handler)


def command_of(args) -> str:
    """The ``cellviewer evaluate`` command that reproduces the numbers (no output options): the data folder
    (absolute) unless it is the development data, the split, datasets and scoring options."""
    from cellviewer.core.evaluate import data_of

    parts = ["cellviewer", "evaluate", "--model", args.model]
    if data_of(args.data) is not None:
        parts += ["--data", data_of(args.data)]
    parts += ["--split", args.split]
    if args.datasets:
        parts += ["--datasets", *dict.fromkeys(args.datasets)]
    if args.diameter:
        parts += ["--diameter", args.diameter]
    if args.limit:
        parts += ["--limit", str(args.limit)]
    if args.all_cells:
        parts.append("--all-cells")
    if getattr(args, "no_calibration", False):
        parts.append("--no-calibration")
    return shlex.join(parts)


class _Bar:
    """tqdm per dataset on a terminal, nothing otherwise."""

    def __init__(self, quiet: bool):
        self.on = not quiet and sys.stderr.isatty()
        self.bar, self.ds = None, None

    def __call__(self, ds: str, k: int, n: int, image_id: str) -> None:
        if not self.on:
            return
        if ds != self.ds:
            from tqdm import tqdm

            self.close()
            self.bar, self.ds = tqdm(total=n, desc=ds, unit="img", file=sys.stderr, dynamic_ncols=True), ds
        self.bar.set_postfix_str(image_id[:30], refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def card_metrics(model: str) -> dict | None:
    """The ``metrics`` of ``model``'s card (a name or a checkpoint's path; None when it has no card)."""
    from cellviewer.core.evaluate import model_card

    found = model_card(model)
    return None if found is None else (found[1].get("metrics") or {})


def card_to_check(args) -> dict:
    """The card metrics ``--check-card`` compares with, checked before the run (ModelLoadError, exit 6, when
    there are none). Without ``--data`` the data folder the card was scored on is scored (said on stderr)."""
    from cellviewer.core.errors import ModelLoadError

    metrics = card_metrics(args.model)
    if not metrics or not metrics.get("datasets"):
        raise ModelLoadError(f"Model '{args.model}' has no card with metrics to compare with.",
                             hint="run without --check-card, or store metrics with --write-card")
    if args.data is None and metrics.get("data"):
        args.data = metrics["data"]
        print(f"cellviewer: note: scoring the data the card was scored on: {args.data}", file=sys.stderr)
    return metrics


def check_card(args, res: dict, metrics: dict | None = None) -> int:
    from cellviewer.core.evaluate import data_of
    from cellviewer.core.modelcards import card_differences

    metrics = metrics if metrics is not None else card_to_check(args)
    if metrics.get("split") not in (None, args.split):
        print(f"note: the card reports the '{metrics['split']}' split, this run scored '{args.split}'")
    card = metrics["datasets"]
    if args.datasets:  # only the datasets asked for (and their sub-groups, e.g. txl_pbc:pbc)
        card = {g: v for g, v in card.items() if g.split(":")[0] in args.datasets
                or (g == "bccd_voc" and "bccd" in args.datasets)}
    diffs = card_differences(res["datasets"], card, args.tolerance)
    if "data" in metrics and metrics["data"] != data_of(args.data):  # other images: no number can be compared
        diffs.insert(0, ("data folder", metrics["data"] or "the development data",
                         data_of(args.data) or "the development data"))
    if not diffs:
        print(f"card check: every number of the card's metrics reproduced (tolerance {args.tolerance:g}); "
              f"card command: {metrics.get('command', '?')}")
        return 0
    print(f"card check: {len(diffs)} number(s) differ from the card (tolerance {args.tolerance:g}):")
    for path, want, measured in diffs:
        print(f"  {path}: card {_short(want)}, now {_short(measured)}")
    return 1


def _short(v) -> str:
    """A value for one line: a whole dataset's table (scored by the card, not by this run) is not printed."""
    return "(not scored in this run)" if v is None else ("(a table)" if isinstance(v, (dict, list)) else repr(v))


def handler(args: argparse.Namespace) -> int:
    import json

    from cellviewer.core.atomic import check_writable, write_output
    from cellviewer.core.datasets import print_notes
    from cellviewer.core.evaluate import card_to_write, evaluate_args, format_table, json_safe, store_metrics

    if (args.check_card or args.write_card) and args.limit:
        from cellviewer.cli import UsageError

        raise UsageError("--check-card and --write-card need the whole split; --limit scores part of it.",
                         hint="drop --limit")
    if args.json is not None:  # a bad path fails now, not after the whole split has run
        check_writable(args.json, "--json")
    # what --check-card / --write-card need is checked now, not after the whole split has run
    metrics = card_to_check(args) if args.check_card else None
    if args.write_card:
        card_to_write(args.model)
    bar = _Bar(args.quiet)
    try:
        res = evaluate_args(args, on_image=bar)
    finally:
        bar.close()
    print_notes(res.get("notes", []))
    print(format_table(res))
    rc = 0
    if args.json is not None:  # atomically: an interrupted write never leaves half a file
        write_output(args.json, json.dumps(json_safe(res), indent=1, allow_nan=False), "--json")
    if args.check_card:
        rc = check_card(args, res, metrics)
    if args.write_card:
        print(f"metrics written to {store_metrics(args.model, res, command_of(args), args.data)}")
    return rc
