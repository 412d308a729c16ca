"""``cellviewer finetune``: the review loop without a display — fine-tune a model on reviewed corrections,
gate it against the model it started from on their held-out part, and store it as the next version.

The same jobs as the GUI's Training panel (:mod:`cellviewer.core.finetunerun`): the base is a segmenter
(default ``blood-cells``, or its active stored version) or the red-cell morphology model
(``--base rbc-morphology``).
"""

from __future__ import annotations


def add_parser(sub) -> None:
    from cellviewer.core import finetunerun

    p = sub.add_parser("finetune", help="fine-tune a model on reviewed corrections, gate it, store it (--store)",
                       description="Fine-tune a model on an export of reviewed corrections (or reviewed images, "
                                   "exported first), compare it with the model it started from on the export's "
                                   "held-out images (the regression gate), and with --store keep it as the next "
                                   "version of its name, active at once (cellviewer versions NAME --rollback "
                                   "undoes that).",
                       epilog=finetunerun.EXIT_CODES)
    finetunerun.add_arguments(p, "blood-cells")
    p.set_defaults(func=handler)


def handler(args) -> int:
    from cellviewer.core import finetunerun

    return finetunerun.run(args)
