"""The user's model store: versions of fine-tuned models, one of them active per name.

Layout (default root ``$CELLVIEWER_HOME/models``, else ``~/.local/share/cellviewer/models`` —
the folder :func:`cellviewer.core.netsegment.model_dirs` searches)::

    <root>/<name>/v<N>.safetensors   the weights of version N (never reused; a shipped model's
                                     fine-tuned versions go on from its number: shipped v6 -> v7)
    <root>/<name>/v<N>.json          its card: the trained card plus ``name``, ``version`` (N),
                                     ``parent`` {model, version}, ``data_hashes`` (sha256 of the
                                     training images), ``metrics``, ``gate`` (the regression
                                     gate's table), ``sha256`` of the weights, ``stored_at``
    <root>/<name>/store.json         {"active": N or null, "history": [activated versions]}

The active version of a name is what ``create_segmenter(name)`` loads (it overrides a shipped
model of the same name); :meth:`ModelStore.rollback` re-activates the version active before
(none left: the name falls back to the shipped model, if any). Writes are atomic (temp +
rename).

An unreadable file is never skipped silently (that would switch the user to another version or the
shipped model without a word): a version whose card is unreadable is still listed (its
:attr:`ModelVersion.problem` says why) and :meth:`ModelStore.active` raises :class:`ModelFileError` naming
the file and what to do when the active version, or ``store.json`` itself, cannot be read.
``activate`` and ``deactivate`` rewrite an unreadable ``store.json`` (that is the way out).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cellviewer.core.document import now_iso
from cellviewer.core.errors import CellviewerError, ModelLoadError, SaveError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def default_root() -> Path:
    base = os.environ.get("CELLVIEWER_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share", "cellviewer")
    return Path(base) / "models"


class ModelFileError(ModelLoadError):
    """A model's file (a loose card, a stored version's card, a model's ``store.json``) is unreadable or names
    files that are gone; the message names the file, the hint what to do (exit code 6 like every model error)."""


@dataclass
class ModelVersion:
    """One stored version: ``stem`` is the checkpoint path without suffix (``.json`` + ``.safetensors``);
    ``problem``: why its card cannot be read, e.g. ``unreadable (…)`` ("" when it can; else ``card`` is empty)."""

    name: str
    version: int
    stem: Path
    card: dict = field(default_factory=dict)
    active: bool = False
    problem: str = ""


def _write_json(path: Path, data: dict) -> None:
    from cellviewer.core.atomic import atomic_write_bytes

    try:
        atomic_write_bytes(path, json.dumps(data, indent=1).encode("utf-8"))
    except OSError as e:
        raise SaveError(f"Cannot write '{path}': {e.strerror or e}", hint="check the model store is writable") from e


class ModelStore:
    """Versions of models under ``root`` (see the module docstring)."""

    def __init__(self, root=None):
        self.root = Path(root) if root is not None else default_root()

    # -- reading ------------------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/store.json"))

    def _read_state(self, name: str) -> tuple[dict, str]:
        """``(state, problem)``: ``problem`` says why ``store.json`` is unreadable ("" when it is fine or absent;
        then ``state`` has no active version)."""
        p = self.root / name / "store.json"
        try:
            st = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
        except (OSError, ValueError) as e:
            return {"active": None, "history": []}, str(e)
        ok = isinstance(st, dict) and (st.get("active") is None or type(st.get("active")) is int) \
            and isinstance(st.get("history") or [], list)
        if not ok:
            return {"active": None, "history": []}, "not a store file ({\"active\": N, \"history\": [...]})"
        return {"active": st.get("active"), "history": list(st.get("history") or [])}, ""

    def _state(self, name: str, repair: bool = False) -> dict:
        """The store state of ``name``; an unreadable ``store.json`` raises :class:`ModelFileError` (with
        ``repair``: it counts as empty, for the writers that replace it)."""
        st, problem = self._read_state(name)
        if problem and not repair:
            raise self._state_error(name, problem)
        return st

    def _state_error(self, name: str, problem: str) -> ModelFileError:
        have = [str(mv.version) for mv in self.versions(name) if not mv.problem]
        return ModelFileError(
            f"The model store file '{self.root / name / 'store.json'}' is unreadable ({problem}): which version of "
            f"'{name}' is active is unknown, so '{name}' is not used.",
            hint=f"choose the active version again: cellviewer versions {name} --activate {have[-1] if have else 'V'}"
                 f" (or --shipped for the shipped model); that rewrites the file")

    def versions(self, name: str) -> list[ModelVersion]:
        """Every stored version of ``name``, oldest first."""
        folder = self.root / name
        if not _NAME.match(name) or not folder.is_dir():
            return []
        active = self._read_state(name)[0]["active"]
        out = []
        for p in folder.glob("v*.json"):
            m = re.fullmatch(r"v(\d+)", p.stem)
            if not m or not p.with_suffix(".safetensors").is_file():
                continue
            card, problem = {}, ""
            try:
                card = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                problem = f"unreadable ({e})"
            if not problem and not isinstance(card, dict):
                card, problem = {}, "unreadable (not a JSON object)"
            v = int(m.group(1))
            out.append(ModelVersion(name, v, p.with_suffix(""), card, v == active, problem))
        return sorted(out, key=lambda mv: mv.version)

    def _version_error(self, mv: ModelVersion) -> ModelFileError:
        others = [str(v.version) for v in self.versions(mv.name) if not v.problem and v.version != mv.version]
        return ModelFileError(
            f"Version {mv.version} of '{mv.name}' cannot be used: its card '{mv.stem.with_suffix('.json')}' is "
            f"{mv.problem}.",
            hint=f"restore that file, or remove v{mv.version}.json and v{mv.version}.safetensors from "
                 f"{mv.stem.parent} and choose another version: cellviewer versions {mv.name} "
                 + (f"--activate {others[-1]}" if others else "--shipped"))

    def get(self, name: str, version: int) -> ModelVersion:
        for mv in self.versions(name):
            if mv.version == int(version):
                return mv
        have = [str(v.version) for v in self.versions(name)]
        if have:
            raise ModelLoadError(f"Model '{name}' has no stored version {version}; its stored versions: "
                                 f"{', '.join(have)}.", hint=f"pick one of them, e.g. --activate {have[-1]}")
        others = [n for n in self.names() if self.versions(n)]
        raise ModelLoadError(f"Model '{name}' has no stored version {version}: nothing of '{name}' is stored in "
                             f"{self.root}" + (f" (stored models: {', '.join(others)})." if others else "."),
                             hint="store a fine-tuned version first (the GUI's Accept, or 'cellviewer "
                                  "finetune-demo'); 'cellviewer versions' lists what is stored")

    def active(self, name: str) -> ModelVersion | None:
        """The active version of ``name``, or None (then a shipped model of that name is used).

        Raises :class:`ModelFileError` when ``store.json`` or the active version's card is unreadable, or the
        active version's files are gone: the user is told, never switched to another model silently."""
        st, problem = self._read_state(name)
        if problem:
            raise self._state_error(name, problem)
        if st["active"] is None:
            return None
        mv = next((mv for mv in self.versions(name) if mv.active), None)
        if mv is None:
            others = [str(v.version) for v in self.versions(name) if not v.problem]
            raise ModelFileError(
                f"Version {st['active']} of '{name}' is the active one ('{self.root / name / 'store.json'}') but its "
                f"files v{st['active']}.json and v{st['active']}.safetensors are not in {self.root / name}.",
                hint=f"restore them, or choose another version: cellviewer versions {name} "
                     + (f"--activate {others[-1]}" if others else "--shipped"))
        if mv.problem:
            raise self._version_error(mv)
        return mv

    # -- writing ------------------------------------------------------------------------------
    def add(self, checkpoint_stem, name: str, *, parent: str, data_hashes: list[str], metrics: dict,
            gate: dict | None = None, activate: bool = False) -> ModelVersion:
        """Copy a checkpoint (``STEM.json`` + ``STEM.safetensors``) in as the next version of ``name``.

        ``parent``: the model it was fine-tuned from (``"name"`` or ``"name@version"``).
        The weights' sha256 is checked against the card before anything is stored.
        """
        from cellviewer.nets.checkpoint import sha256_file

        if not _NAME.match(name):
            raise CellviewerError(f"'{name}' is not a usable model name.",
                                  hint="use letters, digits, '.', '_' and '-' (at most 64)")
        stem = Path(str(checkpoint_stem).removesuffix(".json").removesuffix(".safetensors"))
        src_card = stem.with_name(stem.name + ".json")
        try:
            card = json.loads(src_card.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"No readable checkpoint card at '{src_card}': {e}",
                                 hint="train or fine-tune a model first") from e
        src_w = stem.with_name(Path(str(card.get("weights") or "")).name or stem.name + ".safetensors")
        if not src_w.is_file():
            raise ModelLoadError(f"The weights '{src_w}' of '{src_card}' are missing.",
                                 hint="keep the .safetensors file next to its .json card")
        sha = sha256_file(src_w)
        if card.get("sha256") and card["sha256"] != sha:
            raise ModelLoadError(f"'{src_w}' does not match its card (sha256).", hint="train the model again")
        folder = self.root / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SaveError(f"Cannot create '{folder}': {e.strerror or e}", hint="check CELLVIEWER_HOME") from e
        # the first stored version of a shipped model follows the shipped one's number
        version = max([mv.version for mv in self.versions(name)] + [_shipped_version(name)]) + 1
        while (folder / f"v{version}.json").exists() or (folder / f"v{version}.safetensors").exists():
            version += 1  # a half-written version is never reused
        pname, _, pver = str(parent).partition("@")
        card.update(name=name, version=str(version), sha256=sha, weights=f"v{version}.safetensors", stored_at=now_iso(), metrics=dict(metrics),
                    parent={"model": pname, "version": pver or _version_of(pname)},
                    data_hashes=list(data_hashes), gate=gate)
        card.setdefault("description", f"{name} v{version}, fine-tuned from {parent}")
        dst = folder / f"v{version}"
        try:
            shutil.copyfile(src_w, dst.with_suffix(".safetensors.tmp"))
            os.replace(dst.with_suffix(".safetensors.tmp"), dst.with_suffix(".safetensors"))
        except OSError as e:
            raise SaveError(f"Cannot store the weights in '{folder}': {e.strerror or e}",
                            hint="free some disk space") from e
        _write_json(dst.with_suffix(".json"), card)
        if not (folder / "store.json").is_file():
            _write_json(folder / "store.json", {"active": None, "history": []})
        if activate:
            self.activate(name, version)
        return self.get(name, version)

    def activate(self, name: str, version: int) -> ModelVersion:
        """Make ``version`` the one ``create_segmenter(name)`` loads."""
        mv = self.get(name, version)
        if mv.problem:
            raise self._version_error(mv)
        st = self._state(name, repair=True)  # an unreadable store.json is replaced (the way out of it)
        st["active"] = mv.version
        st["history"].append(mv.version)
        _write_json(self.root / name / "store.json", st)
        _refresh_registry(name)
        mv.active = True
        return mv

    def rollback(self, name: str) -> ModelVersion | None:
        """Re-activate the version that was active before the current one — after :meth:`deactivate`, the one
        active before the shipped model was chosen; returns it (None: no stored version is active any more and a
        shipped model of that name is used again)."""
        st = self._state(name)
        hist = st["history"]
        existing = {mv.version for mv in self.versions(name) if not mv.problem}  # never back to an unreadable one
        if st["active"] is None:  # the shipped model is used (deactivate): back to the version active before it
            while hist and hist[-1] not in existing:
                hist.pop()
            if not hist:
                raise ModelLoadError(f"Model '{name}' has no active stored version to roll back.",
                                     hint="activate a version first (cellviewer versions NAME --activate V)")
            st["active"] = hist[-1]
            _write_json(self.root / name / "store.json", st)
            _refresh_registry(name)
            return self.active(name)
        while hist and hist[-1] == st["active"]:
            hist.pop()
        while hist and hist[-1] not in existing:
            hist.pop()
        st["active"] = hist[-1] if hist else None
        _write_json(self.root / name / "store.json", st)
        _refresh_registry(name)
        return self.active(name)

    def deactivate(self, name: str) -> bool:
        """No stored version active: the shipped model of that name (if any) is used. False when nothing of
        ``name`` is stored (nothing to change, nothing written)."""
        if not (self.root / name / "store.json").is_file():
            return False
        st = self._state(name, repair=True)
        st["active"] = None
        _write_json(self.root / name / "store.json", st)
        _refresh_registry(name)
        return True


