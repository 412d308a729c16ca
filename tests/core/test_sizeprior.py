"""The morphology size prior: measured cell sizes in µm weigh in the class, only with a calibration."""

import math

import numpy as np
import pytest

from cellviewer.core import morphology as MO
from cellviewer.core import sizeprior as SP
from cellviewer.core.document import Marker

#: two classes: small cells around 6 µm, large ones around 9 µm (log-µm spread 0.1), full weight
PRIOR = {"classes": ["small", "large"], "mean_log_um": [math.log(6.0), math.log(9.0)], "sd_log_um": [0.1, 0.1],
         "weight": 1.0}


def test_equivalent_diameters_of_label_ids():
    lab = np.zeros((20, 20), np.int32)
    lab[0:10, 0:10] = 1  # 100 px
    lab[12:16, 12:16] = 3  # 16 px
    d = SP.equivalent_diameters(lab, [1, 3, 0, 2, 7])
    assert d[0] == pytest.approx(2 * math.sqrt(100 / math.pi))
    assert d[1] == pytest.approx(2 * math.sqrt(16 / math.pi))
    assert np.isnan(d[2:]).all()  # no cell, an id without pixels, an id beyond the labels


def test_log_likelihood_matches_a_hand_computed_case():
    ll = SP.log_likelihood(np.array([6.0, np.nan, 9.0]), PRIOR)
    z = (math.log(6.0) - math.log(9.0)) / 0.1  # -4.055: the large class's z for a 6 µm cell
    assert ll[0] == pytest.approx([0.0, -0.5 * z * z])
    assert ll[1] == pytest.approx([0.0, 0.0])  # no size: no evidence
    assert ll[2] == pytest.approx([-0.5 * z * z, 0.0])
    half = SP.log_likelihood(np.array([6.0]), dict(PRIOR, weight=0.5))
    assert half[0] == pytest.approx([0.0, -0.25 * z * z])


def test_apply_moves_an_unsure_cell_by_its_size_and_leaves_unsized_cells_alone():
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4]], np.float32)
    out = SP.apply(probs, np.array([9.0, 9.0, np.nan]), dict(PRIOR, weight=0.5))
    assert out.argmax(1).tolist() == [1, 1, 0]
    assert np.allclose(out.sum(1), 1.0)
    assert out[2] == pytest.approx(probs[2], abs=1e-6)
    # log p + w·ll, renormalised: the second row by hand
    z2 = ((math.log(9.0) - math.log(6.0)) / 0.1) ** 2
    a, b = math.log(0.9) - 0.25 * z2, math.log(0.1)
    assert out[1, 1] == pytest.approx(math.exp(b) / (math.exp(a) + math.exp(b)), rel=1e-4)


def test_fit_pools_rare_classes_and_calibration_puts_normal_cells_at_7_5_um():
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.normal(7.5, 0.4, 200), rng.normal(9.5, 0.4, 50), [6.0] * 3])
    y = np.array([0] * 200 + [1] * 50 + [2] * 3)
    prior = SP.fit(d, y, ["normal", "macrocyte", "rare"], weight=0.5)
    assert prior["cells"] == [200, 50, 3] and prior["weight"] == 0.5
    assert math.exp(prior["mean_log_um"][0]) == pytest.approx(7.5, abs=0.1)
    assert math.exp(prior["mean_log_um"][1]) == pytest.approx(9.5, abs=0.2)
    assert prior["mean_log_um"][2] == pytest.approx(np.log(d).mean(), abs=1e-4)  # too few: no size evidence
    # one spread for all: the pooled within-class standard deviation of log size (rare class left out)
    lu = np.log(d)
    ss = ((lu[:200] - lu[:200].mean()) ** 2).sum() + ((lu[200:250] - lu[200:250].mean()) ** 2).sum()
    assert prior["sd_log_um"] == pytest.approx([math.sqrt(ss / 248)] * 3, abs=1e-5)
    assert SP.calibration_from_normals(np.full(20, 44.0), np.zeros(20, int)) == pytest.approx(7.5 / 44.0)
    with pytest.raises(ValueError, match="at least"):
        SP.calibration_from_normals(np.full(3, 44.0), np.zeros(3, int))


