"""Choose a model's post-processing by a grid search on one split, over cached net outputs.

The net's output (class probabilities and edge probability, after the card's test-time
augmentation) does not depend on the post-processing settings, so each image is run
through the net once (per working-scale pass) and every setting of the grid re-scores
the cached outputs: a grid of 50 settings costs about one evaluation plus 50 times the
instance step. Settings are keyed ``"<postprocess key>.<class>"``, as in a model card's
``postprocess``: ``edge_threshold.rbc`` (a number), ``min_fracs.rbc`` (``[seed, cell]``),
``border_fracs.platelet`` (a number), ``merge_fragments.rbc`` (``[max area, min contact]``
or ``null``: off).

The objective is the mean, in percent, of per-class counting accuracy and detection F1
over the box datasets scored (``bccd`` and ``txl_pbc``: 12 numbers for three classes), the
number the README's model history uses. ``python -m cellviewer.core.postgrid --model NAME
--split train --grid '{"edge_threshold.rbc": [0.4, 0.5, 0.6]}'`` prints every setting's
objective, best first, and the card's own setting for comparison (``--json`` keeps them).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import sys

from cellviewer.core.errors import OptionError, script_main
from cellviewer.core.instances import MIN_FRACS

#: card ``postprocess`` key -> the segmenter attribute that holds it (per class)
ATTRS = {"edge_threshold": "edge_threshold", "min_fracs": "fracs", "border_fracs": "border_fracs",
         "merge_fragments": "merge"}
CELLS = ("rbc", "wbc", "platelet")
#: what a class without a card entry gets (core.instances)
DEFAULTS = {"edge_threshold": {c: 0.5 for c in CELLS}, "min_fracs": MIN_FRACS}


def cache_predictions(seg) -> dict:
    """Wrap ``seg.predict`` so that each distinct input image runs through the net once; returns the cache."""
    cache: dict = {}
    original = seg.predict

    def predict(image_small, cancel=None, log=None):
        key = (image_small.shape, hashlib.sha1(image_small.tobytes()).hexdigest())
        if key not in cache:
            cache[key] = yield from original(image_small, cancel, log)
        return cache[key]

    seg.predict = predict
    return cache


def expand(grid: dict) -> list[dict]:
    """All combinations of a grid ``{"key.class": [values]}`` (checked), as a list of settings."""
    for key, values in grid.items():
        name, _, cls = key.partition(".")
        if name not in ATTRS or cls not in CELLS:
            raise OptionError(f"Unknown grid key {key!r}.",
                              hint=f"use <{'|'.join(ATTRS)}>.<{'|'.join(CELLS)}>, e.g. edge_threshold.rbc")
        if not isinstance(values, list) or not values:
            raise OptionError(f"Grid key {key!r} needs a non-empty list of values.")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def apply(seg, setting: dict) -> None:
    """Set a segmenter's post-processing to ``setting`` (``None`` removes a class's entry)."""
    for key, value in setting.items():
        name, _, cls = key.partition(".")
        table = getattr(seg, ATTRS[name])
        if value is None:
            table.pop(cls, None)
        else:
            table[cls] = tuple(value) if isinstance(value, list) else float(value)


def current(seg, keys) -> dict:
    """The segmenter's own values of the grid's keys (``None``: not set)."""
    out = {}
    for key in keys:
        name, _, cls = key.partition(".")
        v = getattr(seg, ATTRS[name]).get(cls, DEFAULTS.get(name, {}).get(cls))
        out[key] = list(v) if isinstance(v, tuple) else v
    return out


def objective(result: dict) -> tuple[float, dict]:
    """``(mean in %, the numbers)`` of counting accuracy and F1 per class over the box datasets."""
    nums = {}
    for group in ("bccd", "txl_pbc"):
        summary = result["datasets"].get(group)
        if not summary:
            continue
        for c in CELLS:
            for metric in ("count_accuracy", "f1"):
                v = summary[c][metric]
                if v is not None and math.isfinite(v):
                    nums[f"{group} {c} {metric}"] = 100.0 * v
    if not nums:
        raise OptionError("No box dataset was scored.", hint="the objective needs bccd or txl_pbc in the data folder")
    return sum(nums.values()) / len(nums), nums


def search(seg, grid: dict, split: str, data_dir=None, datasets=None, log=None) -> list[dict]:
    """Score the segmenter's own setting, then every grid setting, on ``split``; rows best first."""
    from cellviewer.core.evaluate import evaluate_model

    settings = expand(grid)
    own = current(seg, grid)
    cache_predictions(seg)
    rows = []
    for i, setting in enumerate([own] + [s for s in settings if s != own]):
        apply(seg, setting)
        res = evaluate_model(seg, data_dir, split, datasets=datasets or ["bccd", "txl_pbc"])
        score, nums = objective(res)
        rows.append({"setting": setting, "objective": score, "numbers": nums, "card": i == 0})
        if log is not None:
            log(f"{i + 1}/{len(settings) + (own not in settings)}  {score:.3f}  {json.dumps(setting)}")
    apply(seg, own)
    return sorted(rows, key=lambda r: -r["objective"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cellviewer.core.postgrid", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="blood-cells")
    ap.add_argument("--split", default="val")
    ap.add_argument("--data", default=None, help="data folder in the shared layout (default: the development data)")
    ap.add_argument("--grid", required=True, help='JSON, e.g. \'{"edge_threshold.rbc": [0.4, 0.5, 0.6]}\'')
    ap.add_argument("--tta", default=None, help="test-time augmentation (default: the card's)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for the net (default: torch's)")
    ap.add_argument("--json", default=None, help="write every row here")
    args = ap.parse_args(argv)

    def body() -> None:
        from cellviewer.core.segment import create_segmenter

        try:
            grid = json.loads(args.grid)
        except json.JSONDecodeError as e:
            raise OptionError(f"--grid is not JSON: {e}.", hint='e.g. \'{"edge_threshold.rbc": [0.4, 0.5]}\'') from e
        seg = create_segmenter(args.model, device="cpu", threads=args.threads,
                               **({"tta": args.tta} if args.tta else {}))
        rows = search(seg, grid, args.split, args.data, log=lambda m: print(m, file=sys.stderr, flush=True))
        for r in rows:
            print(f"{r['objective']:8.3f}  {'(card) ' if r['card'] else ''}{json.dumps(r['setting'])}")
        if args.json:
            from cellviewer.core.atomic import write_output

            write_output(args.json, json.dumps(rows, indent=1))

    return script_main(body)


if __name__ == "__main__":
    sys.exit(main())
