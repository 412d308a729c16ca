"""The model card of a training run (:func:`cellviewer.core.trainparts.card_for`): what it was trained on."""

import json
import shlex

import pytest

from cellviewer.core import trainparts as T
from cellviewer.core.training import TrainConfig


def _card(cfg, command="x"):
    return T.card_for(cfg, ["background", "rbc", "wbc", "platelet"], 5, 1, {}, command, [], 0.0)


def test_a_card_trained_on_an_export_names_the_export_its_split_and_its_masks(tmp_path, monkeypatch):
    from cellviewer.commands.train import command_of
    from cellviewer.core.export_dataset import export_training_set
    from cellviewer.core.jobs import run_job
    from tests.synthdocs import random_doc

    run_job(export_training_set([random_doc(i) for i in range(3)], tmp_path / "exp", formats=("shared",),
                                fractions=(0.5, 0.25, 0.25)))
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(datasets=["export"], data_root="exp")  # relative, as typed
    card = _card(cfg, command_of(cfg))
    td = card["training_data"]
    assert td["data_root"] == str((tmp_path / "exp").resolve())  # the export, absolute — not shared/data
    assert "export" in td["split"]["function"] and td["split"]["fractions"] == [0.5, 0.25, 0.25]
    assert td["split"]["seed"] == "cellviewer-export-v1"
    assert td["labels"].startswith("masks") and "ellipses" not in td["labels"]
    assert "MIT" not in card["licence"] and "shared/data" not in card["licence"]
    # the recorded command and config rerun from any folder
    assert json.loads(shlex.split(card["command"])[3])["data_root"] == str((tmp_path / "exp").resolve())
    assert card["training"]["config"]["data_root"] == str((tmp_path / "exp").resolve())


def test_a_card_trained_on_the_shared_data_keeps_its_split_and_licence():
    card = _card(TrainConfig(datasets=["bccd", "txl_pbc"]), "cellviewer train --config '{}'")
    td = card["training_data"]
    assert td["data_root"].startswith("shared/data") and td["split"]["function"].endswith("datasets.split_of")
    assert td["split"]["fractions"] == [0.7, 0.15, 0.15] and td["labels"].startswith("weak")
    assert "MIT" in card["licence"] and card["command"] == "cellviewer train --config '{}'"


@pytest.mark.parametrize("command", ["python -m cellviewer.core.training --epochs 2", "cellviewer train --config '{'"])
def test_a_command_that_is_not_a_config_is_kept_as_it_is(command):
    assert T.absolute_data_in(command, TrainConfig(data_root="x")) == command
