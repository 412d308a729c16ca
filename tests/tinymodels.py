"""Test helpers: a tiny untrained model in the user store and a tiny dataset in the shared layout."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def isolated_registry(monkeypatch):
    """The segmenter registry as a copy: models registered by a test vanish after it."""
    from cellviewer.core import segment

    segment.list_segmenters()  # load the built-in ones first
    monkeypatch.setattr(segment, "_FACTORIES", dict(segment._FACTORIES))
    monkeypatch.setattr(segment, "_DESCRIPTIONS", dict(segment._DESCRIPTIONS))
    return segment


def save_tiny_model(name: str, arch: str, net_config: dict, classes: list[str], **card) -> None:
    """An untrained net saved as a model card in ``$CELLVIEWER_HOME/models`` (registered by name)."""
    import torch

    from cellviewer.core.netsegment import model_dirs, register_models
    from cellviewer.nets.checkpoint import save_checkpoint
    from cellviewer.nets.registry import create_net

    torch.manual_seed(0)
    net = create_net(arch, n_classes=len(classes), **net_config)
    save_checkpoint(net, model_dirs()[-1] / name, {"name": name, "version": "0", "classes": classes,
                                                   "working_scale": 16.0, "description": f"tiny {arch}", **card})
    register_models()


@pytest.fixture
def tiny_wbc_data(tmp_path):
    """``DATA/wbc_seg`` with two 64×64 test-split crops: a purple disc (cytoplasm) around a dark nucleus."""
    import cv2

    from cellviewer.core.datasets import split_of

    root = tmp_path / "data"
    folder = root / "wbc_seg"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    names = [f"d1_{i:03d}.png" for i in range(200) if split_of(f"d1_{i:03d}.png") == "test"][:2]
    yy, xx = np.mgrid[:64, :64]
    rows = ["image,width,height,class_name"]
    for k, name in enumerate(names):
        r2 = (yy - 32) ** 2 + (xx - 32 - k) ** 2
        img = np.full((64, 64, 3), (225, 215, 190), np.uint8)
        img[r2 <= 20 ** 2] = (190, 150, 200)
        img[r2 <= 10 ** 2] = (90, 40, 130)
        mask = np.where(r2 <= 10 ** 2, 255, np.where(r2 <= 20 ** 2, 128, 0)).astype(np.uint8)
        cv2.imwrite(str(folder / "images" / name), img[..., ::-1])
        cv2.imwrite(str(folder / "masks" / name), mask)
        rows.append(f"{name},64,64,test")
    (folder / "images.csv").write_text("\n".join(rows) + "\n")
    return root
