"""The registry of model cards: where cards are looked for, which are segmenters, and a
segmenter factory per card (:class:`cellviewer.core.netsegment.NetSegmenter`, or a
nucleus/cytoplasm model wrapped by :mod:`cellviewer.core.wbcparts`).

Every ``*.json`` card found in ``sys._MEIPASS/models`` (a PyInstaller bundle),
``<repo>/models`` and ``$CELLVIEWER_HOME/models`` (user store; default
``~/.local/share/cellviewer/models``) is registered under the card's ``name`` (later
folders win; the user store's active fine-tuned versions win over all,
:mod:`cellviewer.core.modelstore`). :mod:`cellviewer.core.netsegment` registers them on import.

An unreadable card (a loose ``NAME.json`` with its weights beside it, the active stored version's card or
its ``store.json``) never lets another model of that name stand in silently: the name is registered with a
factory that raises the error naming the file and what to do (:func:`find_models` with ``problems``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cellviewer.core.errors import ModelLoadError
from cellviewer.core.segment import register_segmenter


def model_dirs() -> list[Path]:
    """Folders searched for model cards, lowest priority first."""
    dirs = []
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        dirs.append(Path(frozen) / "models")
    dirs.append(Path(__file__).resolve().parents[2] / "models")
    home = os.environ.get("CELLVIEWER_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share", "cellviewer")
    dirs.append(Path(home) / "models")
    return dirs


def is_shipped(card_path) -> bool:
    """Whether a card lies in a folder the application ships (the bundle's or the repository's ``models/``),
    not in the user's folder or model store."""
    parent = Path(card_path).resolve().parent
    return any(parent == d.resolve() for d in model_dirs()[:-1])


def _scan():
    """``(card path, card or None, why unreadable)`` of every ``*.json`` in :func:`model_dirs`, lowest priority
    first."""
    for d in model_dirs():
        for p in sorted(d.glob("*.json")) if d.is_dir() else ():
            try:
                card = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                yield p, None, str(e)
                continue
            yield (p, card, "") if isinstance(card, dict) else (p, None, "not a JSON object")


def model_cards():
    """``(card path, card)`` of every readable JSON object in :func:`model_dirs` (lowest priority first; any
    task; no weights are read)."""
    for p, card, _why in _scan():
        if card is not None:
            yield p, card


def find_models(problems: dict | None = None) -> dict[str, tuple[Path, dict]]:
    """``name -> (card path, card)`` of every readable card (no weights are read).

    A name whose card cannot be read — a loose ``NAME.json`` beside its ``.safetensors`` (later folders win as
    for readable cards), the active stored version's card or ``store.json`` — is left out, and put in
    ``problems`` (name -> :class:`ModelLoadError` naming the file) when given: no other model of that name
    stands in for it."""
    from cellviewer.core.modelstore import ModelFileError

    found: dict[str, tuple[Path, dict]] = {}
    broken: dict[str, ModelLoadError] = {}
    for p, card, why in _scan():
        if card is None:
            if p.with_suffix(".safetensors").is_file():  # a checkpoint whose card is damaged
                found.pop(p.stem, None)
                broken[p.stem] = ModelFileError(
                    f"The model card '{p}' is unreadable ({why}), so model '{p.stem}' cannot be used.",
                    hint=f"restore the card (copy the model again), or remove '{p.name}' and '{p.stem}.safetensors' "
                         f"from {p.parent}")
        elif ("architecture" in card and p.with_suffix(".safetensors").is_file()
                and card.get("task") in (None, "segment")):  # e.g. the red-cell morphology classifier is not one
            name = str(card.get("name") or p.stem)
            found[name] = (p, card)
            broken.pop(name, None)
    from cellviewer.core.modelstore import active_cards, stored_task, unusable

    # the user store's active fine-tuned versions win (core.modelstore); a stored morphology model is not a segmenter
    for name, (p, card) in active_cards().items():
        if card.get("task") in (None, "segment"):
            found[name] = (p, card)
            broken.pop(name, None)
    for name, err in unusable().items():
        if stored_task(name) is None:  # a segmenter's store (a morphology model's store is for core.morphology)
            found.pop(name, None)
            broken[name] = err
    if problems is not None:
        problems.update(broken)
    return found


def card_at(path: str | os.PathLike) -> Path | None:
    """The card of a checkpoint given by path (``x.json``, ``x.safetensors`` or the stem ``x``) when both
    files are there, else None: a model just trained (``cellviewer train --out x``) is usable by path."""
    p = Path(path)
    for card in (p, p.with_suffix(".json"), Path(str(p) + ".json")):
        if card.suffix == ".json" and card.is_file() and card.with_suffix(".safetensors").is_file():
            return card
    return None


def segmentation_card(path: str | os.PathLike) -> tuple[Path, dict]:
    """``(card path, card)`` of the segmentation checkpoint at ``path`` (see :func:`card_at`); a
    :class:`ModelLoadError` saying why when it is none (no checkpoint pair, unreadable card, a card naming no
    architecture, another task's model)."""
    card_path = card_at(path)
    if card_path is None:
        raise ModelLoadError(f"No model checkpoint at '{path}'",
                             hint="give a model card .json with its .safetensors beside it")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Cannot read the model card '{card_path}': {exc}", hint="check the file") from exc
    if not isinstance(card, dict) or "architecture" not in card:
        raise ModelLoadError(f"'{card_path}' is not a model card (it names no architecture)",
                             hint="give the .json that 'cellviewer train --out' wrote beside its .safetensors")
    if card.get("task") not in (None, "segment"):
        raise ModelLoadError(f"'{card_path}' is not a segmentation model",
                             hint="a red-cell morphology model is used by every trained segmenter, not on its own")
    return card_path, card


def segmenter_at(path: str | os.PathLike, **options):
    """A segmenter for the checkpoint at ``path`` (see :func:`segmentation_card`)."""
    return _factory(segmentation_card(path)[0])(**options)


def _factory(card_path: Path):
    def load(**options):
        from cellviewer.core.netsegment import NetSegmenter

        try:
            return NetSegmenter(card_path.with_suffix(""), **options)
        except ModelLoadError:
            raise
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"Cannot load model '{card_path.stem}': {exc}",
                                 hint="reinstall the model files (.json + .safetensors)") from exc

    def make(**options):
        from cellviewer.core.wbcparts import wrap_if_parts_model  # nucleus/cytoplasm: detector + crops on fields

        return wrap_if_parts_model(load(**options), lambda **o: load(**{**options, **o}), options)

    return make


def _unusable(err: ModelLoadError):
    def make(**_options):
        raise type(err)(err.message, hint=err.hint)

    return make


def register_models() -> list[str]:
    """Register every model card found by :func:`find_models`; returns the names. A model whose card is
    unreadable is registered too, with a factory that raises the error naming the file (see the module doc)."""
    names = []
    problems: dict = {}
    for name, (path, card) in find_models(problems).items():
        desc = card.get("description") or f"trained {card.get('architecture')} network ({path.name})"
        register_segmenter(name, _factory(path), desc)
        names.append(name)
    for name, err in problems.items():
        register_segmenter(name, _unusable(err), f"⚠ {err.message}")
        names.append(name)
    return names
