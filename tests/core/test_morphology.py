"""Red-cell morphology: crops, scores, classification of a result's markers, hand corrections, outputs."""

from __future__ import annotations

import numpy as np
import pytest

from cellviewer.core import morphology as MO
from cellviewer.core import morphdata as MD
from cellviewer.core import morphtrain as MT
from cellviewer.core.document import Document, ImageData, Marker
from cellviewer.core.errors import EditError


def _doc(markers, path=None) -> Document:
    from cellviewer.core.document import ImageInfo

    img = np.full((40, 50, 3), 200, np.uint8)
    doc = Document(ImageData(img, ImageInfo(path=None if path is None else str(path), width=50, height=40,
                                            sha256="abc")))
    doc.labels["rbc"][5:15, 5:15] = 1
    doc.markers = {m.id: m for m in markers}
    return doc


def test_crops_are_centred_scaled_and_mirrored_at_the_edge():
    img = np.zeros((100, 120, 3), np.uint8)
    img[40:60, 50:70] = 255  # a 20-px square centred on (60, 50)
    crops = MO.cell_crops(img, np.array([[60.0, 50.0], [0.0, 0.0]]), diameter=20.0, px=32, diameters=2.0)
    assert crops.shape == (2, 32, 32, 3) and crops.dtype == np.uint8
    # 2 diameters = 40 input px -> 32 px: the square is 16 px wide, in the middle
    on = np.nonzero(crops[0, :, :, 0] > 127)
    assert on[0].min() == 8 and on[0].max() == 23 and on[1].min() == 8 and on[1].max() == 23
    assert crops[1].max() == 0  # the corner: mirrored black, no garbage
    assert MO.cell_crops(img, np.zeros((0, 2)), 20.0).shape == (0, MO.CROP_PX, MO.CROP_PX, 3)


def test_white_balance_makes_the_background_neutral_and_grey_crops_keep_luminance():
    img = np.full((50, 60, 3), (250, 220, 200), np.uint8)  # a warm lamp
    img[10:30, 10:30] = (150, 90, 110)  # a cell
    wb = MO.white_balance(img)
    assert np.abs(wb[0, 0].astype(int) - 235).max() <= 1  # float gains, truncated to uint8
    assert abs(int(wb[20, 20, 0]) - 150 * 235 / 250) <= 1 and abs(int(wb[20, 20, 1]) - 90 * 235 / 220) <= 1
    g = MO.to_grey(img[None])
    assert g.shape == (1, 50, 60, 3) and (g[..., 0] == g[..., 2]).all()
    assert abs(int(g[0, 0, 0, 0]) - round(0.299 * 250 + 0.587 * 220 + 0.114 * 200)) <= 1


