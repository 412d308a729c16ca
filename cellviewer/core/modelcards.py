"""Model cards as short summaries, and measured metrics checked against a card.

A model card (``models/<name>.json``, see :mod:`cellviewer.nets.checkpoint`) holds the
architecture, classes, working scale, version and the test metrics written by
``cellviewer evaluate --write-card``. :func:`summarize_card` turns one into a
:class:`ModelSummary` (what ``cellviewer models`` prints and the GUI's model picker
shows); :func:`headline_metrics` picks the numbers the papers report (per-class
counting accuracy on box data, whole-WBC / nucleus / cytoplasm Dice per ``wbc_seg``
subset); :func:`card_differences` compares a fresh evaluation with the card's numbers.
Reading cards never loads weights (no torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cellviewer.core.errors import SegmentationError

#: architectures whose ODE solver (method, rtol, atol) can be chosen at inference
ODE_ARCHITECTURES = ("node-unet",)
#: solver methods offered for ODE nets (adaptive first; see cellviewer.nets.node_unet)
ODE_METHODS = ("dopri5", "bosh3", "adaptive_heun", "fehlberg2", "dopri8", "rk4", "midpoint", "euler")
_CELL_NAMES = {"rbc": "RBC", "wbc": "WBC", "platelet": "platelets"}
_PART_NAMES = {"wbc": "whole WBC", "nucleus": "nucleus", "cytoplasm": "cytoplasm"}


@dataclass(frozen=True)
class ModelSummary:
    """What a user needs to pick a model: name, architecture, classes, scale, version, test numbers."""

    name: str
    architecture: str = "?"
    config: dict = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    working_scale: float | None = None
    version: str = "?"
    description: str = ""
    headline: tuple[str, ...] = ()  # one line per dataset group, e.g. "txl_pbc counting accuracy: ..."
    split: str = ""
    tta: str = "none"  # the card's test-time augmentation (inference.tta)
    trained_on: str = ""  # the splits the weights saw (training_data.split.trained_on), e.g. "train+val"
    gate: str = ""  # a stored fine-tune's regression-gate verdict and held-out numbers, one line

    @property
    def has_ode_solver(self) -> bool:
        return self.architecture in ODE_ARCHITECTURES

    @property
    def solver(self) -> dict:
        """The card's solver settings (ODE nets; empty otherwise)."""
        if not self.has_ode_solver:
            return {}
        return {k: self.config[k] for k in ("method", "rtol", "atol") if k in self.config}

    def info_line(self) -> str:
        cfg = ", ".join(f"{k} {v}" for k, v in self.config.items() if k not in ("n_classes", "in_ch"))
        scale = f"{self.working_scale:g} px per red cell" if self.working_scale else "unknown"
        cls = ", ".join(c for c in self.classes if c != "background") or "?"
        return (f"{self.architecture}" + (f" ({cfg})" if cfg else "") + f"; classes: {cls}; "
                f"working scale: {scale}; version {self.version}")

    def text(self) -> str:
        """Multi-line summary (architecture line + headline metrics)."""
        lines = [self.info_line()]
        if self.headline:
            seen = f" (trained on {self.trained_on.replace('+', ' + ')})" if self.trained_on else ""
            lines.append(f"{self.split or 'test'} split{seen}:")
            lines += [f"  {h}" for h in self.headline]
        elif not self.gate:
            lines.append("no measured metrics in the card")
        if self.gate:
            lines.append(self.gate)
        return "\n".join(lines)


def gate_line(card: dict) -> str:
    """A stored fine-tune's verdict: ``"regression gate: REFUSED, stored anyway — held-out (N): score
    old → new, ..."``; empty for other cards."""
    g = card.get("gate")
    if not isinstance(g, dict) or "accepted" not in g:
        return ""
    rows = [r for r in g.get("rows") or [] if isinstance(r, dict) and str(r.get("metric", "")).startswith("held-out")]
    nums = ", ".join(f"{str(r['metric']).split(': ', 1)[-1]} {_pct(r.get('old'))} → {_pct(r.get('new'))}"
                     for r in rows[:3])
    verdict = "accepted" if g.get("accepted") else "REFUSED, stored anyway"
    parent = card.get("parent") or {}
    vs = f" against {parent.get('model')} v{parent.get('version')}" if parent.get("version") else ""
    return f"regression gate{vs}: {verdict}" + (f" — held-out images: {nums}" if nums else "")


