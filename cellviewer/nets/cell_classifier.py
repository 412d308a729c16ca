"""A small CNN that classifies one cell crop: red-cell morphology (:mod:`cellviewer.core.morphology`).

Input: ``N×3×S×S`` float 0..1, a crop centred on the cell whose side is
:data:`cellviewer.core.morphology.CROP_DIAMETERS` typical red-cell diameters of the
field (so the cell's size *relative to its neighbours* is visible: microcytes and
macrocytes are told apart from normal cells by it). Any ``S`` works (global average
pooling); the shipped model uses 64.

Output: ``{"logits": N×C}`` (no softmax), C = ``n_classes``.

Architecture: ``len(widths)`` stages of conv3×3-BN-ReLU ×2, each but the last followed
by a 2×2 max-pool, then global average pooling, dropout and one linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from cellviewer.nets.blocks import DoubleConv
from cellviewer.nets.registry import register


@register("cell-cnn", kind="classify")
class CellCNN(nn.Module):
    def __init__(self, n_classes: int = 12, widths: list[int] | tuple[int, ...] = (24, 48, 96, 160),
                 dropout: float = 0.2):
        super().__init__()
        widths = [int(w) for w in widths]
        if int(n_classes) < 2 or not widths or min(widths) < 1:
            raise ValueError("n_classes must be >= 2 and widths a non-empty list of positive channel counts")
        stages: list[nn.Module] = []
        ch = 3
        for i, w in enumerate(widths):
            stages.append(DoubleConv(ch, w))
            if i < len(widths) - 1:
                stages.append(nn.MaxPool2d(2, ceil_mode=True))
            ch = w
        self.features = nn.Sequential(*stages)
        self.drop = nn.Dropout(float(dropout))
        self.fc = nn.Linear(ch, int(n_classes))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x).mean(dim=(2, 3))
        return {"logits": self.fc(self.drop(f))}
