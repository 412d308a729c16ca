"""Screenshot of the main window on the bundled sample, segmented by the default model (README image).

Run under a real (or virtual) X display, from the repository root::

    Xvfb :99 -screen 0 1600x1000x24 &
    DISPLAY=:99 .venv/bin/python packaging/screenshot.py /tmp/main.png
    convert /tmp/main.png -strip -colors 256 resources/screenshot.png   # < 400 KB

Settings and sidecars go to a temporary folder (your own are not touched).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time


def main(out: str) -> int:
    home = tempfile.mkdtemp(prefix="cellviewer-shot-")
    os.environ["CELLVIEWER_HOME"] = home
    os.environ["CELLVIEWER_SETTINGS"] = os.path.join(home, "settings.ini")
    from PySide6.QtCore import QTimer

    from cellviewer.gui.app import create_app, create_window

    app = create_app()
    win = create_window()  # the sample, segmented automatically
    win.resize(1440, 900)
    win.move(0, 0)
    win.show()
    t0 = time.time()

    def wait() -> None:
        doc = win.session.doc
        done = doc is not None and not win.segmentation.runner.is_running and sum(doc.counts().values()) > 0
        if done or time.time() - t0 > 180:
            QTimer.singleShot(1500, shoot)  # let the overlays and the status bar settle
        else:
            QTimer.singleShot(300, wait)

    def shoot() -> None:
        app.processEvents()
        win.grab().save(out)
        print(f"{out}: counts {win.session.doc.counts() if win.session.doc else None}")
        win.close()
        app.quit()

    QTimer.singleShot(1000, wait)
    app.exec()
    return 0 if os.path.isfile(out) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "screenshot.png"))
