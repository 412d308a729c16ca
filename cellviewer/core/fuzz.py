"""The long robustness run: hostile corpus, mutation fuzzing and SIGKILL cycles.

    python -m cellviewer.core.fuzz --examples 10000 --kill-cycles 100

A plain random-mutation fuzzer (numpy's ``Generator``; no test dependency) for the
three readers of untrusted bytes — images (``read_image``), sidecars
(``read_sidecar`` + ``apply_sidecar``) and the edit journal (``read_entries`` +
``recover``) — checked against the contracts in :mod:`cellviewer.core.robustness`.
Prints the kinds of bad input tried, the cases run per target, the crashes
(unexpected exception types, malformed results or hangs; reproducers are saved under
``--out``) and the kill cycles survived. Exit status 0 only when nothing failed.

When run from the repository root the generated corpus of ``tests/hostile/corpus.py``
is checked as well (each case against its documented outcome).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from cellviewer.core.robustness import CRASH, OK, REFUSED, Outcome, check_image, check_journal, check_sidecar

from cellviewer.core.mutate import (BYTE_MUTATORS, JOURNAL_MUTATORS, SIDE_H, SIDE_W, SIDECAR_MUTATORS,
                                    image_seeds, mutate_bytes, mutate_journal, mutate_sidecar, valid_journal)


# -- running ---------------------------------------------------------------------------------------
class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang("no result within the hard time limit")


class Target:
    def __init__(self, name: str, out: Path, keep: int = 5):
        self.name, self.out, self.keep = name, out, keep
        self.cases, self.crashes, self.slowest = 0, 0, 0.0
        self.status: Counter = Counter()
        self.first: list[str] = []

    def record(self, outcome: Outcome, data: bytes, suffix: str, how, deadline: float) -> None:
        self.cases += 1
        self.slowest = max(self.slowest, outcome.seconds)
        if outcome.status != CRASH and outcome.seconds > deadline:
            outcome = Outcome(CRASH, f"took {outcome.seconds:.1f} s (deadline {deadline:g} s)", outcome.seconds)
        self.status[outcome.status] += 1
        if outcome.status == CRASH:
            self.crashes += 1
            if len(self.first) < self.keep:
                self.out.mkdir(parents=True, exist_ok=True)
                stem = self.out / f"{self.name}_{self.crashes:03d}"
                stem.with_suffix(suffix if suffix.startswith(".") else "." + suffix).write_bytes(data)
                stem.with_suffix(".txt").write_text(f"mutators: {how}\n\n{outcome.detail}\n", encoding="utf-8")
                self.first.append(f"{stem.name}: {how}: {outcome.detail.strip().splitlines()[-1][:200]}")

    def line(self) -> str:
        parts = ", ".join(f"{v} {k}" for k, v in sorted(self.status.items()))
        return (f"  {self.name:8s} {self.cases:6d} cases ({parts}); crashes: {self.crashes}; "
                f"slowest {self.slowest:.2f} s")


def _guarded(fn, hard_s: float):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, hard_s)
    try:
        return fn()
    except _Hang as e:
        return Outcome(CRASH, f"hang: {e}", hard_s)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def fuzz_images(n: int, rng, work: Path, target: Target, deadline: float) -> None:
    seeds = image_seeds(rng)
    names = list(seeds)
    suffixes = [".png", ".jpg", ".bmp", ".tif", ".tiff", ".jpeg"]
    for i in range(n):
        name = names[int(rng.integers(len(names)))]
        data, how = mutate_bytes(rng, seeds[name])
        suffix = str(rng.choice(suffixes)) if rng.random() < 0.2 else ("." + name.rsplit(".", 1)[-1]
                                                                       if "." in name else "." + name)
        p = work / f"img{i % 8}{suffix}"
        p.write_bytes(data)
        target.record(_guarded(lambda: check_image(p), deadline * 4), data, suffix, f"{name} + {how}", deadline)
        p.unlink()


def fuzz_sidecars(n: int, rng, work: Path, target: Target, deadline: float) -> None:
    for i in range(n):
        data, how = mutate_sidecar(rng)
        p = work / "img.png.cellviewer"
        p.write_bytes(data)
        target.record(_guarded(lambda: check_sidecar(p, (SIDE_H, SIDE_W)), deadline * 4), data, ".cellviewer",
                      how, deadline)


def fuzz_journals(n: int, rng, work: Path, target: Target, deadline: float) -> None:
    from cellviewer.core.journal import read_entries

    good = valid_journal(rng)
    p0 = work / "good.journal"
    p0.write_bytes(good)
    reference = [(k, e.name, e.record) for k, e in read_entries(p0)]
    for i in range(n):
        data, how = mutate_journal(rng, good)
        p = work / "img.png.cellviewer.journal"
        p.write_bytes(data)
        out = _guarded(lambda: check_journal(p, (SIDE_H, SIDE_W)), deadline * 4)
        if out.status == OK and how == "bytes mutated (CRC intact)":
            got = [(k, e.name, e.record) for k, e in out.value]
            if got != reference[: len(got)]:
                out = Outcome(CRASH, "entries are not a prefix of the intact journal's", out.seconds)
        target.record(out, data, ".journal", how, deadline)


def check_corpus(work: Path, log) -> tuple[list, list[str], list[str]]:
    """The generated corpus of tests/hostile (when importable): (cases, conditions, problems)."""
    try:
        from tests.hostile.corpus import CONDITIONS, EITHER, make_corpus
    except ImportError:
        log("  corpus: tests/hostile/corpus.py not importable (run from the repository root to include it)")
        return [], [], []
    from cellviewer.core.journal import read_entries

    problems = []
    cases = make_corpus(work / "corpus")
    for c in cases:
        if c.kind in ("image", "path"):
            out = check_image(c.path)
            want = {OK} if c.expected == "ok" else ({OK, REFUSED} if c.expected == EITHER else {REFUSED})
        elif c.kind == "sidecar":
            out = check_sidecar(c.path, (20, 30))
            want = {OK} if c.expected == "ok" else {REFUSED}
        else:
            n = len(read_entries(c.path))
            out, want = Outcome(OK if n == c.expected else CRASH, f"{n} entries, expected {c.expected}"), {OK}
        if out.status not in want:
            last = out.detail.strip().splitlines()[-1][:200] if out.detail.strip() else ""
            problems.append(f"{c.name}: {out.status}: {last}")
    return cases, list(CONDITIONS), problems


def _kinds_line(cases, conditions) -> str:
    hostile = [c for c in cases if c.name not in ("sidecar:valid", "journal:intact")]  # minus the controls
    by = Counter(c.kind for c in hostile)
    refused = sum(c.bad for c in hostile if c.kind in ("image", "path"))
    return (f"{len(hostile) + len(conditions)} hand-made kinds: {by['image'] + by['path']} image files/paths "
            f"({refused} to refuse, the rest odd but valid), {by['sidecar']} sidecars, {by['journal']} journals, "
            f"{len(conditions)} conditions ({'; '.join(conditions)})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cellviewer.core.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=1000, help="fuzz cases per target (default 1000)")
    ap.add_argument("--kill-cycles", type=int, default=10, help="SIGKILL cycles (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    default_out = os.path.join(tempfile.gettempdir(), "cellviewer-fuzz-out")
    ap.add_argument("--out", default=default_out, help=f"folder for crash reproducers (default {default_out})")
    ap.add_argument("--deadline", type=float, default=5.0, help="seconds one case may take (default 5)")
    ap.add_argument("--shape", type=int, nargs=2, default=(1500, 2000), metavar=("H", "W"),
                    help="document size for the kill cycles (default 1500 2000)")
    ap.add_argument("--targets", default="corpus,image,sidecar,journal,kill")
    args = ap.parse_args(argv)
    targets = set(args.targets.split(","))
    log = lambda s: print(s, flush=True)  # noqa: E731
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    t0 = time.perf_counter()
    failed = False
    log(f"cellviewer robustness run — seed {args.seed}, {args.examples} cases per target, "
        f"{args.kill_cycles} kill cycles")
    for old in out.glob("*_[0-9][0-9][0-9].*") if out.is_dir() else []:  # reproducers of an earlier run
        if old.name.split("_")[0] in ("image", "sidecar", "journal"):
            old.unlink()
    work = Path(tempfile.mkdtemp(prefix="cellviewer-fuzz-"))
    try:
        cases, conditions, problems = check_corpus(work, log) if "corpus" in targets else ([], [], [])
        mut = {"image": len(BYTE_MUTATORS), "sidecar": len(SIDECAR_MUTATORS) + len(BYTE_MUTATORS),
               "journal": len(JOURNAL_MUTATORS) + len(BYTE_MUTATORS)}
        log("kinds of bad input tried:")
        if cases:
            log(f"  {_kinds_line(cases, conditions)}")
        log(f"  mutation operators: image {mut['image']} (on {len(image_seeds(np.random.default_rng(0)))} valid "
            f"seed flavours), sidecar {mut['sidecar']}, journal {mut['journal']}")
        if cases:
            log(f"  corpus   {len(cases):6d} generated files checked against their documented outcome; "
                f"unexpected: {len(problems)}")
            for p in problems[:10]:
                log(f"    {p}")
            failed |= bool(problems)
        tgts = []
        for name, fn in (("image", fuzz_images), ("sidecar", fuzz_sidecars), ("journal", fuzz_journals)):
            if name in targets and args.examples > 0:
                t = Target(name, out)
                ts = time.perf_counter()
                (work / name).mkdir()
                fn(args.examples, rng, work / name, t, args.deadline)
                log(t.line() + f"  [{time.perf_counter() - ts:.0f} s]")
                tgts.append(t)
        crashes = sum(t.crashes for t in tgts)
        log(f"fuzz cases run: {sum(t.cases for t in tgts)} ("
            + ", ".join(f"{t.name} {t.cases}" for t in tgts) + f"); crashes: {crashes}"
            + (f" — first reproducers in {out.resolve()}:" if crashes else ""))
        for t in tgts:
            for line in t.first:
                log(f"    {line}")
        failed |= crashes > 0
        if "kill" in targets and args.kill_cycles > 0:
            from cellviewer.core.killcycles import kill_cycles

            log(f"kill cycles: {args.kill_cycles} SIGKILLs of a process editing and autosaving a "
                f"{args.shape[1]}×{args.shape[0]} document")
            every = 1 if args.kill_cycles <= 20 else 10
            rep = kill_cycles(args.kill_cycles, work / "kill", tuple(args.shape), seed=args.seed, log=log,
                              log_every=every)
            log(f"  {rep.summary()}")
            for f in rep.failures[:10]:
                log(f"    {f[:500]}")
            failed |= rep.survived != rep.cycles or rep.cycles != args.kill_cycles
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"RESULT: {'FAIL' if failed else 'PASS'} in {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
