"""Fine-tuning the morphology classifier on reviewed corrections, its gate, and the store hand-over."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cellviewer.core import morphology as MO
from cellviewer.core.errors import CellviewerError, ModelLoadError
from cellviewer.core.export_dataset import export_training_set
from cellviewer.core.jobs import run_job
from cellviewer.core.morphfinetune import export_cells, finetune_morphology, morphology_base, morphology_gate
from tests.synthdocs import morph_field


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("morph-export")
    res = run_job(export_training_set([morph_field(k) for k in range(5)], out, formats=("shared",)))
    assert set(res.splits) == {"train", "val", "test"}
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny untrained classifier with a morphology card (the shipped one's settings)."""
    import torch

    from cellviewer.nets.checkpoint import save_checkpoint
    from cellviewer.nets.registry import create_net

    torch.manual_seed(0)
    stem = tmp_path_factory.mktemp("morph-base") / "rbc-morphology"
    net = create_net("cell-cnn", n_classes=len(MO.CLASSES), widths=[4, 8, 8, 8])
    save_checkpoint(net, stem, {"name": "rbc-morphology", "task": MO.TASK, "classes": list(MO.CLASSES), "crop_px": 32,
                                "crop_diameters": 2.0, "white_balance": True, "grey": True, "version": "1",
                                "training": {"config": {"lr": 2e-3}}})
    return stem


def test_export_cells_reads_classes_and_hand_set_flags(export, base):
    card = json.loads(base.with_suffix(".json").read_text())
    x, y, hand, names = export_cells(export, None, card)
    assert x.shape == (80, 32, 32, 3) and len(names) == 5
    ell = MO.CLASSES.index("elliptocyte")
    assert set(np.unique(y)) == {0, ell}
    assert np.array_equal(hand, y == ell)  # morphology_p 1 = set by hand
    xt, yt, _, nt = export_cells(export, "test", card, margin=1.25)
    assert xt.shape[1] == 40 and len(nt) == 1 and len(yt) == 16


def test_finetune_learns_the_corrections_and_the_gate_compares(export, base, tmp_path):
    res = run_job(finetune_morphology(str(base), export, out=tmp_path / "ft", epochs=12, minutes=None, batch_size=16,
                                      lr=1e-2, threads=1))
    card = json.loads((tmp_path / "ft.json").read_text())
    assert card["task"] == MO.TASK and card["fine_tuned_from"]["model"] == "rbc-morphology"
    assert card["training"]["n_train_hand_set"] > 0 and res.n_train >= 1 and res.n_val >= 1
    assert [h["epoch"] for h in res.history] == list(range(13))  # epoch 0 = the base
    assert res.best_score >= res.history[0]["val_score"]  # never worse than the base on val
    assert res.best_score > 0.5  # two easy classes: learnt
    gate = run_job(morphology_gate(str(base), res.checkpoint, export))
    assert [r[0] for r in gate.rows] == ["held-out: accuracy", "held-out: balanced accuracy", "held-out: macro F1",
                                         "held-out: score"]
    old, new = gate.value("held-out: score", "old"), gate.value("held-out: score")
    assert gate.accepted == (new >= old) and new > old
    net, _ = MO.load_model(tmp_path / "ft.json")
    assert net is not None


def test_only_morphology_models_are_fine_tuned_here(export, tmp_path):
    assert morphology_base("blood-cells") is None
    with pytest.raises(ModelLoadError, match="not a red-cell morphology model"):
        run_job(finetune_morphology("blood-cells", export, out=tmp_path / "x"))


def test_an_export_without_classes_is_refused(base, tmp_path):
    docs = [morph_field(k) for k in range(4)]
    for d in docs:
        for m in d.markers.values():
            m.morph = ""
    out = tmp_path / "plain"
    run_job(export_training_set(docs, out, formats=("shared",)))
    with pytest.raises(CellviewerError, match="morphology class"):
        run_job(finetune_morphology(str(base), out, out=tmp_path / "ft", epochs=1, minutes=None))


