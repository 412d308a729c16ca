"""Fine-tuning a shipped (or stored) model on reviewed corrections.

:func:`finetune` is a thin layer over :func:`cellviewer.core.training.train` (same generator,
same :class:`~cellviewer.core.training.TrainProgress`, same checkpoints, cancel and resume):

1. the training data is a cellviewer export (:mod:`cellviewer.core.export_dataset`) — a
   folder, or image paths / documents that are exported first into ``<out>-data`` (only
   reviewed ones); its ``train`` split trains, its ``val`` split selects the epoch, its
   ``test`` split is left for the regression gate (:mod:`cellviewer.core.gate`);
2. the start is the base model's weights: its checkpoint is copied to ``<out>-base`` with
   the training state cleared and passed as ``resume`` (so the base is scored on ``val``
   first and only a better epoch replaces it in ``<out>``); architecture, scale and loss
   options come from the base card's training config;
3. the learning rate defaults to a quarter of the base's (a gentle fine-tune), and
   ``minutes`` / ``epochs`` bound the run (the LR anneals to whichever ends first);
4. the base's BatchNorm statistics are kept (``freeze_bn``) and no weights are averaged
   (``swa_epochs`` 0): on a handful of images the statistics drift toward the training crops
   within one epoch, and that alone had the fine-tuned net overcount red cells by 10-20 %
   (the base's weights with a 1-epoch fine-tune's statistics counted as the fine-tune did;
   the fine-tune's weights with the base's statistics counted as the base did).

``keep="last"`` returns the last epoch's checkpoint (``<out>-last``) instead of the best one.
The returned :class:`FinetuneResult` adds the base model, the export folder and the sha256
of the training images (for the model card's ``data_hashes``). To continue a cancelled
run, call :func:`cellviewer.core.training.train` with ``resume=<out>-last``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path

from cellviewer.core.errors import CellviewerError, ModelLoadError, OptionError, SaveError
from cellviewer.core.jobs import CancelToken, Job, Progress
from cellviewer.core.training import TrainConfig, TrainResult, train


@dataclass
class FinetuneResult(TrainResult):
    base: str = ""  # base model name (or checkpoint stem)
    base_version: str = ""
    data_dir: str = ""  # the export trained on
    data_hashes: list = field(default_factory=list)  # sha256 of the train + val images
    n_train: int = 0
    n_val: int = 0


def base_checkpoint(name_or_stem) -> tuple[Path, dict]:
    """``(card path, card)`` of a registered model name (user store first) or a checkpoint stem."""
    s = str(name_or_stem).removesuffix(".json").removesuffix(".safetensors")
    if Path(s + ".json").is_file():
        return Path(s + ".json"), json.loads(Path(s + ".json").read_text(encoding="utf-8"))
    from cellviewer.core.netsegment import find_models

    found = find_models()
    if s not in found:
        from cellviewer.core.morphology import MODEL_NAME

        raise ModelLoadError(f"Unknown model '{s}' to fine-tune.",
                             hint=f"choose one of: {', '.join(sorted(found)) or 'no segmenter installed'}, "
                                  f"or {MODEL_NAME} (the red-cell morphology classifier)")
    return found[s]


def gate_base(name_or_stem) -> tuple[str, str, str]:
    """``(checkpoint stem, model name, version)`` of what ``name_or_stem`` resolves to *now* (a name: its active
    stored version, else the shipped one; a red-cell morphology model too). The gate is run against that stem
    and the stored card names that version as its parent — after Accept, Resume + Accept is gated against
    the version the first Accept stored, not the one the run started from."""
    from cellviewer.core.morphfinetune import morphology_base

    found = morphology_base(name_or_stem) or base_checkpoint(name_or_stem)
    card_path, card = found
    return (str(Path(card_path).with_suffix("")), str(card.get("name") or Path(card_path).stem),
            str(card.get("version", "") or ""))


def label_gate(gate, name: str, version: str):
    """Name the gate's two sides with versions (``old = blood-cells v7, new = blood-cells fine-tuned``): what its
    table, the dialog and the stored card say. Returns ``gate``."""
    gate.old_name = f"{name} v{version}" if version else name
    gate.new_name = f"{name} fine-tuned"
    return gate


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _data(train_items, out: Path, cancel) -> Job[Path]:
    if isinstance(train_items, (str, Path)) and (Path(train_items) / "images.csv").is_file():
        return Path(train_items)
    from cellviewer.core.export_dataset import export_training_set

    items = [train_items] if isinstance(train_items, (str, Path)) else list(train_items)
    missing = [str(i) for i in items if isinstance(i, (str, Path)) and not Path(i).exists()]
    if missing:  # a usage error, not "no saved corrections"
        raise OptionError(f"'{missing[0]}' does not exist.",
                          hint="give a cellviewer export folder, or reviewed images or folders of them")
    if len(items) == 1 and isinstance(items[0], (str, Path)) and Path(items[0]).is_dir():
        from cellviewer.core.io import list_images

        folder, items = items[0], list_images([items[0]])
        if not items:
            raise OptionError(f"There are no images in '{folder}'.",
                              hint="give the folder of the reviewed images (or a cellviewer export of them)")
    if not items:
        raise OptionError("No images were given to fine-tune on.", hint="choose reviewed images")
    res = yield from export_training_set(items, out.with_name(out.name + "-data"), formats=("shared",),
                                         cancel=cancel)
    if res.n_images == 0:
        raise CellviewerError("None of the chosen images can be trained on: "
                              + "; ".join(f"{Path(p).name}: {r}" for p, r in res.skipped[:3]),
                              hint="mark the corrected images as reviewed first")
    return res.out_dir


def _carry_over(stems, src: dict, fine_tuned_from: dict) -> None:
    """Write the base's post-processing calibration and the lineage into the new cards."""
    for stem in stems:
        cp = Path(str(stem) + ".json")
        if cp.is_file():
            c = json.loads(cp.read_text(encoding="utf-8"))
            # (the preprocessing steps are the training's own: it takes them from the resumed base card)
            c.update({k: src[k] for k in ("postprocess", "outputs") if k in src})
            c.setdefault("training_data", {}).update(
                data_root=fine_tuned_from.get("data", ""),
                labels="reviewed corrections: instance masks of a cellviewer export (core.export_dataset)")
            c["fine_tuned_from"] = fine_tuned_from
            cp.write_text(json.dumps(c, indent=1), encoding="utf-8")


