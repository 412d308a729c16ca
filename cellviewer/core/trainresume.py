"""Resuming a training run (``train(TrainConfig(resume=STEM))``, ``cellviewer train --resume STEM``).

Before any data is loaded, :func:`check_resume` refuses (:class:`OptionError`, exit code 2, saying what
to give instead) a resume that cannot continue the run:

* the **classes** the datasets train (:func:`cellviewer.core.training.classes_of`) differ from the
  checkpoint's — its heads answer other questions;
* the run has progressed (its card's training state has epochs) and the **datasets** or the
  ``train_splits`` differ, or — for a cellviewer export — an image the run trained or selected on has
  moved to another split since: its best score was measured on other validation images, or the new
  ones would score it on images it trained on;
* the **epochs** asked for are used up (the epoch budget counts on from the state's epoch);
* ``STEM`` is a run's best checkpoint (not ``STEM-last``) and the run would write to its own ``--out``:
  that would overwrite the later epochs in ``STEM-last`` (resume from ``STEM-last``, or give another ``--out``);

:func:`check_net` refuses an ``--arch`` / ``--net-config`` given with ``--resume`` that is not the
checkpoint's net (:func:`cellviewer.core.cliopts.train_config_from_args`: the weights go on as they are, the
card would say otherwise); :func:`net_of` makes the card of the core job say the checkpoint's net.

A checkpoint whose training state is empty (a shipped or fine-tune base, ``core.finetune``) starts a
new run from its weights: only the classes are checked.

:func:`best_so_far` keeps the run's best checkpoint: a resumed run's epochs replace it only when they
score higher than its recorded best (:func:`cellviewer.core.training.train` no longer makes the resumed
``-last`` weights the best to beat). :func:`options_of` is what ``cellviewer train --resume`` starts
from: the run's own options, name and calibration (the card's ``postprocess`` / ``inference`` go on into the
new cards, :func:`cellviewer.core.trainparts.card_for`), overridden by the options given — but not its
``out``: without ``--out`` a resume writes beside the checkpoint (:func:`out_beside`), so a copied or moved
run goes on where it now is.
"""

from __future__ import annotations

import json
from pathlib import Path

from cellviewer.core.errors import OptionError


def _training(card: dict) -> tuple[dict, dict]:
    t = card.get("training") or {}
    return dict(t.get("config") or {}), dict(t.get("state") or {})


def progressed(state: dict) -> bool:
    """Whether a training state records epochs of a run (an empty one: a fresh start from the weights)."""
    return bool(state.get("history")) or int(state.get("epoch") or 0) > 0


def options_of(stem) -> dict:
    """The training options recorded in the card of checkpoint ``stem``, without ``resume`` and ``out`` (a
    resume writes beside ``stem``: :func:`out_beside`), with the card's ``name`` and — where the options lack
    them — its net (``architecture``, ``net_config``). Raises :class:`~cellviewer.core.errors.ModelLoadError`
    when there is no such card."""
    from cellviewer.nets.checkpoint import read_card

    card = read_card(stem)
    cfg, _state = _training(card)
    cfg.pop("resume", None)
    cfg.pop("out", None)
    if card.get("name"):
        cfg["name"] = card["name"]
    if card.get("architecture") and "architecture" not in cfg:
        cfg["architecture"] = card["architecture"]
    if isinstance(card.get("config"), dict) and "net_config" not in cfg:
        cfg["net_config"] = dict(card["config"])
    return cfg


def out_beside(stem) -> str:
    """Where a resume of ``stem`` without ``--out`` writes: beside it, as the run it is the ``-last`` checkpoint
    of (``runs/r/m-last`` → ``runs/r/m``), so a copied or moved run goes on in its new place. A ``stem`` that is
    no ``-last`` checkpoint is refused (:class:`OptionError`): going on into it would overwrite it."""
    p = Path(str(stem))
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    if p.name.endswith("-last") and len(p.name) > len("-last"):
        return str(p.with_name(p.name[: -len("-last")]))
    last = p.with_name(p.name + "-last")
    if last.with_suffix(".json").is_file():  # the run's best: check_resume's refusal names its -last
        return str(p)
    raise OptionError(f"'{stem}' is not a run's -last checkpoint: without --out, going on from it would write "
                      "over it (and a -last checkpoint beside it).",
                      hint=f"give --out for the new run (e.g. --out runs/{p.name}/{p.name}), or resume a run from "
                           "its OUT-last checkpoint")


