"""The crash harness: a child process editing a document is SIGKILLed at random moments.

:func:`kill_cycles` — a child process edits a real-sized document (every edit
journaled, autosaves from a writer thread like the GUI's) and is SIGKILLed at
random moments. After every kill the sidecar must load and equal the last completed
save or the one in flight, and sidecar + journal recovery must equal the last
journaled state or the edit in flight. The child announces each state's hash on
stdout *before* it touches the disk, so the parent knows every legal outcome
(:func:`cellviewer.core.robustness.state_hash`). Used by ``tests/hostile/test_kill.py``
and ``python -m cellviewer.core.fuzz --kill-cycles N``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellviewer.core.document import CELL_CLASSES, Document, Marker
from cellviewer.core.resources import module_command

from cellviewer.core.robustness import document_problems, state_hash


# -- a real-sized synthetic document ----------------------------------------------------------------
def synthetic_document(h: int, w: int, image_path, seed: int = 0) -> Document:
    """A smear-like document: a grid of RBC discs, some WBCs (with parts) and platelets, one marker
    per cell; the image (a flat PNG) is written to ``image_path`` so ``load_document`` can open it."""
    from PIL import Image

    from cellviewer.core.io import read_image

    rng = np.random.default_rng(seed)
    Image.fromarray(np.full((h, w, 3), (236, 228, 232), np.uint8)).save(image_path)
    doc = Document(read_image(image_path))
    yy, xx = np.ogrid[:h, :w]
    step = 60
    n = {c: 0 for c in CELL_CLASSES}
    markers = []
    for cy in range(step // 2, h - step // 2, step):
        for cx in range(step // 2, w - step // 2, step):
            r = int(rng.integers(14, 24))
            cls = rng.choice(CELL_CLASSES, p=[0.9, 0.03, 0.07])
            r = r if cls == "rbc" else (27 if cls == "wbc" else 5)
            y0, y1, x0, x1 = cy - r, cy + r + 1, cx - r, cx + r + 1
            disc = (yy[y0:y1] - cy) ** 2 + (xx[:, x0:x1] - cx) ** 2 <= r * r
            n[cls] += 1
            doc.labels[cls][y0:y1, x0:x1][disc] = n[cls]
            if cls == "wbc":
                core = (yy[y0:y1] - cy) ** 2 + (xx[:, x0:x1] - cx) ** 2 <= (r // 2) ** 2
                doc.parts[y0:y1, x0:x1][disc] = 2
                doc.parts[y0:y1, x0:x1][core] = 1
            markers.append(Marker(len(markers) + 1, str(cls), float(cx), float(cy), "auto", n[cls],
                                  float(rng.uniform(0.5, 1.0))))
    doc.markers = {m.id: m for m in markers}
    doc.provenance.model_name, doc.provenance.params = "synthetic", {"seed": seed}
    return doc


def random_step(doc: Document, history, rng: np.random.Generator):
    """One random user action as ``(name, edit, mode)``: ``mode`` "apply" (``edit`` unapplied; push
    it), "undo" or "redo" (``edit`` is the history's next one). None when the action makes no sense.
    Call it with ``doc.journal`` None: a brush stroke is painted and taken back here."""
    from cellviewer.core import operations as ops
    from cellviewer.core.brush import BrushStroke
    from cellviewer.core.errors import EditError

    h, w = doc.shape
    kind = str(rng.choice(["brush", "erase", "delete", "merge", "fill", "add_marker", "move_marker",
                           "remove_marker", "reclassify", "split", "reviewed", "undo", "redo"],
                          p=[0.16, 0.1, 0.1, 0.06, 0.04, 0.12, 0.1, 0.06, 0.05, 0.05, 0.02, 0.1, 0.04]))
    cls = str(rng.choice(CELL_CLASSES, p=[0.7, 0.15, 0.15]))
    marked = [m for m in doc.markers.values() if m.cls == cls and m.cell]
    pick = (lambda seq: seq[int(rng.integers(len(seq)))])
    try:
        if kind == "undo":
            return (kind, history._done[-1], "undo") if history._done else None
        if kind == "redo":
            return (kind, history._undone[-1], "redo") if history._undone else None
        if kind in ("brush", "erase"):
            pts = np.cumsum(rng.normal(0, 12, (int(rng.integers(2, 8)), 2)), 0) + [rng.uniform(0, w), rng.uniform(0, h)]
            s = BrushStroke(doc, cls, float(rng.uniform(2, 12)), erase=kind == "erase")
            s.dab(*pts[0])
            for x, y in pts[1:]:
                s.line_to(float(x), float(y))
            e = s.finish()
            if e is not None:
                e.revert(doc)  # back to an unapplied edit, like the builders return
        elif kind == "delete" and marked:
            e = ops.delete_cell(doc, cls, pick(marked).cell)
        elif kind == "merge" and len(marked) > 1:
            a, b = rng.choice(len(marked), 2, replace=False)
            e = ops.merge_cells(doc, cls, marked[int(a)].cell, marked[int(b)].cell)
        elif kind == "split" and marked:
            m = pick(marked)
            e = ops.split_cell(doc, cls, m.cell, [(m.x - 40, m.y - 3), (m.x + 40, m.y + 3)])
        elif kind == "reclassify" and marked:
            e = ops.reclassify_cell(doc, cls, pick(marked).cell, str(rng.choice([c for c in CELL_CLASSES if c != cls])))
        elif kind == "fill" and marked:
            m = pick(marked)
            x, y = int(m.x), int(m.y)
            if doc.labels[cls][y, x] == 0:
                return None
            e = ops.fill(doc, cls, x, y, 0)
        elif kind == "add_marker":
            e = ops.add_marker(doc, cls, float(rng.uniform(0, w)), float(rng.uniform(0, h)))
        elif kind == "move_marker" and doc.markers:
            e = ops.move_marker(doc, pick(list(doc.markers)), float(rng.uniform(0, w)), float(rng.uniform(0, h)))
        elif kind == "remove_marker" and doc.markers:
            e = ops.remove_marker(doc, pick(list(doc.markers)))
        elif kind == "reviewed":
            e = ops.set_image_reviewed(doc, not doc.reviewed)
        else:
            return None
    except EditError:
        return None
    return None if e is None else (kind, e, "apply")


# -- the SIGKILL harness ----------------------------------------------------------------------------
@dataclass
class KillReport:
    cycles: int = 0  # kills done
    survived: int = 0  # kills after which both checks passed
    saves: int = 0  # completed saves seen
    edits: int = 0  # completed (journaled) edits seen
    replayed: int = 0  # journal entries replayed by the checks
    killed_in_save: int = 0  # kills that landed while a save was in flight
    killed_in_edit: int = 0  # kills that landed while an edit was being journaled
    stale_temp_files: int = 0  # sidecar/journal temp files the kills left behind (removed by the harness)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{self.survived}/{self.cycles} kill cycles survived ({self.saves} saves, {self.edits} journaled "
                f"edits, {self.replayed} journal entries replayed; {self.killed_in_save} kills during a save, "
                f"{self.killed_in_edit} during an edit; {self.stale_temp_files} stale temp files) "
                f"in {self.seconds:.0f} s")


def _child(folder: str, seed: int, save_every: float) -> int:
    """The victim: open the document (sidecar + journal recovery), then edit and autosave forever."""
    from concurrent.futures import ThreadPoolExecutor

    from cellviewer.core import sidecar
    from cellviewer.core.edits import History
    from cellviewer.core.journal import recover

    out_lock = threading.Lock()

    def say(*words) -> None:
        with out_lock:
            sys.stdout.write(" ".join(map(str, words)) + "\n")
            sys.stdout.flush()

    image = Path(folder) / "img.png"
    doc = sidecar.load_document(image)
    if doc.pending_journal:
        recover(doc, doc.pending_journal)
        doc.pending_journal = []
    sidecar.attach_journal(doc)
    journal, path = doc.journal, sidecar.sidecar_path(image)
    current = state_hash(doc)
    say("READY", current)
    rng = np.random.default_rng(seed)
    history = History(doc)
    writer = ThreadPoolExecutor(1)
    pending_save, last_save, n = None, time.monotonic(), 0

    def write(snap, h):
        sidecar.write_snapshot(snap, path)
        say("SAVED", h)

    while True:
        doc.journal = None  # dry run: learn the state the action leads to, then take it back
        step = random_step(doc, history, rng)
        if step is not None:
            name, e, mode = step
            forward, back = (e.revert, e.apply) if mode == "undo" else (e.apply, e.revert)
            forward(doc)
            after = state_hash(doc)
            back(doc)
            if mode == "apply":
                e.applied = False
            n += 1
            if n % 10 == 0 and state_hash(doc) != current:
                say("ERROR", "a dry run could not be taken back")
                return 1
            doc.journal = journal
            if after != current:
                say("PENDING", after)
            {"apply": lambda: history.push(e), "undo": history.undo, "redo": history.redo}[mode]()
            if after != current:
                say("DONE", after)
                current = after
        doc.journal = journal
        if time.monotonic() - last_save > save_every and (pending_save is None or pending_save.done()):
            if pending_save is not None:
                pending_save.result()  # re-raise a failed save
            snap = sidecar.snapshot(doc)
            say("SAVE", current)
            pending_save = writer.submit(write, snap, current)
            last_save = time.monotonic()


class _Reader(threading.Thread):
    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.lines = stream, []
        self.ready = threading.Event()

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line.split())
            if line.startswith("READY"):
                self.ready.set()
        self.ready.set()


def kill_cycles(n: int, folder, shape: tuple[int, int] = (1500, 2000), seed: int = 0,
                min_s: float = 0.05, max_s: float = 1.5, save_every: float = 0.3, log=None,
                log_every: int = 1) -> KillReport:
    """Run ``n`` SIGKILL cycles on a ``shape`` document in ``folder`` (see the module docstring)."""
    from cellviewer.core import sidecar
    from cellviewer.core.journal import recover

    t_start = time.perf_counter()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    image = folder / "img.png"
    doc = synthetic_document(*shape, image, seed)
    sidecar.save_sidecar(doc)
    confirmed_save = current = state_hash(doc)
    rep = KillReport()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                       os.environ.get("PYTHONPATH", "")]))
    for cycle in range(n):
        proc = subprocess.Popen(module_command("cellviewer.core.killcycles", "child", str(folder),
                                               str(seed * 100003 + cycle), str(save_every)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        reader = _Reader(proc.stdout)
        reader.start()
        try:
            if not reader.ready.wait(120) or proc.poll() is not None:
                raise RuntimeError("the child did not start")
            time.sleep(float(rng.uniform(min_s, max_s)))
            if proc.poll() is not None:
                raise RuntimeError(f"the child died by itself (exit {proc.returncode})")
            proc.send_signal(signal.SIGKILL)
        except RuntimeError as e:
            proc.kill()
            proc.wait()
            reader.join(10)
            rep.cycles += 1
            rep.failures.append(f"cycle {cycle}: {e}: {proc.stderr.read()[-2000:]}")
            break
        proc.wait()
        reader.join(10)
        err = proc.stderr.read()
        rep.cycles += 1
        lines = reader.lines
        problems = []
        if not lines or lines[0][0] != "READY" or lines[0][1] != current:
            problems.append(f"the child opened state {lines[0] if lines else None}, expected {current}")
        inflight_save = inflight_edit = None
        for words in lines[1:]:
            tag, h = words[0], words[1] if len(words) > 1 else ""
            if tag == "SAVE":
                inflight_save = h
            elif tag == "SAVED":
                confirmed_save, inflight_save = h, None
                rep.saves += 1
            elif tag == "PENDING":
                inflight_edit = h
            elif tag == "DONE":
                current, inflight_edit = h, None
                rep.edits += 1
        rep.killed_in_save += inflight_save is not None
        rep.killed_in_edit += inflight_edit is not None
        if "Traceback" in err:
            problems.append(f"the child failed: {err[-1500:]}")
        # 1. the sidecar alone: the last completed save or the one in flight
        try:
            disk = sidecar.load_document(image)
            got = state_hash(disk)
            if got not in (confirmed_save, inflight_save):
                problems.append(f"sidecar holds state {got}, expected {confirmed_save} or in-flight {inflight_save}")
            if got == inflight_save:
                confirmed_save = got
            # 2. sidecar + journal: the last journaled state or the edit in flight
            pending = disk.pending_journal
            k = recover(disk, pending)
            rep.replayed += k
            got = state_hash(disk)
            if k != len(pending):
                problems.append(f"only {k} of {len(pending)} journal entries replayed")
            if got not in (current, inflight_edit):
                problems.append(f"recovered state {got}, expected {current} or in-flight {inflight_edit}")
            current = got
            problems += [f"inconsistent: {p}" for p in document_problems(disk)]
        except Exception as e:  # noqa: BLE001 - reported as a failure of the cycle
            problems.append(f"reopening failed: {type(e).__name__}: {e}")
        for tmp in folder.iterdir():  # temp files a kill left behind would fill the disk over 100s of cycles
            if ".tmp" in tmp.name:
                rep.stale_temp_files += 1
                tmp.unlink()
        if problems:
            rep.failures.append(f"cycle {cycle}: " + "; ".join(problems))
        else:
            rep.survived += 1
        if log is not None and (problems or (cycle + 1) % log_every == 0):
            log(f"  kill cycle {cycle + 1}/{n}: {len(lines) - 1} events this cycle, {rep.survived} survived so far"
                + ("" if not problems else "; FAILED: " + problems[0]))
        if problems and "reopening failed" in problems[-1]:
            break
    rep.seconds = time.perf_counter() - t_start
    return rep


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "child":
        sys.exit(_child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    sys.exit("usage: python -m cellviewer.core.killcycles child FOLDER SEED SAVE_EVERY_S")
