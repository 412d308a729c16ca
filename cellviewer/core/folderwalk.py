"""What a folder walk passes over: the entries of the folders given to ``analyze`` (or ``export``,
``review``) that are not taken as images — sub-folders (not entered), hidden files and files whose
suffix is not an image's — so a command can say so in one line instead of dropping them silently.

:func:`cellviewer.core.io.list_images` decides what is taken; this module only names the rest, by the
same rules (a broken link or a special file named ``*.png`` is taken, and reported when it fails).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable


@dataclass
class PassedOver:
    """The entries of the given folders that were not taken as images, by why."""

    folders: list[Path] = field(default_factory=list)  # sub-folders: not entered
    hidden: list[Path] = field(default_factory=list)  # names starting with "."
    other: list[Path] = field(default_factory=list)  # not an image suffix

    def __len__(self) -> int:
        return len(self.folders) + len(self.hidden) + len(self.other)

    def summary(self, limit: int = 6) -> str:
        """One line: ``"passed over 3 entries of the folders given: 1 sub-folder (not entered: raw/), ..."``
        naming up to ``limit`` entries of each kind (the rest as a count)."""
        parts = []
        for items, what in ((self.folders, "sub-folder{s} (not entered)"), (self.hidden, "hidden file{s}"),
                            (self.other, "file{s} without an image suffix")):
            if not items:
                continue
            names = [p.name + ("/" if what.startswith("sub") else "") for p in items[:limit]]
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            parts.append(f"{len(items)} {what.format(s='' if len(items) == 1 else 's')}: {', '.join(names)}{more}")
        n = len(self)
        return (f"passed over {n} entr{'y' if n == 1 else 'ies'} of the folders given — " + "; ".join(parts)
                + " (give sub-folders or files by name to include them)")


def passed_over(paths: Iterable[str | os.PathLike], suffixes: Iterable[str] | None = None) -> PassedOver:
    """The entries of the folders among ``paths`` that a folder walk does not take as images
    (``suffixes``: the image suffixes, default :data:`cellviewer.core.io.SUPPORTED_SUFFIXES`).
    Files named directly are always taken, so they never appear here; unreadable folders are left
    to the walk itself (it reports them)."""
    if suffixes is None:
        from cellviewer.core import io

        suffixes = io.SUPPORTED_SUFFIXES
    known = {s.lower() for s in suffixes}
    out = PassedOver()
    paths = list(paths)
    named = {_key(p) for p in paths}  # a sub-folder given by name is taken, not passed over
    for item in paths:
        p = Path(item)
        if not p.is_dir():
            continue
        try:
            entries = sorted(p.iterdir(), key=lambda c: c.name.casefold())
        except OSError:
            continue
        for c in entries:
            if c.name.startswith("."):
                out.hidden.append(c)
            elif _key(c) in named:
                continue
            elif c.suffix.lower() not in known:
                (out.folders if _is_dir(c) else out.other).append(c)
            elif _is_dir(c):  # a folder named *.png: not entered
                out.folders.append(c)
    return out


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:
        return False


def _key(p) -> str:
    try:
        return os.path.normcase(os.path.realpath(p))
    except (OSError, ValueError):
        return os.path.normcase(os.path.abspath(p))
