"""Tensor-level segmentation losses: ``loss(logits, target) -> scalar``.

Shapes: ``logits`` N×C×H×W. For binary losses (C = 1) the target is N×1×H×W
(or N×H×W) of 0/1 floats. For multi-class losses the target is an integer
class map N×H×W (``ignore_index`` pixels are skipped).
Soft Dice/Tversky take ``mode="binary"`` (sigmoid) or ``"multiclass"``
(softmax, averaged over classes); ``from_logits=False`` means the input is
already probabilities.

``create_loss(name, **cfg)`` builds one by name (the error lists the names);
:class:`WeightedSum` combines several. Combining the losses of a network's
output dict (mask, edge, aux …) is the training code's job.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from cellviewer.core.errors import CellviewerError

LOSSES: dict[str, Callable[..., nn.Module]] = {}


def _register(name: str):
    def deco(cls):
        LOSSES[name] = cls
        return cls
    return deco


def _binary_target(target: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if target.dim() == like.dim() - 1:
        target = target.unsqueeze(1)
    return target.to(like.dtype)


@_register("bce")
class BCELoss(nn.Module):
    """Binary cross-entropy on logits (``pos_weight`` up-weights the foreground)."""

    def __init__(self, pos_weight: float | None = None):
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _binary_target(target, logits)
        pw = None if self.pos_weight is None else torch.tensor(
            self.pos_weight, dtype=logits.dtype, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw)


@_register("ce")
class CELoss(nn.Module):
    """Multi-class cross-entropy on logits; target is an N×H×W class map."""

    def __init__(self, weight: list[float] | None = None, ignore_index: int = -100,
                 label_smoothing: float = 0.0):
        super().__init__()
        self.weight = weight
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else torch.tensor(
            self.weight, dtype=logits.dtype, device=logits.device)
        if target.dim() == logits.dim():
            target = target.squeeze(1)
        return F.cross_entropy(logits, target.long(), weight=w, ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing)


def _probs_and_onehot(pred: torch.Tensor, target: torch.Tensor, mode: str, from_logits: bool,
                      ignore_index: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and matching float targets, both N×C×H×W; ignored pixels zeroed."""
    if mode == "binary":
        probs = torch.sigmoid(pred) if from_logits else pred
        tgt = _binary_target(target, pred)
        valid = None
        if ignore_index is not None:
            valid = (tgt != ignore_index).to(pred.dtype)
            tgt = tgt * valid
    elif mode == "multiclass":
        probs = torch.softmax(pred, dim=1) if from_logits else pred
        if target.dim() == pred.dim():
            target = target.squeeze(1)
        target = target.long()
        valid = None
        if ignore_index is not None:
            keep = target != ignore_index
            valid = keep.unsqueeze(1).to(pred.dtype)
            target = torch.where(keep, target, torch.zeros_like(target))
        tgt = F.one_hot(target, pred.shape[1]).permute(0, 3, 1, 2).to(pred.dtype)
        if valid is not None:
            tgt = tgt * valid
    else:
        raise ValueError(f"mode must be 'binary' or 'multiclass', not {mode!r}")
    if valid is not None:
        probs = probs * valid
    return probs, tgt


@_register("tversky")
class TverskyLoss(nn.Module):
    """Soft Tversky loss ``1 − (TP + s) / (TP + α·FP + β·FN + s)``.

    ``alpha`` weights false positives, ``beta`` false negatives; α = β = 0.5 is
    the Dice loss. Sums run over the batch and pixels per class; the multiclass
    loss is the mean over classes.
    """

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1.0,
                 mode: str = "binary", from_logits: bool = True,
                 ignore_index: int | None = None):
        super().__init__()
        if mode not in ("binary", "multiclass"):
            raise ValueError(f"mode must be 'binary' or 'multiclass', not {mode!r}")
        self.alpha, self.beta, self.smooth = alpha, beta, smooth
        self.mode, self.from_logits, self.ignore_index = mode, from_logits, ignore_index

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs, tgt = _probs_and_onehot(pred, target, self.mode, self.from_logits,
                                       self.ignore_index)
        dims = (0, 2, 3)
        tp = (probs * tgt).sum(dims)
        fp = (probs * (1 - tgt)).sum(dims)
        fn = ((1 - probs) * tgt).sum(dims)
        index = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)
        return 1 - index.mean()


@_register("dice")
class DiceLoss(TverskyLoss):
    """Soft Dice loss: Tversky with α = β = 0.5, i.e. ``1 − (2·TP + 2s) / (ΣP + ΣT + 2s)``.

    Binary (sigmoid) or multiclass (softmax, mean over classes).
    """

    def __init__(self, smooth: float = 1.0, mode: str = "binary", from_logits: bool = True,
                 ignore_index: int | None = None):
        super().__init__(alpha=0.5, beta=0.5, smooth=smooth, mode=mode,
                         from_logits=from_logits, ignore_index=ignore_index)


