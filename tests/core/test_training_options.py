"""Training options: the card's default name, the outputs the data decide, option errors (exit 2)."""

import json
from types import SimpleNamespace

import pytest

pytest.importorskip("torch")

from cellviewer.core.errors import OptionError  # noqa: E402
from cellviewer.core.jobs import run_job  # noqa: E402
from cellviewer.core.trainparts import build_net, model_name, net_options  # noqa: E402
from cellviewer.core.training import TrainConfig, classes_of, train  # noqa: E402

BOXES = ["background", "rbc", "wbc", "platelet"]
PARTS = ["background", "nucleus", "cytoplasm"]


def _cfg(**kw):
    base = dict(architecture="do-unet", net_config={"base": 4, "depth": 2}, datasets=["synthetic"])
    base.update(kw)
    return SimpleNamespace(**base)


def test_the_default_name_is_the_out_file_name_never_a_shipped_model_s():
    assert TrainConfig().name is None
    assert model_name(SimpleNamespace(name=None, out="runs/x/lab"), None) == "lab"
    assert model_name(SimpleNamespace(name=None, out="runs/x/lab.json"), None) == "lab"
    assert model_name(SimpleNamespace(name="blood-cells", out="runs/x/lab"), None) == "blood-cells"
    assert model_name(SimpleNamespace(name=None, out="runs/x/lab"), {"name": "wbc"}) == "wbc"  # resumed
    assert model_name(SimpleNamespace(name="new", out="runs/x/lab"), {"name": "wbc"}) == "new"


def test_a_trained_card_is_named_after_its_out(tmp_path):
    cfg = TrainConfig(datasets=["synthetic"], net_config={"base": 4, "depth": 2}, epochs=1, steps_per_epoch=1,
                      batch_size=2, augment={"crop": 64}, working_scale=16, synthetic_n=4, threads=1,
                      out=str(tmp_path / "x" / "lab"))
    run_job(train(cfg))
    for stem in ("lab", "lab-last"):
        card = json.loads((tmp_path / "x" / f"{stem}.json").read_text())
        assert card["name"] == "lab" and card["training"]["config"]["name"] == "lab"


@pytest.mark.parametrize("key, value, classes", [
    ("n_classes", 3, BOXES), ("n_classes", 5, BOXES), ("n_classes", 4, PARTS), ("classes", 2, BOXES),
    ("in_ch", 1, BOXES),
])
def test_outputs_the_data_decide_are_refused_in_net_config(key, value, classes):
    with pytest.raises(OptionError, match=f"{key} {value}") as e:
        net_options(_cfg(net_config={"base": 4, "depth": 2, key: value}), classes)
    assert e.value.exit_code == 2 and key in e.value.hint


def test_outputs_equal_to_the_data_s_are_fine_and_the_rest_is_filled_in():
    assert net_options(_cfg(net_config={"base": 4, "n_classes": 4, "in_ch": 3}), BOXES) == {
        "base": 4, "n_classes": 4, "in_ch": 3, "edge": True}
    assert net_options(_cfg(net_config={"base": 4, "edge": False}), PARTS) == {"base": 4, "edge": False,
                                                                               "n_classes": 3}


@pytest.mark.parametrize("arch, net_config, says", [
    ("no-such-net", {}, "Unknown network architecture"),
    ("unet", {"encoder": "resnet999"}, "Unknown encoder"),
    ("do-unet", {"base": -1}, "must be positive"),
    ("do-unet", {"nonsense": 1}, "nonsense"),
    ("cell-cnn", {}, "not a segmentation network"),
])
def test_what_the_registry_refuses_is_an_option_error(arch, net_config, says):
    with pytest.raises(OptionError, match=says) as e:
        build_net(_cfg(architecture=arch, net_config=net_config), BOXES)
    assert e.value.exit_code == 2 and e.value.hint


def test_bad_training_options_are_option_errors():
    with pytest.raises(OptionError, match="cannot be mixed") as e:
        classes_of(TrainConfig(datasets=["bccd", "wbc_seg"]))
    assert "--datasets wbc_seg" in e.value.hint
    with pytest.raises(OptionError, match="no_such"):
        TrainConfig.from_dict({"no_such": 1})


@pytest.mark.parametrize("name, says", [("chula_rbc12", "one point per red cell"), ("nosuch", "Unknown dataset")])
def test_a_dataset_training_cannot_read_is_refused_before_any_data_is_read(name, says):
    """chula_rbc12 has morphology points only (it crashed in OpenCV's resize); an unknown name lists what trains."""
    with pytest.raises(OptionError, match=says) as e:
        classes_of(_cfg(datasets=["bccd", name]))
    assert "bccd, txl_pbc, wbc_seg" in e.value.hint and "morphtrain" in e.value.hint
