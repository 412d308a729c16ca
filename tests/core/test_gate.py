"""The regression gate: it accepts a better model, refuses a worse one, and says why."""

import cv2
import numpy as np
import pytest

from cellviewer.core.document import Marker
from cellviewer.core.errors import Cancelled, CellviewerError
from cellviewer.core.export_dataset import export_training_set
from cellviewer.core.export_read import load_exported
from cellviewer.core.gate import regression_gate, summarize
from cellviewer.core.jobs import CancelToken, Progress, run_job
from cellviewer.core.segment import SegmentationResult
from tests.synthdocs import random_doc


class Fake:
    """A segmenter that finds the cells of the annotated boxes whose index passes ``keep``."""

    def __init__(self, name, samples, keep):
        self.name, self.version, self.keep = name, "1", keep
        self.boxes = {str(s.path): s.boxes for s in samples}

    def segment(self, image, cancel=None):
        key = next(k for k in self.boxes if np.array_equal(cv2.imread(k)[..., ::-1], image))
        markers = []
        for cls, b in self.boxes[key].items():
            for i, (x0, y0, x1, y1) in enumerate(b):
                if self.keep(cls, i):
                    markers.append(Marker(len(markers) + 1, cls, (x0 + x1) / 2, (y0 + y1) / 2))
        yield Progress(1.0, "done")
        return SegmentationResult({}, markers)


@pytest.fixture
def export(tmp_path):
    run_job(export_training_set([random_doc(i) for i in range(6)], tmp_path / "x", fractions=(0.0, 0.0, 1.0)))
    return tmp_path / "x"


def test_better_model_is_accepted_worse_refused(export):
    held = load_exported(export, "test")
    assert len(held) == 6
    perfect = Fake("perfect", held, lambda c, i: True)
    blind = Fake("blind", held, lambda c, i: c != "rbc" or i % 2 == 0)  # misses half the red cells
    seen = []
    g = run_job(regression_gate(blind, perfect, export), seen.append)
    assert g.accepted and "held-out score +" in g.reason
    assert g.value("held-out: score") == pytest.approx(1.0) and g.value("held-out: score", "old") < 0.9
    assert g.value("held-out: rbc count acc", "old") == pytest.approx(0.5, abs=0.1)
    assert all(abs(d - (n - o)) < 1e-12 for _, o, n, d in g.rows)
    assert seen[-1].fraction == 1.0 and all(0 <= p.fraction <= 1 for p in seen)
    g2 = run_job(regression_gate(perfect, blind, held))
    assert not g2.accepted and "worse on the held-out images" in g2.reason
    text = g2.format_table()
    assert "REFUSED" in text and "held-out: rbc F1" in text and "old = perfect, new = blind" in text
    assert g2.as_dict()["rows"][0]["metric"] == "held-out: score"
    assert "only" not in g2.reason  # six held-out images: no caveat
    g3 = run_job(regression_gate(perfect, blind, held[:2]))
    assert "judged on 2 held-out images only" in g3.reason


def test_reference_set_and_minimum_gain(export):
    held = load_exported(export, "test")
    a, b = held[:3], held[3:]
    on_a = Fake("good-on-a", held, lambda c, i: True)
    # better on a (the held-out part), but it loses platelets everywhere else
    mixed = Fake("mixed", held, lambda c, i: True)
    mixed.boxes = {k: (v if any(str(s.path) == k for s in a) else {**v, "platelet": v["platelet"][:0]})
                   for k, v in mixed.boxes.items()}
    g = run_job(regression_gate(on_a, mixed, a, reference_items=b))
    assert not g.accepted and "reference set" in g.reason
    assert any(m.startswith("reference: platelet") for m, *_ in g.rows)
    g = run_job(regression_gate(on_a, on_a, a, min_gain=0.01))
    assert not g.accepted and "below the required" in g.reason
    assert run_job(regression_gate(on_a, on_a, a)).accepted  # equal is not worse


def test_no_items_cancel_and_summary(export):
    held = load_exported(export, "test")
    perfect = Fake("p", held, lambda c, i: True)
    with pytest.raises(CellviewerError, match="no held-out images"):
        run_job(regression_gate(perfect, perfect, []))
    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        run_job(regression_gate(perfect, perfect, held, cancel=tok))
    s = summarize({c: {"n_true": 0, "n_pred": 0, "count_accuracy": float("nan"), "f1": 0.0}
                   for c in ("rbc", "wbc", "platelet")})
    assert s == {"score": 0.0}


def test_a_reference_export_is_scored_whole_not_only_its_test_split(export, tmp_path):
    held = load_exported(export, "test")
    run_job(export_training_set([random_doc(i) for i in range(6, 9)], tmp_path / "ref", fractions=(1.0, 0.0, 0.0)))
    ref = load_exported(tmp_path / "ref")
    assert ref and all(s.split == "train" for s in ref)  # no test split at all
    perfect = Fake("p", held + ref, lambda c, i: True)
    seen = []
    g = run_job(regression_gate(perfect, perfect, held, reference_items=tmp_path / "ref"), seen.append)
    assert any(m.startswith("reference: ") for m, *_ in g.rows) and "reference +0.00" in g.reason
    assert sum("reference" in p.message for p in seen) >= 2 * len(ref)
    csv = tmp_path / "ref" / "images.csv"
    csv.write_text(csv.read_text().splitlines()[0] + "\n")  # an export without images: an error, never skipped
    with pytest.raises(CellviewerError, match="reference set .* has no images"):
        run_job(regression_gate(perfect, perfect, held, reference_items=tmp_path / "ref"))
    with pytest.raises(CellviewerError, match="reference set has no images"):
        run_job(regression_gate(perfect, perfect, held, reference_items=[]))
