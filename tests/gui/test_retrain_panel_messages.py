"""The retrain panel's line says what became of the run (not the gate's verdict after Accept / Reject), and a
minutes budget shows no epoch cap ("epoch 4/1000")."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from tests.gui.test_retrain import TINY, reviewed_folder  # noqa: E402,F401
from tests.tinymodels import isolated_registry  # noqa: E402,F401


def test_a_minutes_budget_shows_no_epoch_cap(qtbot):
    from cellviewer.gui.panels.training import RetrainParams, TrainingPanel

    tp = TrainingPanel(RetrainParams(budget="minutes"))
    qtbot.addWidget(tp)
    tp.set_progress(0.5, "phase 1 epoch 4/1000 step 1/1 loss 0.8818")
    assert tp.progress_label.text() == "phase 1 epoch 4 step 1/1 loss 0.8818"
    tp.budget.setCurrentIndex(tp.budget.findData("epochs"))  # an epoch budget: "4/5" is the user's number
    tp.set_progress(0.5, "phase 1 epoch 4/5 step 1/1 loss 0.8818")
    assert tp.progress_label.text() == "phase 1 epoch 4/5 step 1/1 loss 0.8818"


def test_the_curves_stay_in_view(qtbot):
    """A wheel over the panel (it must be scrolled to reach the curves) zoomed a plot and switched its
    auto-range off: the next run's curve was drawn outside the view."""
    from cellviewer.core.training import TrainProgress
    from cellviewer.gui.panels.training import RetrainParams, TrainingPanel

    tp = TrainingPanel(RetrainParams(budget="epochs"))
    qtbot.addWidget(tp)
    for plot in (tp.loss_plot, tp.val_plot):
        assert plot.getViewBox().state["mouseEnabled"] == [False, False]  # the wheel does not zoom
        plot.getViewBox().setRange(xRange=(-3, 10), yRange=(0.6, 0.85))  # zoomed before (auto-range off)
    tp.reset_curves()
    for e in (1, 2, 3):
        tp.add_point(TrainProgress(0.5, f"epoch {e}: loss 1.39 val 0.95", epoch=e, loss=1.39 + e / 100, val=0.95))
    for plot in (tp.loss_plot, tp.val_plot):
        plot.getViewBox().updateAutoRange()
    (x0, x1), (y0, y1) = tp.loss_plot.getViewBox().viewRange()
    assert x0 <= 1 and x1 >= 3 and y0 <= 1.40 and y1 >= 1.42


def test_the_starting_score_is_drawn_at_epoch_0(qtbot):
    from cellviewer.core.training import TrainProgress
    from cellviewer.gui.panels.training import TrainingPanel

    tp = TrainingPanel()
    qtbot.addWidget(tp)
    tp.add_point(TrainProgress(0.0, "resumed checkpoint: val 0.9681", val=0.9681))  # as core.training says it
    tp.add_point(TrainProgress(0.1, "phase 1 epoch 1: loss 0.85 val 0.9040 (best 0.9681 @ 0)", epoch=1, val=0.904))
    assert tp.val_x == [0.0, 1.0] and tp.val_y == [0.9681, 0.904]


def test_accept_and_reject_replace_the_gate_s_verdict(make_window, reviewed_folder, qtbot,  # noqa: F811
                                                      isolated_registry):  # noqa: F811
    from tests.gui.test_human_loop import open_retrain_on_tiny_model

    _win, loop, tp = open_retrain_on_tiny_model(make_window, reviewed_folder)
    tp.budget.setCurrentIndex(tp.budget.findData("epochs"))
    tp.epochs.setValue(1)
    loop.retrain.options = dict(TINY)
    for accept in (True, False):
        with qtbot.waitSignal(loop.retrain.gated, timeout=120000):
            tp.train_button.click()
        assert tp.progress_label.text().startswith("gate ")
        dlg = loop.retrain.dialog
        if accept:
            dlg.override.setChecked(not dlg.accept_button.isEnabled())
            with qtbot.waitSignal(loop.retrain.stored, timeout=10000):
                dlg.accept_button.click()
            assert tp.progress_label.text() == "tiny-blood version 1 stored and active."
        else:
            with qtbot.waitSignal(loop.retrain.discarded, timeout=10000):
                dlg.reject_button.click()
            assert tp.progress_label.text() == "The fine-tuned model was discarded."