def test_an_accepted_version_replaces_the_shipped_model_but_is_no_segmenter(base, tmp_path, monkeypatch):
    from cellviewer.core.modelstore import ModelStore
    from cellviewer.core.netsegment import find_models

    monkeypatch.setenv("CELLVIEWER_HOME", str(tmp_path))
    shipped = MO.find_card()
    store = ModelStore()
    mv = store.add(base, "rbc-morphology", parent="rbc-morphology@1", data_hashes=[], metrics={}, activate=True)
    assert MO.find_card() == mv.stem.with_suffix(".json")
    assert morphology_base("rbc-morphology")[0] == mv.stem.with_suffix(".json")
    assert "rbc-morphology" not in find_models()
    assert "fine-tuned from rbc-morphology 1" in MO.describe_installed()
    store.deactivate("rbc-morphology")
    assert MO.find_card() == shipped


def test_camera_scales_and_softens():
    from cellviewer.core.morphdemo import camera

    img = np.zeros((40, 60, 3), np.uint8)
    img[10:30, 20:40] = 255
    out = camera(img, 0.5, 1.0)
    assert out.shape == (20, 30, 3)
    assert 0 < out[10, 15, 0] <= 255 and 0 < out[5, 10, 0] < 255  # the square's edge is blurred
    assert camera(img) is img


def test_demo_documents_play_the_annotator(data_dir):
    """Chula's points, with the model's class where it agrees and the annotator's (p = 1) where not."""
    from cellviewer.core.morphdemo import documents

    docs, info = documents("test", MO.load_model(), data_dir)
    assert info["images"] == len(docs) == 18 and info["cells"] == 991
    ms = [m for d in docs for m in d.markers.values()]
    assert all(d.reviewed for d in docs) and 0 < info["corrected"] < info["cells"] // 2
    assert sum(m.morph_p == 1.0 for m in ms) == info["corrected"]
    shuffled, sinfo = documents("test", MO.load_model(), data_dir, shuffle_seed=1)
    assert sinfo["cells"] == 991 and sinfo["corrected"] > 2 * info["corrected"]


def test_a_fine_tune_that_kept_the_base_weights_is_refused(export, base, tmp_path):
    res = run_job(finetune_morphology(str(base), export, out=tmp_path / "same", epochs=1, minutes=None, lr=1e-9))
    assert res.best_epoch == 0  # nothing beat the base: its weights are returned
    gate = run_job(morphology_gate(str(base), res.checkpoint, export))
    assert not gate.accepted and "nothing new to store" in gate.reason
    assert all(d == 0 for _m, _o, _n, d in gate.rows)
    # the dialog says what the verdict rests on: how many held-out cells, how many classes a person set
    n = gate.details["held-out"]["new"]["n"]
    assert f"held-out: {gate.details['held-out']['new']['images']} image" in gate.reason
    assert f", {n} cells, " in gate.reason and "classes set by hand" in gate.reason


def test_the_command_line_stores_only_what_the_gate_accepts(export, base, tmp_path, monkeypatch, capsys):
    from cellviewer.core.modelstore import ModelStore
    from cellviewer.core.morphfinetune import main

    monkeypatch.setenv("CELLVIEWER_HOME", str(tmp_path / "home"))
    assert main([str(export), "--out", str(tmp_path / "same"), "--base", str(base), "--epochs", "1",
                 "--lr", "1e-9", "--store"]) == 1  # nothing learnt: refused, nothing stored
    assert "REFUSED" in capsys.readouterr().out and ModelStore().versions("rbc-morphology") == []
    assert main([str(export), "--out", str(tmp_path / "new"), "--base", str(base), "--epochs", "12",
                 "--lr", "1e-2", "--threads", "1", "--store"]) == 0
    from cellviewer.core.modelstore import _shipped_version

    out = capsys.readouterr().out
    v = _shipped_version("rbc-morphology") + 1  # numbering goes on from the shipped model's
    assert "ACCEPTED" in out and f"stored and active: rbc-morphology version {v}" in out
    mv = ModelStore().active("rbc-morphology")
    assert mv.card["parent"] == {"model": "rbc-morphology", "version": "1"} and "held_out" in mv.card["metrics"]


def test_the_command_line_refuses_an_export_without_held_out_images(base, tmp_path, capsys):
    from cellviewer.core.morphfinetune import main

    run_job(export_training_set([morph_field(k) for k in range(4)], tmp_path / "e", formats=("shared",),
                                fractions=(0.8, 0.2, 0.0)))
    assert main([str(tmp_path / "e"), "--out", str(tmp_path / "ft"), "--base", str(base)]) != 0
    assert "no held-out (test) images" in capsys.readouterr().err
    assert not (tmp_path / "ft.json").exists()  # refused before any training
