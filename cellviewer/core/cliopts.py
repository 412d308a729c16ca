"""Command-line options of the long core jobs, shared by ``cellviewer train`` / ``cellviewer
evaluate`` and ``python -m cellviewer.core.training`` / ``python -m cellviewer.core.evaluate``.

Light on purpose (no numpy, torch or Qt at import): ``cellviewer --help`` builds these
parsers. Dataset names are checked by :mod:`cellviewer.core.datasets` when they are read
(the lists here are for the help text; a test keeps them in step).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cellviewer.core.errors import OptionError

#: cellviewer.core.datasets.DATASETS / SPLITS (kept in step by tests/core/test_cliopts.py)
DATASETS: tuple[str, ...] = ("bccd", "txl_pbc", "wbc_seg", "chula_rbc12")
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: what training reads (chula_rbc12 has points only: a recall check, not labels)
TRAIN_DATASETS: tuple[str, ...] = ("bccd", "txl_pbc", "wbc_seg", "synthetic")


def whole_number(text: str, least: int = 1) -> int:
    """An argparse type: a whole number of at least ``least``."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if v < least:
        raise argparse.ArgumentTypeError(f"must be {least} or more")
    return v


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number")
    return v


# -- train -------------------------------------------------------------------------------------
def add_train_arguments(ap: argparse.ArgumentParser) -> None:
    """The training options (shared by ``cellviewer train`` and ``python -m cellviewer.core.training``)."""
    ap.add_argument("--config", help="TrainConfig options as a JSON file or JSON text (flags below override)")
    ap.add_argument("--datasets", nargs="+", metavar="NAME",
                    help=f"datasets to train on: {', '.join(TRAIN_DATASETS)} (wbc_seg alone: a nucleus/cytoplasm "
                         "model), or export: a folder written by 'cellviewer export' given as --data")
    ap.add_argument("--data", help="data root (default: <repo>/../shared/data)")
    ap.add_argument("--arch", help="architecture from cellviewer.nets.registry (e.g. do-unet, wbc-net; with --resume "
                                   "only the checkpoint's)")
    ap.add_argument("--net-config", help="architecture options as JSON, e.g. '{\"base\": 16}' (n_classes comes from "
                                         "--datasets; with --resume only the checkpoint's)")
    ap.add_argument("--working-scale", type=float, help="expected RBC diameter (px) the net works at")
    ap.add_argument("--epochs", type=positive_int,
                    help="epoch budget of phase 1 (a resumed run counts on from its epoch)")
    ap.add_argument("--minutes", type=positive_float, help="wall-time budget of this run (the LR anneals to it)")
    ap.add_argument("--steps-per-epoch", type=positive_int)
    ap.add_argument("--batch-size", type=positive_int)
    ap.add_argument("--lr", type=positive_float)
    ap.add_argument("--two-phase", action="store_true", help="DO-U-Net transfer: mask first, then the edge head")
    ap.add_argument("--resume", metavar="STEM",
                    help="checkpoint stem to continue from (e.g. OUT-last): its run's options, calibration and best "
                         "checkpoint are kept (options given here override them); other classes or datasets, and "
                         "epochs already used up, are refused")
    ap.add_argument("--threads", type=positive_int)
    ap.add_argument("--device", help="cpu, cuda, mps")
    ap.add_argument("--name", help="model name in the card (default: the --out file name, e.g. runs/x/lab: lab; "
                                   "with --resume the checkpoint's name)")
    ap.add_argument("--out", help="output checkpoint stem (writes STEM.json + STEM.safetensors; with --resume "
                                  "RUN-last the default is RUN, beside it)")


def _json_option(text: str, flag: str) -> dict:
    try:
        d = json.loads(text)
    except ValueError as e:
        raise OptionError(f"{flag} is not valid JSON ({e}).", hint=f"e.g. {flag} '{{\"base\": 16}}'") from e
    if not isinstance(d, dict):
        raise OptionError(f"{flag} must be a JSON object, got {type(d).__name__}.",
                              hint=f"e.g. {flag} '{{\"base\": 16}}'")
    return d


