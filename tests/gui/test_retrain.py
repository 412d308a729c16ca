"""Retrain from the GUI: after Accept, Resume + Accept is gated against the version the first Accept stored,
and the new card and the gate table say so."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from tests.gui.smear import write_smear  # noqa: E402
from tests.tinymodels import isolated_registry  # noqa: E402,F401

TINY = {"steps_per_epoch": 1, "batch_size": 2, "threads": 1}


@pytest.fixture
def reviewed_folder(tmp_path):
    from cellviewer.core.jobs import run_job
    from cellviewer.core.segment import create_segmenter
    from cellviewer.core.sidecar import load_document, save_sidecar

    d = tmp_path / "smears"
    d.mkdir()
    seg = create_segmenter("classical")
    for i in range(3):
        doc = load_document(write_smear(d / f"smear_{i}.png", seed=i))
        doc.set_result(run_job(seg.segment(doc.image.pixels)))
        doc.reviewed = True
        save_sidecar(doc)
    return d


def _train_and_accept(loop, button, qtbot):
    with qtbot.waitSignal(loop.retrain.gated, timeout=120000) as sig:
        button.click()
    dlg = loop.retrain.dialog
    header = [dlg.table.horizontalHeaderItem(i).text() for i in range(dlg.table.columnCount())]
    if not dlg.accept_button.isEnabled():
        dlg.override.setChecked(True)
    with qtbot.waitSignal(loop.retrain.stored, timeout=10000):
        dlg.accept_button.click()
    return sig.args[0], header


def test_resume_after_accept_names_the_version_it_was_gated_against(make_window, reviewed_folder, qtbot,
                                                                     isolated_registry):  # noqa: F811
    from cellviewer.core.modelcards import summarize_card
    from cellviewer.core.modelstore import ModelStore

    from tests.gui.test_human_loop import open_retrain_on_tiny_model

    _win, loop, tp = open_retrain_on_tiny_model(make_window, reviewed_folder)
    tp.budget.setCurrentIndex(tp.budget.findData("epochs"))
    tp.epochs.setValue(1)
    loop.retrain.options = dict(TINY)

    gate1, header1 = _train_and_accept(loop, tp.train_button, qtbot)
    store = ModelStore()
    v1 = store.active("tiny-blood")
    assert v1.version == 1 and v1.card["parent"] == {"model": "tiny-blood", "version": "0"}
    assert gate1.old_name == "tiny-blood v0" and "old: tiny-blood v0" in header1

    gate2, header2 = _train_and_accept(loop, tp.resume_button, qtbot)  # gated against the active v1
    v2 = store.active("tiny-blood")
    assert v2.version == 2 and v2.card["parent"] == {"model": "tiny-blood", "version": "1"}
    assert gate2.old_name == "tiny-blood v1" and "old: tiny-blood v1" in header2
    assert v2.card["gate"]["old"] == "tiny-blood v1"
    assert v2.card["gate"]["table"].startswith("old = tiny-blood v1, new = tiny-blood fine-tuned")
    assert "regression gate against tiny-blood v1" in summarize_card(v2.card).gate


def test_cancel_says_so_in_the_panel(make_window, reviewed_folder, qtbot, isolated_registry):  # noqa: F811
    from tests.gui.test_human_loop import open_retrain_on_tiny_model

    _win, loop, tp = open_retrain_on_tiny_model(make_window, reviewed_folder)
    tp.budget.setCurrentIndex(tp.budget.findData("epochs"))
    tp.epochs.setValue(500)
    loop.retrain.options = dict(TINY)
    loop.retrain.runner.progress.connect(lambda *_a: loop.retrain.cancel())  # at its first step (exporting …)
    with qtbot.waitSignal(loop.retrain.runner.cancelled, timeout=120000):
        tp.train_button.click()
    assert tp.progress_label.text().startswith("Fine-tuning cancelled.")  # before: the last step's text stood
    assert tp.progress.value() == 0