@_register("fg-dice")
class ForegroundDiceLoss(nn.Module):
    """Soft Dice of the *union* of all classes but the background (class 0), per image.

    For a part map (nucleus, cytoplasm) this is the whole-cell outline that the whole-WBC
    Dice scores: the foreground probability is ``1 − p(background)`` and the target is
    ``class > 0``. The loss is ``1 −`` the mean over images of
    ``(2·Σ p·t + s) / (Σ p + Σ t + s)``; ``ignore_index`` pixels are skipped.
    """

    def __init__(self, smooth: float = 1.0, ignore_index: int | None = None):
        super().__init__()
        self.smooth, self.ignore_index = smooth, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dim() == logits.dim():
            target = target.squeeze(1)
        fg = 1 - torch.softmax(logits, dim=1)[:, 0]
        tgt = (target > 0).to(logits.dtype)
        if self.ignore_index is not None:
            valid = (target != self.ignore_index).to(logits.dtype)
            fg, tgt = fg * valid, tgt * valid
        dims = (1, 2)
        dice = (2 * (fg * tgt).sum(dims) + self.smooth) / (fg.sum(dims) + tgt.sum(dims) + self.smooth)
        return 1 - dice.mean()


@_register("mse")
class MSELoss(nn.Module):
    """Mean squared error between probabilities and the (one-hot) target.

    ``activation``: ``"sigmoid"`` (binary, default), ``"softmax"`` (multiclass,
    integer target map) or ``None`` (``pred`` is compared as it is).
    """

    def __init__(self, activation: str | None = "sigmoid"):
        super().__init__()
        if activation not in ("sigmoid", "softmax", None):
            raise ValueError("activation must be 'sigmoid', 'softmax' or None")
        self.activation = activation

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.activation == "softmax":
            probs, tgt = _probs_and_onehot(pred, target, "multiclass", True, None)
        else:
            probs = torch.sigmoid(pred) if self.activation == "sigmoid" else pred
            tgt = _binary_target(target, pred) if target.dim() < pred.dim() else \
                target.to(pred.dtype)
        return F.mse_loss(probs, tgt)


class WeightedSum(nn.Module):
    """``Σ wᵢ · lossᵢ(pred, target)`` from ``[(w, loss), ...]``."""

    def __init__(self, terms: Iterable[tuple[float, nn.Module]]):
        super().__init__()
        terms = list(terms)
        if not terms:
            raise ValueError("WeightedSum needs at least one (weight, loss) term")
        self.weights = [float(w) for w, _ in terms]
        self.losses = nn.ModuleList(loss for _, loss in terms)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = pred.new_zeros(())
        for w, loss in zip(self.weights, self.losses):
            total = total + w * loss(pred, target)
        return total


@_register("bce+tversky")
def bce_tversky(alpha: float = 0.3, beta: float = 0.7, bce_weight: float = 1.0,
                tversky_weight: float = 1.0, smooth: float = 1.0) -> WeightedSum:
    """BCE + Tversky(α=0.3, β=0.7), the WBC-Net loss (binary)."""
    return WeightedSum([(bce_weight, BCELoss()),
                        (tversky_weight, TverskyLoss(alpha=alpha, beta=beta, smooth=smooth))])


@_register("ce+dice")
def ce_dice(ce_weight: float = 1.0, dice_weight: float = 1.0,
            ignore_index: int = -100, class_weight: list[float] | None = None,
            fg_dice_weight: float = 0.0) -> WeightedSum:
    """Multiclass CE + soft Dice (e.g. background/nucleus/cytoplasm); ``class_weight`` (one per
    class) re-weights the CE term, e.g. to raise the recall of a small class such as platelets;
    ``fg_dice_weight`` > 0 adds the per-image Dice of the union of the non-background classes
    (:class:`ForegroundDiceLoss`: the whole-cell outline of a nucleus/cytoplasm map)."""
    terms = [(ce_weight, CELoss(weight=class_weight, ignore_index=ignore_index)),
             (dice_weight, DiceLoss(mode="multiclass", ignore_index=ignore_index))]
    if fg_dice_weight:
        terms.append((fg_dice_weight, ForegroundDiceLoss(ignore_index=ignore_index)))
    return WeightedSum(terms)


def list_losses() -> list[str]:
    """All loss names, sorted."""
    return sorted(LOSSES)


def create_loss(name: str, **cfg) -> nn.Module:
    """Build the loss registered as ``name`` (errors list the valid names)."""
    if name not in LOSSES:
        raise CellviewerError(f"Unknown loss '{name}'",
                              hint="valid losses: " + ", ".join(list_losses()))
    try:
        return LOSSES[name](**cfg)
    except (TypeError, ValueError) as exc:
        raise CellviewerError(f"Invalid options for loss '{name}': {exc}") from exc
