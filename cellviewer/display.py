"""Can a window open here? Checked before Qt is imported (no Qt in this module).

On Linux without a display, Qt's xcb plugin aborts the whole process (a core dump,
not an error); ``cellviewer gui`` checks first and exits with one line and code 9.
"""

from __future__ import annotations

import os
import sys


#: Qt platform plugins that need no X11 / Wayland display
HEADLESS_PLATFORMS = {"offscreen", "minimal", "minimalegl", "eglfs", "linuxfb", "vnc", "vkkhrdisplay"}


def display_problem(env=None, platform: str | None = None) -> str | None:
    """Why a window cannot open here (None when it can). Checked before Qt is imported: without a
    display, Qt's xcb plugin aborts the process with a core dump instead of an error."""
    env = os.environ if env is None else env
    if not (platform or sys.platform).startswith("linux"):
        return None
    wanted = [q.split(":")[0].strip() for q in env.get("QT_QPA_PLATFORM", "").split(";") if q.strip()]
    if any(q in HEADLESS_PLATFORMS for q in wanted) or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return "there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"


def check_display() -> None:
    """Raise :class:`DisplayError` (one clear line, exit code 9) when no window can open."""
    why = display_problem()
    if why is not None:
        from cellviewer.core.errors import DisplayError

        raise DisplayError(f"Cannot open the review window: {why}.",
                           hint="run cellviewer in a desktop session (or 'ssh -X', or 'xvfb-run cellviewer'); "
                                "'cellviewer analyze' works without a display")
