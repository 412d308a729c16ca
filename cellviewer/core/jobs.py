"""Long-job protocol shared by segmentation, training and batch runs.

A long job is a generator that yields :class:`Progress` and *returns* its
result (``StopIteration.value``). It checks a :class:`CancelToken` between
steps and raises :class:`~cellviewer.core.errors.Cancelled` when asked to stop.
The GUI runs such generators in a worker thread; the CLI drives them with
:func:`run_job` and a terminal progress bar.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Generator, TypeVar

from cellviewer.core.errors import Cancelled

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    fraction: float  # 0..1
    message: str = ""
    #: said once, now: something the user should know while the job runs (CLI note, GUI warning); keyword-only,
    #: so subclasses' positional fields (TrainProgress) stay where they were
    note: str = field(default="", kw_only=True)


class CancelToken:
    """A thread-safe cancel flag."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled("The job was cancelled.", hint="run it again when ready")


Job = Generator[Progress, None, T]


def run_job(job: Job[T], on_progress: Callable[[Progress], None] | None = None) -> T:
    """Drive a job generator to the end and return its result."""
    while True:
        try:
            p = next(job)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(p)
