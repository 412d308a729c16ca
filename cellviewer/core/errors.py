"""The project's own exception types.

Every message says what went wrong *and* what the user can do next. Only the
GUI's notification layer (and the CLI's top level) catch broadly.
"""

from __future__ import annotations

import sys
from typing import Callable


class CellviewerError(Exception):
    """Base class of every error cellviewer raises on purpose.

    ``exit_code`` is what the CLI returns when this error ends a command
    (documented in the README).
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} — {hint}")


class ImageReadError(CellviewerError):
    """An image file could not be read (missing, malformed, unsupported, too large)."""

    exit_code = 3

    def __init__(self, path, reason: str, *, hint: str | None = None):
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"Cannot read image '{path}': {reason}",
            hint=hint or "check that the file is a complete JPG/PNG/BMP/TIFF image",
        )


class SidecarError(CellviewerError):
    """A sidecar (saved corrections) is unreadable, from a newer version or inconsistent."""

    exit_code = 4


class SaveError(CellviewerError):
    """Saving failed (read-only folder, full disk ...). The previous file is untouched."""

    exit_code = 5


class ModelLoadError(CellviewerError):
    """A model name is unknown or its checkpoint is missing/corrupt/untrusted."""

    exit_code = 6


class SegmentationError(CellviewerError):
    """Segmentation could not run (bad parameters, out of memory, ...)."""

    exit_code = 7


class Cancelled(CellviewerError):
    """A long job was cancelled by the user. Not an error to show as a dialog."""

    exit_code = 130


class DisplayError(CellviewerError):
    """The review window cannot open: there is no display (e.g. over ssh without X forwarding)."""

    exit_code = 9


class EditError(CellviewerError):
    """An edit could not be applied (e.g. merging cells of different classes)."""

    exit_code = 8


class OptionError(CellviewerError):
    """A command-line or configuration option has a bad value (exit code 2, like a usage error)."""

    exit_code = 2


class SegmentationOptionError(OptionError, SegmentationError):
    """A segmentation option has a bad value (an expected cell diameter out of range, a device that is
    not there, an unknown counting method): exit code 2 like every option error, and still a
    :class:`SegmentationError` for the callers that catch those."""


def script_main(body: Callable[[], int | None]) -> int:
    """Run the body of a ``python -m cellviewer.core.…`` command: its return value (None: 0), or, when
    one of cellviewer's own errors ends it, one ``error: …`` line on stderr and that error's exit code."""
    try:
        rc = body()
    except CellviewerError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0 if rc is None else int(rc)
