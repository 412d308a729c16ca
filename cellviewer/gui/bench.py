"""GUI measurements for ``cellviewer bench``, run in a subprocess (``QT_QPA_PLATFORM=offscreen``).

``python -m cellviewer.gui.bench --json FILE [--quick] [--image BIG.jpg]`` writes rows
(:class:`cellviewer.core.bench.Row` as dicts):

* **cold start** — from starting a fresh ``python`` process to the main window shown and
  painted with the bundled sample open (the ``run_gui`` path; the model loads in the
  worker afterwards), the fastest of a few starts;
* **open → first paint** — ``MainWindow.open_image`` of a 5-megapixel image until its
  first paint has been processed (in a window that has opened and segmented the sample,
  as a user finds it after start-up);
* **UI stall during segmentation** — a 10 ms ``QTimer`` runs on the GUI thread while the
  automatic segmentation of that image runs in the worker
  (:mod:`cellviewer.gui.workers`); the longest gap between ticks minus 10 ms, while the
  worker runs and when the result is applied on the GUI thread (and the 1.5 s after it),
  for the automatic segmentation after the open and a second one;
* **brush dab** — one ``drag_move`` of the brush (paint, overlay re-render of the touched
  rectangle, tile upload) plus the repaint, on the 5-megapixel label map.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from cellviewer.core.resources import module_command

TICK_MS = 10


def _cold_start_child() -> None:
    """Child process: start like ``run_gui`` and print the wall-clock time once painted."""
    from cellviewer.gui.app import create_app, create_window

    app = create_app()
    win = create_window(None)
    win.show()
    app.processEvents()
    win.repaint()
    app.processEvents()
    print(f"SHOWN {time.time():.6f}", flush=True)
    win.segmentation.runner.cancel()
    os._exit(0)  # do not wait for the model to load in the worker


def cold_start(repeats: int) -> list[float]:
    out = []
    for _ in range(max(1, repeats)):
        t0 = time.time()
        p = subprocess.run(module_command("cellviewer.gui.bench", "--child-cold-start"),
                           capture_output=True, text=True, timeout=120, env=dict(os.environ))
        for line in p.stdout.splitlines():
            if line.startswith("SHOWN "):
                out.append(float(line.split()[1]) - t0)
    return out


def _wait(app, cond, timeout_s: float) -> bool:
    end = time.perf_counter() + timeout_s
    while not cond():
        if time.perf_counter() > end:
            return False
        app.processEvents()
        time.sleep(0.001)
    return True


def measure(image: Path, quick: bool) -> list[dict]:
    from PySide6.QtCore import QElapsedTimer, QTimer

    from cellviewer.core.bench import Row
    from cellviewer.gui.app import create_app, create_window

    rows: list[Row] = []
    starts = cold_start(1 if quick else 3)
    rows.append(Row("gui", "cold start to shown main window", min(starts) if starts else None, "s", "≤ 1.5 s",
                    f"fresh process → window painted with the sample open; fastest of {len(starts)}"))
    app = create_app()
    win = create_window(None)  # as a user finds it: the sample open and segmented (imports warm)
    win.show()
    _wait(app, lambda: not win.segmentation.runner.is_running, 120)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.01)
    # a timer on the GUI thread: its gaps are the event-loop stalls
    clock, ticks = QElapsedTimer(), []
    clock.start()
    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(clock.nsecsElapsed() / 1e9))
    done: dict[str, float] = {}
    runner = win.segmentation.runner
    for sig in (runner.finished, runner.failed, runner.cancelled):
        sig.connect(lambda *_: done.setdefault("t", clock.nsecsElapsed() / 1e9))
    t0 = time.perf_counter()
    win.open_image(str(image))
    app.processEvents()
    win.canvas.viewport().repaint()
    app.processEvents()
    h, w = win.session.doc.shape
    rows.append(Row("gui", f"open {w}×{h} image → first paint", (time.perf_counter() - t0) * 1e3, "ms",
                    "≤ 250 ms", "MainWindow.open_image + the first paint (segmentation then starts in the worker)"))
    for label, target, extra in (("segmentation 1", "≤ 30 ms", "started by open_image"),
                                 ("segmentation 2", "≤ 30 ms", "started right after")):
        if label == "segmentation 2":
            done.clear()
            win.segmentation.run(confirm=False)
        timer.start()
        running = runner.is_running
        ok = _wait(app, lambda: "t" in done, 300)
        # keep ticking 1.5 s: work the result triggers later (review queue, autosave) counts as applying it
        _wait(app, lambda: bool(ticks) and ticks[-1] > done.get("t", 1e9) + 1.5, 10)
        timer.stop()
        t_done = done.get("t")
        gaps = [(b, b - a) for a, b in zip(ticks, ticks[1:])]
        during = [g for b, g in gaps if t_done is None or b < t_done]
        apply = [g for b, g in gaps if t_done is not None and b >= t_done]
        note = "segmentation ran in the worker" if running and ok else "segmentation did not run/finish"
        rows.append(Row("gui", f"longest UI stall, {label} (worker)",
                        (max(during) * 1e3 - TICK_MS) if during else None, "ms", target,
                        f"{TICK_MS} ms QTimer, {len(during)} ticks; {note}; {extra}"))
        rows.append(Row("gui", f"UI stall applying the {label} result", (max(apply) * 1e3 - TICK_MS) if apply else None,
                        "ms", "", "GUI thread, result + 1.5 s after: undo command, sidecar save, overlay, counts, review"))
        ticks.clear()
    # brush dabs on the segmented 5-MP document
    tools = win.tools
    tools.set_tool("brush")
    dabs = []
    for k, (x0, y0) in enumerate([(w * 0.3, h * 0.3), (w * 0.6, h * 0.5), (w * 0.45, h * 0.7)]):
        tools.drag_start(x0, y0)
        app.processEvents()
        for i in range(1, 16 if quick else 40):
            t = time.perf_counter()
            tools.drag_move(x0 + 4 * i, y0 + 2 * i)
            win.canvas.viewport().repaint()
            dabs.append(time.perf_counter() - t)
        tools.drag_end(x0 + 4 * i, y0 + 2 * i)
        app.processEvents()
    dabs.sort()
    rows.append(Row("gui", "brush dab latency (median)", dabs[len(dabs) // 2] * 1e3, "ms", "≤ 8 ms",
                    f"drag_move + overlay update + repaint on {w}×{h}; p95 {dabs[int(0.95 * (len(dabs) - 1))] * 1e3:.1f} ms, "
                    f"max {dabs[-1] * 1e3:.1f} ms ({len(dabs)} dabs)"))
    stack = win.session.stack
    rows.append(Row("gui", "undo steps after 3 brush drags", float(stack.count()), "count", "",
                    "one drag = one undo step (+2 for the segmentations)"))
    win.close()
    app.processEvents()
    return [r.as_dict() for r in rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cellviewer.gui.bench")
    ap.add_argument("--json", help="write the rows here (default: stdout)")
    ap.add_argument("--image", help="a big image to open (default: 2592×1944 tiled from real fields)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child-cold-start", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    if args.child_cold_start:
        _cold_start_child()
        return 0
    with tempfile.TemporaryDirectory(prefix="cvbench-gui-") as tmp:
        os.environ.setdefault("CELLVIEWER_SETTINGS", str(Path(tmp) / "settings.ini"))
        os.environ.setdefault("CELLVIEWER_HOME", str(Path(tmp) / "home"))
        image = None
        if args.image:  # a copy: no sidecar from an earlier run (it would stop the automatic segmentation)
            import shutil

            image = Path(shutil.copy(args.image, Path(tmp) / Path(args.image).name))
        if image is None:
            from cellviewer.core.bench import big_field, write_jpeg

            image = write_jpeg(Path(tmp) / "big_field.jpg", big_field())
        rows = measure(image, args.quick)
    text = json.dumps(rows, indent=1)
    if args.json:
        Path(args.json).write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
