"""Dual-output SegNet: a VGG16-style encoder–decoder with mask and edge heads.

Encoder: the 13 convolutions of VGG16 in five blocks (2, 2, 3, 3, 3 convs), each
block ending with a 2×2 max-pool that remembers its indices. Decoder: the mirror
image — five blocks of 3, 3, 3, 2, 2 convolutions (13 in all), each starting
with ``MaxUnpool2d`` using the encoder's indices (SegNet's sparse upsampling,
no skip concatenation). Two 1×1 heads read the last decoder features: the cell
mask (``n_classes`` channels) and the cell edge (1 channel).

``width_mult`` scales the VGG widths (64, 128, 256, 512, 512); 1.0 is the
full VGG16 width (~29 M parameters), 0.125 a toy model for tests.
Input of any size is padded to a multiple of 32 and the output cropped back.
"""

from __future__ import annotations

import torch
from torch import nn

from cellviewer.nets.blocks import conv_bn_relu, crop_outputs, head, pad_to_multiple
from cellviewer.nets.registry import register

VGG16_WIDTHS = (64, 128, 256, 512, 512)
VGG16_CONVS = (2, 2, 3, 3, 3)


@register("segnet-dual")
class SegNetDual(nn.Module):
    """SegNet with a mask head and an edge head.

    Config: ``in_ch`` (3), ``n_classes`` (1), ``width_mult`` (1.0), ``edge`` (True).
    """

    def __init__(self, *, in_ch: int = 3, n_classes: int = 1, width_mult: float = 1.0,
                 edge: bool = True):
        super().__init__()
        if width_mult <= 0 or n_classes < 1:
            raise ValueError("width_mult and n_classes must be positive")
        widths = [max(4, int(round(w * width_mult))) for w in VGG16_WIDTHS]
        self.n_classes = n_classes
        self.enc = nn.ModuleList()
        prev = in_ch
        for w, n in zip(widths, VGG16_CONVS):
            convs = [conv_bn_relu(prev if i == 0 else w, w) for i in range(n)]
            self.enc.append(nn.Sequential(*convs))
            prev = w
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, stride=2)
        # decoder block k mirrors encoder block k (deepest first); its last conv
        # maps to the width of the block above
        self.dec = nn.ModuleList()
        for k in reversed(range(5)):
            w, n = widths[k], VGG16_CONVS[k]
            out_w = widths[k - 1] if k > 0 else widths[0]
            convs = [conv_bn_relu(w, w) for _ in range(n - 1)]  # 3,3,3,2,2 = 13 convs
            convs.append(conv_bn_relu(w, out_w))
            self.dec.append(nn.Sequential(*convs))
        self.mask_head = head(widths[0], n_classes)
        self.edge_head = head(widths[0], 1) if edge else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x, hw = pad_to_multiple(x, 32)
        indices = []
        sizes = []
        for block in self.enc:
            x = block(x)
            sizes.append(x.shape[-2:])
            x, idx = self.pool(x)
            indices.append(idx)
        for block, idx, size in zip(self.dec, reversed(indices), reversed(sizes)):
            x = self.unpool(x, idx, output_size=size)
            x = block(x)
        out = {"mask": self.mask_head(x)}
        if self.edge_head is not None:
            out["edge"] = self.edge_head(x)
        return crop_outputs(out, hw)
