"""Shared building blocks of the architectures: conv blocks, up blocks, heads, padding.

Everything here is plain ``torch.nn``; the architecture modules compose these so
that each paper's network reads as its diagram.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_ch: int, out_ch: int, *, kernel: int = 3, padding: int = 1,
                 norm: str | None = "bn") -> nn.Sequential:
    """One ``conv → norm → ReLU`` unit.

    ``norm`` is ``"bn"`` (BatchNorm), ``"gn"`` (GroupNorm) or ``None``; the
    convolution carries a bias only when there is no normalisation after it.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, padding=padding, bias=norm is None)
    ]
    if norm == "bn":
        layers.append(nn.BatchNorm2d(out_ch))
    elif norm == "gn":
        layers.append(nn.GroupNorm(group_count(out_ch), out_ch))
    elif norm is not None:
        raise ValueError(f"unknown norm {norm!r}; use 'bn', 'gn' or None")
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def group_count(channels: int, preferred: int = 8) -> int:
    """A GroupNorm group count that divides ``channels`` (at most ``preferred``)."""
    return math.gcd(channels, preferred) or 1


class DoubleConv(nn.Sequential):
    """Two ``conv → norm → ReLU`` units (the U-Net level block).

    ``padding=1`` keeps the size; ``padding=0`` is the paper U-Net's *valid*
    convolution, which shrinks each side by 2 pixels (4 in all per block).
    """

    def __init__(self, in_ch: int, out_ch: int, *, mid_ch: int | None = None,
                 padding: int = 1, norm: str | None = "bn"):
        mid = mid_ch or out_ch
        super().__init__(
            conv_bn_relu(in_ch, mid, padding=padding, norm=norm),
            conv_bn_relu(mid, out_ch, padding=padding, norm=norm),
        )


def center_crop(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Crop the spatial centre ``h × w`` of an N×C×H×W tensor."""
    top = (t.shape[-2] - h) // 2
    left = (t.shape[-1] - w) // 2
    return t[..., top:top + h, left:left + w]


class UpBlock(nn.Module):
    """Decoder step: upsample ×2, join the skip tensor, then :class:`DoubleConv`.

    ``mode="transpose"`` uses a learned 2×2 stride-2 transposed convolution
    (paper U-Net "up-conv"); ``mode="nearest"`` interpolates then a 1×1 conv
    sets the channel count. When the skip is larger than the upsampled tensor
    (valid convolutions) its centre is cropped, as in the original U-Net.
    """

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, *, mode: str = "transpose",
                 padding: int = 1, norm: str | None = "bn"):
        super().__init__()
        if mode == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)
        elif mode == "nearest":
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                    nn.Conv2d(in_ch, out_ch, 1))
        else:
            raise ValueError(f"unknown up mode {mode!r}; use 'transpose' or 'nearest'")
        self.conv = DoubleConv(out_ch + skip_ch, out_ch, padding=padding, norm=norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if skip.shape[-2:] != x.shape[-2:]:
            skip = center_crop(skip, x.shape[-2], x.shape[-1])
        return self.conv(torch.cat([skip, x], dim=1))


def head(in_ch: int, out_ch: int) -> nn.Conv2d:
    """A 1×1 convolution producing logits."""
    return nn.Conv2d(in_ch, out_ch, 1)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad N×C×H×W at the bottom/right so H and W are multiples of ``multiple``.

    Reflection padding is used where the image is large enough (so the border
    looks like image content), replication otherwise. Returns the padded tensor
    and the original ``(H, W)`` for :func:`crop_to`.
    """
    h, w = x.shape[-2:]
    ph = (-h) % multiple
    pw = (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def crop_to(t: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``H × W``."""
    return t[..., :hw[0], :hw[1]]


def crop_outputs(out: dict, hw: tuple[int, int]) -> dict:
    """Apply :func:`crop_to` to every tensor (and list of tensors) of an output dict."""
    res: dict = {}
    for key, val in out.items():
        if isinstance(val, (list, tuple)):
            res[key] = [crop_to(v, hw) for v in val]
        else:
            res[key] = crop_to(val, hw)
    return res


def deep_supervision(side: Sequence[torch.Tensor], training: bool) -> dict:
    """The deep-supervision output convention.

    ``mask`` is always the mean of the side logits; in training mode the side
    logits themselves are returned as ``aux`` so each can get its own loss.
    """
    mask = torch.stack(list(side), dim=0).mean(dim=0)
    if training:
        return {"mask": mask, "aux": list(side)}
    return {"mask": mask}


def prune_unused_(module: nn.Module, run: Callable[[], object]) -> list[str]:
    """Replace parameterised leaf modules that ``run()`` never calls by ``nn.Identity``.

    Used for smp encoders built with ``depth < 5``: they keep their deeper
    stages although the forward pass never reaches them, which would leave
    weights without gradients and bloat checkpoints. ``run`` performs one forward
    pass (the module is put in eval mode and gradients are off meanwhile).
    Returns the dotted names that were removed.
    """
    called: set[int] = set()
    hooks = []
    for sub in module.modules():
        if not list(sub.children()):
            hooks.append(sub.register_forward_hook(
                lambda m, _i, _o: called.add(id(m))))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
        module.train(was_training)
    removed: list[str] = []
    for name, sub in list(module.named_modules()):
        if not name or list(sub.children()) or id(sub) in called:
            continue
        if not any(True for _ in sub.parameters(recurse=False)) and not list(sub.buffers()):
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attr, nn.Identity())
        removed.append(name)
    return removed