def test_scores_match_a_hand_computed_case():
    true = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    s = MT.scores(true, pred, 4, names=("a", "b", "c", "d"))
    assert s["accuracy"] == pytest.approx(4 / 6)
    # recalls: a 2/3, b 1/2, c 1/1 (d absent: not averaged)
    assert s["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # precisions: a 2/2, b 1/2, c 1/2 -> F1 a 0.8, b 0.5, c 2/3
    assert s["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert s["per_class"]["d"]["support"] == 0 and s["confusion"][0] == [2, 1, 0, 0]


def test_every_red_cell_marker_gets_a_class_and_only_red_cells(tmp_path):
    import torch

    from cellviewer.nets.registry import create_net

    torch.manual_seed(0)
    net = create_net("cell-cnn", n_classes=len(MO.CLASSES), widths=[4, 8]).eval()
    card = {"classes": list(MO.CLASSES), "crop_px": 24, "crop_diameters": 2.0}
    markers = [Marker(1, "rbc", 10, 10), Marker(2, "wbc", 30, 20), Marker(3, "rbc", 45, 35)]
    img = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    assert MO.classify_cells(img, markers, 12.0, model=(net, card)) == 2
    assert markers[0].morph in MO.CLASSES and 0 < markers[0].morph_p <= 1
    assert markers[1].morph == "" and markers[1].morph_p == 0.0
    counts = MO.morphology_counts(markers)
    assert sum(counts.values()) == 2
    # with the red-cell labels, a cell cut by the image edge is left unclassified (its shape is not its own)
    labels = np.zeros((40, 50), np.int32)
    labels[5:15, 5:15] = 1
    labels[30:40, 40:50] = 2  # touches the bottom and right edges
    fresh = [Marker(1, "rbc", 10, 10, cell=1), Marker(3, "rbc", 45, 35, cell=2)]
    assert MO.classify_cells(img, fresh, 12.0, model=(net, card), labels=labels) == 1
    assert fresh[0].morph in MO.CLASSES and fresh[1].morph == ""
    # ... and so is a cell cut by the edge of the field of view inside the image (here a black strip, as
    # outside a microscope's field stop)
    stopped = img.copy()
    stopped[:, 35:] = 0
    labels[30:40, 40:50] = 0
    labels[15:25, 25:35] = 2
    fresh = [Marker(1, "rbc", 10, 10, cell=1), Marker(3, "rbc", 30, 20, cell=2)]
    assert MO.classify_cells(stopped, fresh, 12.0, model=(net, card), labels=labels) == 1
    assert fresh[0].morph in MO.CLASSES and fresh[1].morph == ""
    # ... and a marker placed by hand (no mask) gets none either: its crop may be background
    fresh = [Marker(1, "rbc", 10, 10, cell=1), Marker(4, "rbc", 20, 30, origin="manual")]
    assert MO.classify_cells(img, fresh, 12.0, model=(net, card), labels=labels) == 1
    assert fresh[0].morph in MO.CLASSES and fresh[1].morph == ""


def test_a_missing_model_says_how_to_get_one(monkeypatch, tmp_path):
    from cellviewer.core import netsegment
    from cellviewer.core.errors import ModelLoadError

    monkeypatch.setattr(netsegment, "model_dirs", lambda: [tmp_path])
    assert MO.find_card() is None
    with pytest.raises(ModelLoadError, match="morphology"):
        MO.load_model()


def test_setting_a_morphology_by_hand_is_one_undo_step():
    from cellviewer.core.operations import reclassify_marker, set_morphology

    doc = _doc([Marker(1, "rbc", 10, 10, cell=1, morph="normal", morph_p=0.6)])
    edit = set_morphology(doc, 1, "spherocyte")
    edit.apply(doc)
    assert (doc.markers[1].morph, doc.markers[1].morph_p) == ("spherocyte", 1.0)
    assert doc.markers[1].origin == "auto"  # the cell itself was not touched
    edit.revert(doc)
    assert (doc.markers[1].morph, doc.markers[1].morph_p) == ("normal", 0.6)
    with pytest.raises(EditError, match="Unknown"):
        set_morphology(doc, 1, "banana")
    # a red cell that becomes a white cell loses its morphology
    e2 = reclassify_marker(doc, 1, "wbc")
    e2.apply(doc)
    m = next(iter(doc.markers.values()))
    assert m.cls == "wbc" and m.morph == "" and m.morph_p == 0.0
    with pytest.raises(EditError, match="red cells"):
        set_morphology(doc, m.id, "normal")


def test_morphology_survives_the_sidecar_and_reaches_the_report(tmp_path):
    from cellviewer.core import report as R
    from cellviewer.core import sidecar

    image = tmp_path / "x.png"
    image.write_bytes(b"placeholder")  # the sidecar never reads the image bytes
    doc = _doc([Marker(1, "rbc", 10, 10, cell=1, morph="target_cell", morph_p=0.8125),
                Marker(2, "rbc", 30, 30, origin="manual")], image)
    meta, arrays = sidecar.read_sidecar(sidecar.save_sidecar(doc))
    back = _doc([], image)
    assert sidecar.apply_sidecar(back, meta, arrays) == []
    assert back.markers[1].morph == "target_cell" and back.markers[1].morph_p == pytest.approx(0.8125)
    assert back.markers[2].morph == ""
    rows = R.cell_rows(back, "x.png")
    assert [r["morphology"] for r in rows] == ["target_cell", ""]
    assert rows[0]["morphology_p"] == pytest.approx(0.8125) and rows[1]["morphology_p"] == ""
    assert R.differential(back)["RBC morphology: target cell"] == "100.0 % (1)"


@pytest.fixture
def tiny_chula(tmp_path):
    """``DATA/chula_rbc12``: 24 fields of pale discs, big (class 1) or small (class 2) — every split gets images."""
    import cv2

    root = tmp_path / "data"
    folder = root / "chula_rbc12"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows, pts = ["image,width,height,n_points,source_file"], ["image,cls_id,cls_name,x,y"]
    for i in range(24):
        name = f"{i}.jpg"
        img = np.full((160, 200, 3), (235, 225, 215), np.uint8)
        for k, (x, y) in enumerate([(40, 40), (120, 50), (60, 110), (150, 120)]):
            big = (i + k) % 2 == 0
            cv2.circle(img, (x, y), 18 if big else 11, (200, 120, 130), -1)
            pts.append(f"{name},{1 if big else 2},{'macrocyte' if big else 'microcyte'},{x},{y}")
        img = np.clip(img.astype(int) + rng.integers(-5, 6, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / "images" / name), img[..., ::-1])
        rows.append(f"{name},200,160,4,{name}")
    (folder / "images.csv").write_text("\n".join(rows) + "\n")
    (folder / "points.csv").write_text("\n".join(pts) + "\n")
    return root


def test_training_keeps_the_best_epoch_scores_test_and_loads(tiny_chula, tmp_path):
    from cellviewer.core.jobs import run_job

    cfg = MT.MorphConfig(out=str(tmp_path / "m"), data_root=str(tiny_chula), widths=[4, 8], crop_px=24,
                         epochs=3, max_minutes=5, batch_size=8, threads=1, grey=True)
    seen = []
    card = run_job(MT.train_morphology(cfg, command="test"), seen.append)
    assert seen[-1].fraction == 1.0 and any("val macro F1" in p.message for p in seen)
    assert card["task"] == MO.TASK and card["classes"] == list(MO.CLASSES) and card["crop_px"] == 24
    test = card["metrics"]["test"]
    assert test["n"] == card["training_data"]["n_test_cells"] > 0 and 0 <= test["accuracy"] <= 1
    assert len(card["training"]["history"]) == 3
    net, card2 = MO.load_model(tmp_path / "m.json")
    assert card2["sha256"] == card["sha256"]
    assert card2["grey"] is True and card2["white_balance"] is True and card2["crop_scale"] == "estimate"
    x, y, _, _ = MD.load_crops("test", tiny_chula, crop_px=24, white_balance=True)
    again = MT.evaluate_net(net, x, y, 24, grey=True)
    assert again == test  # the card scores the stored float16 weights


def test_the_morphology_card_is_not_a_segmenter(tmp_path, monkeypatch):
    import json

    from cellviewer.core import netsegment

    (tmp_path / "m.json").write_text(json.dumps({"architecture": "cell-cnn", "task": MO.TASK, "name": "m"}))
    (tmp_path / "m.safetensors").write_bytes(b"")
    monkeypatch.setattr(netsegment, "model_dirs", lambda: [tmp_path])
    monkeypatch.setattr("cellviewer.core.modelstore.active_cards", lambda: {})
    assert "m" not in netsegment.find_models()


def test_shipped_model_classifies_the_sample_red_cells():
    """With the shipped model: the default segmenter gives every red cell of the sample a class."""
    if MO.find_card() is None:
        pytest.skip("models/rbc-morphology is not installed")
    from cellviewer.core.jobs import run_job
    from cellviewer.core.io import read_image
    from cellviewer.core.resources import sample_image
    from cellviewer.core.segment import create_segmenter

    img = read_image(sample_image()).pixels
    res = run_job(create_segmenter("blood-cells").segment(img))
    from cellviewer.core.countframe import edge_flags

    cut = set(edge_flags(res.labels["rbc"]))
    rbcs = [m for m in res.markers if m.cls == "rbc"]
    whole = [m for m in rbcs if m.cell not in cut]
    assert whole and all(m.morph in MO.CLASSES and 0 < m.morph_p <= 1 for m in whole)
    assert all(m.morph == "" for m in rbcs if m.cell in cut)
    # the sample is a smear of an ordinary patient: most of its whole red cells are normal
    assert sum(m.morph == "normal" for m in whole) > 0.5 * len(whole)
    assert all(m.morph == "" for m in res.markers if m.cls != "rbc")
    assert res.params["morphology"].startswith(MO.MODEL_NAME)
    off = run_job(create_segmenter("blood-cells", morphology=False).segment(img))
    assert all(m.morph == "" for m in off.markers)


def test_healthy_donor_red_cells_are_whole_cells_labelled_normal():
    from tests.conftest import DATA

    if not (DATA / "txl_pbc" / "annotations.csv").is_file():
        pytest.skip("the shared TXL-PBC data is absent")
    x, y = MD.load_pbc_normals("val", 40, DATA, crop_px=24)
    assert len(x) == 40 and x.shape[1:] == (30, 30, 3) and (y == MO.CLASSES.index("normal")).all()


def test_crops_are_cut_at_the_estimate_or_at_the_segmenters_size():
    from cellviewer.core.cellsize import estimate_rbc_diameter
    from cellviewer.core.errors import OptionError
    from cellviewer.core.io import read_image
    from cellviewer.core.jobs import run_job
    from cellviewer.core.resources import sample_image
    from cellviewer.core.segment import create_segmenter

    img = read_image(sample_image()).pixels
    assert MD.crop_diameter(img) == estimate_rbc_diameter(img)[0]
    seg = run_job(create_segmenter("blood-cells", morphology=False).segment(img))
    assert MD.crop_diameter(img, "segmenter") == pytest.approx(seg.params["diameter_px"])
    with pytest.raises(OptionError, match="crop scale"):
        MD.crop_diameter(img, "guess")


def test_the_installed_model_is_described_with_its_test_numbers():
    import json
    from pathlib import Path

    card_path = MO.find_card()
    if card_path is None:
        pytest.skip("no morphology model installed")
    card = json.loads(Path(card_path).read_text())
    text = MO.describe_installed()
    assert text.startswith(f"{card['name']} (red-cell morphology") and f"version {card['version']}" in text
    test = card["metrics"]["test"]
    assert f"test split ({test['n']} cells): accuracy {100 * test['accuracy']:.2f} %" in text
    e2e = (card["metrics"].get("end_to_end") or {}).get("test")
    assert e2e is None or f"end to end ({e2e['cells']} cells): accuracy {100 * e2e['accuracy']:.2f} %" in text


def test_classifying_again_with_a_calibration_keeps_hand_set_classes_and_is_one_undoable_edit():
    from dataclasses import replace

    from cellviewer.core import edits
    from cellviewer.core.document import Document
    from cellviewer.core.io import read_image
    from cellviewer.core.jobs import run_job
    from cellviewer.core.resources import sample_image
    from cellviewer.core.segment import create_segmenter

    if MO.find_card() is None or sample_image() is None:
        pytest.skip("no morphology model or sample installed")
    try:
        seg = create_segmenter("blood-cells", device="cpu")
    except Exception:  # noqa: BLE001 - no trained segmenter in this checkout
        pytest.skip("blood-cells is not installed")
    if not (MO.load_model()[1].get("size_prior")):
        pytest.skip("the installed morphology model has no size prior")
    img = read_image(sample_image())
    doc = Document(img)
    doc.set_result(run_job(seg.segment(img.pixels)))
    classed = [m for m in doc.markers.values() if m.morph]
    hand = classed[0]
    doc.markers[hand.id] = replace(hand, morph="target_cell", morph_p=1.0)
    before = {m.id: (m.morph, m.morph_p) for m in doc.markers.values()}
    d = doc.provenance.params["diameter_px"]
    changes = run_job(MO.reclassify_job(img.pixels, list(doc.markers.values()), doc.labels["rbc"], d, 0.13))
    assert hand.id not in changes and changes  # 14-um cells: macrocytes
    assert sum(c == "macrocyte" for c, _p in changes.values()) >= len(classed) // 2
    h = edits.History(doc)
    h.push(edits.set_morphologies(doc, changes))
    assert doc.markers[hand.id].morph == "target_cell" and doc.provenance.edits[-1].action == "Classify red cells again"
    assert doc.n_manual_edits == 0  # a model run the user asked for, not a manual correction
    h.undo()
    assert {m.id: (m.morph, m.morph_p) for m in doc.markers.values()} == before
    from cellviewer.core.errors import EditError

    with pytest.raises(EditError, match="No red-cell class changes"):
        edits.set_morphologies(doc, {})


def test_white_balance_equals_the_plain_formula_pixel_by_pixel():
    rng = np.random.default_rng(3)
    for img in (rng.integers(0, 256, (37, 53, 3), dtype=np.uint8), np.full((9, 7, 3), 2, np.uint8)):
        lum = img.astype(np.float32).mean(axis=2)
        bg = np.maximum(np.median(img[lum >= np.percentile(lum, 90)].reshape(-1, 3), axis=0).astype(np.float32), 1.0)
        plain = np.clip(img.astype(np.float32) * (235.0 / bg), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(MO.white_balance(img), plain)