def finetune(base_model_name, train_items, *, minutes: float | None = 10.0, epochs: int = 20, out,
             cancel: CancelToken | None = None, lr: float | None = None, steps_per_epoch: int = 0,
             batch_size: int | None = None, threads: int | None = 2, device: str = "cpu", keep: str = "best",
             seed: int = 0, patience: int | None = None, val_limit: int | None = None) -> Job[FinetuneResult]:
    """Long job: fine-tune ``base_model_name`` on ``train_items`` (export folder, images or
    documents) for at most ``minutes`` / ``epochs``; writes ``out`` (+ ``out-last``, ``out-base``)
    and returns a :class:`FinetuneResult` (see the module docstring)."""
    from cellviewer.core.export_read import load_exported

    if keep not in ("best", "last"):
        raise CellviewerError(f"keep must be 'best' or 'last', not '{keep}'.", hint="use keep='best'")
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SaveError(f"Cannot create '{out.parent}': {e.strerror or e}", hint="choose a writable folder") from e
    card_path, card = base_checkpoint(base_model_name)
    if list(card.get("classes") or []) != ["background", "rbc", "wbc", "platelet"]:
        raise CellviewerError(f"'{base_model_name}' segments {', '.join(card.get('classes') or ['?'])}; fine-tuning "
                              "on exported corrections needs a model of red cells, white cells and platelets.",
                              hint="start from blood-cells or a stored version of it")
    yield Progress(0.0, "preparing the training data")
    data_dir = yield from _data(train_items, out, cancel)
    samples = load_exported(data_dir)
    n_train = sum(s.split == "train" for s in samples)
    n_val = sum(s.split == "val" for s in samples)
    if n_train == 0 or n_val == 0:
        raise CellviewerError(f"The export '{data_dir}' has {n_train} training and {n_val} validation images; "
                              "fine-tuning needs at least one of each.", hint="review at least 3 images")
    # the start: a copy of the base checkpoint whose training state is cleared
    base = out.with_name(out.name + "-base")
    weights = card_path.with_name(Path(str(card.get("weights") or "")).name or card_path.stem + ".safetensors")
    bcard = json.loads(json.dumps(card))
    bcard["weights"] = base.name + ".safetensors"
    (bcard.setdefault("training", {}))["state"] = {}
    try:
        shutil.copyfile(weights, base.with_name(base.name + ".safetensors"))
        base.with_name(base.name + ".json").write_text(json.dumps(bcard), encoding="utf-8")
    except OSError as e:
        raise SaveError(f"Cannot copy the base model into '{base.parent}': {e.strerror or e}",
                        hint="free some disk space or choose another folder") from e
    known = {f.name for f in fields(TrainConfig)}
    cfg = {k: v for k, v in ((card.get("training") or {}).get("config") or {}).items() if k in known}
    cfg.update(name=str(card.get("name") or Path(card_path).stem), datasets=["export"], data_root=str(data_dir),
               resume=str(base), out=str(out), epochs=int(epochs), max_minutes=minutes, steps_per_epoch=steps_per_epoch,
               threads=threads, device=device, seed=seed, two_phase=False, val_limit=val_limit,
               patience=patience or int(epochs) + 1, balance="none", freeze_bn=True, swa_epochs=0,
               description=f"{card.get('name', base_model_name)} fine-tuned on reviewed corrections ({data_dir})")
    cfg["lr"] = lr or float(cfg.get("lr") or 2e-3) / 4
    if batch_size:
        cfg["batch_size"] = batch_size
    cfg.setdefault("architecture", card.get("architecture", "do-unet"))
    cfg.setdefault("working_scale", float(card.get("working_scale") or 32.0))
    command = f"cellviewer.core.finetune.finetune({str(base_model_name)!r}, {str(data_dir)!r}, minutes={minutes}, " \
              f"epochs={epochs}, lr={cfg['lr']})"
    res: TrainResult = yield from train(TrainConfig.from_dict(cfg), cancel, command=command)
    _carry_over({res.checkpoint, f"{out}-last"}, card, {"model": str(card.get("name") or base_model_name),
                                                       "version": str(card.get("version", "")), "data": str(data_dir)})
    ck = f"{out}-last" if keep == "last" else res.checkpoint
    hashes = sorted(_sha(s.path) for s in samples if s.split in ("train", "val"))
    return FinetuneResult(ck, res.best_score, res.best_epoch, res.epochs_run, res.minutes, res.stopped,
                          res.history, base=str(base_model_name), base_version=str(card.get("version", "")),
                          data_dir=str(data_dir), data_hashes=hashes, n_train=n_train, n_val=n_val)


