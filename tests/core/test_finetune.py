"""Fine-tuning from a base model on an export, and the whole loop: export -> fine-tune -> gate -> store -> rollback."""

import json

import pytest

pytest.importorskip("torch")

from cellviewer.core.errors import CellviewerError, ModelLoadError  # noqa: E402
from cellviewer.core.export_dataset import export_training_set  # noqa: E402
from cellviewer.core.finetune import finetune, resume_finetune  # noqa: E402
from cellviewer.core.jobs import run_job  # noqa: E402
from cellviewer.core.training import TrainProgress  # noqa: E402
from tests.synthdocs import random_doc, save_tiny_base  # noqa: E402
from tests.tinymodels import isolated_registry  # noqa: E402,F401

TINY = dict(minutes=2, epochs=1, steps_per_epoch=1, batch_size=2, threads=1)


def test_finetune_starts_from_the_base_and_the_loop_closes(isolated_registry, tmp_path):  # noqa: F811
    from cellviewer.core.gate import regression_gate
    from cellviewer.core.modelstore import ModelStore
    from cellviewer.core.segment import create_segmenter
    from cellviewer.nets.checkpoint import load_checkpoint

    save_tiny_base("tiny-cells")
    docs = [random_doc(i) for i in range(6)]
    seen = []
    res = run_job(finetune("tiny-cells", docs, out=tmp_path / "ft" / "m", **TINY), seen.append)
    # the documents were exported first (train/val/test), training started from the base's score
    assert (tmp_path / "ft" / "m-data" / "images.csv").is_file() and (res.n_train, res.n_val) == (4, 1)
    assert any(isinstance(p, TrainProgress) and p.step == 1 for p in seen)
    assert any("scoring the resumed checkpoint" in p.message for p in seen)
    assert res.epochs_run == 1 and len(res.data_hashes) == 5 and res.base_version == "3"
    net, card = load_checkpoint(res.checkpoint)
    assert card["fine_tuned_from"]["model"] == "tiny-cells" and card["postprocess"]["rbc_measured_to_box"] == 0.97
    assert card["training"]["config"]["datasets"] == ["export"] and card["training"]["config"]["lr"] == 2.5e-4
    assert card["training"]["config"]["freeze_bn"] and card["training"]["config"]["swa_epochs"] == 0
    base = json.loads((tmp_path / "ft" / "m-base.json").read_text())
    assert base["training"]["state"] == {}  # epoch 9 of the base does not stop the fine-tune
    # resume from the last state: one more epoch, same data, the lineage kept
    res_r = run_job(resume_finetune(f"{res.checkpoint}-last", tmp_path / "ft" / "r", epochs=2))
    assert [h["epoch"] for h in res_r.history] == [1, 2]
    assert load_checkpoint(res_r.checkpoint)[1]["fine_tuned_from"]["model"] == "tiny-cells"
    # gate on the export's held-out split, then store, activate, roll back
    g = run_job(regression_gate("tiny-cells", res.checkpoint, res.data_dir))
    assert len(g.rows) >= 1 and g.accepted == (g.rows[0][3] >= 0)
    store = ModelStore()
    mv = store.add(res.checkpoint, "tiny-lab", parent="tiny-cells", data_hashes=res.data_hashes,
                   metrics={"gate": g.as_dict()["rows"]}, gate=g.as_dict(), activate=True)
    assert create_segmenter("tiny-lab").version == str(mv.version) == "1"
    assert mv.card["data_hashes"] == res.data_hashes and mv.card["parent"]["version"] == "3"
    # fine-tune the stored version again (by name: the active store version) and keep the last epoch
    res2 = run_job(finetune("tiny-lab", res.data_dir, out=tmp_path / "ft2" / "m", keep="last", **TINY))
    assert res2.checkpoint.endswith("m-last") and res2.base_version == "1"
    assert store.rollback("tiny-lab") is None


def test_finetune_refuses_bad_inputs(isolated_registry, tmp_path):  # noqa: F811
    save_tiny_base("tiny-cells")
    with pytest.raises(ModelLoadError, match="Unknown model"):
        run_job(finetune("no-such-model", [], out=tmp_path / "m", **TINY))
    with pytest.raises(CellviewerError, match="needs a model of red cells"):
        run_job(finetune("wbc-nucleus-cytoplasm", [], out=tmp_path / "m", **TINY))
    with pytest.raises(CellviewerError, match="mark the corrected images as reviewed"):
        run_job(finetune("tiny-cells", [random_doc(0, reviewed=False)], out=tmp_path / "m", **TINY))
    run_job(export_training_set([random_doc(i) for i in range(2)], tmp_path / "two"))
    with pytest.raises(CellviewerError, match="at least one of each"):
        run_job(finetune("tiny-cells", tmp_path / "two", out=tmp_path / "m", **TINY))
    with pytest.raises(CellviewerError, match="keep"):
        run_job(finetune("tiny-cells", tmp_path / "two", out=tmp_path / "m", keep="worst", **TINY))


@pytest.mark.data
def test_demo_with_tiny_budgets_on_shared_data(data_dir, tmp_path):
    """The issue's demonstration with small budgets: both gates run on held-out test-split images."""
    from cellviewer.core.finetune_demo import pick, run_demo, shuffled_sources

    res = run_job(run_demo(tmp_path / "demo", minutes=0.2, images=4, heldout=1, epochs=1, steps_per_epoch=1,
                           batch_size=1, data_root=data_dir, datasets=("txl_pbc",)))  # the smaller images
    assert res.n_images == 4 and res.finetune["n_train"] == 3 and res.finetune["n_val"] == 1
    assert res.gate["rows"][0]["metric"] == "held-out: score" and res.shuffled_gate["rows"]
    assert res.shuffled_finetune["checkpoint"].endswith("model-last")
    assert res.gate["accepted"] == bool(res.stored)
    assert json.loads((tmp_path / "demo" / "demo.json").read_text())["n_heldout"] == 1
    train = pick(["bccd"], 4, "train", data_dir)
    src = shuffled_sources(train, 0)
    assert all(a is not b for a, b in zip(train, src)) and {id(s) for s in src} == {id(s) for s in train}


def test_finetune_says_when_a_folder_is_empty_or_missing(isolated_registry, tmp_path):  # noqa: F811
    from cellviewer.core.errors import OptionError

    save_tiny_base("tiny-cells")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OptionError, match="no images in"):
        run_job(finetune("tiny-cells", tmp_path / "empty", out=tmp_path / "m", **TINY))
    with pytest.raises(OptionError, match="does not exist"):
        run_job(finetune("tiny-cells", tmp_path / "nope", out=tmp_path / "m", **TINY))


def test_a_finetune_reports_the_base_s_score_as_epoch_0(isolated_registry, tmp_path):  # noqa: F811
    """The retrain panel draws the starting model's validation score at epoch 0 (what the epochs must beat): a
    fine-tune scored the base but never reported the score, so the curve began at epoch 1."""
    save_tiny_base("tiny-cells")
    seen = []
    run_job(finetune("tiny-cells", [random_doc(i) for i in range(6)], out=tmp_path / "ft" / "m", **TINY),
            seen.append)
    start = [p for p in seen if isinstance(p, TrainProgress) and not p.epoch and p.val is not None]
    assert len(start) == 1
    first_epoch = next(i for i, p in enumerate(seen) if isinstance(p, TrainProgress) and p.epoch)
    assert seen.index(start[0]) < first_epoch
    assert " val " in f" {start[0].message}"  # (what the panel reads a starting score by)

