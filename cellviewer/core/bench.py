"""Measurements behind ``cellviewer bench`` (no Qt): one table, measured on this machine.

Every function returns :class:`Row` s (``section, name, value, unit, target, note``);
:func:`format_table` prints them. Timings are the *minimum* over ``repeats`` runs
(the least disturbed by other processes), except where said. GUI numbers come from
:mod:`cellviewer.gui.bench`, run in a subprocess by the command.

* :func:`peak_rows` — fp32 matmul and 3×3 convolution GFLOP/s on torch's threads (the
  convolution is measured again beside every model; the best is the peak);
* :func:`model_rows` — per shipped model (``models/*.json``) and per registered
  architecture (a small config, :data:`ARCH_CONFIGS`): parameters, GFLOPs per megapixel
  (``torch.utils.flop_counter``: convolutions and matrix products, 2 FLOPs per MAC), ms per
  megapixel (``inference_mode``, ``channels_last``, one tile) and achieved ÷ peak conv;
* :func:`analyze_rows` — the ``analyze`` path on one image split into load / preprocess
  (scale estimate + resize) / inference / post-processing (instances, markers, counts,
  cell rows) / writing (CSV rows, mask PNG, report thumbnail);
* :func:`undo_rows` — brush dab time and undo bytes per stroke on a big label map;
* :mod:`cellviewer.core.bench_batch` — resident memory of a batch.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cellviewer.core.jobs import run_job

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "sample" / "BloodImage_00095.jpg"
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
BIG_SHAPE = (1944, 2592)
#: small configurations of the registered architectures (widths like the shipped models)
ARCH_CONFIGS: dict[str, dict] = {
    "do-unet": dict(base=16, depth=3, n_classes=4),
    "do-unet-valid": dict(base=16, depth=3),
    "segnet-dual": dict(width_mult=0.25),
    "node-unet": dict(widths=[8, 16, 32], rtol=1e-2, atol=1e-2),
    "unet": dict(encoder="resnet18", decoder_channels=[128, 64, 32, 16, 8], classes=4),
    "unet-edge": dict(encoder="resnet18", decoder_channels=[128, 64, 32, 16, 8], classes=4),
    "wbc-net": dict(depth=3, stem_ch=16, node_widths=[16, 32, 64, 64]),
    "dced-net": dict(base=16, depth=3, levels=2),
}


@dataclass
class Row:
    section: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _best(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


# -- machine peak -------------------------------------------------------------------------
def peak_gflops(quick: bool = False) -> dict[str, float]:
    """``{"matmul": GFLOP/s, "conv3x3": GFLOP/s, "threads": n}`` measured with torch (fp32)."""
    import torch

    n = 1024  # short runs, many repeats: the fastest is the least disturbed by other processes
    a, b = torch.rand(n, n), torch.rand(n, n)
    reps = 6 if quick else 20
    mm = 2 * n ** 3 / _best(lambda: torch.mm(a, b), reps) / 1e9
    return {"matmul": mm, "conv3x3": conv_peak(reps), "threads": torch.get_num_threads()}


def conv_peak(reps: int = 6) -> float:
    """Best GFLOP/s of 3×3 convolutions (64→64 ch on 128², 128→128 ch on 64²; NCHW and channels_last)."""
    import torch

    best = 0.0
    for ch, s in ((64, 128), (128, 64)):
        conv = torch.nn.Conv2d(ch, ch, 3, padding=1, bias=False).eval()
        for fmt in (torch.contiguous_format, torch.channels_last):
            x = torch.rand(1, ch, s, s).contiguous(memory_format=fmt)
            c = conv.to(memory_format=fmt)
            with torch.inference_mode():
                t = _best(lambda: c(x), reps)
            best = max(best, 2 * ch * ch * 9 * s * s / t / 1e9)
    return best


def peak_rows(peak: dict) -> list[Row]:
    note = f"fp32, {peak['threads']} torch threads, {os.cpu_count()} logical CPUs"
    return [Row("machine", "peak fp32 matmul", peak["matmul"], "GFLOP/s", "", note),
            Row("machine", "peak 3×3 conv", peak["conv3x3"], "GFLOP/s", "",
                note + "; 64 and 128 channels, NCHW and NHWC, best of all runs in this bench")]


# -- models ---------------------------------------------------------------------------------
def _output_pixels(out) -> int:
    """Pixels of a net's output map (the ``mask`` of a dict output, else the tensor): a valid-convolution net
    answers for the centre of its input only."""
    t = out["mask"] if isinstance(out, dict) else (out[0] if isinstance(out, (tuple, list)) else out)
    return int(t.shape[-2]) * int(t.shape[-1])


def _flops_per_mp(net, size: int) -> tuple[float, int, int]:
    """``(GFLOP per megapixel segmented, input size, output pixels)`` for one ``size``² tile (a valid-convolution
    net takes the nearest size it accepts); per *output* pixel — the pixels the pass segments."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if hasattr(net, "valid_input_size"):
        size = net.valid_input_size(size)
    x = torch.rand(1, 3, size, size)
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        out_px = _output_pixels(net(x))
    return fc.get_total_flops() / 1e9 / (out_px / 1e6), size, out_px


