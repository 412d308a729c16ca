"""Grow a trained DO-U-Net wider without changing what it computes (Net2WiderNet).

A model trained for hours on two CPU cores has more to give when it gets more
channels, but a wider net trained from scratch would need those hours again.
Chen, Goodfellow & Shlens (2016, "Net2Net") widen a layer by *copying* units:
each new channel repeats an existing one, and every layer that reads the
copied channel divides its input weights by the number of copies, so the wider
net computes exactly the same function. Training then starts from the trained
model's accuracy and uses the extra capacity. A little noise on the copies
breaks their symmetry (identical copies would receive identical gradients).

:func:`widen_do_unet` does this for the padded and the valid DO-U-Net
(``base`` → a larger ``base``, same depth): convolution + BatchNorm producers
copy output channels (weights, BN affine and running statistics), the
transposed up-convolutions copy output channels and biases, and every consumer
— including the concatenation of skip and upsampled tensors in the decoder and
the 1×1 heads — splits its input weights over the copies.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cellviewer.core.errors import ModelLoadError
from cellviewer.nets.registry import create_net

WIDENABLE = ("do-unet", "do-unet-valid")


def _mapping(old: int, new: int, rng: np.random.Generator) -> np.ndarray:
    """Channel ``j`` of the wide tensor copies channel ``g[j]`` of the narrow one."""
    extra = rng.integers(0, old, new - old) if new > old else np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(old), extra]).astype(np.int64)


def _shares(g: np.ndarray, n_old: int, n_out: int, rng: np.random.Generator,
            split: float) -> torch.Tensor:
    """``n_out × len(g)`` factors: per output row, the copies of each old channel share 1.

    ``split`` 0 gives equal shares (1/copies); up to 1, the shares are drawn
    uniformly from ``1 ± split`` before being normalised.
    """
    raw = rng.uniform(1.0 - split, 1.0 + split, size=(n_out, len(g))) if split > 0 else np.ones((n_out, len(g)))
    sums = np.zeros((n_out, n_old))
    np.add.at(sums.T, g, raw.T)
    return torch.from_numpy(raw / sums[:, g]).float()


def _layers(depth: int) -> list[tuple[str, str, list[str], str]]:
    """``(prefix, kind, input tensors, output tensor)`` of every layer, in order.

    ``kind`` is ``conv`` (conv + BN), ``up`` (transposed conv with bias) or
    ``head`` (1×1 conv with bias, output not widened). ``img`` and ``out`` are
    the tensors that keep their width.
    """
    layers: list[tuple[str, str, list[str], str]] = []
    prev = "img"
    for i in range(depth):
        layers.append((f"down.{i}.0", "conv", [prev], f"d{i}a"))
        layers.append((f"down.{i}.1", "conv", [f"d{i}a"], f"skip{i}"))
        prev = f"skip{i}"
    layers.append(("bottom.0", "conv", [prev], "ba"))
    layers.append(("bottom.1", "conv", ["ba"], "bb"))
    prev = "bb"
    for j in range(depth):
        level = depth - 1 - j
        layers.append((f"up.{j}.up", "up", [prev], f"u{j}"))
        layers.append((f"up.{j}.conv.0", "conv", [f"skip{level}", f"u{j}"], f"u{j}a"))
        layers.append((f"up.{j}.conv.1", "conv", [f"u{j}a"], f"u{j}b"))
        prev = f"u{j}b"
    layers.append(("mask_head", "head", [prev], "out"))
    layers.append(("edge_head", "head", [prev], "out"))
    return layers


def widen_do_unet(net: nn.Module, base: int, *, split: float = 0.5, noise: float = 0.0,
                  seed: int = 0) -> nn.Module:
    """A copy of the DO-U-Net ``net`` with channel width ``base`` (≥ its own).

    The result computes the same function as ``net``: the copies of a channel
    share its outgoing weights in random proportions (``split``, see
    :func:`_shares`), which breaks their symmetry without changing the output.
    ``noise`` > 0 adds Gaussian noise of that relative size to every widened
    weight on top (then the function changes slightly). The returned net is in the same
    train/eval mode as ``net`` and has the registry config with the new base.
    """
    config = dict(getattr(net, "config", {}) or {})
    name = config.pop("name", None)
    if name not in WIDENABLE:
        raise ModelLoadError(f"Only DO-U-Net models can be widened, not '{name}'",
                             hint="train a new model with the width you want instead")
    old_base = int(config.get("base", 32))
    if base < old_base:
        raise ModelLoadError(f"Cannot widen from base {old_base} to the narrower {base}",
                             hint=f"choose a base of at least {old_base}")
    if config.get("norm", "bn") != "bn":
        raise ModelLoadError("Only DO-U-Nets with BatchNorm can be widened",
                             hint="train a new model with the width you want instead")
    depth = int(config.get("depth", 3))
    wide = create_net(name, **{**config, "base": int(base)})
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    old_sd, new_sd = net.state_dict(), wide.state_dict()
    maps: dict[str, np.ndarray] = {}

    def tensor_map(tname: str, old_w: int, new_w: int) -> np.ndarray:
        if tname in ("img", "out"):
            return np.arange(old_w)
        if tname not in maps:
            maps[tname] = _mapping(old_w, new_w, rng)
        return maps[tname]

    def jitter(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        if noise <= 0 or t.numel() < 2:
            return t
        scale = float(ref.float().std()) * noise
        return t + torch.randn(t.shape, generator=gen, dtype=t.dtype) * scale

    for prefix, kind, inputs, output in _layers(depth):
        wkey = f"{prefix}.0.weight" if kind == "conv" else f"{prefix}.weight"
        if wkey not in old_sd:
            continue  # e.g. no edge head
        w_old, w_new = old_sd[wkey], new_sd[wkey]
        out_dim, in_dim = (1, 0) if kind == "up" else (0, 1)
        g_out = torch.from_numpy(tensor_map(output, w_old.shape[out_dim], w_new.shape[out_dim]))
        # input channels: one mapping per concatenated part, in concatenation order;
        # each copy gets a random share of the original input weight (shares of
        # one channel's copies sum to 1, so the function is unchanged while the
        # copies differ — their gradients differ and they drift apart in training)
        parts, shares, offset = [], [], 0
        part_old = w_old.shape[in_dim] // len(inputs)
        part_new = w_new.shape[in_dim] // len(inputs)
        n_out = w_new.shape[out_dim]
        for tname in inputs:
            g = tensor_map(tname, part_old, part_new)
            parts.append(torch.from_numpy(g + offset))
            shares.append(_shares(g, part_old, n_out, rng, split))
            offset += part_old
        g_in, share = torch.cat(parts), torch.cat(shares, dim=1)  # share: out × in
        w = w_old.index_select(out_dim, g_out).index_select(in_dim, g_in)
        share = share if out_dim == 0 else share.t()
        w = w * share.view(*share.shape, *([1] * (w.dim() - 2))).to(w.dtype)
        new_sd[wkey] = jitter(w, w_old)
        if kind == "conv":
            for leaf in ("weight", "bias", "running_mean", "running_var"):
                new_sd[f"{prefix}.1.{leaf}"] = old_sd[f"{prefix}.1.{leaf}"][g_out].clone()
            new_sd[f"{prefix}.1.num_batches_tracked"] = old_sd[f"{prefix}.1.num_batches_tracked"].clone()
        else:
            new_sd[f"{prefix}.bias"] = old_sd[f"{prefix}.bias"][g_out].clone()
    wide.load_state_dict(new_sd)
    wide.train(net.training)
    return wide
