"""``cellviewer train``: train a segmentation network on the shared data, with a progress bar.

Wraps the core job :func:`cellviewer.core.training.train` (options from
:func:`cellviewer.core.cliopts.add_train_arguments`, shared with ``python -m
cellviewer.core.training``). On a terminal a tqdm bar shows phase, epoch, step, loss
and the validation score; otherwise one line per epoch. The best checkpoint (by the
validation score) is written to ``--out`` after every improving epoch, the latest
state to ``<out>-last`` (continue with ``--resume <out>-last``: the run's own options, name, calibration and
best checkpoint are kept, the options given override them, and without ``--out`` it writes beside the checkpoint,
saying where; :mod:`cellviewer.core.trainresume`). Without ``--name`` the card's name is the ``--out`` file name.

Ctrl-C asks the job to stop at the next training step (a second Ctrl-C aborts at
once): the best checkpoint written so far is kept and the command exits with 130.
"""

from __future__ import annotations

import argparse
import sys
import time

EPILOG = ("exit codes: 0 trained; 2 usage error or bad option (e.g. invalid JSON, an unknown --arch or encoder, a bad "
          "--net-config, wbc_seg mixed with box datasets, a device that is not there, a --resume that cannot go on: "
          "other classes or datasets, another --arch or --net-config, epochs used up); 5 cannot write the checkpoint; "
          "6 no such checkpoint to resume; 130 interrupted (Ctrl-C; the best checkpoint so far is kept)")


def add_parser(sub) -> None:
    from cellviewer.core.cliopts import add_train_arguments

    p = sub.add_parser("train", help="train a network on the shared data (best checkpoint + model card)",
                       description="Train a segmentation network on data in the shared layout (train split; "
                                   "model selection on the val split). Writes OUT.safetensors + OUT.json.",
                       epilog=EPILOG)
    add_train_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="only the final summary")
    p.set_defaults(func=handler)


def command_of(cfg) -> str:
    """A ``cellviewer train`` command that rebuilds ``cfg`` (its options that differ from the defaults)."""
    import json
    import shlex
    from dataclasses import asdict

    from cellviewer.core.training import TrainConfig

    default = asdict(TrainConfig())
    diff = {k: v for k, v in asdict(cfg).items() if default.get(k) != v}
    return "cellviewer train --config " + shlex.quote(json.dumps(diff, sort_keys=True))


class _Reporter:
    """A tqdm bar on a terminal; otherwise epoch lines (and a heartbeat a minute) on stderr."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar, self.last, self.best = quiet, None, 0.0, None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=1000, file=sys.stderr, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}")

    def __call__(self, p) -> None:
        if getattr(p, "best", None) is not None:  # a checkpoint has been written
            self.best = p.best
        epoch_line = " val " in p.message or p.message.startswith(("done", "loading", "scoring", "resuming"))
        if self.bar is not None:
            self.bar.update(max(0, int(p.fraction * 1000) - self.bar.n))
            if getattr(p, "step", 0):
                self.bar.set_postfix_str(f"ph{p.phase} ep{p.epoch} step {p.step} loss {p.loss:.4f}"
                                         + (f" best {p.best:.4f}" if p.best is not None else ""), refresh=False)
            if epoch_line:
                self.bar.write(p.message, file=sys.stderr)
        elif not self.quiet and (epoch_line or time.monotonic() - self.last > 60):
            self.last = time.monotonic()
            print(p.message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _CtrlC:
    """First Ctrl-C: cancel the job (it stops at the next step); second: KeyboardInterrupt."""

    def __init__(self, token):
        self.token, self.old = token, None

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        import signal

        if self.token.cancelled:
            signal.signal(signal.SIGINT, self.old or signal.default_int_handler)
            raise KeyboardInterrupt
        self.token.cancel()
        print("\ncellviewer: stopping at the next training step (Ctrl-C again to abort now)…",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        import signal

        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
        return False


def _saved_state(out: str) -> dict | None:
    """The training state in the card of the best checkpoint ``out`` (None when unreadable)."""
    import json

    try:
        with open(f"{out}.json", encoding="utf-8") as f:
            return (json.load(f).get("training") or {}).get("state") or {}
    except (OSError, ValueError):
        return None


def _check_writable(stem) -> None:
    """The checkpoint's folder can be created and written (else SaveError, exit 5)."""
    import os
    import tempfile
    from pathlib import Path

    from cellviewer.core.errors import SaveError

    if not stem:
        return
    folder = Path(stem).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise SaveError(f"Cannot write the checkpoint into '{folder}': {e.strerror or e}",
                        hint="choose a writable --out") from e


def handler(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from cellviewer.core.cliopts import train_config_from_args
    from cellviewer.core.errors import Cancelled
    from cellviewer.core.jobs import CancelToken, run_job
    from cellviewer.core.training import train

    cfg = train_config_from_args(args)
    _check_writable(cfg.out)  # before any epoch: not "unexpected PermissionError" after the first one
    token = CancelToken()
    rep = _Reporter(args.quiet)
    try:
        with _CtrlC(token):
            res = run_job(train(cfg, token, command_of(cfg)), rep)
    except Cancelled:
        rep.close()
        state = _saved_state(cfg.out) if rep.best is not None else None
        if state is not None:
            print(f"cellviewer: cancelled; the best checkpoint (score {state.get('best_score', rep.best):.4f}, "
                  f"epoch {state.get('best_epoch', '?')}) is kept in {cfg.out}.json/.safetensors; "
                  f"continue with --resume {cfg.out}-last", file=sys.stderr)
        else:
            print("cellviewer: cancelled before the first epoch ended; no checkpoint was written", file=sys.stderr)
        return Cancelled.exit_code
    finally:
        rep.close()
    summary = {k: v for k, v in asdict(res).items() if k != "history"}
    print(json.dumps(summary, indent=1))
    return 0
