"""DO-U-Net: the Dual-Output U-Net (after Overton & Tucker, 2020).

A scaled-down U-Net with three pooling steps whose last decoder features feed two
1×1 heads: the cell mask and the cell *edge* mask. Subtracting the edge mask
from the cell mask separates touching cells before counting.

Two registered forms:

* ``"do-unet"`` — padded 3×3 convolutions; accepts any H×W (padded internally to
  a multiple of ``2**depth``) and returns same-size logits.
* ``"do-unet-valid"`` — the paper's unpadded (valid) convolutions: a 188×188
  input gives a 100×100 output (44 px context per side). Use
  :meth:`DOUNetValid.output_size` / :meth:`DOUNetValid.valid_input_size` to tile.

This is a re-implementation from the paper's description, not the authors' code.
"""

from __future__ import annotations

import torch
from torch import nn

from cellviewer.core.errors import SegmentationError
from cellviewer.nets.blocks import DoubleConv, UpBlock, crop_outputs, head, pad_to_multiple
from cellviewer.nets.registry import register


class _DOUNetBase(nn.Module):
    """Shared body: ``depth`` pooling steps, widths ``base * 2**level``."""

    def __init__(self, *, in_ch: int = 3, n_classes: int = 1, base: int = 32, depth: int = 3,
                 edge: bool = True, norm: str | None = "bn", padding: int = 1):
        super().__init__()
        if depth < 1 or base < 1 or n_classes < 1:
            raise ValueError("depth, base and n_classes must be positive")
        widths = [base * 2 ** i for i in range(depth + 1)]
        self.depth = depth
        self.n_classes = n_classes
        self.down = nn.ModuleList()
        prev = in_ch
        for w in widths[:-1]:
            self.down.append(DoubleConv(prev, w, padding=padding, norm=norm))
            prev = w
        self.pool = nn.MaxPool2d(2)
        self.bottom = DoubleConv(prev, widths[-1], padding=padding, norm=norm)
        self.up = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i], widths[i], mode="transpose",
                    padding=padding, norm=norm)
            for i in reversed(range(depth))
        )
        self.mask_head = head(widths[0], n_classes)
        self.edge_head = head(widths[0], 1) if edge else None

    def _body(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for block, skip in zip(self.up, reversed(skips)):
            x = block(x, skip)
        out = {"mask": self.mask_head(x)}
        if self.edge_head is not None:
            out["edge"] = self.edge_head(x)
        return out


@register("do-unet")
class DOUNet(_DOUNetBase):
    """Padded DO-U-Net: any input size, same-size ``mask`` (+ ``edge``) logits.

    Config: ``in_ch`` (3), ``n_classes`` (mask channels, 1; >1 for e.g.
    background/RBC/WBC/platelet), ``base`` width (32), ``depth`` pooling steps (3),
    ``edge`` head (True), ``norm`` ("bn", "gn" or None).
    """

    def __init__(self, **cfg):
        super().__init__(padding=1, **cfg)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x, hw = pad_to_multiple(x, 2 ** self.depth)
        return crop_outputs(self._body(x), hw)


@register("do-unet-valid")
class DOUNetValid(_DOUNetBase):
    """DO-U-Net with valid convolutions (the paper's 188 → 100 px form).

    Same config as :class:`DOUNet`. The input must be a size for which every
    pooling step sees an even size; :meth:`valid_input_size` finds one.
    """

    def __init__(self, **cfg):
        super().__init__(padding=0, **cfg)

    def _try_output_size(self, size: int) -> int | None:
        s = size
        for _ in range(self.depth):
            s -= 4
            if s <= 0 or s % 2:
                return None
            s //= 2
        s -= 4
        if s <= 0:
            return None
        for _ in range(self.depth):
            s = 2 * s - 4
            if s <= 0:
                return None
        return s

    def output_size(self, input_size: int) -> int:
        """Output side length for an input side length (188 → 100 with depth 3).

        Raises ``ValueError`` when ``input_size`` is not usable.
        """
        out = self._try_output_size(int(input_size))
        if out is None:
            raise ValueError(
                f"input size {input_size} does not fit the valid DO-U-Net "
                f"(next usable size: {self.valid_input_size(int(input_size))})")
        return out

    def valid_input_size(self, at_least: int) -> int:
        """The smallest usable input side length ``>= at_least``."""
        s = max(1, int(at_least))
        while self._try_output_size(s) is None:
            s += 1
        return s

    @property
    def margin(self) -> int:
        """Pixels lost on each side (44 for depth 3)."""
        size = self.valid_input_size(1)
        return (size - self.output_size(size)) // 2

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        for side in (h, w):
            if self._try_output_size(side) is None:
                raise SegmentationError(
                    f"Input of {h}×{w} px does not fit the valid-convolution DO-U-Net",
                    hint=f"use tiles of a usable size, e.g. {self.valid_input_size(side)} px "
                         "(188 px gives a 100 px output)")
        return self._body(x)