def _shipped_version(name: str) -> int:
    """The highest version number of a model card named ``name`` in the folders searched for models
    (the shipped ``models/`` and loose checkpoints; 0 when there is none or it has no number)."""
    try:
        from cellviewer.core.modelfind import model_cards
    except ImportError:
        return 0
    best = 0
    for p, card in model_cards():
        if str(card.get("name") or p.stem) == name:
            v = str(card.get("version") or "")
            best = max(best, int(v) if v.isdigit() else 0)
    return best


def _version_of(name: str) -> str:
    """The version of a model currently registered under ``name`` ("" when unknown)."""
    if not name:
        return ""
    try:
        from cellviewer.core.netsegment import find_models
    except ImportError:
        return ""
    found = find_models().get(name)
    return str(found[1].get("version", "")) if found else ""


def active_cards(root=None) -> dict[str, tuple[Path, dict]]:
    """``name -> (card path, card)`` of every active stored version (used by
    :func:`cellviewer.core.netsegment.find_models`). A name whose active version cannot be read is left out
    (:func:`unusable` says which and why)."""
    store = ModelStore(root)
    out = {}
    for name in store.names():
        try:
            mv = store.active(name)
        except ModelFileError:
            continue
        if mv is not None:
            out[name] = (mv.stem.with_suffix(".json"), mv.card)
    return out


def unusable(root=None) -> dict[str, ModelFileError]:
    """``name -> error`` of every stored name whose active version cannot be used (:meth:`ModelStore.active`
    raises): an unreadable ``store.json`` or card, or the active version's files gone."""
    store = ModelStore(root)
    out = {}
    for name in store.names():
        try:
            store.active(name)
        except ModelFileError as e:
            out[name] = e
    return out


def stored_task(name: str, root=None) -> str | None:
    """The ``task`` of the readable stored cards of ``name`` (None: a segmenter, or nothing readable)."""
    for mv in ModelStore(root).versions(name):
        if not mv.problem and mv.card.get("task") not in (None, "segment"):
            return str(mv.card["task"])
    return None


def _refresh_registry(name: str) -> None:
    """Re-register the segmenters when netsegment is loaded, so the change applies at once."""
    if "cellviewer.core.netsegment" not in sys.modules:
        return
    from cellviewer.core import netsegment, segment

    segment._FACTORIES.pop(name, None)
    segment._DESCRIPTIONS.pop(name, None)
    netsegment.register_models()
