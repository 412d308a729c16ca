"""WBC-Net: UNet++ on a ResNet-34 encoder with deep supervision (after Lu et al., 2021).

Nested decoder: node ``X[i][j]`` (level i, column j ≥ 1) is a double conv of the
concatenation of all earlier nodes of its level ``X[i][0..j-1]`` and the ×2
upsampled ``X[i+1][j-1]``. Level 0 is a full-resolution stem (``stem_ch``
wide) on the image; levels 1…depth are the encoder's feature maps (strides
2 … 2**depth; smp's ``resnet34`` built with ``weights=None``). Each top node
``X[0][1] … X[0][depth]`` has its own 1×1 head; the side logits are averaged
into ``"mask"`` and, in training mode, also returned as ``"aux"`` so every
side output is supervised (WBC-Net uses BCE + Tversky(α=0.3, β=0.7) on each).

The compact decoder is written here (not smp.UnetPlusPlus) because the side
outputs must be reachable. A re-implementation, not the authors' code.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cellviewer.nets.backbone_unet import check_encoder, load_encoder_weights, prune_encoder
from cellviewer.nets.blocks import DoubleConv, crop_outputs, deep_supervision, head
from cellviewer.nets.blocks import pad_to_multiple
from cellviewer.nets.registry import register

WBC_ENCODERS = ("resnet18", "resnet34", "resnet50")


@register("wbc-net")
class WBCNet(nn.Module):
    """UNet++ with deep supervision on a ResNet encoder.

    Config: ``encoder`` ("resnet34"), ``depth`` (4: nodes X0…X4, side outputs
    X0,1…X0,4; 1…5), ``stem_ch`` (32), ``node_widths`` (per level; default
    ``[stem_ch] + encoder channels``), ``n_classes`` (1), ``in_ch`` (3),
    ``deep_supervision`` (True; False keeps only the X0,depth head),
    build-time only: ``encoder_weights_path``.
    """

    def __init__(self, *, encoder: str = "resnet34", depth: int = 4, stem_ch: int = 32,
                 node_widths: Sequence[int] | None = None, n_classes: int = 1, in_ch: int = 3,
                 deep_supervision: bool = True, encoder_weights: object = None,
                 encoder_weights_path: str | None = None):
        super().__init__()
        import segmentation_models_pytorch as smp

        check_encoder(encoder, encoder_weights, WBC_ENCODERS)
        if not 1 <= depth <= 5:
            raise ValueError("depth must be 1..5")
        self.depth = depth
        self.deep = deep_supervision
        self.encoder = smp.encoders.get_encoder(encoder, in_channels=in_ch, depth=depth,
                                                weights=None)
        self.encoder_weights_report: dict | None = None
        if encoder_weights_path:
            self.encoder_weights_report = load_encoder_weights(self.encoder,
                                                               encoder_weights_path)
        prune_encoder(self.encoder, depth, in_ch)
        enc_ch = [stem_ch] + list(self.encoder.out_channels[1:depth + 1])
        widths = [int(w) for w in (node_widths or enc_ch)]
        if len(widths) != depth + 1:
            raise ValueError(f"node_widths needs {depth + 1} entries (levels 0..{depth})")
        self.stem = DoubleConv(in_ch, stem_ch)
        self.nodes = nn.ModuleDict()
        for j in range(1, depth + 1):
            for i in range(depth + 1 - j):
                same_level = enc_ch[i] + (j - 1) * widths[i]
                below = enc_ch[i + 1] if j == 1 else widths[i + 1]
                self.nodes[f"x{i}_{j}"] = DoubleConv(same_level + below, widths[i])
        cols = range(1, depth + 1) if deep_supervision else [depth]
        self.heads = nn.ModuleDict({f"x0_{j}": head(widths[0], n_classes) for j in cols})

    def forward(self, x: torch.Tensor) -> dict:
        x, hw = pad_to_multiple(x, 2 ** self.depth)
        feats = self.encoder(x)
        grid: dict[tuple[int, int], torch.Tensor] = {(0, 0): self.stem(x)}
        for i in range(1, self.depth + 1):
            grid[(i, 0)] = feats[i]
        for j in range(1, self.depth + 1):
            for i in range(self.depth + 1 - j):
                lower = grid[(i + 1, j - 1)]
                up = F.interpolate(lower, size=grid[(i, 0)].shape[-2:], mode="nearest")
                inputs = [grid[(i, k)] for k in range(j)] + [up]
                grid[(i, j)] = self.nodes[f"x{i}_{j}"](torch.cat(inputs, dim=1))
        side = [self.heads[name](grid[(0, int(name.split("_")[1]))]) for name in self.heads]
        if self.deep:
            out = deep_supervision(side, self.training)
        else:
            out = {"mask": side[-1]}
        return crop_outputs(out, hw)