def _pct(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(v) else f"{100 * v:.2f} %"


def headline_metrics(metrics: dict | None) -> tuple[str, ...]:
    """One line per dataset group of a card's ``metrics``: counting accuracy + detection F1
    per cell class (box data; the incomplete original BCCD boxes and per-origin groups are
    left out), Dice of the whole WBC / nucleus / cytoplasm (mask data, per subset when
    there are subsets), the share of points inside a predicted red cell (point data)."""
    groups = (metrics or {}).get("datasets") or {}
    out = []
    has_sub = {g.split(":")[0] for g in groups if ":" in g}
    for g, r in groups.items():
        kind = r.get("kind") if isinstance(r, dict) else None
        if kind == "boxes" and ":" not in g and g != "bccd_voc":
            acc = ", ".join(f"{_CELL_NAMES[c]} {_pct(r[c].get('count_accuracy'))}" for c in _CELL_NAMES if c in r)
            f1 = ", ".join(f"{_CELL_NAMES[c]} {_pct(r[c].get('f1'))}" for c in _CELL_NAMES if c in r)
            out.append(f"{g} ({r.get('n_images', '?')} images) counting accuracy: {acc}; detection F1: {f1}")
        elif kind == "masks" and (":" in g or g not in has_sub):
            dice = ", ".join(f"{_PART_NAMES[p]} {_pct(r[p].get('dice'))}" for p in _PART_NAMES if p in r)
            out.append(f"{g} ({r.get('n_images', '?')} images) Dice: {dice}")
        elif kind == "points":
            out.append(f"{g} ({r.get('n_images', '?')} images) points inside a predicted RBC: {_pct(r.get('recall'))}")
    return tuple(out)


def summarize_card(card: dict, name: str | None = None) -> ModelSummary:
    """A :class:`ModelSummary` of a card dict (as written by ``save_checkpoint``)."""
    ws = card.get("working_scale")
    metrics = card.get("metrics") or {}
    return ModelSummary(name=str(name or card.get("name") or "?"), architecture=str(card.get("architecture") or "?"),
                        config=dict(card.get("config") or {}), classes=tuple(card.get("classes") or ()),
                        working_scale=float(ws) if isinstance(ws, (int, float)) else None,
                        version=str(card.get("version") or "?"), description=str(card.get("description") or ""),
                        headline=headline_metrics(metrics), split=str(metrics.get("split") or ""),
                        tta=str((card.get("inference") or {}).get("tta") or "none"),
                        trained_on=str((((card.get("training_data") or {}).get("split") or {}).get("trained_on")) or ""),
                        gate=gate_line(card))


def model_summaries() -> dict[str, ModelSummary]:
    """``name -> ModelSummary`` of every model card found (see ``netsegment.find_models``)."""
    from cellviewer.core.netsegment import find_models

    return {name: summarize_card(card, name) for name, (_path, card) in find_models().items()}


def apply_solver(net, solver: dict) -> dict:
    """Set the ODE solver of ``net`` (``net.set_solver(**solver)``, e.g. NODE-UNet) and return the
    previous settings; with an empty ``solver`` (or a net without a solver) nothing changes and
    ``{}`` is returned. Bad values raise :class:`~cellviewer.core.errors.SegmentationError`."""
    if not solver or not hasattr(net, "set_solver"):
        return {}
    old = dict(net.solver)
    try:
        net.set_solver(**solver)
    except (TypeError, ValueError) as e:
        raise SegmentationError(f"Bad ODE solver settings {solver}: {e}.",
                                hint=f"methods: {', '.join(ODE_METHODS)}; rtol and atol > 0 (e.g. 1e-3)") from e
    return old


def card_differences(measured: dict, card: dict, tol: float = 1e-4, path: str = "") -> list[tuple[str, object, object]]:
    """``(key path, card value, measured value)`` for every number of ``card`` (a card's
    ``metrics["datasets"]``) that ``measured`` (``evaluate_model(...)["datasets"]``) lacks
    or differs from by more than ``tol`` (absolute). Keys only in ``measured`` are ignored."""
    out: list[tuple[str, object, object]] = []
    if isinstance(card, dict):
        for k, v in card.items():
            sub = f"{path}.{k}" if path else str(k)
            if not isinstance(measured, dict) or k not in measured:
                out.append((sub, v, None))
            else:
                out += card_differences(measured[k], v, tol, sub)
    elif isinstance(card, (list, tuple)):
        if not isinstance(measured, (list, tuple)) or len(measured) != len(card):
            return [(path, card, measured)]
        for i, (m, c) in enumerate(zip(measured, card)):
            out += card_differences(m, c, tol, f"{path}[{i}]")
    elif isinstance(card, (int, float)) and not isinstance(card, bool):
        try:
            m = float(measured)
        except (TypeError, ValueError):
            return [(path, card, measured)]
        c = float(card)
        same = (math.isnan(c) and math.isnan(m)) or abs(c - m) <= tol
        if not same:
            out.append((path, card, measured))
    elif card != measured:
        out.append((path, card, measured))
    return out
