"""Image preprocessing that some architectures were trained with (numpy/cv2 only)."""

from __future__ import annotations

import numpy as np


def clahe_y(rgb: np.ndarray, *, clip_limit: float = 2.0, tile_grid: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of the luma channel.

    Converts uint8 RGB (H×W×3) to YUV, applies CLAHE to Y only (colours keep
    their chroma) and converts back. Returns a new uint8 H×W×3 array.
    Used by NODE-UNet to enhance the contrast between cells and background.
    """
    import cv2

    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"clahe_y expects uint8 H×W×3 RGB, got {arr.dtype} {arr.shape}")
    yuv = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2YUV)
    clahe = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(tile_grid, tile_grid))
    yuv[..., 0] = clahe.apply(np.ascontiguousarray(yuv[..., 0]))
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB)
