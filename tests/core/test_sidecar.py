"""Sidecar round trip, validation, atomicity (SIGKILL during save)."""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cellviewer.core import edits, sidecar
from cellviewer.core.errors import SaveError, SidecarError
from tests.core.test_edits import seeded_doc

REPO = Path(__file__).resolve().parents[2]


def doc_at(tmp_path, name="smear.png"):
    doc = seeded_doc()
    p = tmp_path / name
    p.write_bytes(b"placeholder")  # the sidecar never reads the image bytes
    doc.image.info.path = str(p)
    doc.image.info.sha256 = "abc"
    return doc


def test_round_trip_keeps_everything(tmp_path):
    doc = doc_at(tmp_path)
    edits.History(doc).push(edits.add_marker(doc, "platelet", 3, 3))
    doc.um_per_px = 0.1
    path = sidecar.save_sidecar(doc)
    assert path == tmp_path / "smear.png.cellviewer"
    meta, arrays = sidecar.read_sidecar(path)
    fresh = seeded_doc()
    fresh.image.info.sha256 = "abc"
    fresh.labels = {k: np.zeros_like(v) for k, v in fresh.labels.items()}
    warnings = sidecar.apply_sidecar(fresh, meta, arrays, path)
    assert warnings == []
    for k in doc.labels:
        np.testing.assert_array_equal(fresh.labels[k], doc.labels[k])
    np.testing.assert_array_equal(fresh.parts, doc.parts)
    assert fresh.markers == doc.markers
    assert fresh.provenance.edits[0].action == "Add marker" and fresh.provenance.edits[0].user
    assert fresh.um_per_px == 0.1


def _write_meta(tmp_path, meta, arrays=None):
    p = tmp_path / "x.cellviewer"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("document.json", json.dumps(meta))
        for k, v in (arrays or {}).items():
            import io

            b = io.BytesIO()
            np.save(b, v)
            z.writestr(k, b.getvalue())
    return p


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04trunc", b"not a zip at all"])
def test_garbage_sidecar_raises_clear_error(tmp_path, content):
    p = tmp_path / "x.cellviewer"
    p.write_bytes(content)
    with pytest.raises(SidecarError, match="cannot be used"):
        sidecar.read_sidecar(p)


def test_future_version_and_wrong_shape_and_bad_markers(tmp_path):
    with pytest.raises(SidecarError, match="newer cellviewer"):
        sidecar.read_sidecar(_write_meta(tmp_path, {"format": sidecar.FORMAT, "format_version": 99}))
    doc = seeded_doc()
    meta = {"format": sidecar.FORMAT, "format_version": 1, "image": {"width": 160, "height": 120},
            "markers": [{"id": 1, "cls": "rbc", "x": 5000, "y": 3}, {"id": 2, "cls": "rbc", "x": 5, "y": 3}]}
    p = _write_meta(tmp_path, meta, {"labels/rbc.npy": np.zeros((10, 10), np.int32)})
    m, a = sidecar.read_sidecar(p)
    with pytest.raises(SidecarError, match="shape"):
        sidecar.apply_sidecar(doc, m, a, p)
    p = _write_meta(tmp_path, meta)
    m, a = sidecar.read_sidecar(p)
    warnings = sidecar.apply_sidecar(doc, m, a, p)
    assert list(doc.markers) == [2] and "dropped" in warnings[0]


def test_pickled_array_is_refused(tmp_path):
    meta = {"format": sidecar.FORMAT, "format_version": 1}
    p = _write_meta(tmp_path, meta, {"labels/rbc.npy": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(SidecarError):
        sidecar.read_sidecar(p)


def test_read_only_folder_falls_back_to_user_store(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    ro = tmp_path / "ro"
    ro.mkdir()
    doc = doc_at(ro)
    ro.chmod(0o555)
    try:
        path = sidecar.save_sidecar(doc)
        assert sidecar.user_store() in path.parents
        assert sidecar.find_sidecar(doc.image.info.path) == path
    finally:
        ro.chmod(0o755)


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    doc = doc_at(tmp_path)
    path = sidecar.save_sidecar(doc)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sidecar.os, "replace", boom)
    with pytest.raises(SaveError, match="disk is full"):
        sidecar.write_snapshot(sidecar.snapshot(doc), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


KILLER = r"""
import sys, numpy as np
sys.path.insert(0, {repo!r})
from tests.core.test_edits import seeded_doc
from cellviewer.core import sidecar
doc = seeded_doc()
doc.labels['rbc'] = np.random.default_rng(0).integers(0, 60000, (1500, 2000)).astype(np.int32)
doc.labels['wbc'] = np.zeros((1500, 2000), np.int32); doc.labels['platelet'] = doc.labels['wbc']
doc.parts = np.zeros((1500, 2000), np.uint8)
doc.image.pixels = np.zeros((1500, 2000, 3), np.uint8)
doc.image.info.width, doc.image.info.height = 2000, 1500
print('ready', flush=True)
while True:
    sidecar.save_sidecar(doc, {path!r})
"""


def test_sigkill_while_saving_leaves_previous_sidecar_loadable(tmp_path):
    path = tmp_path / "smear.png.cellviewer"
    good = doc_at(tmp_path)
    sidecar.save_sidecar(good, path)
    proc = subprocess.Popen([sys.executable, "-c", KILLER.format(repo=str(REPO), path=str(path))],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.4)  # well inside a save of ~20 MB of labels
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(10)
    meta, arrays = sidecar.read_sidecar(path)  # old or new, never broken
    assert meta["format_version"] == 1
    assert arrays["labels/rbc.npy"].shape in ((120, 160), (1500, 2000))


def test_unwritable_image_folder_uses_user_store_even_as_root(tmp_path, monkeypatch):
    doc = doc_at(tmp_path)
    real = sidecar.write_snapshot

    def refuse_beside(snap, path):
        if Path(path).parent == tmp_path:
            raise SaveError("Cannot save: read-only file system")
        return real(snap, path)

    monkeypatch.setattr(sidecar, "write_snapshot", refuse_beside)
    path = sidecar.save_sidecar(doc)
    assert sidecar.user_store() in path.parents
    assert sidecar.find_sidecar(doc.image.info.path) == path
    monkeypatch.setattr(sidecar.os, "access", lambda *a: False)
    assert sidecar.sidecar_path(doc.image.info.path) == path


def test_sidecar_is_readable_by_the_labs_other_users_and_keeps_a_chosen_mode(tmp_path):
    doc = doc_at(tmp_path)
    path = sidecar.save_sidecar(doc)
    assert os.stat(path).st_mode & 0o777 == 0o644  # not mkstemp's 0600
    os.chmod(path, 0o664)  # a group-writable lab folder: the next save keeps it
    sidecar.save_sidecar(doc)
    assert os.stat(path).st_mode & 0o777 == 0o664
