"""A measured demonstration of the human-in-the-loop flow on the shared data.

The annotations of ``shared/data`` play the annotator: each chosen ``train``-split image
becomes a reviewed :class:`~cellviewer.core.document.Document` whose cells are the ellipses
inscribed in its boxes (one marker per box). Then:

1. **export** them (:func:`cellviewer.core.export_dataset.export_training_set`; 85 % train,
   15 % val, no test part — the held-out images are the *test split* of the shared data,
   which neither the shipped model nor the fine-tune ever saw);
2. **fine-tune** the shipped ``blood-cells`` on CPU within ``minutes``
   (:func:`cellviewer.core.finetune.finetune`);
3. **gate** it against the base on the held-out images (:func:`cellviewer.core.gate.regression_gate`)
   — before = the old column, after = the new column; if accepted, **store** it as a new
   version in a model store, activate it, and show **rollback**;
4. fine-tune again on **shuffled labels** (each training image gets the annotations of
   another image of the same size; ``keep="last"``) and show the gate refusing it.

``python -m cellviewer.core.finetune_demo --minutes 10`` (or ``cellviewer finetune-demo``)
runs it with real budgets and writes ``OUT/demo.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cellviewer.core.errors import CellviewerError, script_main
from cellviewer.core.jobs import CancelToken, Job, Progress

# numpy, OpenCV and the data readers are imported inside the functions: ``cellviewer --help``
# builds this command's parser and must stay light.


@dataclass
class DemoResult:
    out: str
    n_images: int
    n_heldout: int
    finetune: dict = field(default_factory=dict)  # FinetuneResult fields (no history)
    gate: dict = field(default_factory=dict)  # GateResult.as_dict()
    stored: dict = field(default_factory=dict)  # version, active after add / after rollback
    shuffled_finetune: dict = field(default_factory=dict)
    shuffled_gate: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)


def document_from_sample(sample, labels_from=None):
    """A reviewed :class:`Document` of ``sample``'s image whose cells are the ellipses inscribed
    in the boxes of ``labels_from`` (default: its own) — the annotations play the annotator."""
    import cv2
    import numpy as np

    from cellviewer.core.document import CELL_CLASSES, Document, ImageData, ImageInfo, Marker

    img = sample.read_image()
    h, w = img.shape[:2]
    doc = Document(ImageData(img, ImageInfo(str(sample.path), w, h)))
    src = labels_from or sample
    k = 0
    for cls in CELL_CLASSES:
        lab = np.zeros((h, w), np.int32)
        for i, (x0, y0, x1, y1) in enumerate(np.asarray(src.boxes[cls], float).reshape(-1, 4), 1):
            c = (int(round((x0 + x1) * 8)), int(round((y0 + y1) * 8)))
            ax = (max(1, int(round((x1 - x0) * 8))), max(1, int(round((y1 - y0) * 8))))
            cv2.ellipse(lab, c, ax, 0, 0, 360, i, -1, cv2.LINE_8, 4)
            k += 1
            doc.markers[k] = Marker(k, cls, float(min(w - 1, (x0 + x1) / 2)), float(min(h - 1, (y0 + y1) / 2)),
                                    origin="manual", cell=i, score=1.0, reviewed=True)
        doc.labels[cls] = lab
    doc.reviewed = True
    return doc


class _Docs:
    """A lazy sequence of documents (one image in memory at a time)."""

    def __init__(self, samples, label_sources=None):
        self.samples, self.sources = samples, label_sources or samples

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self):
        for s, src in zip(self.samples, self.sources):
            yield document_from_sample(s, src)


def shuffled_sources(samples: list, seed: int) -> list:
    """Each sample's label source: another sample of the same image size (a derangement where possible)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = list(samples)
    groups: dict = {}
    for i, s in enumerate(samples):
        groups.setdefault((s.width, s.height), []).append(i)
    for idx in groups.values():
        if len(idx) > 1:
            order = rng.permutation(idx)
            for a, b in zip(order, np.roll(order, 1)):  # a cyclic shift: nobody keeps its own labels
                out[a] = samples[b]
    return out


def pick(datasets, n: int, split: str, data_root=None) -> list:
    """``n`` samples of ``split`` with complete boxes (no weak BCCD ones), spread over ``datasets``."""
    from cellviewer.core import datasets as D

    per = [[s for s in D.load_samples(ds, data_root, split) if not s.weak] for ds in datasets]
    out, k = [], 0
    while len(out) < n and any(k < len(p) for p in per):
        out += [p[k] for p in per if k < len(p)]
        k += 1
    return out[:n]


def _run(job, lo: float, hi: float, label: str):
    """Drive a sub-job, mapping its progress into [lo, hi] (never backwards)."""
    top = 0.0
    while True:
        try:
            p = next(job)
        except StopIteration as stop:
            return stop.value
        top = max(top, min(1.0, p.fraction))
        yield Progress(lo + (hi - lo) * top, f"{label}: {p.message}", note=p.note)


