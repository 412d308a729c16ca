"""``python -m cellviewer.gui.bigbench``: how long the window stops on a big field, per action.

Builds a big field by tiling the bundled sample (default 8000×6000, 48 MP, ~3,500 cells), opens it in a
real :class:`~cellviewer.gui.main_window.MainWindow` (offscreen unless a display is set), lets the default
model segment it, then runs the actions an annotator does — a brush stroke, a marker, a delete, Ctrl+S,
three undos, undo and redo of the segmentation, three redos, close, reopen — and prints for each the
longest gap between ticks of a 50 ms timer (the time the window did not answer) and how long the call
itself took. After the reopen it checks that the maps, markers and counts are those on screen before the
close. Numbers, not a test: run it on an idle machine (a few minutes; most of it the segmentation).
Uses its own settings and model store under a temporary folder; the field is written there too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def _field(out: Path, width: int, height: int) -> Path:
    import cv2
    import numpy as np

    from cellviewer.core.io import read_image
    from cellviewer.core.resources import sample_image

    tile = read_image(sample_image()).pixels
    reps = (height // tile.shape[0] + 1, width // tile.shape[1] + 1, 1)
    big = np.tile(tile, reps)[:height, :width]
    path = out / "big.jpg"
    cv2.imwrite(str(path), big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cellviewer.gui.bigbench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=8000)
    ap.add_argument("--height", type=int, default=6000)
    ap.add_argument("--timeout", type=float, default=900, help="seconds the segmentation may take")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="cellviewer-bigbench-"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["CELLVIEWER_HOME"] = str(tmp / "home")
    os.environ["CELLVIEWER_SETTINGS"] = str(tmp / "home" / "settings.ini")
    import numpy as np
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from cellviewer.gui import notifications
    from cellviewer.gui.main_window import MainWindow

    notifications.ask = lambda *a, **k: True  # (no dialog can be answered here)

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.005)

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()

    def gap(label: str, fn) -> None:
        ticks.clear()
        t = time.monotonic()
        fn()
        took = time.monotonic() - t
        pump(1.5)
        g = float(np.diff([t] + ticks).max()) if ticks else took
        print(f"{label:24s} longest stop {1000 * g:7.0f} ms   call {took:6.2f} s", flush=True)

    path = _field(tmp, args.width, args.height)
    win = MainWindow()
    win.seg_params.update(auto_run=True, diameter_px=0.0)
    win.resize(1200, 800)
    win.show()
    pump(0.2)
    t0 = time.monotonic()
    if not win.open_image(path):
        print("could not open the field", file=sys.stderr)
        return 1
    while win.segmentation.runner.is_running and time.monotonic() - t0 < args.timeout:
        app.processEvents()
        time.sleep(0.01)
    pump(0.5)
    doc, tools = win.session.doc, win.tools
    print(f"field {args.width}×{args.height} ({args.width * args.height / 1e6:.0f} MP): segmented in "
          f"{time.monotonic() - t0:.0f} s, {doc.counts()}", flush=True)
    win.tool_state.update(cls="rbc", brush_radius=10)
    free = np.argwhere(sum(doc.labels[c][:500, :500] for c in doc.labels) == 0)[0]
    y, x = float(free[0]), float(free[1])
    gap("brush stroke", lambda: tools.stroke([(x, y), (x + 30, y)]))
    tools.set_class("platelet")
    tools.set_tool("marker_add")
    gap("marker add", lambda: tools.click(args.width / 2 + 0.5, args.height / 2 + 0.5))
    h2, w2 = args.height // 2, args.width // 2
    cy, cx = (int(v) for v in np.argwhere(doc.labels["rbc"][h2:h2 + 600, w2 - 600:w2] > 0)[0] + (h2, w2 - 600))
    tools.set_tool("delete")
    gap("delete cell", lambda: tools.click(cx + 0.5, cy + 0.5))
    before = ({c: doc.labels[c].copy() for c in doc.labels}, doc.parts.copy(),
              sorted((m.cls, round(m.x, 3), round(m.y, 3)) for m in doc.markers.values()), doc.counts())
    gap("Ctrl+S", win.save)
    gap("undo ×3", lambda: [win.undo() for _ in range(3)])
    gap("undo segmentation", win.undo)
    gap("redo segmentation", win.redo)
    gap("redo ×3", lambda: [win.redo() for _ in range(3)])
    gap("close", win.close)
    again = MainWindow()
    again.seg_params.update(auto_run=True, diameter_px=0.0)
    again.show()
    gap("reopen", lambda: again.open_image(path))
    d2 = again.session.doc
    after = ({c: d2.labels[c] for c in d2.labels}, d2.parts,
             sorted((m.cls, round(m.x, 3), round(m.y, 3)) for m in d2.markers.values()), d2.counts())
    same = (all(np.array_equal(before[0][c], after[0][c]) for c in before[0]) and np.array_equal(before[1], after[1])
            and before[2] == after[2] and before[3] == after[3])
    print(f"reopened as it was before the close: {'yes' if same else 'NO'}", flush=True)
    again.close()
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
