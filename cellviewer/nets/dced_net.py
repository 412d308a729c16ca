"""DCED-Net: a multi-level cascade of deep convolutional encoder–decoders.

After Shahzad, Umar, Shirazi & Shaikh, "Semantic Segmentation of Anaemic RBCs
Using Multilevel Deep Convolutional Encoder-Decoder Network" (IEEE Access, 2022),
which segments healthy and anaemic red blood cells pixel by pixel.

**This is our reading of the paper's description, not the authors' code.** The
paper says the semantic information extracted at one level is passed on to the
next level, which selects the relevant features. We read it as:

* ``levels`` identical-shaped but independently weighted encoder–decoders run
  one after the other;
* each level is a plain (skip-less) encoder–decoder: ``depth`` blocks of
  conv-BN-ReLU ×2 + 2×2 max-pool, a bottleneck, and a mirrored decoder of
  2×2 stride-2 transposed convolutions + conv-BN-ReLU ×2, then a 1×1 head;
* level 1 sees the image; level k > 1 sees the image concatenated with the
  previous level's *probabilities* (sigmoid for one class, softmax otherwise),
  so a later level refines the earlier map with the image still at hand;
* the last level's logits are the prediction (``"mask"``); in training mode the
  earlier levels' logits are returned as ``"aux"`` so every level is
  supervised. The paper trains with a mean-squared-error loss: use
  ``create_loss("mse")`` (which applies the sigmoid/softmax) on each level.

Inputs of any size are padded to a multiple of ``2**depth``.
"""

from __future__ import annotations

import torch
from torch import nn

from cellviewer.nets.blocks import DoubleConv, crop_outputs, head, pad_to_multiple
from cellviewer.nets.registry import register


class EncoderDecoder(nn.Module):
    """One cascade level: skip-less encoder–decoder returning logits."""

    def __init__(self, in_ch: int, n_classes: int, base: int, depth: int):
        super().__init__()
        widths = [base * 2 ** i for i in range(depth + 1)]
        enc: list[nn.Module] = []
        prev = in_ch
        for w in widths[:-1]:
            enc += [DoubleConv(prev, w), nn.MaxPool2d(2)]
            prev = w
        self.encoder = nn.Sequential(*enc)
        self.bottleneck = DoubleConv(prev, widths[-1])
        dec: list[nn.Module] = []
        for i in reversed(range(depth)):
            dec += [nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2),
                    DoubleConv(widths[i], widths[i])]
        self.decoder = nn.Sequential(*dec)
        self.head = head(widths[0], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.bottleneck(self.encoder(x))))


@register("dced-net")
class DCEDNet(nn.Module):
    """Cascade of :class:`EncoderDecoder` levels.

    Config: ``in_ch`` (3), ``n_classes`` (1), ``levels`` (3), ``base`` width (32),
    ``depth`` pooling steps per level (4).
    """

    def __init__(self, *, in_ch: int = 3, n_classes: int = 1, levels: int = 3, base: int = 32,
                 depth: int = 4):
        super().__init__()
        if levels < 1 or depth < 1 or base < 1 or n_classes < 1:
            raise ValueError("levels, depth, base and n_classes must be positive")
        self.depth = depth
        self.n_classes = n_classes
        self.levels = nn.ModuleList(
            EncoderDecoder(in_ch + (n_classes if k else 0), n_classes, base, depth)
            for k in range(levels))

    def _probs(self, logits: torch.Tensor) -> torch.Tensor:
        if self.n_classes == 1:
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=1)

    def forward(self, x: torch.Tensor) -> dict:
        x, hw = pad_to_multiple(x, 2 ** self.depth)
        outputs: list[torch.Tensor] = []
        for k, level in enumerate(self.levels):
            inp = x if k == 0 else torch.cat([x, self._probs(outputs[-1])], dim=1)
            outputs.append(level(inp))
        out: dict = {"mask": outputs[-1]}
        if self.training and len(outputs) > 1:
            out["aux"] = outputs[:-1]
        return crop_outputs(out, hw)
