"""U-Net on a classic backbone (segmentation-models-pytorch), offline only.

``"unet"``: ``smp.Unet`` with an encoder from :data:`ENCODERS` (ResNet-18/34/50/152,
VGG-16/19 with or without BatchNorm, MobileNetV2) and ``classes`` output channels
(e.g. 3 for background/nucleus/cytoplasm with CE or Dice loss).
``"unet-edge"``: the same plus a cell-edge head on the last decoder features.

Encoders are always built with ``encoder_weights=None`` — nothing is ever
downloaded. Pretrained weights come only from a local file the user passes as
``encoder_weights_path`` (``.safetensors`` or a weights-only ``.pth``, e.g. a
torchvision ImageNet state_dict); it is loaded into the encoder with
``strict=False`` and the outcome is kept in ``net.encoder_weights_report``
(missing/unexpected keys). A file that matches nothing, has wrong shapes or
holds code raises :class:`ModelLoadError`. The path is not stored in
``net.config``: a checkpoint carries the trained weights itself.

Inputs of any size are padded to a multiple of ``2**encoder_depth``.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import nn

from cellviewer.core.errors import ModelLoadError
from cellviewer.nets.blocks import crop_outputs, head, pad_to_multiple, prune_unused_
from cellviewer.nets.registry import register

ENCODERS = ("resnet18", "resnet34", "resnet50", "resnet152", "vgg16", "vgg16_bn",
            "vgg19", "vgg19_bn", "mobilenet_v2")
PREFIXES = ("", "encoder.", "module.", "module.encoder.", "backbone.", "model.encoder.")


def check_encoder(encoder: str, encoder_weights: object, allowed: Sequence[str]) -> None:
    """Reject unknown encoders and any attempt to download weights."""
    if encoder not in allowed:
        raise ModelLoadError(f"Unknown encoder '{encoder}'",
                             hint="valid encoders: " + ", ".join(allowed))
    if encoder_weights is not None:
        raise ModelLoadError(
            f"encoder_weights={encoder_weights!r} would download weights; cellviewer "
            "never downloads", hint="pass a local file as encoder_weights_path instead")


def load_encoder_weights(encoder: nn.Module, path: str) -> dict:
    """Load a local weights file into an smp encoder (``strict=False``).

    Tries common key prefixes (``encoder.``, ``module.`` …) and keeps the one
    that matches most keys. Returns ``{"path", "loaded", "missing",
    "unexpected"}``; warns when encoder weights stay uninitialised.
    """
    from cellviewer.nets.checkpoint import load_matching, read_state_dict

    state = read_state_dict(path)
    own = set(encoder.state_dict())
    best = max(PREFIXES, key=lambda pre: sum(
        1 for k in state if k.startswith(pre) and k[len(pre):] in own))
    mapped = {k[len(best):]: v for k, v in state.items() if k.startswith(best)}
    report = load_matching(encoder, mapped, source=str(path))
    report["unexpected"] += [k for k in state if not k.startswith(best)]
    out = {"path": str(path), "loaded": len(own) - len(report["missing"]), **report}
    if report["missing"]:
        warnings.warn(f"{len(report['missing'])} encoder weights were not in '{path}' and "
                      f"keep their random initialisation (e.g. {report['missing'][0]})",
                      stacklevel=3)
    return out


def prune_encoder(encoder: nn.Module, depth: int, in_ch: int) -> None:
    """Drop encoder stages deeper than ``depth`` that smp keeps but never runs."""
    if depth < 5:
        size = 2 ** (depth + 1)
        prune_unused_(encoder, lambda: encoder(torch.zeros(1, in_ch, size, size)))


class BackboneUNet(nn.Module):
    """smp U-Net wrapper following the registry's output convention.

    Config: ``encoder`` ("resnet34"), ``encoder_depth`` (5), ``decoder_channels``
    (smp default (256, 128, 64, 32, 16) cut to the depth), ``n_classes`` (1; the
    registry's name, as training passes it — ``classes``, smp's name, is the same option),
    ``in_ch`` (3), ``edge`` (False), ``decoder_interpolation`` ("nearest"),
    build-time only: ``encoder_weights_path``.
    """

    def __init__(self, *, encoder: str = "resnet34", encoder_depth: int = 5,
                 decoder_channels: Sequence[int] | None = None, n_classes: int | None = None,
                 classes: int | None = None, in_ch: int = 3, edge: bool = False,
                 decoder_interpolation: str = "nearest",
                 encoder_weights: object = None, encoder_weights_path: str | None = None):
        super().__init__()
        import segmentation_models_pytorch as smp

        if n_classes is not None and classes is not None and n_classes != classes:
            raise ValueError(f"n_classes ({n_classes}) and classes ({classes}) are the same option; give one")
        classes = n_classes if n_classes is not None else (classes if classes is not None else 1)

        check_encoder(encoder, encoder_weights, ENCODERS)
        if not 1 <= encoder_depth <= 5:
            raise ValueError("encoder_depth must be 1..5")
        if decoder_channels is None:
            decoder_channels = (256, 128, 64, 32, 16)[:encoder_depth]
        decoder_channels = [int(c) for c in decoder_channels]
        if len(decoder_channels) != encoder_depth:
            raise ValueError("decoder_channels needs one entry per encoder stage")
        self.depth = encoder_depth
        self.model = smp.Unet(
            encoder_name=encoder, encoder_depth=encoder_depth, encoder_weights=None,
            decoder_channels=decoder_channels, decoder_interpolation=decoder_interpolation,
            in_channels=in_ch, classes=classes)
        self.encoder_weights_report: dict | None = None
        if encoder_weights_path:
            self.encoder_weights_report = load_encoder_weights(
                self.model.encoder, encoder_weights_path)
        prune_encoder(self.model.encoder, encoder_depth, in_ch)
        self.edge_head = head(decoder_channels[-1], 1) if edge else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x, hw = pad_to_multiple(x, 2 ** self.depth)
        features = self.model.encoder(x)
        dec = self.model.decoder(features)
        out = {"mask": self.model.segmentation_head(dec)}
        if self.edge_head is not None:
            out["edge"] = self.edge_head(dec)
        return crop_outputs(out, hw)


@register("unet")
def unet(**cfg) -> BackboneUNet:
    """U-Net on a backbone encoder; see :class:`BackboneUNet` for the options."""
    if cfg.get("edge"):
        raise ValueError("use 'unet-edge' for a U-Net with an edge head")
    return BackboneUNet(**cfg)


@register("unet-edge")
def unet_edge(**cfg) -> BackboneUNet:
    """U-Net on a backbone encoder with an extra edge head."""
    cfg.pop("edge", None)
    return BackboneUNet(edge=True, **cfg)