def test_the_status_after_a_rollback_to_the_shipped_model_names_it(make_window, isolated_registry):  # noqa: F811
    """A rollback that leaves no stored version active: the window's line (which replaces the store's own
    "the shipped model is used") must not claim an "active version"."""
    win = make_window(auto_run=False)
    win.human_loop._on_model_activated("blood-cells", "")
    msg = win.statusBar().currentMessage()
    assert "shipped model" in msg and "active version" not in msg
    win.human_loop._on_model_activated("blood-cells", "7")
    assert "active version (7)" in win.statusBar().currentMessage()


def test_a_new_run_removes_the_cancelled_one_but_keeps_an_accepted_one(make_window, reviewed_folder,  # noqa: F811
                                                                       qtbot, isolated_registry):  # noqa: F811
    """Start after a Cancel leaves the cancelled run where nothing can resume it: its folder (checkpoints, a copy
    of the reviewed images) went nowhere and stayed in $CELLVIEWER_HOME/training for good."""
    import time

    from tests.gui.test_human_loop import open_retrain_on_tiny_model

    _win, loop, tp = open_retrain_on_tiny_model(make_window, reviewed_folder)
    tp.budget.setCurrentIndex(tp.budget.findData("epochs"))
    tp.epochs.setValue(1)
    loop.retrain.options = dict(TINY)
    with qtbot.waitSignal(loop.retrain.gated, timeout=120000):
        tp.train_button.click()
    loop.retrain.dialog.override.setChecked(not loop.retrain.dialog.accept_button.isEnabled())
    with qtbot.waitSignal(loop.retrain.stored, timeout=10000):
        loop.retrain.dialog.accept_button.click()
    accepted = loop.retrain.run.folder
    folders = []
    for _ in range(2):
        time.sleep(1.1)  # (runs are named by the second)
        tp.epochs.setValue(500)
        cancel = lambda *_a: loop.retrain.cancel()  # noqa: E731
        loop.retrain.runner.progress.connect(cancel)
        with qtbot.waitSignal(loop.retrain.runner.cancelled, timeout=120000):
            tp.train_button.click()
        loop.retrain.runner.progress.disconnect(cancel)
        folders.append(loop.retrain.run.folder)
    assert accepted.is_dir()  # the stored version's run (its card names its data) stays
    assert not folders[0].exists() and folders[1].is_dir()


def test_closing_the_window_while_retraining_asks_first(make_window, reviewed_folder, qtbot, dialogs,  # noqa: F811
                                                        isolated_registry):  # noqa: F811
    """Ctrl+Q during a fine-tune stopped it without a word (the run could not be resumed from a new window)."""
    from tests.gui.test_human_loop import open_retrain_on_tiny_model

    win, loop, tp = open_retrain_on_tiny_model(make_window, reviewed_folder)
    tp.budget.setCurrentIndex(tp.budget.findData("epochs"))
    tp.epochs.setValue(500)
    loop.retrain.options = dict(TINY)
    tp.train_button.click()
    assert loop.retrain.busy
    dialogs.answer_yes = False
    assert not win.close()  # "No": the window and the run go on
    assert dialogs.questions and "retraining" in str(dialogs.questions[-1]).lower()
    assert win.isVisible() and loop.retrain.runner.is_running
    n = len(dialogs.questions)
    win.closing_by_signal = True  # Ctrl+C in the terminal, kill: no question
    assert win.close()
    assert len(dialogs.questions) == n and not loop.retrain.runner.is_running


def test_the_retrain_list_follows_the_folder_of_the_image_opened(make_window, reviewed_folder, tmp_path,  # noqa: F811
                                                                 isolated_registry):  # noqa: F811
    """With the Retrain panel open, opening an image listed the reviewed images of the folder open before (or,
    on a window's first image, "No folder open"): the list was made before the Files panel took the new folder."""
    from tests.gui.smear import write_smear

    other = tmp_path / "other"
    other.mkdir()
    write_smear(other / "new.png", seed=5)
    win = make_window(auto_run=False)
    win.human_loop.show_dock("training")
    tp = win.human_loop.training_panel
    assert win.open_image(reviewed_folder / "smear_0.png")  # the window's first image
    assert len(tp.listed_images()) == 3 and tp.images_label.text() == "3 reviewed images in smears"
    assert win.open_image(other / "new.png")  # another folder: none of its images is reviewed
    assert tp.listed_images() == [] and tp.images_label.text() == "0 reviewed images in other"
