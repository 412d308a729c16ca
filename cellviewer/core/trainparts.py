"""Pieces of a training run kept out of :mod:`cellviewer.core.training`: its data, model card and loss."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from cellviewer.core import datasets as D
from cellviewer.core.errors import OptionError


def load_items(cfg, split: str) -> list[dict]:
    """Working-scale training items of ``split`` ("train": the run's ``train_splits``; "val")."""
    items: list[dict] = []
    notes: list[str] = []  # boxes clipped or left out, rows of unknown images: about whole files, said once
    for ds in cfg.datasets:
        if ds == "synthetic":
            n = cfg.synthetic_n if split == "train" else max(2, cfg.synthetic_n // 4)
            items += D.synthetic_items(n, cfg.working_scale, cfg.seed + (split != "train"))
            continue
        splits = list(cfg.train_splits) if split == "train" else [split]
        if "test" in splits:
            raise OptionError("The test split is never trained on.", hint='give train_splits "train" and/or "val"')
        samples = [s for sp in splits for s in D.load_samples(ds, cfg.data_root, sp, notes)]
        if split != "train" and cfg.val_limit:
            samples = samples[: cfg.val_limit]
        items += [D.working_item(s, cfg.working_scale, cfg.edge_px) for s in samples]
    if split == "train":  # the files are the same for the val items: their notes are said with these
        D.print_notes(notes)
    if not items:  # the data given holds no such image: a usage error (exit 2)
        if "export" in cfg.datasets and split == "val":
            raise OptionError(f"No val images in the export '{cfg.data_root}': training chooses its epoch on them.",
                              hint="export more images into it (each split gets one once there are 3), or export "
                                   "again into a new folder with a larger --val share")
        raise OptionError(f"No {split} images in {cfg.datasets}.", hint="check --data and --datasets")
    from cellviewer.nets.preprocess import apply_steps

    steps = preprocess_steps(cfg)
    return [dict(it, image=apply_steps(it["image"], steps)) for it in items] if steps else items


#: ``--net-config`` keys the training data decide (the classes of ``--datasets``; RGB images): given, they
#: must say the same — ``classes`` is the ``unet`` family's other name for ``n_classes``
DATA_KEYS = ("n_classes", "classes", "in_ch")


def net_options(cfg, classes) -> dict:
    """The options of a new net for ``classes``: ``cfg.net_config`` with the outputs the data decide (refused
    with :class:`OptionError`, exit 2, when it sets them otherwise) and the edge head of box data."""
    ncfg = dict(cfg.net_config)
    data = {"n_classes": len(classes), "classes": len(classes), "in_ch": 3}
    bad = [k for k in DATA_KEYS if k in ncfg and ncfg[k] != data[k]]
    if bad:
        raise OptionError(f"--net-config sets {', '.join(f'{k} {ncfg[k]!r}' for k in bad)}, but the data decide it: "
                          f"{', '.join(cfg.datasets)} train{'s' if len(cfg.datasets) == 1 else ''} {len(classes)} "
                          f"classes ({', '.join(classes)}) on RGB images (n_classes {len(classes)}, in_ch 3).",
                          hint=f"leave {', '.join(bad)} out of --net-config (training sets "
                               f"{'it' if len(bad) == 1 else 'them'} from --datasets), or choose the --datasets of "
                               "the classes wanted")
    ncfg.setdefault("n_classes", len(classes))
    if classes[1] == "rbc" and cfg.architecture in ("do-unet", "do-unet-valid"):
        ncfg.setdefault("edge", True)
    return ncfg


def build_net(cfg, classes):
    """A new segmentation net of ``cfg.architecture`` for ``classes`` (:func:`net_options`). What the registry
    refuses (an unknown architecture or encoder, bad options, an unusable encoder weights file) is an option
    error here (exit 2): every bit of it comes from ``--arch`` / ``--net-config``."""
    from cellviewer.core.errors import ModelLoadError
    from cellviewer.nets.registry import KINDS, create_net, list_nets

    segmenters = list_nets("segment")
    if KINDS.get(cfg.architecture, "segment") != "segment":
        raise OptionError(f"--arch {cfg.architecture} is a cell classifier, not a segmentation network.",
                          hint=f"choose one of: {', '.join(segmenters)}")
    ncfg = net_options(cfg, classes)
    try:
        return create_net(cfg.architecture, **ncfg)
    except ModelLoadError as e:
        if cfg.architecture not in segmenters:
            raise OptionError(f"{e.message.rstrip('.')} (--arch).",
                              hint=f"give --arch one of: {', '.join(segmenters)}") from e
        raise OptionError(f"{e.message.rstrip('.')} (--arch {cfg.architecture}, --net-config "
                          f"{json.dumps(cfg.net_config)}).",
                          hint=e.hint or "see the architecture's docstring for its options") from e


def model_name(cfg, resumed: dict | None) -> str:
    """The card's name: ``cfg.name``; else a resumed checkpoint's; else the ``--out`` file name
    (``runs/x/lab`` → ``lab``), not one fixed name that a copied model would replace a shipped one by."""
    if cfg.name:
        return str(cfg.name)
    if resumed is not None and resumed.get("name"):
        return str(resumed["name"])
    p = Path(str(cfg.out))
    return (p.stem if p.suffix in (".json", ".safetensors") else p.name) or "model"


def batch(items, weights, rng, acfg, n: int):
    """``n`` augmented crops of training items drawn by ``weights``: images N×3×H×W, class maps, edge maps."""
    import numpy as np
    import torch

    from cellviewer.core.augment import augment

    imgs, cms, edges = [], [], []
    for _ in range(n):
        it = items[int(rng.choice(len(items), p=weights))]
        labels = {"classmap": (it["classmap"], D.IGNORE)}
        if it["edge"] is not None:
            labels["edge"] = (it["edge"], 0)
        img, labs = augment(it["image"], labels, rng, acfg)
        imgs.append(img)
        cms.append(labs["classmap"])
        edges.append(labs.get("edge", np.zeros_like(labs["classmap"])))
    x = torch.from_numpy(np.stack(imgs).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    return x, torch.from_numpy(np.stack(cms).astype(np.int64)), torch.from_numpy(np.stack(edges).astype(np.float32))


def preprocess_steps(cfg) -> list[dict]:
    """The run's image steps (:func:`cellviewer.nets.preprocess.steps_for`), recorded in the card."""
    from cellviewer.nets.checkpoint import read_card
    from cellviewer.nets.preprocess import steps_for

    try:
        return steps_for(cfg.architecture, cfg.preprocess, read_card(cfg.resume) if cfg.resume else None)
    except ValueError as e:
        raise OptionError(f"Bad 'preprocess' option: {e}.", hint="e.g. [{\"op\": \"clahe_y\"}] or []") from e


def border_pad_of(cfg) -> float:
    """The run's mirrored margin: the option, else the resumed card's ``inference.border_pad``, else 0."""
    if cfg.border_pad is not None:
        return float(cfg.border_pad)
    if cfg.resume:
        from cellviewer.nets.checkpoint import read_card

        return float((read_card(cfg.resume).get("inference") or {}).get("border_pad", 0.0))
    return 0.0


def card_for(cfg, classes, n_train, n_val, state: dict, command: str, steps: list, pad: float,
             resumed: dict | None = None, export_images: dict | None = None) -> dict:
    """The model card of a training run's checkpoint (``cfg``: a :class:`~cellviewer.core.training.TrainConfig`).

    ``resumed``: the card of the checkpoint resumed — its calibration (``postprocess``, ``inference``) is
    the net's and goes on into the new card. ``export_images``: the exported images trained and selected
    on (:func:`cellviewer.core.trainresume.export_images`), compared on the next resume."""
    post = {"method": "edge-watershed" if classes[1] == "rbc" else "components"}
    inference = {}
    if resumed is not None and list(resumed.get("classes") or []) == list(classes):
        post = dict(resumed.get("postprocess") or post)
        inference = dict(resumed.get("inference") or {})
    inference.pop("border_pad", None)
    if pad:
        inference["border_pad"] = pad
    card = {
        "name": cfg.name, "version": "1", "description": cfg.description or f"{cfg.architecture} trained on "
        + ", ".join(cfg.datasets), "classes": classes, "outputs": ["mask", "edge"] if classes[1] == "rbc" else ["mask"],
        "working_scale": cfg.working_scale,
        "preprocessing": {"input": "RGB float32 0..1, N×3×H×W",
                          "rescale": "image resized so that the expected RBC diameter is working_scale px",
                          "steps": steps},
        "postprocess": post,
        **({"inference": inference} if inference else {}),
        "training_data": training_data(cfg, classes, n_train, n_val),
        "training": {"config": dict(asdict(cfg), data_root=data_root_of(cfg)), "state": state},
        "metrics": {}, "command": absolute_data_in(command, cfg),
        "licence": licence_of(cfg),
    }
    if export_images:
        card["training_data"]["export_images"] = export_images
    return card


def data_root_of(cfg) -> str | None:
    """The run's data folder as an absolute path (None: the development data, ``../shared/data``)."""
    if cfg.data_root is None:
        return None
    p = Path(cfg.data_root).expanduser().resolve()
    return None if D.is_development_data(p) else str(p)


def _export_manifest(cfg) -> dict:
    """The export's ``export.json`` (split fractions, per-image splits); {} when it cannot be read."""
    try:
        return json.loads((Path(cfg.data_root or D.default_data_root()) / "export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def training_data(cfg, classes, n_train: int, n_val: int) -> dict:
    """The card's ``training_data``: the data folder, the split and the labels actually trained on — for a
    cellviewer export (``--datasets export``) its folder, its own split (``export.json``) and its real masks."""
    split = {"function": "cellviewer.core.datasets.split_of", "seed": D.SPLIT_SEED,
             "fractions": list(D.SPLIT_FRACTIONS), "trained_on": "+".join(cfg.train_splits),
             "selected_on": "val" if "val" not in cfg.train_splits
             else "recipe chosen on val beforehand (val is trained on)", "reported_on": "test"}
    labels = "weak: ellipses inscribed in boxes (+ edge ring/overlaps)" if classes[1] == "rbc" else "expert masks"
    root = data_root_of(cfg)
    if "export" in cfg.datasets:
        from cellviewer.core import export_dataset as E

        manifest = _export_manifest(cfg)
        split.update(function="cellviewer.core.export_dataset.split_for (each image's split as export.json "
                              "records it; images keep theirs when an export is added to)",
                     seed=manifest.get("seed", E.SPLIT_SEED),
                     fractions=list(manifest.get("fractions") or E.SPLIT_FRACTIONS))
        labels = ("masks: the reviewed cell outlines of the export (instance labels per class; pixels in its "
                  "ignore targets not taught)")
        root = str(Path(cfg.data_root or D.default_data_root()).expanduser().resolve())
    return {"datasets": list(cfg.datasets), "data_root": root or "shared/data (layout of its README)",
            "split": split, "n_train_images": n_train, "n_val_images": n_val, "labels": labels}


def licence_of(cfg) -> str:
    """The card's ``licence`` line: the shared data's licences only for the shared datasets trained on."""
    shared = [d for d in cfg.datasets if d in D.DATASETS]
    parts = []
    if shared:
        parts.append("weights trained on MIT (BCCD, TXL-PBC) / GPL-3.0 (segmentation_WBC) data; see shared/data"
                     if set(shared) & {"bccd", "txl_pbc", "wbc_seg"} else "see shared/data for the data's licence")
    if "export" in cfg.datasets:
        parts.append("trained on the user's own reviewed images (a cellviewer export): their owner's terms apply")
    return "; ".join(parts) or "synthetic data only"


def absolute_data_in(command: str, cfg) -> str:
    """``command`` (``cellviewer train --config JSON``, :func:`cellviewer.commands.train.command_of`) with its
    ``data_root`` made absolute, so the card's command reruns from any folder; any other command unchanged."""
    import shlex

    try:
        words = shlex.split(command)
        k = words.index("--config") + 1
        opts = json.loads(words[k])
    except (ValueError, IndexError):
        return command
    if not isinstance(opts, dict) or not opts.get("data_root"):
        return command
    opts["data_root"] = str(Path(opts["data_root"]).expanduser().resolve())
    words[k] = json.dumps(opts, sort_keys=True)
    return shlex.join(words)


def loss_for(cfg):
    """``loss(out, classmap, edge, phase)`` of a training run: the mask loss (+ aux outputs) and the edge BCE."""
    import torch
    import torch.nn.functional as F

    from cellviewer.nets.blocks import center_crop
    from cellviewer.nets.losses import create_loss

    opts = dict(cfg.mask_loss_config)
    if cfg.mask_loss in ("ce+dice", "ce", "dice"):
        opts.setdefault("ignore_index", D.IGNORE)
        if cfg.mask_loss == "dice":
            opts.setdefault("mode", "multiclass")
    mask_loss = create_loss(cfg.mask_loss, **opts)

    def loss(out: dict, cm, edge, phase: int):
        h, w = out["mask"].shape[-2:]
        if cm.shape[-2:] != (h, w):  # a valid-convolution net answers for the centre of its input
            cm, edge = center_crop(cm, h, w), center_crop(edge, h, w)
        valid = (cm != D.IGNORE).float().unsqueeze(1)
        total = out["mask"].new_zeros(())
        if phase == 1:
            total = total + mask_loss(out["mask"], cm)
            for aux in out.get("aux", []) or []:
                total = total + cfg.aux_weight * mask_loss(aux, cm)
        w_edge = cfg.edge_weight if phase == 2 or not cfg.two_phase else 0.0
        if "edge" in out and w_edge > 0:
            pw = torch.tensor(cfg.edge_pos_weight)
            e = F.binary_cross_entropy_with_logits(out["edge"], edge.unsqueeze(1), weight=valid,
                                                   pos_weight=pw, reduction="sum") / valid.sum().clamp(min=1)
            total = total + w_edge * e
        return total

    return loss
