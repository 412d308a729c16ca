"""Tiled network inference for images of any size.

The image is cut into ``tile × tile`` windows that overlap by ``overlap`` px, run
through the network in batches (``torch.inference_mode``; float16 autocast on CUDA;
``channels_last`` memory format on request — about 1.5× faster convolutions on CPU),
and the logits of every output key are blended back with a window weight that is
highest at a tile's centre and falls towards its edges (``"cosine"`` = Hann,
``"linear"`` = triangle, ``"flat"`` = plain average), floored at a small epsilon so
border pixels covered by one tile keep their value. An image no larger than one tile
is run as a single tile (no blending).

Networks follow the :mod:`cellviewer.nets.registry` convention (N×3×H×W in 0..1 →
dict of N×C×H×W logits). *Valid*-convolution nets (with ``output_size`` and
``valid_input_size``) are supported: the image is reflect-padded by the lost margin
and every tile is grown by it.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from cellviewer.core.jobs import CancelToken, Job, Progress, run_job

WINDOWS = ("cosine", "linear", "flat")
_EPS = 1e-3


def window_1d(n: int, kind: str = "cosine") -> np.ndarray:
    if kind not in WINDOWS:
        raise ValueError(f"unknown window {kind!r}; use one of {WINDOWS}")
    if kind == "flat" or n <= 2:
        return np.ones(n, np.float32)
    t = (np.arange(n, dtype=np.float64) + 0.5) / n  # 0..1, symmetric
    w = np.sin(np.pi * t) ** 2 if kind == "cosine" else 1.0 - np.abs(2.0 * t - 1.0)
    return np.maximum(w, _EPS).astype(np.float32)


def window_2d(h: int, w: int, kind: str = "cosine") -> np.ndarray:
    return np.outer(window_1d(h, kind), window_1d(w, kind)).astype(np.float32)


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` px covering ``size`` px with at least ``overlap``."""
    if size <= tile:
        return [0]
    stride = max(1, tile - overlap)
    n = int(np.ceil((size - tile) / stride)) + 1
    return [int(round(i * (size - tile) / (n - 1))) for i in range(n)]


def _to_tensor(image: np.ndarray):
    """C×H×W float32 view (channels-last strides) of an H×W×3 image, scaled to 0..1 when uint8."""
    import torch

    a = np.asarray(image)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)


def _margin(net) -> int:
    if hasattr(net, "output_size") and hasattr(net, "valid_input_size"):
        s = net.valid_input_size(64)
        return (s - net.output_size(s)) // 2
    return 0


def iter_tiled(net, image: np.ndarray, tile: int = 256, overlap: int = 32, batch_size: int = 4,
               device: str = "cpu", window: str = "cosine", keys: Iterable[str] | None = None,
               cancel: CancelToken | None = None, channels_last: bool = False) -> Job[dict[str, np.ndarray]]:
    """Long job: blended logits ``{key: C×H×W float32}`` of ``net`` on ``image``.

    ``image`` is H×W×3, uint8 (scaled to 0..1 here) or float in 0..1. ``keys`` limits
    the output keys kept (default: every tensor output, e.g. ``mask`` and ``edge``).
    ``channels_last`` feeds the batches in that memory format (convert the net too, once:
    ``net.to(memory_format=torch.channels_last)``).
    """
    import torch

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 image, got {img.shape}")
    h, w = img.shape[:2]
    m = _margin(net)
    tile = int(tile)
    if m:  # valid convolutions: tiles grow by the margin; the image is reflect-padded by it
        tin = net.valid_input_size(tile + 2 * m)
        tile = net.output_size(tin)
        mode = "reflect" if m < min(h, w) else "edge"
        img = np.pad(img, ((m, m + tile), (m, m + tile), (0, 0)), mode=mode)
    th, tw = min(tile, h), min(tile, w)
    if m:
        th = tw = tile
    ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    coords = [(y, x) for y in ys for x in xs]
    single = len(coords) == 1
    win = np.ones((th, tw), np.float32) if single else window_2d(th, tw, window)
    x_all = _to_tensor(img)
    acc: dict[str, np.ndarray] = {}
    weight = np.zeros((h, w), np.float32)
    dev = torch.device(device)
    use_amp = dev.type == "cuda"
    keep = set(keys) if keys is not None else None
    was_training = net.training
    net.eval()
    try:
        for b0 in range(0, len(coords), max(1, batch_size)):
            if cancel is not None:
                cancel.check()
            chunk = coords[b0:b0 + batch_size]
            batch = torch.stack([x_all[:, y:y + th + 2 * m, x:x + tw + 2 * m] for y, x in chunk])
            batch = batch.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            batch = batch.to(dev)
            with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.float16, enabled=use_amp):
                out = net(batch)
            for key, val in out.items():
                if not torch.is_tensor(val) or (keep is not None and key not in keep):
                    continue
                v = val.float().cpu().numpy()
                if key not in acc:
                    acc[key] = np.zeros((v.shape[1], h, w), np.float32)
                for (y, x), t in zip(chunk, v):
                    yh, xw = min(th, h - y), min(tw, w - x)
                    acc[key][:, y:y + yh, x:x + xw] += t[:, :yh, :xw] * win[:yh, :xw]
            for y, x in chunk:
                yh, xw = min(th, h - y), min(tw, w - x)
                weight[y:y + yh, x:x + xw] += win[:yh, :xw]
            yield Progress(min(1.0, (b0 + len(chunk)) / len(coords)), f"tile {b0 + len(chunk)}/{len(coords)}")
    finally:
        net.train(was_training)
    inv = 1.0 / np.maximum(weight, 1e-12)
    return {k: v * inv for k, v in acc.items()}


def predict_tiled(net, image: np.ndarray, **kwargs) -> dict[str, np.ndarray]:
    """:func:`iter_tiled` run to the end (no progress reporting)."""
    return run_job(iter_tiled(net, image, **kwargs))


def mirror_margin(image: np.ndarray, margin: float) -> tuple[np.ndarray, int]:
    """``(image reflect-padded by m px on every side, m)``; ``m`` = ``round(margin)`` capped below
    the image size (reflection needs it). Crop outputs back with :func:`crop_margin`."""
    m = max(0, min(int(round(margin)), min(image.shape[:2]) - 1))
    if m == 0:
        return image, 0
    import cv2

    return cv2.copyMakeBorder(np.ascontiguousarray(image), m, m, m, m, cv2.BORDER_REFLECT_101), m


def crop_margin(outputs: dict[str, np.ndarray], m: int) -> dict[str, np.ndarray]:
    """C×H×W ``outputs`` of a :func:`mirror_margin` image with the margin ``m`` cut off."""
    if m == 0:
        return outputs
    return {k: np.ascontiguousarray(v[:, m:-m, m:-m]) for k, v in outputs.items()}
