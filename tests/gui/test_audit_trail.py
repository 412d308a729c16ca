"""Audit trail: every manual edit (what, where, when, OS user) lands in the sidecar and in the report."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import zipfile

from cellviewer.core.document import os_user
from cellviewer.core.sidecar import find_sidecar


def test_every_manual_edit_is_in_the_sidecar_and_summarised_in_the_report(segmented, qtbot, tmp_path):
    win = segmented
    doc = win.session.doc
    t0 = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=2)
    win.tools.stroke([(100.0, 15.0), (130.0, 15.0)])  # brush: a new cell
    win.tools.set_tool("merge")
    win.tools.click(150.0, 40.0)
    win.tools.click(171.0, 40.0)  # the two touching red cells become one
    win.tools.set_tool("marker_add")
    win.tools.set_class("platelet")
    win.tools.click(5.0, 5.0)
    win.tools.set_tool("delete")
    win.tools.click(30.0, 30.0)
    win.actions_by_id["edit.undo"].trigger()  # an undone edit leaves the trail
    actions = [win.session.stack.text(i) for i in range(1, win.session.stack.index())]  # after segmentation
    assert len(actions) == 3
    assert win.save()
    with zipfile.ZipFile(find_sidecar(win.session.path)) as z:
        saved = json.loads(z.read("document.json"))["provenance"]["edits"]
    assert [e["action"] for e in saved] == actions
    h, w = doc.shape
    for e in saved:
        y0, x0, y1, x1 = e["bbox"]  # where
        assert 0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w
        assert dt.datetime.fromisoformat(e["time"]) >= t0  # when (with its time zone)
        assert e["user"] == os_user() and e["user"]  # who
    assert saved[0]["cls"] == "rbc" and saved[2]["cls"] == "platelet"
    y0, x0, y1, x1 = saved[1]["bbox"]  # the merge: where one of the two cells was relabelled
    assert y0 <= 40 < y1 and any(x0 <= x < x1 for x in (150, 171))
    pdf = tmp_path / "audit.pdf"
    with qtbot.waitSignal(win.exporter.done, timeout=20000):
        assert win.export_report(pdf)
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True).stdout
        assert "Manual corrections" in text and os_user() in text
        for a in actions:
            assert f"{a} ×1" in text, text
