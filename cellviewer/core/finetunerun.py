"""The review loop without a display: fine-tune a model on reviewed corrections, gate it, store it.

One runner for ``cellviewer finetune`` and ``python -m cellviewer.core.morphfinetune`` (the GUI's Training
panel runs the same core jobs). The base decides which loop: a segmenter (``blood-cells`` or a stored
version of it: :func:`cellviewer.core.finetune.finetune` + :func:`cellviewer.core.gate.regression_gate`)
or the red-cell morphology classifier (:func:`cellviewer.core.morphfinetune.finetune_morphology` +
:func:`~cellviewer.core.morphfinetune.morphology_gate`). Then:

* the gate's table is printed (old vs new on the export's held-out ``test`` images, and on a fixed
  reference export when given);
* accepted and ``--store``: the new model is stored as the next version of its name and made active
  (:func:`cellviewer.core.finetune.store_result`; ``cellviewer versions NAME --rollback`` undoes it);
* exit 0 when the gate accepts, 1 when it refuses (nothing is stored).
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

from cellviewer.core.csvtext import unquote_rows

EXIT_CODES = ("exit codes: 0 accepted (stored and active with --store); 1 refused by the gate (nothing stored); "
              "2 usage error (e.g. an export without held-out images); 5 cannot write; 6 model unknown; "
              "130 interrupted")


def add_arguments(ap, default_base: str, default_minutes: float, default_epochs: int) -> None:
    ap.add_argument("data", nargs="+", help="a cellviewer export folder, or reviewed images / folders (exported first)")
    ap.add_argument("--out", required=True, help="checkpoint stem of the fine-tuned model (e.g. runs/ft/lab)")
    ap.add_argument("--base", default=default_base,
                    help="model to start from: name (its active stored version) or checkpoint stem (default %(default)s)")
    ap.add_argument("--minutes", type=float, default=default_minutes, help="wall-time budget (default %(default)s)")
    ap.add_argument("--epochs", type=int, default=default_epochs, help="at most this many epochs (default %(default)s)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: a fraction of the base's)")
    ap.add_argument("--reference", help="an export the lab keeps fixed: the new model must not be worse on it either")
    ap.add_argument("--min-gain", type=float, default=0.0, help="required gain of the held-out score (0..1)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="auto",
                    help="auto (a CUDA GPU when there is one) / cpu / cuda / cuda:N, for a segmenter (default %(default)s)")
    ap.add_argument("--store", action="store_true", help="store and activate the new version when the gate accepts")


def _check_held_out(data) -> None:
    """An export must hold held-out (``test``) images for the gate: checked before any training."""
    if not isinstance(data, str):
        return
    with open(Path(data) / "images.csv", newline="", encoding="utf-8") as f:
        if not any(r.get("split") == "test" for r in unquote_rows(csv.DictReader(f))):
            from cellviewer.core.errors import OptionError

            raise OptionError(f"The export '{data}' has no held-out (test) images for the gate.",
                              hint="export it again with a test part (cellviewer export --holdout 0.2)")


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


def run(args) -> int:
    """Fine-tune, gate and (``args.store``) store; the exit code (see :data:`EXIT_CODES`)."""
    from cellviewer.core.finetune import finetune, store_result
    from cellviewer.core.gate import regression_gate
    from cellviewer.core.jobs import run_job
    from cellviewer.core.morphfinetune import finetune_morphology, morphology_base, morphology_gate

    data = args.data[0] if len(args.data) == 1 and (Path(args.data[0]) / "images.csv").is_file() else args.data
    _check_held_out(data)
    morph = morphology_base(args.base) is not None
    tune, gate_job = (finetune_morphology, morphology_gate) if morph else (finetune, regression_gate)
    device = {} if morph else {"device": getattr(args, "device", "cpu")}
    say = _Say()
    res = run_job(tune(args.base, data, out=args.out, minutes=args.minutes, epochs=args.epochs, lr=args.lr,
                       threads=args.threads or None, **device), say)
    gate = run_job(gate_job(args.base, res.checkpoint, res.data_dir, reference_items=args.reference,
                            min_gain=args.min_gain, **device), say)
    print(gate.format_table())
    if gate.accepted and args.store:
        mv = store_result(res, gate)
        print(f"stored and active: {mv.name} version {mv.version} ({mv.stem}); "
              f"undo with: cellviewer versions {mv.name} --rollback")
    elif gate.accepted:
        print(f"not stored (no --store): the fine-tuned model is {res.checkpoint}")
    return 0 if gate.accepted else 1

