"""Resident memory of a long ``cellviewer analyze`` batch (for ``cellviewer bench``).

:func:`make_batch` writes ``n`` JPEGs — real BCCD fields (or the bundled sample), each
flipped and cropped differently so no two files are the same — and :func:`batch_rss`
runs the real command (``python -m cellviewer analyze``) on them in a subprocess,
reading its resident set size (``VmRSS`` of ``/proc/<pid>/status``, Linux) when it
reports the images given in ``at``. The detail pages of the PDF keep a thumbnail per
image for the first ``--report-pages`` images by design, so the run uses
``--report-pages 10``: the drift measured after that is what a batch leaks.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np

from cellviewer.core.bench import Row, real_fields, write_jpeg
from cellviewer.core.resources import module_command

_DONE = re.compile(r"^\[(\d+)/(\d+)\]")


def make_batch(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` distinct JPEG fields in ``folder`` (random flips and 90–100 % crops of real fields)."""
    folder.mkdir(parents=True, exist_ok=True)
    fields = real_fields(40)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        px = fields[i % len(fields)]
        if rng.random() < 0.5:
            px = px[:, ::-1]
        if rng.random() < 0.5:
            px = px[::-1]
        h, w = px.shape[:2]
        ch, cw = int(h * rng.uniform(0.9, 1.0)), int(w * rng.uniform(0.9, 1.0))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out.append(write_jpeg(folder / f"field_{i:05d}.jpg", np.ascontiguousarray(px[y:y + ch, x:x + cw])))
    return out


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (None where /proc is not available)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def batch_rss(folder: Path, out: Path, at: tuple[int, ...], model: str | None = None,
              nice: int = 0) -> tuple[dict[int, float | None], str]:
    """``{image index: RSS MB}`` of ``cellviewer analyze folder`` after the images in ``at``, and why the batch
    failed (its exit code and last stderr line; "" when it ran through)."""
    cmd = module_command("cellviewer", "analyze", str(folder), "--out", str(out), "--report-pages", "10",
                         "--device", "cpu")
    if model:
        cmd += ["--model", model]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
                         preexec_fn=(lambda: os.nice(nice)) if nice and os.name == "posix" else None)
    found: dict[int, float | None] = {}
    last = ""
    assert p.stderr is not None
    for line in p.stderr:
        m = _DONE.match(line)
        if m and int(m.group(1)) in at:
            found[int(m.group(1))] = rss_mb(p.pid)
        if line.strip():
            last = line.strip()
    code = p.wait()
    return found, ("" if code == 0 else f"failed (exit {code}): {last[:200] or 'no output'}")


def batch_rows(workdir: Path, n_small: int, n_large: int, model: str | None = None, nice: int = 0) -> list[Row]:
    """RSS after ``n_small`` and after ``n_large`` images of one batch, and the drift between them."""
    t = time.perf_counter()
    make_batch(workdir / "batch", n_large)
    rss, failed = batch_rss(workdir / "batch", workdir / "batch_out", (n_small, n_large), model, nice)
    a, b = rss.get(n_small), rss.get(n_large)
    note = failed or (f"python -m cellviewer analyze on {n_large} distinct fields, --report-pages 10 "
                      f"({time.perf_counter() - t:.0f} s)")
    drift_target = "≤ 100 MB / 1000 images"
    return [Row("batch", f"resident memory after {n_small} images", a, "MB", "", note),
            Row("batch", f"resident memory after {n_large} images", b, "MB"),
            Row("batch", f"RSS drift {n_small} → {n_large} images", None if a is None or b is None else b - a, "MB",
                drift_target, "≤ 100 MB over 1000 images is the target")]
