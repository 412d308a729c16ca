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


# -- preprocessing recorded in model cards -------------------------------------------------
#: image steps, each ``{"op": name, **options}``, applied in order to uint8 RGB at the working
#: scale before the net (training items and inference alike); ops name functions of this module
OPS = {"clahe_y": clahe_y}
#: the steps an architecture was published with (NODE-UNet: CLAHE on Y of YUV)
ARCHITECTURE_DEFAULTS: dict[str, list[dict]] = {"node-unet": [{"op": "clahe_y", "clip_limit": 2.0, "tile_grid": 8}]}


def check_steps(steps) -> list[dict]:
    """``steps`` as a clean list of ``{"op", **options}``; ValueError naming the valid ops when unknown."""
    out = []
    for st in steps or []:
        if isinstance(st, str):
            st = {"op": st}
        if not isinstance(st, dict) or st.get("op") not in OPS:
            raise ValueError(f"unknown preprocessing step {st!r}; valid ops: {', '.join(sorted(OPS))}")
        out.append(dict(st))
    return out


def steps_for(architecture: str, explicit=None, resumed_card: dict | None = None) -> list[dict]:
    """The steps a training run uses: ``explicit`` (a list, ``[]`` = none) when given; else those
    recorded in the card being resumed / fine-tuned (a card without ``steps`` had none); else the
    architecture's default (:data:`ARCHITECTURE_DEFAULTS`)."""
    if explicit is not None:
        return check_steps(explicit)
    if resumed_card is not None:
        return card_steps(resumed_card)
    return check_steps(ARCHITECTURE_DEFAULTS.get(str(architecture), []))


def card_steps(card: dict) -> list[dict]:
    """The steps a model card records (``card["preprocessing"]["steps"]``; none when absent)."""
    pre = card.get("preprocessing") if isinstance(card, dict) else None
    return check_steps(pre.get("steps") if isinstance(pre, dict) else None)


def apply_steps(rgb: np.ndarray, steps: list[dict]) -> np.ndarray:
    """``rgb`` (uint8 H×W×3) after each step in order (the same array when there are none)."""
    for st in steps:
        opts = {k: v for k, v in st.items() if k != "op"}
        rgb = OPS[st["op"]](rgb, **opts)
    return rgb
