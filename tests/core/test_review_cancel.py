"""The review queue stops soon when cancelled (a window closing waits for it): its whole-image steps run a
band of rows at a time, the cancel token checked between bands and steps, with the same results."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from cellviewer.core import counting
from cellviewer.core import review
from cellviewer.core.errors import Cancelled
from cellviewer.core.jobs import CancelToken, Progress, run_job
from tests.synthdocs import disc_doc


def _doc():
    discs = [("rbc", 20 + 30 * i, 20 + 25 * (i % 3), 10, 0.6 + 0.05 * i) for i in range(8)]
    discs += [("rbc", 3, 90, 12, 0.9), ("wbc", 120, 80, 18, 0.5), ("platelet", 200, 20, 4, 0.9)]
    return disc_doc(discs, size=(120, 280))


class Spy:
    """Wraps a function, counting calls; ``then`` runs before each call."""

    def __init__(self, fn, then=None):
        self.fn, self.then, self.calls = fn, then, 0

    def __call__(self, *a, **k):
        self.calls += 1
        if self.then is not None:
            self.then()
        return self.fn(*a, **k)


def _spy_steps(monkeypatch):
    spies = {name: Spy(getattr(review, name)) for name in ("_areas_slices", "_shape", "_method_counts", "edge_flags")}
    for name, spy in spies.items():
        monkeypatch.setattr(review, name, spy)
    return spies


def test_cancel_while_finding_the_field_edge_stops_before_the_next_step(monkeypatch):
    doc, token = _doc(), CancelToken()
    monkeypatch.setattr(doc, "field_edge", Spy(doc.field_edge, token.cancel))
    spies = _spy_steps(monkeypatch)
    with pytest.raises(Cancelled):
        review.doubt_queue(doc, diameter=20, token=token)
    assert doc.field_edge.calls == 1
    assert all(s.calls == 0 for s in spies.values())


def test_cancel_inside_a_banded_step_stops_at_the_next_band(monkeypatch):
    """The distance transform (the longest whole-image step) runs per band: cancelled during the first
    band, no second band is started, nor any later step."""
    monkeypatch.setattr(review, "BAND_PX", 280 * 16)  # bands of 16 rows: 8 of them
    monkeypatch.setattr(review, "_opencv_ipp", lambda rows, cols: False)  # (bands this small: IPP's code)
    doc, token = _doc(), CancelToken()
    assert len(review._bands(doc.labels["rbc"])) == 8
    edt = Spy(counting.edt, token.cancel)
    monkeypatch.setattr(counting, "edt", edt)
    spies = _spy_steps(monkeypatch)
    with pytest.raises(Cancelled):
        review.doubt_queue(doc, diameter=20, token=token)
    assert edt.calls == 1
    assert (spies["_areas_slices"].calls, spies["_shape"].calls) == (1, 1)
    assert spies["_method_counts"].calls == spies["edge_flags"].calls == 0


def test_cancel_while_measuring_areas_stops_at_the_next_band(monkeypatch):
    monkeypatch.setattr(review, "BAND_PX", 280 * 16)
    doc, token = _doc(), CancelToken()
    bincount = Spy(np.bincount, token.cancel)
    monkeypatch.setattr(review.np, "bincount", bincount)
    shape = Spy(review._shape)
    monkeypatch.setattr(review, "_shape", shape)
    with pytest.raises(Cancelled):
        review.doubt_queue(doc, diameter=20, token=token)
    assert bincount.calls == 1 and shape.calls == 0


def test_cancel_from_the_jobs_progress_callback_stops_before_any_step(monkeypatch):
    """The GUI's job (a copy of the document, a progress message, then the queue) cancelled as soon as
    it reports progress: nothing of the queue is computed."""
    from cellviewer.gui import workers
    from cellviewer.gui.panels.reviewqueue import queue_job

    monkeypatch.setattr(workers, "lower_priority", lambda *a, **k: None)  # (not this test's thread)
    doc, token = _doc(), CancelToken()
    spies = _spy_steps(monkeypatch)
    seen: list[Progress] = []

    def on_progress(p):
        seen.append(p)
        token.cancel()

    with pytest.raises(Cancelled):
        run_job(queue_job(doc, None)(token), on_progress)
    assert len(seen) == 1
    assert all(s.calls == 0 for s in spies.values())


def test_a_cancel_token_left_alone_changes_nothing(monkeypatch):
    doc = _doc()
    want = review.doubt_queue(doc, diameter=20)
    monkeypatch.setattr(review, "BAND_PX", 280 * 7)
    monkeypatch.setattr(review, "BAND_MARGIN", 2)
    assert review.doubt_queue(doc, diameter=20, token=CancelToken()) == want


def _random_labels(rng, h, w):
    lab = np.zeros((h, w), np.int32)
    yy, xx = np.mgrid[:h, :w]
    for _ in range(int(rng.integers(0, 60))):
        cy, cx = rng.integers(-5, (h + 5, w + 5))
        ry, rx = rng.integers(1, 30, 2)
        lab[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = int(rng.integers(1, 40))
    if rng.random() < 0.2:  # a cell across the whole width, cut by the image edge: distances far from background
        lab[h // 3 :, :] = 7
    return lab


@pytest.mark.parametrize("seed", range(6))
def test_banded_steps_equal_the_whole_image_ones(monkeypatch, seed):
    """Areas, bounding boxes and the largest inscribed radius per cell, band by band (tiny bands, a small
    first margin: wide cells make it grow), are exactly counting.areas / ndi.find_objects / label_max
    (images over 4096 px wide: OpenCV's own distance transform for the image and its bands, as on a big field;
    narrower ones that IPP's code would take are measured whole)."""
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(review, "BAND_MARGIN", int(rng.integers(1, 6)))
    for k in range(8):
        h, w = int(rng.integers(1, 50)), int(rng.integers(4097, 4200) if k % 4 else rng.integers(1, 200))
        lab = _random_labels(rng, h, w)
        monkeypatch.setattr(review, "BAND_PX", int(rng.integers(1, 6)) * w)
        ids, a, slices = review._areas_slices(lab, CancelToken())
        want_ids, want_a = counting.areas(lab)
        assert ids.dtype == want_ids.dtype and a.dtype == want_a.dtype
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(a, want_a)
        assert slices == ndi.find_objects(lab)
        if ids.size == 0:
            continue
        rmax = counting.label_max(counting._cell_distance(lab), lab, ids)
        q = a / (np.pi * np.maximum(rmax, 0.5) ** 2)
        np.testing.assert_array_equal(review._shape(lab, ids, a, CancelToken()), np.minimum(q, 1.0 / q))
