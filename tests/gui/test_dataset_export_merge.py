"""The GUI's training-set export adds to an earlier export in the same folder (as `cellviewer export` does)."""

import csv

from cellviewer.core.jobs import CancelToken, run_job
from tests.synthdocs import random_doc


def test_a_second_gui_export_into_the_same_folder_keeps_the_first_images(tmp_path):
    from cellviewer.gui.dataset_export import DatasetExportOptions, export_job

    out = tmp_path / "export"
    opts = DatasetExportOptions(out_dir=str(out))
    first = run_job(export_job([random_doc(0), random_doc(1)], opts)(CancelToken()))
    second = run_job(export_job([random_doc(2)], opts)(CancelToken()))
    assert first.n_images == 2 and second.n_images == 1
    with open(out / "images.csv", newline="") as f:
        names = sorted(r["image"] for r in csv.DictReader(f))
    assert names == ["synth_0.png", "synth_1.png", "synth_2.png"]
