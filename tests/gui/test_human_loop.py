"""Human in the loop, headless: review queue -> mark images reviewed -> export -> retrain -> gate ->
accept -> resume -> accept -> rollback, driven through the window's actions and panels.

The "corrected" data are three synthetic smears segmented by the classical segmenter; the
model fine-tuned is the shipped ``blood-cells`` net with a tiny budget (1 epoch of 1 step).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.gui.smear import write_smear
from tests.tinymodels import isolated_registry, save_tiny_model  # noqa: F401

MODELS = Path(__file__).resolve().parents[2] / "models"
pytestmark = pytest.mark.skipif(not (MODELS / "blood-cells.safetensors").is_file(),
                                reason="the shipped blood-cells model is absent")

TINY = {"steps_per_epoch": 1, "batch_size": 2, "threads": 2}


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "smears"
    d.mkdir()
    for i in range(3):
        write_smear(d / f"smear_{i}.png", seed=i)
    return d


def _open_segmented(win, path, qtbot):
    with qtbot.waitSignal(win.segmentation.applied, timeout=30000):
        assert win.open_image(path)
    panel = win.human_loop.review_panel
    qtbot.waitUntil(lambda: len(panel.queue) > 0 and not panel.runner.is_running, timeout=15000)
    return panel


def _review_all(win, folder, qtbot):
    """Review the doubtful cells of every image and mark each image reviewed (through the actions)."""
    A = win.actions_by_id
    for i, path in enumerate(sorted(folder.glob("*.png"))):
        panel = _open_segmented(win, path, qtbot)
        doc = win.session.doc
        n = len(panel.queue)
        assert panel.left == n and f"{n} cells left" in panel.counter.text()
        scores = [it.score for it in panel.queue]
        assert scores == sorted(scores, reverse=True)  # most doubtful first
        if i == 0:
            A["review.next"].trigger()
            first = panel.queue[panel.current]
            assert panel.current == 0
            view = win.canvas.vb.viewRange()  # the canvas is centred on the cell
            assert view[0][0] < first.x < view[0][1] and view[1][0] < first.y < view[1][1]
            assert view[0][1] - view[0][0] < doc.shape[1]  # ... and zoomed in
            A["review.mark"].trigger()
            assert all(m.reviewed for m in doc.markers_of_cell(first.cls, first.cell))
            assert panel.left == n - 1 and panel.current == 1  # moved on to the next doubtful cell
            A["edit.undo"].trigger()  # one undo step
            assert not any(m.reviewed for m in doc.markers_of_cell(first.cls, first.cell))
            assert panel.left == n
            A["edit.redo"].trigger()
            assert panel.left == n - 1
            A["review.previous"].trigger()  # skips reviewed cells, wraps around
            assert not panel.queue[panel.current].reviewed and panel.current == n - 1
            last = panel.queue[-1]
            win.tools.set_tool("delete")
            win.tools.click(last.x, last.y)  # delete the least doubtful cell
            win.tools.set_tool("navigate")
            qtbot.waitUntil(lambda: len(panel.queue) == n - 1, timeout=15000)  # masks changed: queue recomputed
            assert panel.left == n - 2 and (last.cls, last.cell) not in [(q.cls, q.cell) for q in panel.queue]
            A["edit.undo"].trigger()
            qtbot.waitUntil(lambda: len(panel.queue) == n, timeout=15000)
        A["review.image"].trigger()
        assert doc.reviewed and panel.image_reviewed.isChecked()
        assert win.session.stack.undoText().startswith("Mark image reviewed")
    win.save()


def test_review_export_retrain_gate_accept_resume_rollback(make_window, folder, tmp_path, qtbot, dialogs):
    from cellviewer.core.modelstore import ModelStore
    from cellviewer.gui.dataset_export import DatasetExportOptions

    win = make_window()
    loop = win.human_loop
    _review_all(win, folder, qtbot)

    # Models ▸ Retrain opens the retrain panel: it lists the three reviewed images (read from their sidecars)
    win.actions_by_id["models.retrain"].trigger()
    assert win.docks["training"].isVisible()
    tp = loop.training_panel
    qtbot.waitUntil(lambda: len(tp.chosen_images()) == 3, timeout=5000)

    # export: shared layout + COCO, in the worker
    out = tmp_path / "export"
    with qtbot.waitSignal(loop.exporter.done, timeout=30000) as sig:
        assert loop.export(DatasetExportOptions(out_dir=str(out)))
    res = sig.args[0]
    assert res.n_images == 3 and not res.skipped
    assert (out / "images.csv").is_file() and (out / "annotations.csv").is_file()
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco["images"]) == 3 and len(coco["annotations"]) == sum(res.n_cells.values()) > 0
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"smear_{i}.png" for i in range(3)]

    # retrain blood-cells with a tiny budget
    assert tp.model.findData("blood-cells") >= 0
    tp.model.setCurrentIndex(tp.model.findData("blood-cells"))
    tp.budget.setCurrentIndex(tp.budget.findData("epochs"))
    tp.epochs.setValue(1)
    assert tp.params.base_model == "blood-cells" and tp.params.budget == "epochs" and tp.params.epochs == 1
    loop.retrain.options = dict(TINY)
    with qtbot.waitSignal(loop.retrain.gated, timeout=120000) as sig:
        tp.train_button.click()
        assert not tp.train_button.isEnabled() and tp.cancel_button.isEnabled()
    gate = sig.args[0]
    assert len(tp.loss_x) >= 1 and tp.val_x == [0.0, 1.0]  # live curves got the base's score and the epoch
    dlg = loop.retrain.dialog
    assert dlg is not None and dlg.isVisible() and dlg.table.rowCount() == len(gate.rows) > 0
    held = gate.value("held-out: score", "new") - gate.value("held-out: score", "old")
    assert gate.accepted == (held >= 0)
    assert dlg.accept_button.isEnabled() == gate.accepted
    if not gate.accepted:  # a refused model can still be taken, but only on purpose
        dlg.override.setChecked(True)
    with qtbot.waitSignal(loop.retrain.stored, timeout=10000):
        dlg.accept_button.click()
    from cellviewer.core.modelstore import _shipped_version

    store = ModelStore()
    v1 = store.active("blood-cells")
    first = _shipped_version("blood-cells") + 1  # numbering goes on from the shipped model's
    assert first > 1 and v1 is not None and v1.version == first
    assert v1.stem.with_suffix(".safetensors").is_file()
    assert v1.card["parent"]["model"] == "blood-cells" and len(v1.card["data_hashes"]) == 2  # train + val
    assert v1.card["gate"]["accepted"] == gate.accepted and "held_out" in v1.card["metrics"]
    assert f"blood-cells stored version {first} (active)" in [tp.model.itemText(i) for i in range(tp.model.count())]
    assert tp.resume_button.isEnabled()

    # resume the run for one more epoch: a second version
    with qtbot.waitSignal(loop.retrain.gated, timeout=120000):
        tp.resume_button.click()
    assert tp.val_x == [0.0, 1.0, 2.0]  # (the base's score stays the start of the curve)
    dlg = loop.retrain.dialog
    if not dlg.accept_button.isEnabled():
        dlg.override.setChecked(True)
    with qtbot.waitSignal(loop.retrain.stored, timeout=10000):
        dlg.accept_button.click()
    assert store.active("blood-cells").version == first + 1
    assert [v.version for v in store.versions("blood-cells")] == [first, first + 1]

    # the models panel lists both; roll back -> the first is active again; make the second active by hand
    win.actions_by_id["models.versions"].trigger()
    mp = loop.models_panel
    assert win.docks["models"].isVisible()
    assert mp.tree.topLevelItemCount() == 1 and mp.tree.topLevelItem(0).childCount() == 2
    assert mp.select("blood-cells")
    assert mp.rollback()
    assert store.active("blood-cells").version == first
    assert json.loads((store.root / "blood-cells" / "store.json").read_text())["active"] == first
    assert mp.select("blood-cells", str(first + 1)) and mp.activate_selected()
    assert store.active("blood-cells").version == first + 1
    assert dialogs.shown == []  # no error dialog on the way


@pytest.fixture
def reviewed_folder(folder):
    """The smears with sidecars already segmented and marked reviewed (made without the GUI)."""
    from cellviewer.core.jobs import run_job
    from cellviewer.core.segment import create_segmenter
    from cellviewer.core.sidecar import load_document, save_sidecar

    seg = create_segmenter("classical")
    for p in sorted(folder.glob("*.png")):
        doc = load_document(p)
        doc.set_result(run_job(seg.segment(doc.image.pixels)))
        doc.reviewed = True
        save_sidecar(doc)
    return folder


def open_retrain_on_tiny_model(make_window, folder):
    """A window on ``folder`` with Models ▸ Retrain open on a tiny untrained "tiny-blood" net:
    ``(window, its human loop, the training panel)``."""
    save_tiny_model("tiny-blood", "do-unet", {"base": 4, "depth": 2, "edge": True},
                    ["background", "rbc", "wbc", "platelet"])
    win = make_window(auto_run=False)
    assert win.open_folder(folder)
    win.actions_by_id["models.retrain"].trigger()
    tp = win.human_loop.training_panel
    tp.model.setCurrentIndex(tp.model.findData("tiny-blood"))
    return win, win.human_loop, tp


def test_reject_discards_the_run_and_cancel_allows_resume(make_window, reviewed_folder, tmp_path, qtbot, dialogs,
                                                          monkeypatch, isolated_registry):  # noqa: F811
    from cellviewer.core.modelstore import ModelStore

    # a tiny untrained net keeps this one fast (the model does not matter for cancel / resume / reject)
    win, loop, tp = open_retrain_on_tiny_model(make_window, reviewed_folder)
    assert tp.params.base_model == "tiny-blood"
    assert len(tp.chosen_images()) == 3 and tp.train_button.isEnabled()
    tp.images.item(0).setCheckState(Qt.CheckState.Unchecked)  # two images cannot be split three ways
    tp.train_button.click()
    assert not loop.retrain.runner.is_running and "at least 3" in win.statusBar().currentMessage()
    tp.images.item(0).setCheckState(Qt.CheckState.Checked)
    from cellviewer.gui.dataset_export import DatasetExportOptions

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with qtbot.waitSignal(loop.exporter.runner.failed, timeout=10000):  # an unwritable target: one dialog
        loop.export(DatasetExportOptions(out_dir=str(blocker / "export")))
    assert len(dialogs.shown) == 1 and "Cannot create the export folder" in dialogs.shown[0].text
    dialogs.shown.clear()
    from PySide6.QtWidgets import QDialog

    from cellviewer.gui.dataset_export import DatasetExportDialog

    def fill_and_ok(dlg):  # the user picks a folder, unticks COCO and presses Export
        dlg.folder.setText(str(tmp_path / "reference"))
        dlg.coco.setChecked(False)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(DatasetExportDialog, "exec", fill_and_ok)
    with qtbot.waitSignal(loop.exporter.done, timeout=30000):  # File ▸ Export training set…: a reference set
        win.actions_by_id["file.export_training"].trigger()
    assert (tmp_path / "reference" / "images.csv").is_file() and not (tmp_path / "reference" / "coco.json").exists()
    tp._set(reference=str(tmp_path / "reference"))
    assert tp.reference.text() == str(tmp_path / "reference")
    tp.budget.setCurrentIndex(tp.budget.findData("epochs"))
    tp.epochs.setValue(50)  # far more than it will get
    loop.retrain.options = dict(TINY)
    with qtbot.waitSignal(loop.retrain.runner.cancelled, timeout=60000):
        tp.train_button.click()
        qtbot.waitUntil(lambda: any(x >= 1 for x in tp.val_x), timeout=60000)  # an epoch is done: cancel
        tp.cancel_button.click()
    assert tp.resume_button.isEnabled() and tp.train_button.isEnabled()
    assert loop.retrain.dialog is None  # no gate for a cancelled run
    tp.epochs.setValue(1)  # resume for one more epoch
    run = loop.retrain.run
    with qtbot.waitSignal(loop.retrain.gated, timeout=120000) as sig:
        tp.resume_button.click()
    assert run.folder.is_dir()
    metrics = [loop.retrain.dialog.table.item(i, 0).text() for i in range(loop.retrain.dialog.table.rowCount())]
    assert "held-out: score" in metrics and "reference: score" in metrics  # both sets side by side
    assert sig.args[0].accepted == (sig.args[0].value("reference: score", "new")
                                    >= sig.args[0].value("reference: score", "old")
                                    and sig.args[0].value("held-out: score", "new")
                                    >= sig.args[0].value("held-out: score", "old"))
    with qtbot.waitSignal(loop.retrain.discarded, timeout=5000):
        loop.retrain.dialog.reject_button.click()
    assert not run.folder.exists() and not tp.resume_button.isEnabled()
    assert ModelStore().versions("tiny-blood") == []
    assert dialogs.shown == []


def test_export_dialog_options_round_trip(qtbot):
    from cellviewer.gui.dataset_export import DatasetExportDialog, DatasetExportOptions

    opts = DatasetExportOptions(out_dir="/tmp/x", shared=False, coco=True, tile=256, reviewed_only=False,
                                whole_folder=False)
    dlg = DatasetExportDialog(opts, n_images=4)
    qtbot.addWidget(dlg)
    assert dlg.options() == opts and dlg.options().formats == ("coco",)
    ok = dlg.buttons.button(dlg.buttons.StandardButton.Ok)
    dlg.coco.setChecked(False)  # no format: nothing to export
    assert not ok.isEnabled()
    dlg.shared.setChecked(True)
    dlg.folder.setText("")
    assert not ok.isEnabled()
    dlg.folder.setText("/tmp/y")
    assert ok.isEnabled() and dlg.options().tile == 256 and dlg.options().formats == ("shared",)


def test_gate_dialog_refusal_needs_an_explicit_override(qtbot, dialogs):
    from cellviewer.core.gate import GateResult
    from cellviewer.gui.gate_dialog import GateDialog

    rows = [("held-out: score", 0.9, 0.8, -0.1), ("held-out: rbc F1", 0.95, 0.97, 0.02)]
    dlg = GateDialog(GateResult(rows, False, "the new model is worse on the held-out images (-10.00 points)"),
                     "blood-cells", "candidate")
    qtbot.addWidget(dlg)
    decided = []
    dlg.decided.connect(decided.append)
    assert "did not pass" in dlg.verdict.text() and "-10.00 points" in dlg.verdict.text()
    assert [dlg.table.item(0, j).text() for j in range(4)] == ["held-out: score", "90.00", "80.00", "-10.00"]
    assert dlg.table.item(1, 3).text() == "+2.00"
    assert not dlg.accept_button.isEnabled() and not dlg.override.isHidden()
    dlg.accept()  # refused and not overridden: nothing happens
    assert decided == []
    dialogs.answer_yes = False
    dlg.reject()  # Esc / close: asks first; "No" keeps the dialog and the model
    assert decided == [] and len(dialogs.questions) == 1
    dlg.override.setChecked(True)
    dlg.accept_button.click()
    assert decided == [True]
    dlg2 = GateDialog(GateResult(rows[1:], True, "held-out score +2.00 points"), "blood-cells", "candidate")
    qtbot.addWidget(dlg2)
    dlg2.decided.connect(decided.append)
    assert dlg2.accept_button.isEnabled() and dlg2.override.isHidden()
    dialogs.answer_yes = True
    dlg2.reject()
    assert decided == [True, False]
    same = GateResult(rows, False, "the fine-tune kept the base's weights; there is nothing new to store",
                      nothing_new=True)
    dlg3 = GateDialog(same, "rbc-morphology", "candidate")  # before: "Accept anyway" stored a copy of the base
    qtbot.addWidget(dlg3)
    dlg3.override.setChecked(True)
    assert dlg3.override.isHidden() and not dlg3.accept_button.isEnabled()
    dlg3.accept()
    assert decided == [True, False]


def test_training_panel_curves_follow_train_progress(qtbot):
    from cellviewer.core.training import TrainProgress
    from cellviewer.gui.panels.training import TrainingPanel

    tp = TrainingPanel()
    qtbot.addWidget(tp)
    tp.add_point(TrainProgress(0.0, "loading data"))  # no epoch yet: ignored
    for epoch in (1, 2):
        for step in (1, 2):
            tp.add_point(TrainProgress(0.1, f"phase 1 epoch {epoch}/2 step {step}/2 loss 1", 1, epoch, step,
                                       1.0 / (epoch + step)))
        tp.add_point(TrainProgress(0.5, f"phase 1 epoch {epoch}: loss 0.3 val 0.{epoch}", 1, epoch, 2, 0.3,
                                   0.1 * epoch, 0.1 * epoch))
    assert tp.loss_x == [0.5, 1.0, 1.5, 2.0] and tp.loss_y[0] == 0.5
    assert tp.val_x == [1.0, 2.0] and tp.val_y == pytest.approx([0.1, 0.2])
    x, y = tp.val_curve.getData()
    assert list(x) == [1.0, 2.0]
    tp.reset_curves()
    cleared = tp.val_curve.getData()[0]
    assert tp.loss_x == [] and tp.val_x == [] and (cleared is None or len(cleared) == 0)
    tp.add_point(TrainProgress(0.02, "base model: val score 0.8", epoch=0, val=0.8, best=0.8))  # the start
    tp.add_point(TrainProgress(0.5, "epoch 1: loss 0.4 val 0.7 (best 0.8 @ 0)", epoch=1, loss=0.4, val=0.7))
    assert tp.val_x == [0.0, 1.0] and tp.val_y == pytest.approx([0.8, 0.7]) and tp.loss_x == [1.0]


@pytest.mark.skipif(not (MODELS / "rbc-morphology.safetensors").is_file(), reason="no shipped morphology model")
def test_retrain_the_morphology_model_from_reviewed_classes(make_window, tmp_path, qtbot, dialogs):
    """Reviewed red-cell classes -> Retrain rbc-morphology -> its gate (classes, not counts) -> Accept:
    the stored version is what segmentations classify with from then on."""
    import cv2

    from cellviewer.core import morphology as MO
    from cellviewer.core.modelstore import ModelStore
    from cellviewer.core.sidecar import save_sidecar
    from tests.synthdocs import morph_field

    d = tmp_path / "fields"
    d.mkdir()
    for k in range(4):
        path = d / f"field_{k}.png"
        doc = morph_field(k, str(path))
        cv2.imwrite(str(path), doc.image.pixels[:, :, ::-1])
        save_sidecar(doc)
    win = make_window(auto_run=False)
    loop = win.human_loop
    assert win.open_folder(d)
    win.actions_by_id["models.retrain"].trigger()
    tp = loop.training_panel
    qtbot.waitUntil(lambda: len(tp.chosen_images()) == 4, timeout=5000)
    i = tp.model.findData(MO.MODEL_NAME)
    assert i >= 0 and "red-cell morphology" in tp.model.itemText(i)
    tp.model.setCurrentIndex(i)
    tp.budget.setCurrentIndex(tp.budget.findData("epochs"))
    tp.epochs.setValue(2)
    loop.retrain.options = {"threads": 2, "lr": 1e-3}
    with qtbot.waitSignal(loop.retrain.gated, timeout=120000) as sig:
        tp.train_button.click()
    gate = sig.args[0]
    assert tp.val_x == [0.0, 1.0, 2.0]  # the score curve: the base, then both epochs
    assert [r[0] for r in gate.rows][-1] == "held-out: score" and "held-out: macro F1" in [r[0] for r in gate.rows]
    kept = loop.retrain.run.result.best_epoch == 0  # no epoch beat the base on val: its weights came back
    assert gate.accepted == (not kept and gate.value("held-out: score") >= gate.value("held-out: score", "old"))
    assert not kept or "nothing new to store" in gate.reason
    assert not tp.resume_button.isEnabled()  # a morphology fine-tune is short: no resume
    dlg = loop.retrain.dialog
    if kept:  # a copy of the base: nothing to store, no override offered (before: it stored the copy)
        assert gate.nothing_new and not dlg.override.isVisibleTo(dlg) and not dlg.accept_button.isEnabled()
        dlg.override.setChecked(True)
        assert not dlg.accept_button.isEnabled()
        return
    if not gate.accepted:
        dlg.override.setChecked(True)
    with qtbot.waitSignal(loop.retrain.stored, timeout=10000) as stored:
        dlg.accept_button.click()
    shipped = json.loads((MODELS / "rbc-morphology.json").read_text())["version"]
    assert stored.args == [MO.MODEL_NAME, str(int(shipped) + 1)]  # the store's first version follows the shipped one
    mv = ModelStore().active(MO.MODEL_NAME)
    assert mv is not None and mv.card["task"] == MO.TASK and mv.card["parent"] == {"model": MO.MODEL_NAME,
                                                                                  "version": shipped}
    assert MO.find_card() == mv.stem.with_suffix(".json")
    assert "held_out" in mv.card["metrics"] and len(mv.card["data_hashes"]) >= 2
    assert dialogs.shown == []


def test_classify_red_cells_again_keeps_the_corrections_and_is_one_undo_step(segmented, qtbot):
    """A calibration given after corrections: the classes are redone on the current masks, nothing else."""
    import pytest

    from cellviewer.core import morphology as MO

    if MO.find_card() is None:
        pytest.skip("no morphology model installed")
    win = segmented
    doc, stack = win.session.doc, win.session.stack
    labels = doc.labels["rbc"].copy()
    win.seg_params.update(um_per_px=0.4)
    n = stack.count()
    with qtbot.waitSignal(win.segmentation.classes_runner.finished, timeout=30000):
        win.actions_by_id["seg.reclassify"].trigger()
    qtbot.waitUntil(lambda: stack.count() == n + 1, timeout=5000)
    assert stack.undoText() == "Classify red cells again"
    assert any(m.morph for m in doc.markers.values() if m.cls == "rbc")
    assert (doc.labels["rbc"] == labels).all() and doc.um_per_px == 0.4
    stack.undo()
    assert not any(m.morph for m in doc.markers.values())  # the classical segmenter gave none


def test_after_a_rollback_the_status_says_whether_the_model_can_still_be_used(make_window, isolated_registry):  # noqa: F811
    win = make_window(auto_run=False)
    win.human_loop._on_model_activated("blood-cells", "6")
    assert "new segmentations use the active version" in win.statusBar().currentMessage()
    win.human_loop._on_model_activated("mylab-gone", "")  # its last stored version rolled back, none shipped
    assert win.statusBar().currentMessage() == "Model 'mylab-gone' has no version left to use."
    win.human_loop._on_model_activated("rbc-morphology", "3")  # no segmenter (before: "no version left")
    assert "Classify again use the active version" in win.statusBar().currentMessage()
