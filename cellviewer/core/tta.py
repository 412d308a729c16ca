"""Test-time augmentation: a net's logits averaged over flips (and transposes) of its input.

A segmentation net is not exactly equivariant to flips; averaging its outputs over the
eight symmetries of the square (``"d4"``) or the four flips (``"flips"``) removes part
of that noise at 4-8x the prediction time. The mode is chosen by the model card
(``inference.tta``) or per run (``NetSegmenter(tta=...)``); ``"none"`` is one pass.

Each transform is ``(transpose, flip_rows, flip_cols)`` applied to the H×W×C image in that
order; its inverse is applied to the C×H×W outputs in the reverse order.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from cellviewer.core.errors import CellviewerError
from cellviewer.core.jobs import Job, Progress

Transform = tuple[bool, bool, bool]
MODES: dict[str, tuple[Transform, ...]] = {
    "none": ((False, False, False),),
    "flips": ((False, False, False), (False, False, True), (False, True, False), (False, True, True)),
    "d4": tuple((t, r, c) for t in (False, True) for r in (False, True) for c in (False, True)),
}


def transforms(mode: str | None) -> tuple[Transform, ...]:
    """The transforms of ``mode`` (None = ``"none"``); an unknown name raises with the valid ones."""
    key = (mode or "none").lower()
    if key not in MODES:
        raise CellviewerError(f"Unknown test-time augmentation '{mode}'.",
                              hint=f"use one of: {', '.join(MODES)}")
    return MODES[key]


def forward(image: np.ndarray, t: Transform) -> np.ndarray:
    """``image`` (H×W[×C]) under transform ``t``, as a contiguous array."""
    out = image.swapaxes(0, 1) if t[0] else image
    if t[1]:
        out = out[::-1]
    if t[2]:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def inverse(output: np.ndarray, t: Transform) -> np.ndarray:
    """Undo ``t`` on a C×H×W output computed from ``forward(image, t)``."""
    out = output
    if t[2]:
        out = out[:, :, ::-1]
    if t[1]:
        out = out[:, ::-1]
    if t[0]:
        out = out.swapaxes(1, 2)
    return out


def averaged(run_one: Callable[[np.ndarray], Job[dict]], image: np.ndarray, mode: str | None) -> Job[dict]:
    """Long job: the mean over ``mode``'s transforms of ``run_one``'s ``{key: C×H×W}`` outputs."""
    ts = transforms(mode)
    total: dict[str, np.ndarray] = {}
    for i, t in enumerate(ts):
        job = run_one(forward(image, t))
        while True:
            try:
                p = next(job)
            except StopIteration as stop:
                out = stop.value
                break
            msg = p.message if len(ts) == 1 else f"{p.message} · view {i + 1}/{len(ts)}"
            yield Progress((i + p.fraction) / len(ts), msg, note=p.note)
        for k, v in out.items():
            v = inverse(np.asarray(v, np.float32), t)
            if k in total:
                total[k] += v
            else:
                total[k] = v.copy()
    return {k: v / len(ts) for k, v in total.items()} if len(ts) > 1 else total
