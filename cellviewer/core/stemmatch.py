"""Finding an image's mask (or label) file by its stem, whatever the case: ``IMG_001.JPG`` pairs with
``img_001.png``, ``img_001_mask.png`` or ``IMG_001-mask.PNG`` (cameras write upper case, annotation
tools lower case, and a copy through a case-insensitive file system mixes them).

:class:`FolderIndex` lists a folder once (case-folded names), so a reader of thousands of images does
not list it per image. An exact name always wins; among case-insensitive candidates the first of
:data:`MASK_SUFFIXES` (then the image's own suffix, then ``.png``) wins, so the choice is stable.
"""

from __future__ import annotations

from pathlib import Path

#: what may follow an image's stem in its mask's name (tried in this order)
MASK_SUFFIXES: tuple[str, ...] = ("", "_mask", "-mask", "_masks", "_gt", "_label")
#: file suffixes a mask may have
MASK_EXTS: tuple[str, ...] = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")


class FolderIndex:
    """The files of one folder by case-folded name (empty when the folder is missing)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        try:
            entries = sorted(p.name for p in self.folder.iterdir())
        except OSError:
            entries = []
        self._by_fold: dict[str, str] = {}
        for name in entries:  # sorted: the same file wins every time two names fold alike
            self._by_fold.setdefault(name.casefold(), name)

    def find(self, name: str) -> Path | None:
        """``folder/name``, matched exactly or else case-insensitively; None when there is no such file."""
        exact = self.folder / name
        if exact.is_file():
            return exact
        hit = self._by_fold.get(name.casefold())
        return None if hit is None else self.folder / hit

    def mask_for(self, image_name: str) -> Path | None:
        """The mask file of the image ``image_name`` (see the module docstring); None when there is none."""
        p = Path(image_name)
        exts = [p.suffix] + [e for e in (".png", *MASK_EXTS) if e != p.suffix.lower()]
        for extra in MASK_SUFFIXES:
            for ext in exts:
                hit = self.find(p.stem + extra + ext)
                if hit is not None:
                    return hit
        return None
