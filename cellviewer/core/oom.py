"""Out of memory during network inference: retry with smaller tiles, then on the CPU, and say so.

:func:`predict_with_fallback` runs ``run(tile, batch_size, device) -> Job`` and, when
it runs out of memory (CUDA / MPS / CPU allocator, or ``MemoryError``), tries the
next step of :func:`fallback_plan`: the tile halved (batch 1) down to
:data:`MIN_TILE`, then — on a GPU — the CPU at the first tile size. Every step taken
is yielded as a :class:`~cellviewer.core.jobs.Progress` message and appended to
``log.notices`` (the segmenter puts them in its result, the GUI shows them). When
nothing is left, a :class:`~cellviewer.core.errors.SegmentationError` says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from cellviewer.core.errors import SegmentationError
from cellviewer.core.jobs import Job, Progress

MIN_TILE = 256
_OOM_TEXT = ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory")


@dataclass
class FallbackLog:
    notices: list[str] = field(default_factory=list)
    device: str = ""  # the device the prediction finally ran on
    tile: int = 0


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocator failures (``torch.cuda.OutOfMemoryError`` is a RuntimeError)."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc).lower() for t in _OOM_TEXT)


def fallback_plan(tile: int, batch_size: int, device: str) -> list[tuple[int, int, str]]:
    """``[(tile, batch, device), ...]``: as asked, then halved tiles (batch 1), then the CPU."""
    plan = [(int(tile), int(batch_size), device)]
    t = int(tile)
    while t // 2 >= MIN_TILE:
        t //= 2
        plan.append((t, 1, device))
    if device != "cpu":
        plan.append((int(tile), 1, "cpu"))
    return plan


def _free_gpu_memory() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def predict_with_fallback(run: Callable[[int, int, str], Job], tile: int, batch_size: int, device: str,
                          log: FallbackLog | None = None) -> Job:
    """Long job: ``run``'s result with the first plan step that fits in memory."""
    log = log if log is not None else FallbackLog()
    plan = fallback_plan(tile, batch_size, device)
    for i, (t, b, d) in enumerate(plan):
        try:
            out = yield from run(t, b, d)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled; the rest re-raised
            if not is_out_of_memory(exc):
                raise
            _free_gpu_memory()
            if i == len(plan) - 1:
                raise SegmentationError(
                    f"Out of memory even with {t} px tiles on the {d.upper()}.",
                    hint="close other programs, or segment a smaller image (crop or downscale it)") from exc
            nt, _, nd = plan[i + 1]
            msg = (f"{d.upper()} out of memory with {t} px tiles; retried "
                   + (f"with {nt} px tiles" if nd == d else "on the CPU (slower)"))
            log.notices.append(msg)
            yield Progress(0.0, msg)
            continue
        log.device, log.tile = d, t
        return out
    raise AssertionError("unreachable")  # the plan is never empty
