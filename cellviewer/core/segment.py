"""The segmentation service: one interface, many segmenters.

A :class:`Segmenter` turns an RGB ``uint8`` image into a
:class:`SegmentationResult` (instance labels per class, one marker per cell, a
score per cell). ``segment`` is a long job: a generator yielding
:class:`~cellviewer.core.jobs.Progress` and returning the result, checking the
cancel token between steps.

Segmenters are made by name with :func:`create_segmenter`; classical ones are
always there, trained nets come from ``models/`` through the nets registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from cellviewer.core.document import Marker
from cellviewer.core.errors import ModelLoadError, SegmentationError
from cellviewer.core.jobs import CancelToken, Job


#: the smallest image side a segmenter accepts (px)
MIN_SIDE_PX = 8


def check_rgb(img: np.ndarray) -> None:
    """Raise :class:`SegmentationError` unless ``img`` is an RGB(A) image of at least 8 × 8 px."""
    if img.ndim != 3 or img.shape[2] < 3:
        raise SegmentationError(f"Expected an RGB image (H×W×3), got shape {img.shape}.",
                                hint="open a colour image of a stained blood smear")
    if min(img.shape[:2]) < MIN_SIDE_PX:
        raise SegmentationError(f"The image is too small to segment: {img.shape[1]}×{img.shape[0]} px "
                                f"(at least {MIN_SIDE_PX} px each way).", hint="open the whole field, not a thumbnail")


@dataclass
class SegmentationResult:
    labels: dict[str, np.ndarray]  # cls -> int32 instance map (H, W)
    markers: list[Marker]  # one per cell (cell = label id), ids are renumbered by the Document
    parts: np.ndarray | None = None  # uint8 WBC part map (0 none, 1 nucleus, 2 cytoplasm)
    model_name: str = ""
    model_version: str = ""
    params: dict = field(default_factory=dict)
    device: str = "cpu"
    timings: dict = field(default_factory=dict)  # stage -> seconds


class Segmenter(Protocol):
    name: str
    version: str

    def segment(self, image: np.ndarray, cancel: CancelToken | None = None) -> Job[SegmentationResult]:
        ...


#: name -> factory(**options) ; filled by modules that provide segmenters.
_FACTORIES: dict[str, Callable[..., Segmenter]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_segmenter(name: str, factory: Callable[..., Segmenter], description: str = "") -> None:
    _FACTORIES[name] = factory
    _DESCRIPTIONS[name] = description


def _load_builtin() -> None:
    # classical segmenters register themselves on import
    from cellviewer.core import classical  # noqa: F401

    try:  # trained models in models/ (optional until they exist)
        from cellviewer.core import netsegment  # noqa: F401
    except ImportError:
        pass


def list_segmenters() -> dict[str, str]:
    _load_builtin()
    return dict(_DESCRIPTIONS)


def is_registered(name: str) -> bool:
    """Whether a segmenter of that name is installed (registered; a checkpoint path is not a name)."""
    _load_builtin()
    return name in _FACTORIES


def create_segmenter(name: str | None = None, **options) -> Segmenter:
    """Make a segmenter by name (``None`` = the default), or from a checkpoint's path (its ``.json`` card,
    ``.safetensors`` or stem: a model trained with ``cellviewer train`` is usable before it is installed).

    Raises :class:`ModelLoadError` listing the valid names when ``name`` is neither.
    """
    _load_builtin()
    if name is None:
        name = default_segmenter_name()
    if name not in _FACTORIES:
        try:
            from cellviewer.core.netsegment import card_at, segmenter_at
        except ImportError:  # no torch: only the classical segmenters
            card_at = None
        if card_at is not None and card_at(name) is not None:  # a checkpoint by path (e.g. just trained)
            return segmenter_at(name, **options)
        valid = ", ".join(sorted(_FACTORIES))
        raise ModelLoadError(f"Unknown model '{name}'.",
                             hint=f"choose one of: {valid}; or give the path of a trained model's .json card")
    return _FACTORIES[name](**options)


def default_segmenter_name() -> str:
    _load_builtin()
    return "blood-cells" if "blood-cells" in _FACTORIES else "classical"