def run_demo(out, *, minutes: float = 10.0, shuffled_minutes: float | None = None, images: int = 80,
             heldout: int = 40, datasets=("bccd",), data_root=None, epochs: int = 200, steps_per_epoch: int = 0,
             batch_size: int | None = None, base: str = "blood-cells", threads: int | None = 2, seed: int = 0,
             store_root=None, cancel: CancelToken | None = None) -> Job[DemoResult]:
    """Long job: the whole demonstration (see the module docstring); returns a :class:`DemoResult`."""
    from cellviewer.core.export_dataset import export_training_set
    from cellviewer.core.finetune import finetune
    from cellviewer.core.gate import regression_gate
    from cellviewer.core.modelstore import ModelStore

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train = pick(datasets, images, "train", data_root)
    held = pick(datasets, heldout, "test", data_root)
    if len(train) < 3 or not held:
        raise CellviewerError("Too few annotated images for the demo.", hint="point --data at shared/data")
    res, t = DemoResult(str(out), len(train), len(held)), time.perf_counter()
    fr = (0.85, 0.15, 0.0)
    ex = yield from _run(export_training_set(_Docs(train), out / "export", formats=("shared",), fractions=fr,
                                             cancel=cancel), 0.0, 0.05, "export")
    res.seconds["export"] = round(time.perf_counter() - t, 1)
    opts = dict(epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, threads=threads, seed=seed,
                cancel=cancel)
    t = time.perf_counter()
    ft = yield from _run(finetune(base, ex.out_dir, minutes=minutes, out=out / "ft" / "model", **opts),
                         0.05, 0.45, "fine-tune")
    res.seconds["finetune"] = round(time.perf_counter() - t, 1)
    res.finetune = {k: v for k, v in asdict(ft).items() if k not in ("history", "data_hashes")}
    t = time.perf_counter()
    g = yield from _run(regression_gate(base, ft.checkpoint, held, cancel=cancel), 0.45, 0.6, "gate")
    res.seconds["gate"] = round(time.perf_counter() - t, 1)
    res.gate, res.tables["gate"] = g.as_dict(), g.format_table()
    store = ModelStore(store_root if store_root is not None else out / "store")
    if g.accepted:
        mv = store.add(ft.checkpoint, f"{base}-lab", parent=base, data_hashes=ft.data_hashes,
                       metrics={"gate": g.as_dict()["rows"]}, gate=g.as_dict(), activate=True)
        back = store.rollback(mv.name)
        res.stored = {"name": mv.name, "version": mv.version, "active_after_add": mv.version,
                      "active_after_rollback": None if back is None else back.version}
    # the same flow on shuffled labels: the gate must refuse it
    t = time.perf_counter()
    ex2 = yield from _run(export_training_set(_Docs(train, shuffled_sources(train, seed)), out / "export-shuffled",
                                              formats=("shared",), fractions=fr, cancel=cancel), 0.6, 0.62,
                          "export (shuffled)")
    ft2 = yield from _run(finetune(base, ex2.out_dir, minutes=shuffled_minutes or minutes, keep="last",
                                   out=out / "ft-shuffled" / "model", **opts), 0.62, 0.85, "fine-tune (shuffled)")
    res.seconds["finetune_shuffled"] = round(time.perf_counter() - t, 1)
    res.shuffled_finetune = {k: v for k, v in asdict(ft2).items() if k not in ("history", "data_hashes")}
    g2 = yield from _run(regression_gate(base, ft2.checkpoint, held, cancel=cancel), 0.85, 1.0, "gate (shuffled)")
    res.shuffled_gate, res.tables["shuffled_gate"] = g2.as_dict(), g2.format_table()
    (out / "demo.json").write_text(json.dumps(asdict(res), indent=1, default=str), encoding="utf-8")
    yield Progress(1.0, "done")
    return res


def add_arguments(ap) -> None:
    ap.add_argument("--out", default="runs/finetune-demo", help="output folder (default runs/finetune-demo)")
    ap.add_argument("--minutes", type=float, default=10.0, help="fine-tuning budget, wall minutes (default 10)")
    ap.add_argument("--shuffled-minutes", type=float, help="budget of the shuffled-label run (default: --minutes)")
    ap.add_argument("--images", type=int, default=80, help="corrected train-split images (default 80)")
    ap.add_argument("--heldout", type=int, default=40, help="held-out test-split images for the gate (default 40)")
    ap.add_argument("--datasets", nargs="+", default=["bccd"], choices=["bccd", "txl_pbc"])
    ap.add_argument("--data", help="data root (default <repo>/../shared/data)")
    ap.add_argument("--epochs", type=int, default=200, help="epoch budget (default 200: the minutes decide)")
    ap.add_argument("--threads", type=int, default=2)


def run_from_args(args) -> int:
    from cellviewer.core.jobs import run_job

    last = [0.0, ""]

    def show(p: Progress) -> None:
        key = p.message.split(":")[0]
        if key != last[1] or time.monotonic() - last[0] > 30 or " val " in p.message:
            last[0], last[1] = time.monotonic(), key
            print(f"[{100 * p.fraction:5.1f}%] {p.message}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    res = run_job(run_demo(args.out, minutes=args.minutes, shuffled_minutes=args.shuffled_minutes,
                           images=args.images, heldout=args.heldout, datasets=args.datasets, data_root=args.data,
                           epochs=args.epochs, threads=args.threads), show)
    print(f"fine-tune on {res.n_images} corrected images ({res.finetune['n_train']} train, "
          f"{res.finetune['n_val']} val), {res.finetune['minutes']:.1f} min, {res.finetune['epochs_run']} epochs; "
          f"gate on {res.n_heldout} held-out test-split images:\n{res.tables['gate']}\n")
    if res.stored:
        print(f"stored as {res.stored['name']} v{res.stored['version']} (activated, then rolled back: active now "
              f"{res.stored['active_after_rollback']})\n")
    print(f"shuffled labels, {res.shuffled_finetune['minutes']:.1f} min:\n{res.tables['shuffled_gate']}\n")
    print(f"wall time {(time.perf_counter() - t0) / 60:.1f} min; details in {Path(args.out) / 'demo.json'}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cellviewer.core.finetune_demo", description=__doc__.split("\n")[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    return script_main(lambda: run_from_args(args))


if __name__ == "__main__":
    sys.exit(main())
