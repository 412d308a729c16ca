"""``cellviewer bench``: one table of speed and memory numbers, measured now on this machine.

Sections (see :mod:`cellviewer.core.bench` for what each row measures):

* **machine** — measured fp32 matmul and 3×3 convolution GFLOP/s on torch's threads;
* **models** — per shipped model and per registered architecture: ms per megapixel,
  GFLOPs per megapixel, achieved ÷ peak, parameters;
* **analyze** — a 640×480 BCCD field and a 2592×1944 field (tiled from real fields) through
  the ``analyze`` steps with the default model: load / preprocess / inference /
  post-processing / writing / total;
* **gui** — cold start, 5-MP open → first paint, UI stall during segmentation, brush dab
  (:mod:`cellviewer.gui.bench` in a subprocess with ``QT_QPA_PLATFORM=offscreen``; this
  command itself never imports Qt); skipped with ``--skip-gui``;
* **edit** — undo bytes per brush stroke and the core brush dab;
* **batch** — resident memory of ``cellviewer analyze`` after 10 and after
  ``--batch-images`` (200) images (``--batch-images 1000`` for the long run; 0 skips it).

``--quick`` uses fewer repeats and smaller problems (for CI); ``--json FILE`` also writes
the rows. Timings are the fastest of a few runs and are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import sys

from cellviewer.core.resources import module_command


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure speed and memory on this machine; print one table",
                       description="Measure peak FLOP/s, per-model throughput, analyze stage times, GUI latency "
                                   "and batch memory on this machine; print one table.",
                       epilog="exit codes: 0 done; 2 usage error; 5 cannot write the --json file")
    p.add_argument("--quick", action="store_true", help="fewer repeats and smaller problems (CI)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON to FILE")
    p.add_argument("--skip-gui", action="store_true", help="no GUI measurements (no Qt subprocess)")
    from cellviewer.core.cliopts import positive_int, whole_number

    p.add_argument("--batch-images", type=lambda t: whole_number(t, 0), default=None, metavar="N",
                   help="images in the batch-memory run (default 200, --quick 12; 0 skips it)")
    p.add_argument("--no-archs", action="store_true", help="only the shipped models, not every architecture")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch CPU threads here and in the subprocesses (default: torch's choice, = cores)")
    p.set_defaults(func=handler)


def _gui_rows(quick: bool, image, Row) -> list:
    import json
    import os
    import subprocess
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="cvbench-") as tmp:
        out = Path(tmp) / "gui.json"
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYQTGRAPH_QT_LIB="PySide6")
        cmd = module_command("cellviewer.gui.bench", "--json", str(out), "--image", str(image))
        p = subprocess.run(cmd + (["--quick"] if quick else []), capture_output=True, text=True, env=env,
                           timeout=900)
        if p.returncode != 0 or not out.is_file():
            tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
            return [Row("gui", "GUI measurements", None, "", "", f"failed (exit {p.returncode}): {tail[0][:200]}")]
        return [Row(**d) for d in json.loads(out.read_text(encoding="utf-8"))]


def handler(args) -> int:
    import json
    import os
    import tempfile
    import time
    from pathlib import Path

    import torch

    from cellviewer.core import bench as B
    from cellviewer.core.segment import create_segmenter, default_segmenter_name

    if args.threads:  # this process, and the GUI / batch subprocesses (they read OMP_NUM_THREADS)
        torch.set_num_threads(int(args.threads))
        os.environ["OMP_NUM_THREADS"] = str(int(args.threads))
    if args.json is not None:  # a bad path fails now, not after minutes of measuring
        from cellviewer.core.atomic import check_writable

        check_writable(args.json, "--json")
    quick = bool(args.quick)
    n_batch = args.batch_images if args.batch_images is not None else (12 if quick else 200)
    t_start = time.perf_counter()
    rows: list[B.Row] = []
    say = (lambda m: print(f"bench: {m}", file=sys.stderr, flush=True))
    name = default_segmenter_name()
    say(f"loading '{name}'")
    t = time.perf_counter()
    seg = create_segmenter(name, device="cpu")
    rows.append(B.Row("analyze", f"model '{name}' load (once per batch)", time.perf_counter() - t, "s"))
    say("machine peak")
    peak = B.peak_gflops(quick)
    say("models")
    model_rows = B.model_rows(peak, quick, archs=not args.no_archs)  # may raise the measured peak
    rows += B.peak_rows(peak) + model_rows
    with tempfile.TemporaryDirectory(prefix="cvbench-") as tmp:
        tmp = Path(tmp)
        fields = B.real_fields()
        small = B.write_jpeg(tmp / "field_640x480.jpg", fields[0] if fields[0].shape[:2] == (480, 640)
                             else B.big_field((480, 640), fields))
        small = B.SAMPLE if B.SAMPLE.is_file() else small
        big_px = B.big_field(B.BIG_SHAPE, fields)
        big = B.write_jpeg(tmp / "field_2592x1944.jpg", big_px)
        say(f"analyze ({name})")
        rows += B.analyze_rows(seg, {"640×480 field": small, "2592×1944 field": big}, tmp, repeats=1 if quick else 3,
                               targets={"640×480 field": "≤ 0.3 s", "2592×1944 field": "≤ 2 s"}, warmup=not quick)
        say("edits")
        from cellviewer.core.jobs import run_job

        labels = None if quick else run_job(seg.segment(big_px)).labels  # strokes meet real cells
        rows += B.undo_rows(labels, strokes=5 if quick else 20)
        if not args.skip_gui:
            say("gui (subprocess)")
            rows += _gui_rows(quick, big, B.Row)
        if n_batch > 0:
            from cellviewer.core.bench_batch import batch_rows

            first = min(10, max(1, n_batch // 4)) if n_batch < 40 else 10
            say(f"batch of {n_batch} images (subprocess)")
            rows += batch_rows(tmp, first, n_batch, model=name)
    load = ", load average %.1f/%.1f/%.1f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    rows.append(B.Row("run", "bench wall time", time.perf_counter() - t_start, "s", "",
                      f"torch {torch.__version__}, {torch.get_num_threads()} threads{load}" + (", --quick" if quick else "")))
    print(B.format_table(rows))
    if args.json is not None:  # atomically: never half a file
        from cellviewer.core.atomic import write_output

        write_output(args.json, json.dumps([r.as_dict() for r in rows], indent=1) + "\n", "--json")
    return 0


def main(argv=None) -> int:  # pragma: no cover - convenience
    p = argparse.ArgumentParser(prog="cellviewer-bench")
    add_parser(p.add_subparsers())
    args = p.parse_args(["bench", *(argv or sys.argv[1:])])
    return args.func(args)
