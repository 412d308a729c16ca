"""Checkpoints: weights as ``.safetensors`` + a JSON model card; never unpickles.

``save_checkpoint(net, "models/rbc-v1", card)`` writes ``models/rbc-v1.safetensors``
and ``models/rbc-v1.json``. The card records everything needed to rebuild and
judge the model: architecture + config (rebuilt through the registry), classes,
working scale, preprocessing, training data, metrics and the command that
measured them, creation time, the sha256 of the weights file and the format
version. ``load_checkpoint`` verifies the sha256 before reading any weight.

Foreign PyTorch ``.pth``/``.pt`` files are read only through
``torch.load(weights_only=True)``: a file that needs code to load is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from cellviewer.core.errors import ModelLoadError

FORMAT_VERSION = 1
CARD_FIELDS = ("classes", "working_scale", "preprocessing", "training_data", "metrics",
               "command")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _stem(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".json", ".safetensors") else p


def _sibling(stem: Path, suffix: str) -> Path:
    """``<stem><suffix>`` (not ``with_suffix``: a stem may contain dots, e.g. ``rbc-v1.2``)."""
    return stem.with_name(stem.name + suffix)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    from cellviewer.core.atomic import atomic_write_bytes

    atomic_write_bytes(path, data)


def save_checkpoint(net: nn.Module, path_stem: str | os.PathLike, card: dict | None = None,
                    *, half: bool = False) -> dict:
    """Write ``<stem>.safetensors`` and ``<stem>.json``; return the card written.

    ``card`` supplies the descriptive fields (``classes``, ``working_scale`` — the
    expected RBC diameter in px —, ``preprocessing``, ``training_data``,
    ``metrics``, ``command`` and anything else such as ``name``/``licence``);
    missing ones are written as ``null``. ``architecture``, ``config``,
    ``created``, ``sha256``, ``weights``, ``dtype`` and ``format_version`` are
    filled in here. ``half=True`` stores floating weights as float16 (half the
    size); they come back as float32 on load.
    """
    from safetensors.torch import save

    config = getattr(net, "config", None)
    if not isinstance(config, dict) or "name" not in config:
        raise ModelLoadError("This network has no registry config and cannot be saved",
                             hint="build networks with cellviewer.nets.registry.create_net")
    stem = _stem(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for key, val in net.state_dict().items():
        t = val.detach().to("cpu")
        if half and t.is_floating_point():
            t = t.to(torch.float16)
        tensors[key] = t.contiguous().clone()
    weights = _sibling(stem, ".safetensors")
    _atomic_write_bytes(weights, save(tensors, metadata={"format": "pt"}))
    out = dict(card or {})
    for field in CARD_FIELDS:
        out.setdefault(field, None)
    arch_cfg = {k: v for k, v in config.items() if k != "name"}
    out.update(
        format_version=FORMAT_VERSION,
        architecture=config["name"],
        config=arch_cfg,
        weights=weights.name,
        dtype="float16" if half else "float32",
        sha256=sha256_file(weights),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    try:
        text = json.dumps(out, indent=2, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"The model card is not JSON-serialisable: {exc}",
                             hint="use only numbers, strings, lists and dicts in the card") from exc
    _atomic_write_bytes(_sibling(stem, ".json"), (text + "\n").encode("utf-8"))
    return out


def read_card(path_stem_or_json: str | os.PathLike) -> dict:
    """Read and check a model card (no weights are touched)."""
    card_path = _sibling(_stem(path_stem_or_json), ".json")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"Model card '{card_path}' not found",
                             hint="a model is a .json card next to its .safetensors weights")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Model card '{card_path}' is unreadable: {exc}",
                             hint="restore the card from the model's original download")
    if not isinstance(card, dict) or "architecture" not in card:
        raise ModelLoadError(f"'{card_path}' is not a cellviewer model card",
                             hint="it needs at least 'architecture', 'config' and 'sha256'")
    version = card.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelLoadError(
            f"Model card '{card_path}' has format version {version}; this cellviewer reads "
            f"up to {FORMAT_VERSION}", hint="update cellviewer to use this model")
    return card


def load_checkpoint(path_stem_or_json: str | os.PathLike,
                    device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a network from its card and weights; return ``(net, card)`` in eval mode.

    Accepts the stem, the ``.json`` or the ``.safetensors`` path. The weights'
    sha256 must match the card's, otherwise :class:`ModelLoadError` is raised.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from cellviewer.nets.registry import create_net

    card = read_card(path_stem_or_json)
    stem = _stem(path_stem_or_json)
    # only a file name next to the card is accepted (no paths out of the model folder)
    weights = stem.with_name(Path(str(card.get("weights") or "")).name
                             or stem.name + ".safetensors")
    if not weights.is_file() and stem.with_suffix(".safetensors").is_file():
        weights = stem.with_suffix(".safetensors")  # the pair was renamed: its own weights (the sha256 decides)
    if not weights.is_file():
        raise ModelLoadError(f"Weights file '{weights}' not found",
                             hint="keep the .safetensors file next to its .json card")
    expected = card.get("sha256")
    actual = sha256_file(weights)
    if expected != actual:
        raise ModelLoadError(
            f"Weights file '{weights}' does not match its card (sha256 {actual[:12]}… "
            f"instead of {str(expected)[:12]}…): the file was changed or is corrupted",
            hint=_damaged_hint(card, "do not edit weight files"))
    net = create_net(card["architecture"], **(card.get("config") or {}))
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"Weights file '{weights}' is unreadable: {exc}",
                             hint=_damaged_hint(card)) from exc
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"Weights in '{weights}' do not fit architecture '{card['architecture']}': "
            f"{str(exc).splitlines()[0]}",
            hint="the card's config must be the one the weights were trained with") from exc
    net.to(device)
    net.eval()
    return net, card


def _damaged_hint(card: dict, extra: str = "") -> str:
    """What to do about damaged weights: a version in the user's model store (its card has ``stored_at``) is
    replaced by making another version active; a shipped or copied model is copied again."""
    if card.get("stored_at") and card.get("name"):
        name = card["name"]
        return (f"this is stored version {card.get('version', '?')} of '{name}': make the version before it active "
                f"again (cellviewer versions {name} --rollback) or another one (cellviewer versions {name} "
                f"--activate V), or --shipped for the shipped model" + (f"; {extra}" if extra else ""))
    return "download or copy the model again" + (f"; {extra}" if extra else "")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a tensor dict from ``.safetensors`` or a weights-only PyTorch file.

    Common wrappers (``{"state_dict": ...}``, ``{"model": ...}``) are unwrapped.
    A pickle that needs code to load is refused with :class:`ModelLoadError`;
    nothing in it is executed.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"Weights file '{p}' not found", hint="check the path")
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(p), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(f"'{p}' is not a readable safetensors file: {exc}",
                                 hint="check that the download is complete") from exc
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # no code named in it: bytes that are no pickle at all
            raise ModelLoadError(f"'{p}' is not a weights file (it cannot be read as one: {exc})",
                                 hint="give a .safetensors or a .pth/.pt state_dict file") from exc
        raise ModelLoadError(
            f"'{p}': this file contains code, not just weights; refused",
            hint="ask for a .safetensors or a plain state_dict file; never load untrusted "
                 "pickles") from exc
    except Exception as exc:  # noqa: BLE001 - any failure of a foreign file is a load error
        raise ModelLoadError(f"'{p}' is not a readable PyTorch weights file: {exc}",
                             hint="check that the file is a complete .pth/.pt state_dict") from exc
    for key in ("state_dict", "model_state_dict", "model", "net"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ModelLoadError(f"'{p}' holds no state_dict (name → tensor)",
                             hint="export the weights with torch.save(model.state_dict(), path)")
    return obj


def import_torch_weights(pth_path: str | os.PathLike, net: nn.Module, *,
                         strict: bool = False) -> dict[str, list[str]]:
    """Load a foreign ``.pth``/``.pt`` state_dict into ``net`` (weights only).

    Keys are matched as they are, or after dropping a ``module.`` prefix (from
    ``DataParallel``). Returns ``{"missing": [...], "unexpected": [...]}``.
    Raises :class:`ModelLoadError` when the file holds code, nothing matches,
    shapes differ, or ``strict`` and keys are missing/unexpected.
    """
    state = read_state_dict(pth_path)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return load_matching(net, state, source=str(pth_path), strict=strict)


def load_matching(module: nn.Module, state: dict[str, torch.Tensor], *, source: str,
                  strict: bool = False) -> dict[str, list[str]]:
    """``load_state_dict(strict=False)`` with clear errors; returns missing/unexpected keys."""
    own = module.state_dict()
    common = [k for k in state if k in own]
    if not common:
        raise ModelLoadError(f"No weight in '{source}' matches this network",
                             hint="the file is for a different architecture or encoder")
    bad = [f"{k}: file {tuple(state[k].shape)} vs net {tuple(own[k].shape)}"
           for k in common if state[k].shape != own[k].shape]
    if bad:
        raise ModelLoadError(f"Weights in '{source}' have the wrong shapes ({len(bad)}), "
                             f"e.g. {bad[0]}", hint="the file is for a different configuration")
    # some modules (smp encoders) override load_state_dict and return nothing,
    # so the report is computed here
    report = {"missing": [k for k in own if k not in state],
              "unexpected": [k for k in state if k not in own]}
    module.load_state_dict(dict(state), strict=False)
    if strict and (report["missing"] or report["unexpected"]):
        raise ModelLoadError(f"'{source}' does not fit exactly: {len(report['missing'])} "
                             f"missing, {len(report['unexpected'])} unexpected keys",
                             hint="load with strict=False to accept a partial match")
    return report
