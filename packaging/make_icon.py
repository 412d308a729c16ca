"""Draw the application icon from code: ``resources/icon.png`` (256 px) and ``resources/icon.ico``.

Two red cells (pale centres, as on a stained smear) and a white cell with a lobed
purple nucleus, on a transparent background. Drawn at 4x and downsampled for smooth
edges. Run from the repository root (the images are committed; rerun after a change):

    .venv/bin/python packaging/make_icon.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SIZE = 256
SCALE = 4
ICO_SIZES = [(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]


def _disc(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill, outline=None, width: int = 0) -> None:
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline, width=width)


def _red_cell(img: Image.Image, cx: float, cy: float, r: float) -> None:
    d = ImageDraw.Draw(img)
    _disc(d, cx, cy, r, fill=(196, 62, 78, 255), outline=(140, 30, 48, 255), width=int(r * 0.08))
    # the pale biconcave centre, blurred in so it fades into the rim
    centre = Image.new("RGBA", img.size, (0, 0, 0, 0))
    _disc(ImageDraw.Draw(centre), cx, cy, r * 0.45, fill=(240, 170, 178, 255))
    centre = centre.filter(ImageFilter.GaussianBlur(r * 0.18))
    img.alpha_composite(centre)


def _white_cell(img: Image.Image, cx: float, cy: float, r: float) -> None:
    d = ImageDraw.Draw(img)
    _disc(d, cx, cy, r, fill=(222, 206, 236, 255), outline=(150, 120, 180, 255), width=int(r * 0.06))
    nucleus = (92, 44, 140, 255)
    for dx, dy, k in ((-0.34, -0.18, 0.36), (0.30, -0.24, 0.34), (0.02, 0.30, 0.38)):  # three lobes
        _disc(d, cx + dx * r, cy + dy * r, k * r, fill=nucleus)
    d.line([(cx - 0.34 * r, cy - 0.18 * r), (cx + 0.02 * r, cy + 0.30 * r), (cx + 0.30 * r, cy - 0.24 * r)],
           fill=nucleus, width=int(r * 0.22))


def draw_icon(size: int = SIZE) -> Image.Image:
    """The icon as an RGBA image of ``size`` px."""
    s = size * SCALE
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    _red_cell(img, 0.33 * s, 0.68 * s, 0.27 * s)
    _red_cell(img, 0.72 * s, 0.74 * s, 0.22 * s)
    _white_cell(img, 0.58 * s, 0.34 * s, 0.30 * s)
    return img.resize((size, size), Image.LANCZOS)


def main(out_dir: str | None = None) -> int:
    folder = Path(out_dir) if out_dir else Path(__file__).resolve().parents[1] / "resources"
    folder.mkdir(parents=True, exist_ok=True)
    icon = draw_icon()
    icon.save(folder / "icon.png", optimize=True)
    icon.save(folder / "icon.ico", sizes=ICO_SIZES)
    print(f"wrote {folder / 'icon.png'} and {folder / 'icon.ico'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:2]))
