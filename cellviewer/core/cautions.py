"""Image cautions: notes that say an image's counts need checking (a damaged JPEG, a greyscale or
fully transparent image). :func:`cellviewer.core.io.read_image` writes them into
``ImageInfo.notes`` with the :data:`CAUTION` prefix; the GUI, ``analyze`` and the report show them.
"""

from __future__ import annotations

CAUTION = "caution: "


def caution_headline(text: str) -> str:
    """The short name of a caution (without :data:`CAUTION`): its words before the first ':' or '('."""
    text = text[len(CAUTION):] if text.startswith(CAUTION) else text
    cut = min((i for i in (text.find(":"), text.find("(")) if i > 0), default=len(text))
    return text[:cut].strip()