def measure_net(net, size: int, repeats: int, peak_conv: float) -> dict:
    """params, GFLOP/MP, ms/MP (channels_last, inference_mode, one ``size``² tile), achieved/peak. Per megapixel
    *segmented*: a valid-convolution net (output smaller than its input) is divided by its output pixels."""
    import torch

    net = net.eval().to(memory_format=torch.channels_last)
    gf, size, out_px = _flops_per_mp(net, size)
    x = torch.rand(1, 3, size, size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        t = _best(lambda: net(x), repeats)
    mp = out_px / 1e6
    ms = t / mp * 1e3
    achieved = gf / (ms / 1e3)
    out_side = int(round(out_px ** 0.5))
    return {"params": sum(p.numel() for p in net.parameters()), "gflop_per_mp": gf, "ms_per_mp": ms,
            "gflops": achieved, "of_peak": achieved / peak_conv if peak_conv else None, "size": size,
            "out_size": out_side}


def _stored_params(card_path) -> int:
    """How many parameters a checkpoint stores (batch-norm scales and shifts included)."""
    from cellviewer.nets.checkpoint import load_checkpoint

    return sum(p.numel() for p in load_checkpoint(str(card_path.with_suffix("")), "cpu")[0].parameters())


def _model_label(name: str, card_path, card: dict) -> str:
    """``model NAME`` for a shipped model; a user's model (fine-tuned, installed, or a loose card in the user's
    folder) says so, with its version, so its numbers are not read as the shipped model's."""
    from cellviewer.core.modelfind import is_shipped

    if is_shipped(card_path):
        return f"model {name}"
    version = card.get("version")
    return f"user model {name}" + (f" v{version}" if version not in (None, "") else "")


def model_rows(peak: dict, quick: bool = False, archs: bool = True) -> list[Row]:
    """Rows per model; the conv peak is measured again beside every model (``peak`` keeps the
    best seen, so a burst of load from other processes does not make the ratio exceed 1)."""
    from cellviewer.core.netsegment import _load, find_models
    from cellviewer.nets.registry import create_net, list_nets

    size, reps = (256, 2) if quick else (512, 6)
    rows: list[Row] = []
    # the shipped models as inference runs them (batch norms folded, nets.fuse); parameters as stored
    found = sorted((_model_label(name, path, card), path) for name, (path, card) in find_models().items())
    nets = [(label, lambda p=path: _load(str(p.with_suffix("")), "cpu")[0]) for label, path in found]
    stored = dict(found)
    if archs:
        nets += [(f"arch {a}", lambda a=a: create_net(a, **ARCH_CONFIGS.get(a, {}))) for a in list_nets()]
    measured = []
    for label, make in nets:
        try:
            peak["conv3x3"] = max(peak["conv3x3"], conv_peak(3))
            measured.append((label, measure_net(make(), size, reps, 0.0)))
            if label in stored:
                measured[-1][1]["params"] = _stored_params(stored[label])
        except Exception as e:  # noqa: BLE001 - one architecture failing must not end the table
            rows.append(Row("models", label, None, "", "", f"failed: {type(e).__name__}: {e}"))
    for label, m in measured:
        m["of_peak"] = m["gflops"] / peak["conv3x3"]
        tgt = "≥ 50 % of peak" if label == "model blood-cells" else ""
        note = (f"{m['params'] / 1e6:.3f} M params, {m['gflop_per_mp']:.1f} GFLOP/MP, "
                f"{m['gflops']:.0f} GFLOP/s = {100 * (m['of_peak'] or 0):.0f} % of peak ({m['size']}² tile"
                + (f" → {m['out_size']}² segmented" if m.get("out_size", m["size"]) != m["size"] else "") + ")")
        rows.append(Row("models", f"{label}: ms per megapixel", m["ms_per_mp"], "ms/MP", tgt, note))
        rows.append(Row("models", f"{label}: GFLOP per megapixel", m["gflop_per_mp"], "GFLOP/MP"))
        rows.append(Row("models", f"{label}: achieved ÷ peak", m["of_peak"], "ratio"))
        rows.append(Row("models", f"{label}: parameters", float(m["params"]), "count"))
    return rows


# -- test images ----------------------------------------------------------------------------
def real_fields(n: int = 20) -> list[np.ndarray]:
    """Up to ``n`` real 640×480 BCCD fields (shared data), or flips of the bundled sample."""
    from cellviewer.core import io

    files = sorted((DATA / "bccd" / "images").glob("*.jpg"))[:n] if (DATA / "bccd" / "images").is_dir() else []
    if files:
        return [io.read_image(f).pixels for f in files]
    px = io.read_image(SAMPLE).pixels
    return [px, px[::-1], px[:, ::-1], px[::-1, ::-1]]


def big_field(shape: tuple[int, int] = BIG_SHAPE, fields: list[np.ndarray] | None = None) -> np.ndarray:
    """A ``shape`` RGB image tiled from real fields (different fields side by side)."""
    fields = fields or real_fields()
    h, w = shape
    fh, fw = fields[0].shape[:2]
    rows = []
    k = 0
    for _ in range(-(-h // fh)):
        row = []
        for _ in range(-(-w // fw)):
            row.append(fields[k % len(fields)][:fh, :fw])
            k += 1
        rows.append(np.concatenate(row, 1))
    return np.ascontiguousarray(np.concatenate(rows, 0)[:h, :w])


def write_jpeg(path: Path, pixels: np.ndarray) -> Path:
    import cv2

    cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


# -- analyze split ----------------------------------------------------------------------------
STAGES = ("load", "preprocess", "inference", "post-processing", "writing", "total")


def analyze_once(path: Path, seg, out_dir: Path) -> dict[str, float]:
    """One image through the ``analyze`` steps; seconds per stage (see the module doc)."""
    from cellviewer.core import io
    from cellviewer.core.document import Document
    from cellviewer.core.report import (CELL_COLUMNS, COUNT_COLUMNS, CsvStream, ReportEntry, cell_rows, class_map,
                                        count_row)

    c0, t0 = time.process_time(), time.perf_counter()
    img = io.read_image(path)
    t1 = time.perf_counter()
    res = run_job(seg.segment(img.pixels))
    t2 = time.perf_counter()
    doc = Document(img)
    doc.set_result(res)
    crow, crows = count_row(doc, path.name), cell_rows(doc, path.name)
    t3 = time.perf_counter()
    counts, cells = CsvStream(out_dir / "counts.csv", COUNT_COLUMNS), CsvStream(out_dir / "cells.csv", CELL_COLUMNS)
    counts.write(crow)
    cells.write(crows)
    io.write_png(out_dir / (path.stem + ".png"), class_map(doc))
    ReportEntry.from_document(doc, path.name, thumbnail=True)
    counts.close()
    cells.close()
    t4 = time.perf_counter()
    tm = res.timings
    pre = tm.get("scale", 0.0) + tm.get("resize", 0.0)
    inf = tm.get("predict", 0.0)
    seg_rest = (t2 - t1) - pre - inf  # instances + markers (+ a second pass's bookkeeping)
    return {"load": t1 - t0, "preprocess": pre, "inference": inf, "post-processing": seg_rest + (t3 - t2),
            "writing": t4 - t3, "total": t4 - t0, "cpu": time.process_time() - c0,
            "passes": float(res.params.get("passes", 1)),
            "cells": float(len(res.markers))}


def analyze_rows(seg, images: dict[str, Path], out_dir: Path, repeats: int = 3,
                 targets: dict[str, str] | None = None, warmup: bool = True) -> list[Row]:
    """Per image label: the stage split of the fastest of ``repeats`` runs (after one warm-up)."""
    targets = targets or {}
    rows: list[Row] = []
    for label, path in images.items():
        if warmup:
            analyze_once(path, seg, out_dir)  # first-call allocations, oneDNN kernels for this size
        runs = [analyze_once(path, seg, out_dir) for _ in range(max(1, repeats))]
        best = min(runs, key=lambda r: r["total"])
        note = (f"{int(best['cells'])} cells, {int(best['passes'])} pass(es), fastest of {len(runs)}; "
                f"process CPU time {best['cpu']:.2f} s (all threads)")
        for st in STAGES:
            rows.append(Row("analyze", f"{label}: {st}", best[st], "s", targets.get(label, "") if st == "total" else "",
                            note if st == "total" else ""))
    return rows


# -- brush and undo -----------------------------------------------------------------------------
def undo_rows(labels: dict[str, np.ndarray] | None = None, shape: tuple[int, int] = BIG_SHAPE,
              strokes: int = 20, radius: float = 10.0, seed: int = 0) -> list[Row]:
    """Brush strokes (12 moves of 6 px each) on a ``shape`` document: dab time and undo bytes."""
    from cellviewer.core.brush import BrushStroke
    from cellviewer.core.document import Document, ImageData, ImageInfo

    h, w = shape
    doc = Document(ImageData(np.zeros((h, w, 3), np.uint8), ImageInfo(None, w, h)))
    for cls, lab in (labels or {}).items():
        if lab.shape == (h, w):
            doc.labels[cls][...] = lab
    rng = np.random.default_rng(seed)
    sizes, dabs = [], []
    for _ in range(strokes):
        x, y = rng.uniform(100, w - 200), rng.uniform(100, h - 200)
        st = BrushStroke(doc, "rbc", radius)
        st.dab(x, y)
        for k in range(12):
            t = time.perf_counter()
            st.line_to(x + 6 * (k + 1), y + 3 * (k + 1))
            dabs.append(time.perf_counter() - t)
        edit = st.finish()
        sizes.append(edit.nbytes if edit is not None else 0)
    dense = h * w * doc.labels["rbc"].itemsize
    return [Row("edit", "undo memory per brush stroke", float(np.mean(sizes)), "bytes", "",
                f"mean of {strokes} strokes (r={radius:g}px, 72 px long) on {w}×{h}; a dense copy would be "
                f"{dense / 1e6:.1f} MB"),
            Row("edit", "brush dab in core (median)", float(np.median(dabs)) * 1e3, "ms", "",
                f"BrushStroke.line_to on a {w}×{h} label map, no drawing (GUI row below includes the overlay)")]


def format_table(rows: list[Row]) -> str:
    """A plain-text table (also valid Markdown)."""
    def val(r: Row) -> str:
        v = r.value
        if v is None:
            return "n/a"
        if r.unit == "ratio":
            return f"{100 * v:.1f} %"
        if r.unit in ("count", "bytes") or abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"

    head = ("section", "measurement", "value", "unit", "target", "note")
    body = [(r.section, r.name, val(r), "%" if r.unit == "ratio" else r.unit, r.target, r.note) for r in rows]
    widths = [max(len(head[i]), *(len(b[i]) for b in body)) if body else len(head[i]) for i in range(6)]
    line = lambda cells: "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(cells)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(b) for b in body])