def train_config_from_args(args):
    """A :class:`~cellviewer.core.training.TrainConfig` from the options of :func:`add_train_arguments`
    (flags override ``--config``; with ``--resume``, both override the resumed run's own options)."""
    from cellviewer.core.training import TrainConfig

    d: dict = {}
    from_config: dict = {}
    if args.resume:  # the run goes on as it was started, unless told otherwise
        from dataclasses import fields

        from cellviewer.core.trainresume import options_of

        known = {f.name for f in fields(TrainConfig)}
        d = {k: v for k, v in options_of(args.resume).items() if k in known}
    if args.config:
        text = args.config
        if not text.lstrip().startswith("{"):  # a file
            try:
                text = Path(text).read_text(encoding="utf-8")
            except OSError as e:
                raise OptionError(f"Cannot read --config file '{args.config}': {e.strerror or e}.",
                                      hint="give a JSON file or JSON text such as '{\"patience\": 30}'") from e
        from_config = _json_option(text, "--config")
        d.update(from_config)
    flags = {"datasets": args.datasets, "data_root": args.data, "architecture": args.arch,
             "working_scale": args.working_scale, "epochs": args.epochs, "max_minutes": args.minutes,
             "steps_per_epoch": args.steps_per_epoch, "batch_size": args.batch_size, "lr": args.lr,
             "resume": args.resume, "threads": args.threads, "device": args.device, "name": args.name,
             "out": args.out, "two_phase": args.two_phase or None,
             "net_config": _json_option(args.net_config, "--net-config") if args.net_config else None}
    d.update({k: v for k, v in flags.items() if v is not None})
    if args.resume and "out" not in d:  # beside the checkpoint, not where the run was first written
        from cellviewer.core.trainresume import out_beside

        d["out"] = out_beside(args.resume)
    cfg = TrainConfig.from_dict(d)
    if args.resume and (args.arch or args.net_config or {"architecture", "net_config"} & set(from_config)):
        from cellviewer.core.trainresume import check_net
        from cellviewer.nets.checkpoint import read_card

        check_net(cfg, read_card(args.resume))  # the net goes on as it is: another one asked for is refused
    return cfg


# -- evaluate ----------------------------------------------------------------------------------
def add_evaluate_arguments(ap: argparse.ArgumentParser) -> None:
    """The evaluation options (shared by ``cellviewer evaluate`` and ``python -m cellviewer.core.evaluate``)."""
    ap.add_argument("--model", required=True, help="a segmenter name (models/*.json card name or classical)")
    ap.add_argument("--data", default=None, metavar="DIR", help="data root in the shared layout "
                    "(default: <repo>/../shared/data)")
    ap.add_argument("--split", default=None, choices=(*SPLITS, "all"),
                    help="split to score, or all images (default: test on the development data, "
                         "all with --data pointing elsewhere)")
    ap.add_argument("--datasets", nargs="+", metavar="NAME",
                    help=f"any of {', '.join(DATASETS)} (default: wbc_seg for nucleus/cytoplasm models, "
                         "else bccd txl_pbc chula_rbc12; those in the data folder), or export: a folder written by "
                         "'cellviewer export' given as --data (its boxes scored like bccd's)")
    ap.add_argument("--diameter", choices=("estimate", "annotation"),
                    help="RBC size: estimated by the model (default; annotation for wbc_seg) or from the labels")
    ap.add_argument("--limit", type=positive_int, metavar="N", help="only the first N images of each dataset")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    ap.add_argument("--all-cells", action="store_true", help="wbc_seg: score every predicted WBC, not the central one")
    ap.add_argument("--no-calibration", action="store_true",
                    help="do not give the segmenter a source's pixel size (chula_rbc12: 0.17 µm/px), so red-cell "
                         "morphology is classed without the size prior, as on an uncalibrated image")
    ap.add_argument("--json", metavar="FILE", help="write the full result (with per-image rows) to this file")
    ap.add_argument("--write-card", action="store_true", help="store the summary as the card's metrics")
