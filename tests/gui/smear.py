"""A small synthetic blood smear (RGB uint8) with known cell positions, for GUI tests."""

from __future__ import annotations

import numpy as np

BACKGROUND = (236, 226, 230)
RBC = (214, 128, 140)
NUCLEUS = (105, 45, 150)
CYTOPLASM = (200, 170, 215)
PLATELET = (120, 60, 160)

#: (x, y) centres; RBC radius 11, two RBCs touching at (150..172, 40)
RBC_CENTRES = [(30, 30), (70, 30), (30, 75), (70, 80), (150, 40), (171, 40), (215, 35),
               (215, 150), (170, 160), (30, 160), (80, 165), (120, 120)]
RBC_R = 11
WBC_CENTRE, WBC_R, NUCLEUS_R = (160, 100), 18, 11
PLATELET_CENTRES = [(110, 60), (240, 95)]


def make_smear(h: int = 190, w: int = 260, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.float32)
    img[:] = BACKGROUND
    yy, xx = np.mgrid[:h, :w]

    def disc(c, r, colour):
        m = (xx - c[0]) ** 2 + (yy - c[1]) ** 2 <= r * r
        img[m] = colour

    for c in RBC_CENTRES:
        disc(c, RBC_R, RBC)
    disc(WBC_CENTRE, WBC_R, CYTOPLASM)
    disc(WBC_CENTRE, NUCLEUS_R, NUCLEUS)
    for c in PLATELET_CENTRES:
        disc(c, 3, PLATELET)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_smear(path, **kw):
    from PIL import Image

    Image.fromarray(make_smear(**kw)).save(path)
    return path
