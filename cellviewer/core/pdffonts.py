"""Fonts for text the PDF report's standard Helvetica cannot show.

Helvetica (a PDF base font, nothing embedded) has the Windows-1252 characters only: an image
named ``血液_001.jpg``, a user called ``Ольга`` or a note in Greek would print as black boxes.
:func:`runs` cuts such text into pieces, each shown by a font that has its characters (font
fallback, character by character; Windows-1252 characters stay in Helvetica):

1. a TrueType font of the system, embedded (subset) in the PDF — DejaVu Sans / Noto / Droid on
   Linux, Arial / Segoe UI / Microsoft YaHei / MS Gothic / Malgun Gothic on Windows, Arial
   Unicode on macOS (the first one with a glyph for the character);
2. else, for Chinese, Japanese and Korean, one of the CID fonts every PDF reader knows
   (``STSong-Light``, ``HeiseiKakuGo-W5``, ``HYGothic-Medium``; not embedded: the reader
   supplies the glyphs, as Acrobat, browsers and poppler do);
3. else Helvetica, and the character shows as a box.

Scripts written right to left or with joined letters (Arabic, Hebrew) print letter by letter, in
the order stored, unshaped: reportlab does no text shaping.

Fonts are registered with reportlab once, on first need.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

_LOCK = threading.Lock()
_LOADED: dict[str, object] = {}  # font name -> reportlab font (or None when unusable)
_COVER_CACHE: dict[str, str | None] = {}


def _candidates() -> list[Path]:
    """System TrueType files to try, in order (those that exist)."""
    if sys.platform.startswith("win"):
        root = Path(os.environ.get("WINDIR", r"C:\Windows")) / "Fonts"
        names = ["arial.ttf", "segoeui.ttf", "msyh.ttc", "msyh.ttf", "simsun.ttc", "msgothic.ttc", "malgun.ttf",
                 "tahoma.ttf", "LeelawUI.ttf", "Nirmala.ttf", "mangal.ttf", "arialuni.ttf"]
        paths = [root / n for n in names]
    elif sys.platform == "darwin":
        paths = [Path("/Library/Fonts/Arial Unicode.ttf"), Path("/System/Library/Fonts/Supplemental/Arial Unicode.ttf"),
                 Path("/System/Library/Fonts/Supplemental/Arial.ttf")]
    else:
        roots = [Path("/usr/share/fonts/truetype"), Path("/usr/local/share/fonts"), Path.home() / ".fonts"]
        names = ["dejavu/DejaVuSans.ttf", "noto/NotoSans-Regular.ttf", "droid/DroidSansFallbackFull.ttf",
                 "droid/DroidSansFallback.ttf", "wqy/wqy-microhei.ttc", "arphic/uming.ttc",
                 "noto/NotoSansThai-Regular.ttf", "noto/NotoSansDevanagari-Regular.ttf", "freefont/FreeSans.ttf"]
        paths = [r / n for r in roots for n in names]
    return [p for p in paths if p.is_file()]


def _load(path: Path):
    """A registered reportlab TrueType font for ``path`` (None when it cannot be used, e.g. CFF outlines)."""
    key = "cv-" + path.stem
    if key not in _LOADED:
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont

        try:
            font = TTFont(key, str(path), subfontIndex=0) if path.suffix.lower() == ".ttc" else TTFont(key, str(path))
            pdfmetrics.registerFont(font)
        except Exception:  # noqa: BLE001 - any unreadable or unsupported font file is just skipped
            font = None
        _LOADED[key] = font
    return _LOADED[key]


def _cid(text: str) -> str | None:
    """A standard CID font name for CJK text (None when the text is not CJK)."""
    def has(lo: int, hi: int) -> bool:
        return any(lo <= ord(c) <= hi for c in text)

    if has(0xAC00, 0xD7AF) or has(0x1100, 0x11FF) or has(0x3130, 0x318F):
        name = "HYGothic-Medium"
    elif has(0x3040, 0x30FF):
        name = "HeiseiKakuGo-W5"
    elif has(0x4E00, 0x9FFF) or has(0x3400, 0x4DBF) or has(0x3000, 0x303F) or has(0xFF00, 0xFFEF):
        name = "STSong-Light"
    else:
        return None
    if name not in _LOADED:
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.cidfonts import UnicodeCIDFont

        pdfmetrics.registerFont(UnicodeCIDFont(name))
        _LOADED[name] = True
    return name


def needs_font(text: str) -> bool:
    """True when Helvetica (Windows-1252) cannot show ``text``."""
    try:
        str(text).encode("cp1252")
        return False
    except UnicodeEncodeError:
        return True


def _font_of_char(c: str) -> str | None:
    """The font for one character: None (Helvetica) for Windows-1252 ones, else the first system
    TrueType font with a real glyph for it, else a CJK CID font, else None."""
    if c not in _COVER_CACHE:
        found = None
        if needs_font(c):
            for path in _candidates():
                font = _load(path)
                cmap = getattr(getattr(font, "face", None), "charToGlyph", None) or {}
                if cmap.get(ord(c)):  # glyph 0 is .notdef: a box
                    found = font.fontName
                    break
            if found is None:
                found = _cid(c)
        _COVER_CACHE[c] = found
    return _COVER_CACHE[c]


def runs(text: str) -> list[tuple[str | None, str]]:
    """``text`` cut into ``(font, piece)`` runs, each piece shown by one font (None: Helvetica);
    spaces stay in the run they follow. Font fallback, as a text renderer does it."""
    text = str(text)
    if not needs_font(text):
        return [(None, text)] if text else []
    out: list[list] = []
    with _LOCK:
        for c in text:
            f = out[-1][0] if (c.isspace() and out) else _font_of_char(c)
            if out and out[-1][0] == f:
                out[-1][1] += c
            else:
                out.append([f, c])
    return [(f, piece) for f, piece in out]


def markup(text: str, escape) -> str:
    """Paragraph markup for ``text``: each run in its font, ``escape`` applied to the text."""
    return "".join(f'<font name="{f}">{escape(piece)}</font>' if f else escape(piece) for f, piece in runs(text))


def draw_string(canvas, x: float, y: float, text: str, font: str, size: float) -> None:
    """``canvas.drawString`` with font fallback for the characters ``font`` lacks."""
    t = canvas.beginText(x, y)
    for f, piece in runs(text):
        t.setFont(f or font, size)
        t.textOut(piece)
    canvas.drawText(t)
