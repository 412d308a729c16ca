"""The regression gate: a new model is accepted only if it is not worse on images it never saw.

:func:`regression_gate` is a long job that runs the old and the new model on the same
held-out annotated images (``items``: :class:`~cellviewer.core.datasets.Sample` objects with
boxes — e.g. the ``test`` split of an export, :func:`cellviewer.core.export_read.load_exported`
— or an export folder, whose ``test`` split is used) and, when given, on a reference set the
lab keeps fixed (``reference_items``: samples, or an export folder whose images are *all* used —
the lab's reference is held out as a whole; one without images is an error, never skipped). Scoring is that of :mod:`cellviewer.core.evaluate`
for box data: per class counting accuracy ``1 − |pred − true| / true`` and detection F1
(a marker inside a box, one-to-one).

**Primary metric** ``score`` = the mean, over the classes present, of ``(count accuracy +
F1) / 2``. The gate **accepts** when the new score on the held-out items is at least the old
score + ``min_gain`` *and* the new score on the reference set (if any) is not lower than
the old one; otherwise it **refuses** and says why. :class:`GateResult` holds the table
(``rows``: metric, old, new, delta) and :meth:`GateResult.format_table` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellviewer.core.errors import CellviewerError
from cellviewer.core.jobs import CancelToken, Job, Progress

CLASSES = ("rbc", "wbc", "platelet")
PRIMARY = "score"


@dataclass
class GateResult:
    """Old vs new: ``rows`` of ``(metric, old, new, delta)`` (``set:metric`` names), the verdict
    and its reason, and the per-set summaries (``details``, evaluate's box summary format)."""

    rows: list[tuple[str, float, float, float]]
    accepted: bool
    reason: str
    old_name: str = ""
    new_name: str = ""
    details: dict = field(default_factory=dict)
    nothing_new: bool = False  # the fine-tune kept the base's weights: no override can store anything new

    def value(self, metric: str, which: str = "new") -> float:
        for m, o, n, _ in self.rows:
            if m == metric:
                return n if which == "new" else o
        raise KeyError(metric)

    def as_dict(self) -> dict:
        """JSON-ready (for the model card's ``gate`` entry)."""
        return {"old": self.old_name, "new": self.new_name, "accepted": self.accepted, "reason": self.reason,
                "rows": [{"metric": m, "old": round(o, 5), "new": round(n, 5), "delta": round(d, 5)}
                         for m, o, n, d in self.rows]}

    def format_table(self) -> str:
        w = max([len(r[0]) for r in self.rows] + [6])
        lines = [f"old = {self.old_name}, new = {self.new_name} (percent)",
                 f"{'metric':<{w}}  {'old':>8}  {'new':>8}  {'delta':>8}"]
        for m, o, n, d in self.rows:
            lines.append(f"{m:<{w}}  {100 * o:8.2f}  {100 * n:8.2f}  {100 * d:+8.2f}")
        lines.append(("ACCEPTED: " if self.accepted else "REFUSED: ") + self.reason)
        return "\n".join(lines)


def _segmenter(model, device: str):
    """A segmenter from a registered name, a checkpoint stem/path or a segmenter object."""
    if not isinstance(model, (str, Path)):
        return model
    s = str(model)
    stem = s.removesuffix(".json").removesuffix(".safetensors")
    if Path(stem + ".json").is_file() and Path(stem + ".safetensors").is_file():
        from cellviewer.core.netsegment import NetSegmenter

        return NetSegmenter(stem, device=device)
    from cellviewer.core.segment import create_segmenter

    return create_segmenter(s, device=device)


def _where(items) -> str:
    return f" '{items}'" if isinstance(items, (str, Path)) else ""


def _items(items, split: str | None = "test") -> list:
    if items is None:
        return []
    if isinstance(items, (str, Path)):
        from cellviewer.core.export_read import load_exported

        return load_exported(items, split)
    out = list(items)
    bad = [s for s in out if getattr(s, "boxes", None) is None]
    if bad:
        raise CellviewerError(f"{len(bad)} gate image(s) have no boxes to count against (e.g. '{bad[0].image_id}').",
                              hint="use reviewed exports or box datasets (bccd, txl_pbc)")
    return out


def summarize(summary: dict) -> dict[str, float]:
    """Per-class and primary metrics from evaluate's box summary."""
    out: dict[str, float] = {}
    per = []
    for c in CLASSES:
        s = summary[c]
        if s["n_true"] == 0 and s["n_pred"] == 0:
            continue
        acc = s["count_accuracy"] if np.isfinite(s["count_accuracy"]) else (1.0 if s["n_pred"] == 0 else 0.0)
        out[f"{c} count acc"], out[f"{c} F1"] = float(acc), float(s["f1"])
        per.append((acc + s["f1"]) / 2)
    out[PRIMARY] = float(np.mean(per)) if per else 0.0
    return out


def score_items(seg, samples: list, cancel: CancelToken | None = None, label: str = "") -> Job[dict]:
    """Long job: evaluate's box summary of ``seg`` on ``samples``."""
    from cellviewer.core.evaluate import _add_boxes, _box_acc, _box_summary
    from cellviewer.core.jobs import run_job

    acc = _box_acc()
    for k, s in enumerate(samples):
        if cancel is not None:
            cancel.check()
        yield Progress(k / max(1, len(samples)), f"{label} {k + 1}/{len(samples)}: {s.image_id}")
        res = run_job(seg.segment(s.read_image(), cancel))
        _add_boxes(acc, res, s)
    return _box_summary(acc, len(samples))


FEW_HELD_OUT = 5  #: under this many held-out images the verdict says how little it rests on


def regression_gate(old, new, items, *, reference_items=None, min_gain: float = 0.0, device: str = "cpu",
                    cancel: CancelToken | None = None) -> Job[GateResult]:
    """Long job: score ``old`` and ``new`` (names, checkpoint stems or segmenters) on ``items``
    and ``reference_items``; returns a :class:`GateResult` (see the module docstring).

    A name resolves to what is registered now (a store name to its *active* version); pass a
    checkpoint stem (e.g. :attr:`ModelVersion.stem <cellviewer.core.modelstore.ModelVersion>`)
    to pin one version."""
    held, ref = _items(items), _items(reference_items, split=None)
    if not held:
        raise CellviewerError("The gate has no held-out images to compare the models on.",
                              hint="review more images (the export's test split is held out) or pass --holdout")
    if reference_items is not None and not ref:
        raise CellviewerError(f"The reference set{_where(reference_items)} has no images to compare the models on.",
                              hint="give an export of reviewed images as the reference (cellviewer export), or none")
    sets = [("held-out", held)] + ([("reference", ref)] if ref else [])
    segs = {"old": _segmenter(old, device), "new": _segmenter(new, device)}
    total = sum(len(s) for _, s in sets) * 2
    done, details = 0, {}
    for set_name, samples in sets:
        for which, seg in segs.items():
            job = score_items(seg, samples, cancel, f"{which} model, {set_name}")
            while True:
                try:
                    p = next(job)
                except StopIteration as stop:
                    details[(set_name, which)] = stop.value
                    break
                yield Progress((done + p.fraction * len(samples)) / total, p.message, note=p.note)
            done += len(samples)
    rows, verdict = [], {}
    for set_name, _ in sets:
        o, n = summarize(details[(set_name, "old")]), summarize(details[(set_name, "new")])
        for m in [PRIMARY] + [k for k in o if k != PRIMARY]:
            rows.append((f"{set_name}: {m}", o.get(m, 0.0), n.get(m, 0.0), n.get(m, 0.0) - o.get(m, 0.0)))
        verdict[set_name] = n[PRIMARY] - o[PRIMARY]
    gain = verdict["held-out"]
    if gain < min_gain:
        accepted = False
        reason = (f"the new model is worse on the held-out images ({100 * gain:+.2f} points)" if gain < 0 else
                  f"the gain on the held-out images ({100 * gain:+.2f} points) is below the required "
                  f"{100 * min_gain:.2f}")
    elif verdict.get("reference", 0.0) < 0:
        accepted = False
        reason = f"the new model is worse on the reference set ({100 * verdict['reference']:+.2f} points)"
    else:
        accepted = True
        reason = f"held-out score {100 * gain:+.2f} points" + (
            f", reference {100 * verdict['reference']:+.2f}" if "reference" in verdict else "")
    if len(held) < FEW_HELD_OUT:
        reason += (f"; judged on {len(held)} held-out image{'s' if len(held) != 1 else ''} only: review more "
                   f"images (a fifth of them are held out) before trusting either verdict")
    yield Progress(1.0, ("accepted: " if accepted else "refused: ") + reason)
    name = lambda m, s: Path(m).name if isinstance(m, (str, Path)) else getattr(s, "name", "?")  # noqa: E731
    return GateResult(rows, accepted, reason, name(old, segs["old"]), name(new, segs["new"]),
                      {f"{a}:{b}": v for (a, b), v in details.items()})
