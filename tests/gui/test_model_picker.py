"""The model picker shows the card summary and working scale; NODE-UNet's solver is a control that reaches the net."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from cellviewer.gui.state import Observable, SegmentParams  # noqa: E402
from tests.tinymodels import isolated_registry, save_tiny_model  # noqa: E402,F401

BOX_CLASSES = ["background", "rbc", "wbc", "platelet"]


@pytest.fixture
def panel(qtbot, isolated_registry):  # noqa: F811
    from cellviewer.gui.panels.segment import SegmentPanel

    save_tiny_model("tiny-node", "node-unet", {"widths": [4, 8], "rtol": 1e-3, "atol": 1e-3}, BOX_CLASSES)
    p = SegmentPanel(Observable(SegmentParams()))
    qtbot.addWidget(p)
    return p


def _pick(p, name):
    p.model.setCurrentIndex(p.model.findData(name))
    assert p.state.value.model == name


def test_picker_shows_card_summary_and_working_scale(panel):
    _pick(panel, "tiny-node")
    assert "node-unet" in panel.card.text() and "working scale: 16 px per red cell" in panel.card.text()
    assert "no measured metrics" in panel.card.text()
    assert not panel.ode_box.isHidden() and "rtol 0.001" in panel.ode_box.title()
    _pick(panel, "blood-cells")
    text = panel.card.text()
    shipped = json.loads((Path(__file__).resolve().parents[2] / "models" / "blood-cells.json").read_text())
    assert "do-unet" in text and "working scale: 32 px per red cell" in text and f"version {shipped['version']}" in text
    assert "classes: rbc, wbc, platelet" in text and "txl_pbc" in text and "counting accuracy" in text
    assert panel.ode_box.isHidden()  # no ODE solver in a DO-U-Net
    _pick(panel, "classical")
    assert "Classical" in panel.card.text() and panel.ode_box.isHidden()


def test_solver_controls_live_in_the_state_and_reach_the_segmenter(panel):
    from cellviewer.core.segment import create_segmenter
    from cellviewer.core.jobs import run_job
    from cellviewer.gui.segmentation import segmenter_request

    _pick(panel, "tiny-node")
    panel.ode_rtol.setCurrentIndex(panel.ode_rtol.findData(1e-1))
    panel.ode_method.setCurrentIndex(panel.ode_method.findData("bosh3"))
    v = panel.state.value
    assert (v.ode_method, v.ode_rtol, v.ode_atol) == ("bosh3", 0.1, 0.0)
    panel.state.update(ode_atol=1e-5)  # state -> widget
    assert panel.ode_atol.currentText() == "1e-05"
    name, opts = segmenter_request(v)
    assert name == "tiny-node" and opts["solver"] == {"method": "bosh3", "rtol": 0.1, "atol": 1e-5}
    seg = create_segmenter(name, **dict(opts, device="cpu", diameter_px=16.0))
    res = run_job(seg.segment(np.full((40, 48, 3), 200, np.uint8)))
    assert res.params["solver"] == {"method": "bosh3", "rtol": 0.1, "atol": 1e-5, "step_size": 0.25}
    assert seg.net.solver["method"] == "dopri5" and seg.net.solver["rtol"] == 1e-3  # the shared net is restored
    # a model without an ODE solver gets no solver option
    panel.state.update(model="blood-cells")
    assert "solver" not in segmenter_request(panel.state.value)[1]


def test_test_time_augmentation_is_a_state_field_that_reaches_the_segmenter(panel):
    from cellviewer.core.jobs import run_job
    from cellviewer.core.segment import create_segmenter
    from cellviewer.gui.segmentation import segmenter_request

    _pick(panel, "tiny-node")
    assert panel.tta.itemText(0) == "model's own (none)" and panel.state.value.tta == ""
    assert "tta" not in segmenter_request(panel.state.value)[1]  # the card decides
    panel.tta.setCurrentIndex(panel.tta.findData("flips"))
    assert panel.state.value.tta == "flips"
    name, opts = segmenter_request(panel.state.value)
    assert opts["tta"] == "flips"
    res = run_job(create_segmenter(name, **dict(opts, device="cpu", diameter_px=16.0)).segment(
        np.full((40, 48, 3), 200, np.uint8)))
    assert res.params["tta"] == "flips"
    panel.state.update(tta="d4")  # state -> widget
    assert panel.tta.currentData() == "d4"
    panel.state.update(model="classical")
    assert not panel.tta.isEnabled() and "tta" not in segmenter_request(panel.state.value)[1]


@pytest.fixture
def told(monkeypatch):
    """The lasting warnings shown (the notification layer, recorded)."""
    from cellviewer.gui import notifications

    shown = []
    monkeypatch.setattr(notifications, "lasting", lambda text, tip="": shown.append(text) or len(shown))
    return shown


def test_a_saved_model_that_is_gone_is_replaced_in_the_state_and_said_once(qtbot, isolated_registry, told):  # noqa: F811
    from cellviewer.gui.panels.segment import SegmentPanel
    from cellviewer.gui.segmentation import default_model, segmenter_request

    state = Observable(SegmentParams(model="old-lab-model"))  # a settings file from before the model was removed
    p = SegmentPanel(state)
    qtbot.addWidget(p)
    qtbot.wait(20)
    assert state.value.model == default_model() == p.model.currentData()  # what is shown is what Run uses
    assert segmenter_request(state.value)[0] == default_model()
    assert len(told) == 1 and "'old-lab-model' is not installed" in told[0] and default_model() in told[0]
    p.reload_models()
    qtbot.wait(20)
    assert len(told) == 1  # once


def test_rolling_back_the_only_version_of_a_stored_model_moves_the_picker_and_the_state(
        qtbot, isolated_registry, told):  # noqa: F811
    from cellviewer.core.modelstore import ModelStore
    from cellviewer.core.netsegment import model_dirs
    from cellviewer.gui.panels.segment import SegmentPanel
    from cellviewer.gui.segmentation import default_model

    save_tiny_model("tiny-src", "do-unet", {"base": 4, "depth": 2, "edge": True}, BOX_CLASSES)
    store = ModelStore()
    store.add(model_dirs()[-1] / "tiny-src", "mylab", parent="tiny-src", data_hashes=[], metrics={},
              gate={"accepted": True}, activate=True)
    state = Observable(SegmentParams(model="mylab"))
    p = SegmentPanel(state)
    qtbot.addWidget(p)
    assert p.model.currentData() == "mylab" and state.value.model == "mylab"
    assert store.rollback("mylab") is None  # nothing stored is active, nothing is shipped under that name
    p.reload_models()  # what the window does after Model versions ▸ Roll back
    qtbot.wait(20)
    assert state.value.model == default_model() == p.model.currentData()
    assert len(told) == 1 and "'mylab' is not installed" in told[0]


def test_a_trained_model_given_by_its_path_stays_chosen(qtbot, isolated_registry, told):  # noqa: F811
    from cellviewer.core.netsegment import model_dirs
    from cellviewer.gui.panels.segment import SegmentPanel

    save_tiny_model("tiny-path", "do-unet", {"base": 4, "depth": 2, "edge": True}, BOX_CLASSES)
    path = str(model_dirs()[-1] / "tiny-path.json")
    state = Observable(SegmentParams(model=path))
    p = SegmentPanel(state)
    qtbot.addWidget(p)
    qtbot.wait(20)
    assert state.value.model == path == p.model.currentData() and not told


def test_a_model_file_from_disk_is_picked_with_its_card_summary(panel, tmp_path, qtbot, monkeypatch):
    """'Model file…' (the picker's last entry) asks for a card on disk — a model trained here or received, not
    installed — and uses it for the next runs; its card summary and ODE controls are shown as for an installed
    one. Cancel, or a file that is no segmentation model, keeps the model in use."""
    import shutil

    from cellviewer.core.modelfind import model_dirs
    from cellviewer.gui import notifications
    from cellviewer.gui.panels import segment as S

    mine = tmp_path / "received"
    mine.mkdir()
    for ext in (".json", ".safetensors"):  # a copy outside every models folder, under another name
        shutil.copy(model_dirs()[-1] / ("tiny-node" + ext), mine / ("lab-node" + ext))
    (mine / "notes.json").write_text("{}")
    (mine / "notes.safetensors").write_bytes(b"x")
    warned = []
    monkeypatch.setattr(notifications, "warn", lambda m, *a, **k: warned.append(m))
    answers = iter(["", str(mine / "notes.json"), str(mine / "lab-node.safetensors")])
    monkeypatch.setattr(S.SegmentPanel, "ask_model_file", staticmethod(lambda parent, start: next(answers)))

    last = panel.model.count() - 1
    assert panel.model.itemData(last) == S.MODEL_FILE and panel.model.itemText(last) == "Model file…"
    before = panel.state.value.model
    panel.model.setCurrentIndex(last)  # cancelled
    qtbot.waitUntil(lambda: panel.model.currentData() != S.MODEL_FILE, timeout=2000)
    assert panel.state.value.model == before and not warned
    panel.model.setCurrentIndex(last)  # a JSON file that is no model card
    qtbot.waitUntil(lambda: bool(warned), timeout=2000)
    assert "names no architecture" in warned[0] and panel.state.value.model == before
    assert panel.model.currentData() != S.MODEL_FILE
    panel.model.setCurrentIndex(panel.model.count() - 1)  # the checkpoint, chosen by its weights file
    card = str(mine / "lab-node.json")
    qtbot.waitUntil(lambda: panel.state.value.model == card, timeout=2000)
    assert panel.model.currentText() == "lab-node (file)" and panel.model.currentData() == card
    assert "node-unet" in panel.card.text() and "working scale: 16 px per red cell" in panel.card.text()
    assert not panel.ode_box.isHidden()  # its solver is a control, as for an installed NODE-UNet
    assert card in panel.model.itemData(panel.model.currentIndex(), 3)  # the tooltip names the file


def test_a_model_file_runs_a_segmentation(panel, tmp_path):
    from cellviewer.core.jobs import run_job
    from cellviewer.core.modelfind import model_dirs
    from cellviewer.core.segment import create_segmenter
    from cellviewer.gui.segmentation import segmenter_request

    card = str(model_dirs()[-1] / "tiny-node.json")
    panel.state.update(model=card)
    panel.reload_models()
    assert panel.state.value.model == card and panel.model.currentData() == card
    name, opts = segmenter_request(panel.state.value)
    res = run_job(create_segmenter(name, **dict(opts, device="cpu")).segment(np.full((40, 40, 3), 200, np.uint8)))
    assert set(res.labels) >= {"rbc", "wbc", "platelet"}
