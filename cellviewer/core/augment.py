"""Training augmentation of the papers (numpy + OpenCV, no extra dependency).

One call of :func:`augment` turns an image and its label maps into a training crop:

1. **Geometry** — a random crop of ``crop × crop`` px centred, with probability
   ``cell_crop_p``, on a labelled pixel (so crops contain cells), with a random zoom
   in ``scale_range`` and optionally a small arbitrary rotation (``max_rotation_deg``),
   done as one affine warp; then a random 90° rotation and flips. Images are
   resampled bilinearly with reflected borders, label maps with nearest neighbour and
   their own fill value (e.g. ``IGNORE`` for the class map, so the padding is not
   taught as background).
2. **Resolution** — with probability ``p_degrade`` the image is downscaled by a factor
   in ``degrade_range`` and upscaled back (blur of other microscopes / JPEG sizes).
3. **Colour** — brightness, contrast, saturation and hue jitter (stain and lamp
   variation), image only.

Everything random comes from the ``numpy.random.Generator`` passed in, so the same
generator state gives the same crop. Label maps and the image always move together.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass
class AugmentConfig:
    crop: int = 128
    cell_crop_p: float = 0.9
    scale_range: tuple[float, float] = (0.8, 1.25)
    max_rotation_deg: float = 0.0
    rot90: bool = True
    flips: bool = True
    p_degrade: float = 0.3
    degrade_range: tuple[float, float] = (0.5, 0.9)
    brightness: float = 0.12  # ± fraction
    contrast: float = 0.15  # ± fraction
    saturation: float = 0.25  # ± fraction
    hue_deg: float = 8.0  # ± degrees (OpenCV hue is 0..180 for 0..360°)

    @classmethod
    def from_dict(cls, d: dict | None) -> "AugmentConfig":
        d = dict(d or {})
        for k in ("scale_range", "degrade_range"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


def _centre(fg: np.ndarray | None, shape: tuple[int, int], rng: np.random.Generator, p: float) -> tuple[float, float]:
    h, w = shape
    if fg is not None and rng.random() < p:
        ys, xs = np.nonzero(fg)
        if len(ys):
            i = int(rng.integers(len(ys)))
            return float(xs[i]), float(ys[i])
    return float(rng.uniform(0, w)), float(rng.uniform(0, h))


def warp_crop(image: np.ndarray, labels: dict[str, tuple[np.ndarray, int]], size: int, centre: tuple[float, float],
              zoom: float = 1.0, angle_deg: float = 0.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A ``size × size`` crop around ``centre`` (x, y), magnified by ``zoom`` and rotated.

    ``labels`` maps a name to ``(array, fill)``. Returns the image crop and the label crops.
    """
    a = math.radians(angle_deg)
    c, s = math.cos(a) * zoom, math.sin(a) * zoom
    cx, cy = centre
    half = size / 2.0
    # output = A @ (src - centre) + half
    m = np.array([[c, -s, half - c * cx + s * cy], [s, c, half - s * cx - c * cy]], np.float64)
    img = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    out = {}
    for k, (lab, fill) in labels.items():
        out[k] = cv2.warpAffine(lab, m, (size, size), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=int(fill))
    return img, out


def degrade(image: np.ndarray, factor: float) -> np.ndarray:
    """Downscale by ``factor`` (< 1) and upscale back to the same size."""
    h, w = image.shape[:2]
    sw, sh = max(1, int(round(w * factor))), max(1, int(round(h * factor)))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def colour_jitter(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Brightness / contrast / saturation / hue jitter of a uint8 RGB image."""
    b = 1.0 + rng.uniform(-cfg.brightness, cfg.brightness)
    ct = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
    sat = 1.0 + rng.uniform(-cfg.saturation, cfg.saturation)
    hue = rng.uniform(-cfg.hue_deg, cfg.hue_deg) / 2.0  # OpenCV hue units
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + hue) % 180.0
    hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255)
    out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    mean = out.mean()
    out = (out - mean) * ct + mean * b
    return np.clip(out, 0, 255).astype(np.uint8)


def flip_rotate(arrays: list[np.ndarray], rng: np.random.Generator, rot90: bool = True,
                flips: bool = True) -> list[np.ndarray]:
    """The same random 90° rotation and flips applied to every array (H×W[×C])."""
    k = int(rng.integers(4)) if rot90 else 0
    fh = flips and rng.random() < 0.5
    fv = flips and rng.random() < 0.5
    out = []
    for a in arrays:
        a = np.rot90(a, k, axes=(0, 1))
        if fh:
            a = a[:, ::-1]
        if fv:
            a = a[::-1]
        out.append(np.ascontiguousarray(a))
    return out


def augment(image: np.ndarray, labels: dict[str, tuple[np.ndarray, int]], rng: np.random.Generator,
            cfg: AugmentConfig | None = None,
            focus: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One augmented crop of ``image`` (uint8 RGB) and its ``labels`` (name → (map, fill)).

    ``focus`` is a boolean map of pixels a crop should be centred on (cells); by
    default the first label map's pixels that are neither 0 nor its fill value.
    """
    cfg = cfg or AugmentConfig()
    if focus is None and labels:
        lab, fill = next(iter(labels.values()))
        focus = (lab != 0) & (lab != fill)
    centre = _centre(focus, image.shape[:2], rng, cfg.cell_crop_p)
    lo, hi = cfg.scale_range
    zoom = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    angle = float(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg)) if cfg.max_rotation_deg else 0.0
    img, labs = warp_crop(image, labels, cfg.crop, centre, zoom, angle)
    names = list(labs)
    arrays = flip_rotate([img] + [labs[n] for n in names], rng, cfg.rot90, cfg.flips)
    img, labs = arrays[0], dict(zip(names, arrays[1:]))
    if rng.random() < cfg.p_degrade:
        img = degrade(img, float(rng.uniform(*cfg.degrade_range)))
    img = colour_jitter(img, rng, cfg)
    return img, labs