def _phases(cfg, card: dict) -> list[tuple[int, int]]:
    has_edge = "edge" in (card.get("outputs") or []) or bool((card.get("config") or {}).get("edge"))
    return [(1, int(cfg.epochs))] + ([(2, int(cfg.phase2_epochs))] if cfg.two_phase and has_edge else [])


def check_resume(cfg, card: dict, classes: list[str]) -> None:
    """Refuse a resume that cannot continue the run of ``card`` (see the module docstring)."""
    stem = cfg.resume
    have = list(card.get("classes") or [])
    if have and have != list(classes):
        raise OptionError(f"'{stem}' segments {', '.join(have[1:])}; the datasets asked for "
                          f"({', '.join(cfg.datasets)}) train {', '.join(classes[1:])}.",
                          hint="resume with datasets of the checkpoint's classes, or train a new model "
                               "without --resume")
    old, state = _training(card)
    _refuse_the_best_over_its_last(cfg, state)  # also when the best is still the start (a base never beaten)
    if not progressed(state):
        return
    if old.get("datasets") and sorted(old["datasets"]) != sorted(cfg.datasets):
        raise OptionError(f"'{stem}' was trained on {', '.join(old['datasets'])}, not {', '.join(cfg.datasets)}: "
                          f"its best score ({float(state.get('best_score', -1)):.4f}) was measured on other "
                          "validation images, so the run cannot go on with these.",
                          hint=f"resume with --datasets {' '.join(old['datasets'])}, or train a new run")
    if old.get("train_splits") and list(old["train_splits"]) != list(cfg.train_splits):
        raise OptionError(f"'{stem}' was trained on the {'+'.join(old['train_splits'])} split(s), this run asks for "
                          f"{'+'.join(cfg.train_splits)}: the images it selected on would change.",
                          hint=f"resume with train_splits {old['train_splits']}, or train a new run")
    if "export" in cfg.datasets:
        _check_export_splits(cfg, card)
    phases = _phases(cfg, card)
    phase, epoch = int(state.get("phase") or 1), int(state.get("epoch") or 0)
    left = sum(n for p, n in phases if p > phase) + sum(max(0, n - epoch) for p, n in phases if p == phase)
    if left <= 0:
        n = dict(phases).get(phase, 0)
        more = (f"--epochs {epoch + 10} (the budget counts on from epoch {epoch})" if phase == 1
                else "a larger phase2_epochs in --config")
        raise OptionError(f"'{stem}' has already run {epoch} of the {n} epochs asked for in phase {phase}: "
                          "nothing is left to train.", hint=f"ask for more epochs, e.g. {more}")


def _own(d) -> dict:
    from cellviewer.nets.registry import BUILD_ONLY_KEYS

    return {k: v for k, v in dict(d or {}).items() if k not in BUILD_ONLY_KEYS}


def check_net(cfg, card: dict) -> None:
    """A resume goes on with the checkpoint's net: refuse (:class:`OptionError`) an ``architecture`` /
    ``net_config`` given (``--arch`` / ``--net-config``) other than its own, which the new card would record
    but the weights not follow. ``net_config`` fits when it is the run's own recorded one or each of its keys
    says what the checkpoint's net has."""
    old, _state = _training(card)
    arch, given = card.get("architecture"), getattr(cfg, "architecture", None)
    if arch and given and given != arch:
        raise OptionError(f"'{cfg.resume}' is a {arch} network: a resume goes on with its weights, it cannot "
                          f"become a {given}.", hint=f"leave out --arch (or give --arch {arch}) to go on with "
                          f"it, or train a new {given} model without --resume")
    net = getattr(cfg, "net_config", None)
    if net is None:
        return
    have, mine = _own(card.get("config")), _own(net)
    if "net_config" in old and mine == _own(old["net_config"]):
        return
    differ = [k for k in mine if k not in have or have[k] != mine[k]]
    if differ:
        has = ", ".join(f"{k} {json.dumps(have[k]) if k in have else '(not set)'}" for k in differ)
        raise OptionError(f"'{cfg.resume}' has a {arch or 'network'} with {has}; --net-config asks for "
                          f"{', '.join(f'{k} {json.dumps(mine[k])}' for k in differ)}: a resume goes on with the "
                          "checkpoint's net and cannot change it.",
                          hint="leave out --net-config to go on with the checkpoint's net (widen a DO-U-Net with "
                               "--config '{\"widen_base\": N}'), or train a new model without --resume")


