"""Undo history that survives switching images: the undo stacks of recently closed images.

When the session closes an image (after saving it), its ``QUndoStack`` is put here, keyed by
the image's path, together with the stamp (``core.openlock.stamp``: mtime and size) of the
sidecar that save wrote. Opening the image again in the same app session takes the stack
back when the sidecar is still exactly that file: the reloaded document then holds the very
state the commands were made on, and they are re-bound to it (``command.doc``). If the
sidecar changed meanwhile (another window, the CLI), was never written, or the image came
back with journaled edits recovered, the history no longer fits and is dropped.

Memory is bounded: at most :data:`MAX_IMAGES` closed images and :data:`MAX_BYTES` of undo
data (label patches, packed segmentation states) are kept; the oldest go first. While a
stack is cached its commands hold no document (so a closed image's pixels are freed).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger("cellviewer.gui")

MAX_IMAGES = 10
MAX_BYTES = 512 * 1024 * 1024


def command_bytes(cmd) -> int:
    """Undo memory one command keeps (an EditCommand's patches, a SegmentationCommand's packed maps)."""
    kept = getattr(cmd, "kept_bytes", None)
    if kept is not None:
        return int(kept())
    edit = getattr(cmd, "edit", None)
    return int(edit.nbytes) if edit is not None else 0


def stack_bytes(stack) -> int:
    return sum(command_bytes(stack.command(i)) for i in range(stack.count()))


def _bind(stack, doc) -> None:
    for i in range(stack.count()):
        cmd = stack.command(i)
        if hasattr(cmd, "doc"):
            cmd.doc = doc


def _key(path) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return str(Path(path).absolute())


class UndoCache:
    """path -> (stack, sidecar stamp, bytes), least recently closed first."""

    def __init__(self, max_images: int = MAX_IMAGES, max_bytes: int = MAX_BYTES):
        self.max_images, self.max_bytes = max_images, max_bytes
        self._items: OrderedDict[str, tuple[object, object, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, path) -> bool:
        return _key(path) in self._items

    @property
    def nbytes(self) -> int:
        return sum(n for _, _, n in self._items.values())

    def put(self, path, stack, stamp) -> bool:
        """Keep ``stack`` (already removed from its undo group) for ``path``; the sidecar as saved is ``stamp``.
        An empty stack, one without a saved sidecar or one over the whole budget is deleted; True when kept."""
        self.drop(path)
        n = stack_bytes(stack) if stack.count() else 0
        if not stack.count() or stamp is None or n > self.max_bytes:
            stack.deleteLater()
            return False
        _bind(stack, None)  # the closed document (its pixels, its maps) can go
        self._items[_key(path)] = (stack, stamp, n)
        while self._items and (len(self._items) > self.max_images or self.nbytes > self.max_bytes):
            old, (st, _, _) = self._items.popitem(last=False)
            log.info("undo history of %s dropped (memory)", old)
            st.deleteLater()
        return True

    def take(self, path, doc, stamp):
        """The stack kept for ``path`` re-bound to ``doc`` when the sidecar is still ``stamp``; else None
        (a kept stack that no longer fits is deleted)."""
        item = self._items.pop(_key(path), None)
        if item is None:
            return None
        stack, kept_stamp, _ = item
        if stamp is None or stamp != kept_stamp:
            log.info("undo history of %s dropped: its corrections changed since", path)
            stack.deleteLater()
            return None
        _bind(stack, doc)
        return stack

    def drop(self, path) -> None:
        item = self._items.pop(_key(path), None)
        if item is not None:
            item[0].deleteLater()

    def clear(self) -> None:
        for stack, _, _ in self._items.values():
            stack.deleteLater()
        self._items.clear()
