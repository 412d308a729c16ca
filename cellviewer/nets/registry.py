"""The one registry of network architectures.

``create_net(name, **cfg)`` builds a network; ``list_nets()`` names the segmentation
networks, ``list_nets("classify")`` the cell classifiers (one crop in, class logits out:
``cellviewer.nets.cell_classifier``, used by :mod:`cellviewer.core.morphology`).
Architecture modules register themselves with ``@register("name")`` and are
imported lazily on the first ``create_net``/``list_nets`` call, so importing
``cellviewer.nets`` stays cheap.

Output convention (every registered network follows it)
--------------------------------------------------------
* ``forward(x)`` takes a float tensor ``N×3×H×W`` already normalised to 0..1 by
  the caller (any other normalisation happens inside the network).
* It returns a ``dict`` of **logits** (no sigmoid/softmax applied):

  - ``"mask"``: ``N×C×H'×W'`` — C = ``n_classes``; C = 1 means a binary
    foreground mask (apply sigmoid), C > 1 means per-class logits (softmax).
  - ``"edge"``: ``N×1×H'×W'`` — cell-boundary logits, only for networks with an
    edge head (DO-U-Net, dual SegNet, ``unet-edge``).
  - ``"aux"``: a list of ``N×C×H'×W'`` logits, **training mode only**, for
    networks with deep supervision (WBC-Net side outputs) or cascades (DCED-Net
    levels). With deep supervision ``"mask"`` is the mean of the side logits in
    both modes; for the cascade ``"mask"`` is the last level.

* *Padded* networks accept ANY ``H×W``: they pad internally to the multiple they
  need and crop back, so ``H' = H`` and ``W' = W``.
* *Valid* networks (``do-unet-valid``) use unpadded convolutions: the output is
  smaller than the input and the net exposes ``output_size(input_size)``.

Every network carries ``net.config``: ``{"name": <registered name>, **cfg}``,
JSON-serialisable, enough for :func:`create_net` to rebuild it (a checkpoint
stores it). Keys that only matter while building (a local encoder weights file)
are left out of it.
"""

from __future__ import annotations

import importlib
import json
from typing import TYPE_CHECKING, Callable, TypeVar

from cellviewer.core.errors import ModelLoadError

if TYPE_CHECKING:  # torch is imported by the architecture modules, on demand
    from torch import nn

NETS: dict[str, Callable[..., "nn.Module"]] = {}
#: what each registered network does: "segment" (the output convention above) or "classify"
KINDS: dict[str, str] = {}

#: modules under cellviewer.nets that register architectures
ARCH_MODULES: tuple[str, ...] = (
    "do_unet", "segnet", "node_unet", "backbone_unet", "wbc_net", "dced_net", "cell_classifier",
)

#: build-time-only options: used by the factory, never stored in ``net.config``
BUILD_ONLY_KEYS: frozenset[str] = frozenset({"encoder_weights_path"})

_loaded = False
F = TypeVar("F", bound=Callable[..., "nn.Module"])


def register(name: str, kind: str = "segment") -> Callable[[F], F]:
    """Class/function decorator adding a network factory to :data:`NETS` (``kind``: see :data:`KINDS`)."""

    def deco(factory: F) -> F:
        if name in NETS and NETS[name] is not factory:
            raise ValueError(f"network name {name!r} is already registered")
        NETS[name] = factory
        KINDS[name] = kind
        return factory

    return deco


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for mod in ARCH_MODULES:
        importlib.import_module(f"cellviewer.nets.{mod}")
    _loaded = True


def list_nets(kind: str | None = "segment") -> list[str]:
    """The registered network names of ``kind`` ("segment", "classify"; None: all), sorted."""
    _load_all()
    return sorted(n for n in NETS if kind is None or KINDS.get(n) == kind)


def create_net(name: str, **cfg) -> nn.Module:
    """Build the network registered as ``name`` with options ``cfg``.

    Raises :class:`ModelLoadError` for an unknown name (the message lists the
    valid ones) or an invalid configuration.
    """
    _load_all()
    if name not in NETS:
        raise ModelLoadError(
            f"Unknown network architecture '{name}'",
            hint="valid names: " + ", ".join(sorted(NETS)),
        )
    config = {"name": name, **{k: v for k, v in cfg.items() if k not in BUILD_ONLY_KEYS}}
    try:
        config = json.loads(json.dumps(config))
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(
            f"Configuration of '{name}' is not JSON-serialisable: {exc}",
            hint="use only numbers, strings, booleans, lists and dicts",
        ) from exc
    try:
        net = NETS[name](**cfg)
    except ModelLoadError:
        raise
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(
            f"Invalid configuration for network '{name}': {exc}",
            hint="see the architecture's docstring for its options",
        ) from exc
    net.config = config
    return net
