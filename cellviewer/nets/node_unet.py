"""NODE-UNet: a U-Net with neural-ODE blocks at the bottom of the U.

After Li et al., "Robust Blood Cell Image Segmentation Method Based on Neural
Ordinary Differential Equations" (2021): a U-Net with half the usual channel
widths (32, 64, 128, 256 instead of 64 … 512) whose bottleneck features are
evolved by ODE blocks ``dh/dt = f(h)`` integrated from t=0 to t=1 with
``torchdiffeq``. ``f`` is conv → GroupNorm → ReLU → conv. The images are
contrast-enhanced first (:func:`cellviewer.nets.preprocess.clahe_y`, applied by
the caller on uint8 RGB).

The solver is an attribute, not part of the weights: ``net.set_solver(method=
"dopri5", rtol=1e-3, atol=1e-3)`` at inference trades time for accuracy (looser
tolerance → fewer function evaluations, counted in ``net.nfe``); fixed-step
``"rk4"``/``"euler"``/``"midpoint"`` take ``step_size``. ``adjoint=True`` uses
``odeint_adjoint`` (memory O(1) in the number of solver steps while training).

A re-implementation from the paper's description, not the authors' code.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from cellviewer.nets.blocks import DoubleConv, UpBlock, crop_outputs, group_count, head
from cellviewer.nets.blocks import pad_to_multiple
from cellviewer.nets.registry import register

ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
FIXED_METHODS = ("euler", "midpoint", "rk4")


class ODEFunc(nn.Module):
    """``f(t, h)`` = conv → GroupNorm → ReLU → conv; counts its evaluations in ``nfe``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = nn.GroupNorm(group_count(channels), channels)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.nfe = 0

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.conv2(self.act(self.norm(self.conv1(h))))


class ODEBlock(nn.Module):
    """Integrates :class:`ODEFunc` over t ∈ [0, 1] and returns the state at t = 1."""

    def __init__(self, channels: int, *, method: str = "dopri5", rtol: float = 1e-3,
                 atol: float = 1e-3, step_size: float = 0.25, adjoint: bool = False):
        super().__init__()
        self.func = ODEFunc(channels)
        self.adjoint = adjoint
        self.method, self.rtol, self.atol, self.step_size = method, rtol, atol, step_size
        self.register_buffer("t", torch.tensor([0.0, 1.0]), persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        solve = odeint_adjoint if self.adjoint else odeint
        options = {"step_size": self.step_size} if self.method in FIXED_METHODS else None
        t = self.t.to(h.dtype)
        return solve(self.func, h, t, rtol=self.rtol, atol=self.atol,
                     method=self.method, options=options)[-1]


def _check_solver(method: str, rtol: float, atol: float, step_size: float) -> None:
    if method not in ADAPTIVE_METHODS + FIXED_METHODS:
        raise ValueError(f"unknown ODE solver {method!r}; choose one of "
                         + ", ".join(ADAPTIVE_METHODS + FIXED_METHODS))
    if rtol <= 0 or atol <= 0 or not 0 < step_size <= 1:
        raise ValueError("rtol and atol must be > 0 and step_size in (0, 1]")


@register("node-unet")
class NODEUNet(nn.Module):
    """U-Net (widths 32…256) with ``ode_blocks`` ODE blocks at the bottom.

    Config: ``in_ch`` (3), ``n_classes`` (1), ``widths`` ((32, 64, 128, 256): the
    last is the bottom level, so ``len(widths) - 1`` pooling steps), ``ode_blocks``
    (1), ``method`` ("dopri5"), ``rtol``/``atol`` (1e-3), ``step_size`` (0.25,
    fixed-step methods), ``adjoint`` (False), ``edge`` head (False).
    """

    def __init__(self, *, in_ch: int = 3, n_classes: int = 1,
                 widths: Sequence[int] = (32, 64, 128, 256), ode_blocks: int = 1,
                 method: str = "dopri5", rtol: float = 1e-3, atol: float = 1e-3,
                 step_size: float = 0.25, adjoint: bool = False, edge: bool = False):
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2 or min(widths) < 1 or ode_blocks < 1:
            raise ValueError("widths needs at least two positive entries; ode_blocks >= 1")
        _check_solver(method, rtol, atol, step_size)
        self.depth = len(widths) - 1
        self.down = nn.ModuleList()
        prev = in_ch
        for w in widths[:-1]:
            self.down.append(DoubleConv(prev, w))
            prev = w
        self.pool = nn.MaxPool2d(2)
        self.bottom = DoubleConv(prev, widths[-1])
        self.odes = nn.ModuleList(
            ODEBlock(widths[-1], method=method, rtol=rtol, atol=atol,
                     step_size=step_size, adjoint=adjoint)
            for _ in range(ode_blocks))
        self.up = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i], widths[i], mode="transpose")
            for i in reversed(range(self.depth)))
        self.mask_head = head(widths[0], n_classes)
        self.edge_head = head(widths[0], 1) if edge else None

    def set_solver(self, method: str | None = None, rtol: float | None = None,
                   atol: float | None = None, step_size: float | None = None) -> None:
        """Change the ODE solver of every block (``None`` keeps the current value).

        Also updates ``net.config`` so a checkpoint saved afterwards records it.
        """
        first = self.odes[0]
        method = first.method if method is None else method
        rtol = first.rtol if rtol is None else float(rtol)
        atol = first.atol if atol is None else float(atol)
        step_size = first.step_size if step_size is None else float(step_size)
        _check_solver(method, rtol, atol, step_size)
        for block in self.odes:
            block.method, block.rtol, block.atol, block.step_size = method, rtol, atol, step_size
        config = getattr(self, "config", None)
        if isinstance(config, dict):
            config.update(method=method, rtol=rtol, atol=atol, step_size=step_size)

    @property
    def solver(self) -> dict:
        """The current solver settings."""
        b = self.odes[0]
        return {"method": b.method, "rtol": b.rtol, "atol": b.atol, "step_size": b.step_size}

    @property
    def nfe(self) -> int:
        """ODE function evaluations since the last :meth:`reset_nfe`."""
        return sum(block.func.nfe for block in self.odes)

    def reset_nfe(self) -> None:
        """Zero the function-evaluation counters."""
        for block in self.odes:
            block.func.nfe = 0

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x, hw = pad_to_multiple(x, 2 ** self.depth)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for ode in self.odes:
            x = ode(x)
        for block, skip in zip(self.up, reversed(skips)):
            x = block(x, skip)
        out = {"mask": self.mask_head(x)}
        if self.edge_head is not None:
            out["edge"] = self.edge_head(x)
        return crop_outputs(out, hw)
