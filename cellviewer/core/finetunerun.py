"""The review loop without a display: fine-tune a model on reviewed corrections, gate it, store it.

One runner for ``cellviewer finetune`` and ``python -m cellviewer.core.morphfinetune`` (the GUI's Training
panel runs the same core jobs). The base decides which loop: a segmenter (``blood-cells`` or a stored
version of it: :func:`cellviewer.core.finetune.finetune` + :func:`cellviewer.core.gate.regression_gate`)
or the red-cell morphology classifier (:func:`cellviewer.core.morphfinetune.finetune_morphology` +
:func:`~cellviewer.core.morphfinetune.morphology_gate`). Then:

* the gate's table is printed (old vs new on the export's held-out ``test`` images, and on every image
  of a fixed reference export when given — as the GUI does);
* accepted and ``--store``: the new model is stored as the next version of its name and made active
  (:func:`cellviewer.core.finetune.store_result`; ``cellviewer versions NAME --rollback`` undoes it);
* exit 0 when the gate accepts, 1 when it refuses (nothing is stored).
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

from cellviewer.core.cliopts import positive_float, positive_int
from cellviewer.core.csvtext import unquote_rows

EXIT_CODES = ("exit codes: 0 accepted (stored and active with --store); 1 refused by the gate (nothing stored); "
              "2 usage error (e.g. an export without held-out images); 5 cannot write; 6 model unknown; "
              "130 interrupted")


#: (minutes, epochs) when not given: a segmenter's fine-tuning, the morphology classifier's (smaller and faster)
SEGMENTER_BUDGET = (10.0, 20)
MORPHOLOGY_BUDGET = (5.0, 30)


def add_arguments(ap, default_base: str) -> None:
    ap.add_argument("data", nargs="+", help="a cellviewer export folder, or reviewed images / folders (exported first)")
    ap.add_argument("--out", required=True, help="checkpoint stem of the fine-tuned model (e.g. runs/ft/lab)")
    ap.add_argument("--base", default=default_base,
                    help="model to start from: name (its active stored version) or checkpoint stem (default %(default)s)")
    ap.add_argument("--minutes", type=positive_float, default=None,
                    help=f"wall-time budget (default {SEGMENTER_BUDGET[0]:g} for a segmenter, "
                         f"{MORPHOLOGY_BUDGET[0]:g} for rbc-morphology)")
    ap.add_argument("--epochs", type=positive_int, default=None,
                    help=f"at most this many epochs (default {SEGMENTER_BUDGET[1]} for a segmenter, "
                         f"{MORPHOLOGY_BUDGET[1]} for rbc-morphology)")
    ap.add_argument("--lr", type=positive_float, default=None, help="learning rate (default: a fraction of the base's)")
    ap.add_argument("--reference", help="an export the lab keeps fixed: the new model must not be worse on any of its "
                                        "images either")
    ap.add_argument("--min-gain", type=_gain, default=0.0,
                    help="required gain of the held-out score, a fraction (-1..1; 0.01 = one point; a negative "
                         "value allows that much loss)")
    ap.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--device", default="auto",
                    help="auto (a CUDA GPU when there is one) / cpu / cuda / cuda:N, for a segmenter (default %(default)s)")
    ap.add_argument("--store", action="store_true", help="store and activate the new version when the gate accepts")


def _export_splits(folder) -> list[str] | None:
    """The ``split`` of every image of the export ``folder`` (None: not an export)."""
    p = Path(folder) / "images.csv"
    if not p.is_file():
        return None
    with open(p, newline="", encoding="utf-8") as f:
        return [str(r.get("split")) for r in unquote_rows(csv.DictReader(f))]


def _check_held_out(data) -> None:
    """An export must hold held-out (``test``) images for the gate: checked before any training."""
    if not isinstance(data, str):
        return
    if "test" not in (_export_splits(data) or []):
        from cellviewer.core.errors import OptionError

        raise OptionError(f"The export '{data}' has no held-out (test) images for the gate.",
                          hint="export it again with a test part (cellviewer export --holdout 0.2)")


def _check_data(paths: list[str]) -> None:
    """Every image or folder given exists, and a folder holds images: checked before any training."""
    from cellviewer.core.errors import OptionError

    for d in paths:
        p = Path(d)
        if not p.exists():
            raise OptionError(f"'{d}' does not exist.",
                              hint="give a cellviewer export folder, or reviewed images or folders of them")
        if p.is_dir() and _export_splits(p) is None:
            from cellviewer.core.io import list_images

            if not list_images([str(p)]):
                raise OptionError(f"There are no images in '{d}'.",
                                  hint="give the folder of the reviewed images (or a cellviewer export of them)")


def _check_reference(reference) -> None:
    """``--reference`` names an export with images (the gate scores every one of them): checked before training."""
    if not reference:
        return
    from cellviewer.core.errors import OptionError

    splits = _export_splits(reference)
    if splits is None:
        raise OptionError(f"The reference '{reference}' is not a cellviewer export (no images.csv there).",
                          hint="give a folder written by 'cellviewer export IMAGES --out DIR' as --reference")
    if not splits:
        raise OptionError(f"The reference export '{reference}' has no images.",
                          hint="export reviewed images into it (cellviewer export), or leave --reference out")


class _Say:
    """Progress on stderr: a changed message at most once a second (a training run reports every step)."""

    def __init__(self) -> None:
        self.last, self.at = "", 0.0

    def __call__(self, p) -> None:
        if p.note:
            print(f"cellviewer: note: {p.note}", file=sys.stderr, flush=True)
        now = time.monotonic()
        if p.message and p.message != self.last and now - self.at >= 1.0:
            self.last, self.at = p.message, now
            print(p.message, file=sys.stderr, flush=True)


def _gain(text: str) -> float:
    """An argparse type: a score gain as a fraction, -1..1 (``--min-gain 2`` would train for nothing)."""
    import argparse
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not (math.isfinite(v) and -1.0 <= v <= 1.0):
        raise argparse.ArgumentTypeError("must be a fraction between -1 and 1 (0.01 = one point)")
    return v


def run(args) -> int:
    """Fine-tune, gate and (``args.store``) store; the exit code (see :data:`EXIT_CODES`)."""
    from dataclasses import replace

    from cellviewer.core.finetune import finetune, gate_base, label_gate, store_result
    from cellviewer.core.gate import regression_gate
    from cellviewer.core.jobs import run_job
    from cellviewer.core.morphfinetune import finetune_morphology, morphology_base, morphology_gate

    data = args.data[0] if len(args.data) == 1 and (Path(args.data[0]) / "images.csv").is_file() else args.data
    _check_data(list(args.data))
    _check_held_out(data)
    _check_reference(args.reference)
    morph = morphology_base(args.base) is not None
    minutes, epochs = MORPHOLOGY_BUDGET if morph else SEGMENTER_BUDGET
    minutes = minutes if args.minutes is None else args.minutes
    epochs = epochs if args.epochs is None else args.epochs
    tune, gate_job = (finetune_morphology, morphology_gate) if morph else (finetune, regression_gate)
    device = {} if morph else {"device": getattr(args, "device", "cpu")}
    say = _Say()
    old, name, version = gate_base(args.base)  # the gate compares with exactly this version; the card says so
    try:
        res = run_job(tune(args.base, data, out=args.out, minutes=minutes, epochs=epochs, lr=args.lr,
                           threads=args.threads or None, **device), say)
        gate = label_gate(run_job(gate_job(old, res.checkpoint, res.data_dir, reference_items=args.reference,
                                           min_gain=args.min_gain, **device), say), name, version)
    except KeyboardInterrupt:  # Ctrl-C: say what became of the model (the CLI then exits 130)
        print(f"cellviewer: fine-tuning interrupted: nothing was stored and the active '{name}' is unchanged; "
              f"the best checkpoint so far, if an epoch ended, is {args.out}.json / .safetensors (not gated) — "
              "run the command again to start over", file=sys.stderr)
        raise
    print(gate.format_table())
    if gate.accepted and args.store:
        mv = store_result(replace(res, base_version=version), gate)
        print(f"stored and active: {mv.name} version {mv.version} ({mv.stem}); "
              f"undo with: cellviewer versions {mv.name} --rollback")
    elif gate.accepted:
        print(f"not stored (no --store): the fine-tuned model is {res.checkpoint}")
    return 0 if gate.accepted else 1