def _uniform_model():
    import torch

    from cellviewer.nets.registry import create_net

    net = create_net("cell-cnn", n_classes=len(MO.CLASSES), widths=[4]).eval()
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.bias.zero_()  # every class equally likely: only the size can decide
    k = {c: i for i, c in enumerate(MO.CLASSES)}
    mean = [math.log(7.5)] * len(MO.CLASSES)
    mean[k["macrocyte"]], mean[k["microcyte"]] = math.log(9.5), math.log(6.0)
    prior = {"classes": list(MO.CLASSES), "mean_log_um": mean, "sd_log_um": [0.08] * len(MO.CLASSES),
             "weight": 1.0}
    card = {"classes": list(MO.CLASSES), "crop_px": 24, "crop_diameters": 2.0, "size_prior": prior}
    return net, card


def test_classify_cells_uses_the_size_only_with_a_calibration():
    pytest.importorskip("torch")
    model = _uniform_model()
    img = np.full((80, 120, 3), 200, np.uint8)
    lab = np.zeros((80, 120), np.int32)
    yy, xx = np.mgrid[:80, :120]
    lab[(yy - 40) ** 2 + (xx - 30) ** 2 <= 19 ** 2] = 1  # 38 px across: 9.5 µm at 0.25 µm/px
    lab[(yy - 40) ** 2 + (xx - 90) ** 2 <= 12 ** 2] = 2  # 24 px: 6 µm

    def run(um):
        ms = [Marker(1, "rbc", 30, 40, cell=1), Marker(2, "rbc", 90, 40, cell=2), Marker(3, "rbc", 60, 10)]
        assert MO.classify_cells(img, ms, 30.0, model=model, labels=lab, um_per_px=um) == 2
        return [m.morph for m in ms]

    assert run(0.25) == ["macrocyte", "microcyte", ""]  # the mask-less marker: no outline, no class
    assert run(None) == ["normal", "normal", ""]
    assert MO.uses_size_prior(model[1], 0.25) is not None and MO.uses_size_prior(model[1], None) is None
    other = dict(model[1], size_prior=dict(model[1]["size_prior"], classes=["a", "b"]))
    assert MO.uses_size_prior(other, 0.25) is None  # a prior of other classes is never applied


def test_a_calibration_alone_keeps_the_estimated_scale(tmp_path):
    torch = pytest.importorskip("torch")
    from cellviewer.core import netsegment as NS
    from cellviewer.core.errors import SegmentationError
    from cellviewer.nets.checkpoint import save_checkpoint
    from cellviewer.nets.registry import create_net

    torch.manual_seed(0)
    net = create_net("do-unet", n_classes=4, base=4, depth=2, edge=True)
    save_checkpoint(net, tmp_path / "tiny", {"name": "tiny", "classes": ["background", "rbc", "wbc", "platelet"],
                                             "working_scale": 16}, half=True)
    seg = NS.NetSegmenter(tmp_path / "tiny", device="cpu", um_per_px=0.2)
    assert seg.diameter_px is None and seg.um_per_px == 0.2
    fixed = NS.NetSegmenter(tmp_path / "tiny", device="cpu", um_per_px=0.2, diameter_um=8.0)
    assert fixed.diameter_px == pytest.approx(40.0)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(SegmentationError, match="µm per pixel"):
            NS.NetSegmenter(tmp_path / "tiny", device="cpu", um_per_px=bad)


def test_far_out_sizes_go_to_the_smallest_or_largest_class():
    """One shared spread: the evidence is linear in log size, so a cell beyond every class mean goes to the
    class with the extreme mean, not to the class with the broadest spread."""
    prior = {"classes": ["micro", "normal", "broad", "macro"], "weight": 1.0,
             "mean_log_um": [math.log(6.2), math.log(7.5), math.log(7.0), math.log(9.6)], "sd_log_um": [0.08] * 4}
    uniform = np.full((2, 4), 0.25)
    assert SP.apply(uniform, np.array([3.0, 20.0]), prior).argmax(1).tolist() == [0, 3]


