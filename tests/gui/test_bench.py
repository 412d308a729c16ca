"""The GUI half of ``cellviewer bench`` (cellviewer.gui.bench), quick, on a small image.

No timing is asserted: only that every row is measured and positive and that the
brush drags became undo steps.
"""

import math
import shutil

from cellviewer.core.bench import SAMPLE


def test_gui_bench_measures_every_row(qtbot, tmp_path):
    from cellviewer.gui import bench

    image = shutil.copy(SAMPLE, tmp_path / "field.jpg")
    rows = {r["name"]: r for r in bench.measure(image, quick=True)}
    names = list(rows)
    assert names[0] == "cold start to shown main window"
    assert any(n.startswith("open 640×480 image") for n in names)
    for key in ("cold start to shown main window", "longest UI stall, segmentation 2 (worker)",
                "brush dab latency (median)"):
        v = rows[key]["value"]
        assert v is not None and math.isfinite(v), rows[key]
    assert rows["cold start to shown main window"]["value"] > 0
    assert rows["brush dab latency (median)"]["value"] > 0
    # the two segmentations + at most one step per drag (a drag inside its own cell changes nothing)
    assert 3 <= rows["undo steps after 3 brush drags"]["value"] <= 5  # two segmentations