def resume_finetune(last_stem, out, *, minutes: float | None = None, epochs: int | None = None,
                    cancel: CancelToken | None = None) -> Job[TrainResult]:
    """Long job: continue a cancelled or finished fine-tune from its ``<out>-last`` checkpoint
    (same data and options, from the epoch it reached) into a new ``out``; ``epochs`` is the
    total epoch budget (default: the original one), ``minutes`` this run's wall-time budget."""
    s = str(last_stem).removesuffix(".json")
    try:
        card = json.loads(Path(s + ".json").read_text(encoding="utf-8"))
        cfg = dict(card["training"]["config"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"'{s}' is not a fine-tune checkpoint to resume: {e}",
                             hint="pick the <out>-last checkpoint of a fine-tune") from e
    cfg.update(resume=s, out=str(out), max_minutes=minutes if minutes is not None else cfg.get("max_minutes"))
    if epochs is not None:
        cfg["epochs"] = int(epochs)
    res = yield from train(TrainConfig.from_dict(cfg), cancel, command=str(card.get("command", "")))
    _carry_over({res.checkpoint, f"{out}-last"}, card, card.get("fine_tuned_from") or {})
    return res


def store_result(result: FinetuneResult, gate, store=None, activate: bool = True):
    """Store a fine-tune's checkpoint as the next version of its model's name in the model store (default:
    the user's), with the gate's held-out numbers and table, and activate it; returns the
    :class:`cellviewer.core.modelstore.ModelVersion`. Used by the GUI's Accept and the command lines."""
    from cellviewer.core.modelstore import ModelStore

    card = json.loads(Path(f"{result.checkpoint}.json").read_text(encoding="utf-8"))
    name = str(card.get("name") or Path(result.base).name)
    parent = f"{name}@{result.base_version}" if result.base_version else name
    metrics = {"held_out": {m.split(": ", 1)[-1]: round(n, 5) for m, _o, n, _d in gate.rows if m.startswith("held-out")},
               "val_score": round(float(result.best_score), 5), "epochs": int(result.epochs_run),
               "minutes": round(float(result.minutes), 2)}
    return (store or ModelStore()).add(result.checkpoint, name, parent=parent, data_hashes=list(result.data_hashes),
                                       metrics=metrics, gate=dict(gate.as_dict(), table=gate.format_table()),
                                       activate=activate)
