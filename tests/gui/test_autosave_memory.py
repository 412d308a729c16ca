"""An autosave's write job lets go of its snapshot (the maps' copies: ~340 MB on a 48-MP field) once written,
although the job — and the thread object holding it until Qt deletes it — may live on."""

import gc
import weakref

import numpy as np


def test_the_write_job_does_not_keep_the_snapshot(tmp_path):
    from cellviewer.core.document import Document, ImageData, ImageInfo
    from cellviewer.core.sidecar import read_sidecar, snapshot
    from cellviewer.gui.saving import _write_job

    image = tmp_path / "a.png"
    image.write_bytes(b"")
    doc = Document(ImageData(np.zeros((50, 60, 3), np.uint8), ImageInfo(str(image), 60, 50)))
    doc.labels["rbc"][3:9, 4:8] = 2
    snap = snapshot(doc)
    alive = weakref.ref(snap.arrays["labels/rbc.npy"])
    written = []
    make = _write_job(snap, image, written.append)
    del snap
    job = make(None)
    for _ in job:
        pass
    gc.collect()
    assert written and alive() is None  # the job (still referenced here) holds no copy of the maps
    _, arrays = read_sidecar(written[0])
    assert np.array_equal(arrays["labels/rbc.npy"], doc.labels["rbc"])