def net_of(cfg, card: dict) -> dict:
    """``{}`` when ``cfg``'s ``architecture`` / ``net_config`` describe the resumed checkpoint's net
    (:func:`check_net`), else the checkpoint's own, for :func:`dataclasses.replace`: the card of a resumed run
    records the net its weights are (a caller of the core job that left the defaults in, e.g. a fine-tune of a
    card without training options)."""
    try:
        check_net(cfg, card)
    except OptionError:
        return {"architecture": card.get("architecture") or cfg.architecture, "net_config": _own(card.get("config"))}
    return {}


def _norm(stem) -> Path:
    p = Path(str(stem))
    return (p.with_suffix("") if p.suffix in (".json", ".safetensors") else p).resolve()


def _refuse_the_best_over_its_last(cfg, state: dict) -> None:
    """``--resume RUN`` (the best checkpoint) writing to ``--out RUN`` would go on from the best epoch and
    overwrite ``RUN-last``, the later epochs: refuse, naming ``RUN-last``."""
    stem = _norm(cfg.resume)
    if stem.name.endswith("-last"):
        return
    last = stem.with_name(stem.name + "-last")
    if not last.with_suffix(".json").is_file() or _norm(cfg.out) != stem:
        return
    raise OptionError(f"'{cfg.resume}' is the run's best checkpoint (epoch {state.get('best_epoch', '?')}); going "
                      f"on from it would overwrite the later epochs in '{last}'.",
                      hint=f"resume with --resume {last} (it goes on from the last epoch and keeps the best "
                           "checkpoint until beaten), or give another --out to branch off from the best one")


def _check_export_splits(cfg, card: dict) -> None:
    """An export's split follows its images (rank-based): refuse when one the run used moved."""
    from cellviewer.core.datasets import load_samples

    used = (card.get("training_data") or {}).get("export_images") or {}
    if not used:
        return
    now = {s.image_id: s.split for s in load_samples("export", cfg.data_root)}
    moved = [(i, sp, now[i]) for sp in ("train", "val") for i in used.get(sp, []) if now.get(i, sp) != sp]
    if moved:
        i, was, is_ = moved[0]
        raise OptionError(f"{len(moved)} image(s) of the export the run of '{cfg.resume}' used moved to another "
                          f"split since (e.g. {i}: {was} → {is_}); going on would score it on images it trained on.",
                          hint="train a new run on this export (without --resume), or resume on the export it used")


def export_images(items_by_split: dict[str, list[dict]]) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...]}``: the exported images (by name) a run trains and selects on, for
    its card (what :func:`check_resume` compares with on the next resume); empty without export data."""
    out = {sp: sorted(it["id"] for it in items if it.get("dataset") == "export")
           for sp, items in items_by_split.items()}
    return out if any(out.values()) else {}


def best_so_far(cfg, card: dict) -> tuple[float, str | None] | None:
    """``(best score, checkpoint to copy to cfg.out or None)`` when the resumed run's best checkpoint is
    known: at ``cfg.out`` already (None: keep it), or at the run's own ``out`` (copy it over) — a checkpoint
    of the same datasets whose recorded best is at least the resumed state's (an averaged SWA best is
    higher). None when the resumed weights themselves are the start (a fresh start, a widened net, no
    best checkpoint found)."""
    from cellviewer.nets.checkpoint import read_card

    old, state = _training(card)
    if cfg.widen_base or not progressed(state) or float(state.get("best_score", -1.0)) < 0:
        return None
    score = float(state["best_score"])

    def best_of(stem) -> float | None:
        if not stem or not Path(f"{stem}.json").is_file():
            return None
        try:
            c, st = _training(read_card(stem))
        except Exception:  # noqa: BLE001 - an unreadable card is not the run's best
            return None
        mine = float(st.get("best_score", -1.0))
        same_data = sorted(c.get("datasets") or []) == sorted(cfg.datasets)
        return mine if same_data and mine >= score - 1e-9 else None

    here = best_of(cfg.out)
    if here is not None:
        return here, None
    old_out = old.get("out")
    there = best_of(old_out) if old_out and str(old_out) != str(cfg.out) else None
    return None if there is None else (there, str(old_out))