def test_the_shipped_size_prior_matches_the_card_classes_and_chula_calibration():
    import json

    from cellviewer.core.datasets import UM_PER_PX

    path = MO.find_card()
    if path is None:
        pytest.skip("no morphology model installed")
    card = json.loads(path.read_text(encoding="utf-8"))
    prior = card.get("size_prior")
    if prior is None:
        pytest.skip("the installed morphology model has no size prior")
    assert prior["classes"] == card["classes"] and 0 < prior["weight"] <= 2
    assert prior["calibration_um_per_px"] == pytest.approx(UM_PER_PX["chula"], abs=5e-4)
    k = {c: i for i, c in enumerate(card["classes"])}
    mean_um = np.exp(prior["mean_log_um"])
    assert mean_um[k["microcyte"]] < mean_um[k["normal"]] < mean_um[k["macrocyte"]]


def test_an_implausible_calibration_is_named():
    lab = np.zeros((100, 200), np.int32)
    yy, xx = np.mgrid[:100, :200]
    for i, cx in enumerate((30, 80, 130), 1):
        lab[(yy - 50) ** 2 + (xx - cx) ** 2 <= 20 ** 2] = i  # 41 px across
    assert SP.calibration_warning(lab, 7.5 / 41) is None  # 7.5 µm
    w = SP.calibration_warning(lab, 0.45)  # 18 µm: a calibration of another microscope
    assert w.startswith("the whole red cells measure 18.") and "check the calibration" in w
    assert "measure 3.6 µm" in SP.calibration_warning(lab, 0.09)  # equivalent diameter of the disc: 40.2 px
    lab[lab == 3] = 0
    assert SP.calibration_warning(lab, 0.45) is None  # too few whole cells to say


def test_an_automatic_class_never_looks_set_by_hand():
    """morph_p = 1 marks a class a person set; however sure, a model's class stays below it."""
    pytest.importorskip("torch")
    net, card = _uniform_model()
    card = dict(card, size_prior=dict(card["size_prior"], weight=50.0))  # overwhelming size evidence
    img = np.full((80, 120, 3), 200, np.uint8)
    lab = np.zeros((80, 120), np.int32)
    yy, xx = np.mgrid[:80, :120]
    lab[(yy - 40) ** 2 + (xx - 30) ** 2 <= 19 ** 2] = 1
    ms = [Marker(1, "rbc", 30, 40, cell=1)]
    MO.classify_cells(img, ms, 30.0, model=(net, card), labels=lab, um_per_px=0.25)
    assert ms[0].morph == "macrocyte" and ms[0].morph_p == MO.AUTO_P_MAX < 1.0


def test_set_morphologies_keeps_hand_decisions_and_carries_the_calibration():
    from cellviewer.core import edits
    from cellviewer.core.document import ImageData, ImageInfo, Document

    doc = Document(ImageData(np.zeros((10, 10, 3), np.uint8), ImageInfo(None, 10, 10)))
    doc.markers = {1: Marker(1, "rbc", 2, 2, morph="normal", morph_p=0.7),
                   2: Marker(2, "rbc", 5, 5, morph="", morph_p=1.0),  # cleared by hand: a decision
                   3: Marker(3, "rbc", 7, 7, morph="spherocyte", morph_p=1.0)}  # set by hand
    h = edits.History(doc)
    h.push(edits.set_morphologies(doc, {1: ("macrocyte", 0.9), 2: ("microcyte", 0.8), 3: ("normal", 0.6)},
                                  um_per_px=0.17))
    assert [doc.markers[i].morph for i in (1, 2, 3)] == ["macrocyte", "", "spherocyte"] and doc.um_per_px == 0.17
    h.undo()
    assert doc.markers[1].morph == "normal" and doc.um_per_px is None
