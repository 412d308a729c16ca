"""Benchmark: GUI resident memory when the model is run again on a large field (offscreen).

    python packaging/resegment_memory.py IMAGE [RUNS]

Opens IMAGE in a main window (it is segmented on open), runs the segmentation RUNS more
times (default 4), undoes once, and prints the resident set size after each step. Make a
large field first, e.g. a mosaic of BCCD images with small white gaps. Uses a throw-away
CELLVIEWER_HOME; delete IMAGE's sidecar between runs (it is written beside the image).
"""

import os
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_home = tempfile.mkdtemp(prefix="cellviewer-membench-")
os.environ["CELLVIEWER_HOME"] = _home
os.environ["CELLVIEWER_SETTINGS"] = os.path.join(_home, "settings.ini")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024


def main() -> int:
    from PySide6.QtCore import QEventLoop

    from cellviewer.gui.app import create_app
    from cellviewer.gui.main_window import MainWindow

    app = create_app()
    win = MainWindow()
    win.show()

    def wait_done():
        loop = QEventLoop()
        win.segmentation.runner.finished.connect(loop.quit)
        loop.exec()

    def settle():
        for _ in range(40):
            app.processEvents()
            time.sleep(0.05)

    win.open_image(sys.argv[1])
    wait_done()
    settle()
    print(f"after open + segmentation: {rss_mb():.0f} MB", flush=True)
    for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 4):
        win.segmentation.run(confirm=False)
        wait_done()
        settle()
        print(f"run {i + 1}: {rss_mb():.0f} MB", flush=True)
    win.undo()
    settle()
    print(f"after one undo: {rss_mb():.0f} MB")
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
