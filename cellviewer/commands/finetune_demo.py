"""``cellviewer finetune-demo``: the measured human-in-the-loop demonstration.

Starting from the shipped ``blood-cells`` model, the annotations of train-split images of
``shared/data`` play the corrected data: export, fine-tune on CPU within ``--minutes``, gate
against the base on held-out test-split images (before/after), store + rollback, and a
fine-tune on shuffled labels that the gate refuses. See :mod:`cellviewer.core.finetune_demo`.
"""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("finetune-demo", help="demonstrate export -> fine-tune -> regression gate on shared data",
                       description="Fine-tune the shipped model on shared-data annotations acting as corrections, "
                                   "gate it on held-out images, and show the gate refusing a shuffled-label model.",
                       epilog="exit codes: 0 done; 6 base model missing; 130 interrupted")
    from cellviewer.core.finetune_demo import add_arguments

    add_arguments(p)
    p.set_defaults(func=handler)


def handler(args) -> int:
    from cellviewer.core.finetune_demo import run_from_args

    return run_from_args(args)
