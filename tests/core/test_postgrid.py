"""core.postgrid: grid expansion and checks, applying settings, the objective, the prediction cache;
core.instances: the edge threshold that makes a seed."""

import numpy as np
import pytest

from cellviewer.core import postgrid as PG
from cellviewer.core.errors import OptionError
from cellviewer.core.instances import instances_from_probs
from cellviewer.core.jobs import run_job


class FakeSeg:
    def __init__(self):
        self.edge_threshold, self.fracs, self.border_fracs = {}, {"rbc": (0.04, 0.12)}, {}
        self.merge = {"rbc": (0.5, 0.4)}
        self.calls = 0

    def predict(self, image_small, cancel=None, log=None):
        self.calls += 1
        yield None
        return float(image_small.sum())


def test_expand_gives_every_combination_and_rejects_bad_keys():
    rows = PG.expand({"edge_threshold.rbc": [0.4, 0.5], "merge_fragments.rbc": [None, [0.5, 0.4], [0.6, 0.3]]})
    assert len(rows) == 6 and {"edge_threshold.rbc": 0.4, "merge_fragments.rbc": None} in rows
    with pytest.raises(OptionError, match="edge_threshold.rbc"):
        PG.expand({"edge.rbc": [0.5]})
    with pytest.raises(OptionError):
        PG.expand({"edge_threshold.monocyte": [0.5]})
    with pytest.raises(OptionError, match="non-empty"):
        PG.expand({"edge_threshold.rbc": []})


def test_apply_and_current_round_trip_with_defaults():
    seg = FakeSeg()
    keys = ["edge_threshold.rbc", "min_fracs.platelet", "merge_fragments.rbc", "border_fracs.platelet"]
    own = PG.current(seg, keys)
    assert own == {"edge_threshold.rbc": 0.5, "min_fracs.platelet": [0.008, 0.02],
                   "merge_fragments.rbc": [0.5, 0.4], "border_fracs.platelet": None}
    PG.apply(seg, {"edge_threshold.rbc": 0.6, "merge_fragments.rbc": None, "min_fracs.platelet": [0.01, 0.03]})
    assert seg.edge_threshold == {"rbc": 0.6} and "rbc" not in seg.merge and seg.fracs["platelet"] == (0.01, 0.03)
    PG.apply(seg, own)
    assert PG.current(seg, keys) == own


def test_objective_is_the_mean_of_count_accuracy_and_f1_in_percent():
    cls = {"count_accuracy": 0.9, "f1": 0.8}
    res = {"datasets": {"bccd": {c: cls for c in PG.CELLS},
                        "txl_pbc": {"rbc": {"count_accuracy": 1.0, "f1": 1.0}, "wbc": cls,
                                    "platelet": {"count_accuracy": float("nan"), "f1": 0.5}}}}
    score, nums = PG.objective(res)
    assert len(nums) == 11  # the NaN is left out
    assert score == pytest.approx((6 * 85 + 200 + 170 + 50) / 11)
    with pytest.raises(OptionError):
        PG.objective({"datasets": {"wbc_seg": {}}})


def test_cache_runs_each_distinct_image_once():
    seg = FakeSeg()
    PG.cache_predictions(seg)
    a, b = np.ones((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)
    assert run_job(seg.predict(a)) == 48.0 and run_job(seg.predict(a.copy())) == 48.0
    assert run_job(seg.predict(b)) == 0.0 and run_job(seg.predict(a[:2])) == 24.0
    assert seg.calls == 3


def test_edge_threshold_decides_which_faint_edge_splits_cells():
    h, w = 40, 60
    probs = np.zeros((4, h, w), np.float32)
    probs[0] = 1
    yy, xx = np.mgrid[:h, :w]
    for cx in (18, 34):
        disc = (yy - 20) ** 2 + (xx - cx) ** 2 <= 81
        probs[1][disc], probs[0][disc] = 1, 0
    edge = np.zeros((h, w), np.float32)
    edge[:, 25:27] = 0.4  # a faint line where the two cells touch
    classes = ["background", "rbc", "wbc", "platelet"]
    assert instances_from_probs(probs, edge, classes, 16)[0]["rbc"].max() == 1  # 0.4 < 0.5: no cut
    assert instances_from_probs(probs, edge, classes, 16, edge_threshold={"rbc": 0.3})[0]["rbc"].max() == 2
