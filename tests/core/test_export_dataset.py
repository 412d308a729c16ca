"""Export of reviewed corrections: shared layout round-trips, COCO polygons, tiling, skipping, cancel."""

import csv
import json

import cv2
import numpy as np
import pytest

from cellviewer.core import datasets as D
from cellviewer.core.errors import Cancelled, CellviewerError
from cellviewer.core.export_dataset import export_training_set, split_for
from cellviewer.core.export_read import load_exported, read_labels
from cellviewer.core.jobs import CancelToken, run_job
from tests.synthdocs import disc_doc, random_doc


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_shared_layout_round_trips_and_skips_unreviewed(tmp_path):
    docs = [random_doc(i) for i in range(5)] + [random_doc(9, reviewed=False)]
    res = run_job(export_training_set(docs, tmp_path / "x"))
    assert res.n_images == 5 and res.skipped == [("/nowhere/synth_9.png", "not marked reviewed")]
    assert set(res.splits) == {"train", "val", "test"} and sum(res.splits.values()) == 5
    assert res.n_cells == {c: sum(d.counts()[c] for d in docs[:5]) for c in ("rbc", "wbc", "platelet")}
    samples = D.load_samples("export", tmp_path / "x")
    assert [s.image_id for s in samples] == [f"synth_{i}.png" for i in range(5)]
    for s, doc in zip(samples, docs):
        labels = read_labels(s)
        for c in ("rbc", "wbc", "platelet"):  # the instance labels come back exactly
            assert np.array_equal(labels[c], doc.labels[c])
            assert len(s.boxes[c]) == len(np.unique(doc.labels[c])) - 1
        px = cv2.imread(str(s.path))[..., ::-1]
        assert np.array_equal(px, doc.image.pixels)
        cmap = cv2.imread(str(tmp_path / "x" / "masks" / s.image_id), cv2.IMREAD_GRAYSCALE)
        assert set(np.unique(cmap)) <= {0, 1, 2, 3} and (cmap == 3).sum() == (doc.labels["platelet"] > 0).sum()
        edge = cv2.imread(str(tmp_path / "x" / "edges" / s.image_id), cv2.IMREAD_GRAYSCALE)
        assert edge.any() and not (edge & (cmap == 0)).any()  # edges lie inside cells
    markers = _rows(tmp_path / "x" / "markers.csv")
    assert len(markers) == sum(len(d.markers) for d in docs[:5])
    # training reads the real masks (not box ellipses) at the working scale, with an edge target
    it = D.working_item(samples[0], 32.0)
    assert it["image"].shape[:2] == it["classmap"].shape == it["edge"].shape
    assert set(np.unique(it["classmap"])) <= {0, 1, 2, 3} and it["edge"].any()
    assert [s.split for s in load_exported(tmp_path / "x", "test")] == ["test"] * res.splits["test"]


def test_coco_polygons_cover_the_cells(tmp_path):
    doc = disc_doc([("rbc", 30, 30, 10, 0.9), ("rbc", 70, 40, 12, 0.4), ("wbc", 100, 60, 14, 0.8)])
    run_job(export_training_set([doc], tmp_path / "c", formats=("coco",)))
    coco = json.loads((tmp_path / "c" / "coco.json").read_text())
    assert not (tmp_path / "c" / "labels").exists()
    assert [c["name"] for c in coco["categories"]] == ["rbc", "wbc", "platelet"]
    assert len(coco["annotations"]) == 3 and coco["images"][0]["split"] in ("train", "val", "test")
    for a in coco["annotations"]:
        poly = np.asarray(a["segmentation"][0], np.float32).reshape(-1, 2)
        assert len(a["segmentation"]) == 1 and cv2.contourArea(poly) == pytest.approx(a["area"], rel=0.15)
        x, y, w, h = a["bbox"]
        assert poly[:, 0].min() >= x and poly[:, 0].max() <= x + w and poly[:, 1].max() <= y + h
    assert sorted(a["score"] for a in coco["annotations"]) == pytest.approx([0.4, 0.8, 0.9])


def test_tiles_renumber_cells_and_shift_markers(tmp_path):
    doc = random_doc(3, size=(96, 128))
    res = run_job(export_training_set([doc], tmp_path / "t", tile=48, reviewed_only=False))
    assert res.n_images == 2 * 3  # rows at 0, 48; columns at 0, 48, 80
    rows = _rows(tmp_path / "t" / "images.csv")
    assert {(int(r["x0"]), int(r["y0"])) for r in rows} == {(x, y) for x in (0, 48, 80) for y in (0, 48)}
    assert len({r["split"] for r in rows}) == 1  # tiles of one image stay in one split
    for s in load_exported(tmp_path / "t"):
        for c, lab in read_labels(s).items():
            ids = np.unique(lab)
            assert lab.shape == (48, 48) and list(ids) == list(range(len(ids)))
    for m in _rows(tmp_path / "t" / "markers.csv"):
        assert 0 <= float(m["x"]) < 48 and 0 <= float(m["y"]) < 48
        if int(m["cell"]):
            lab = cv2.imread(str(tmp_path / "t" / "labels" / f"{m['image'][:-4]}_{m['cls']}.png"), cv2.IMREAD_UNCHANGED)
            assert lab[int(float(m["y"])), int(float(m["x"]))] == int(m["cell"])


def test_image_paths_use_their_sidecars(tmp_path):
    from cellviewer.core.sidecar import load_document, save_sidecar

    src = random_doc(1)
    paths = []
    for name, reviewed in (("a.png", True), ("b.png", False), ("c.png", None)):
        p = tmp_path / name
        cv2.imwrite(str(p), src.image.pixels[..., ::-1])
        paths.append(p)
        if reviewed is not None:
            doc = load_document(p)
            doc.labels, doc.markers, doc.reviewed = src.labels, src.markers, reviewed
            save_sidecar(doc)
    res = run_job(export_training_set(paths, tmp_path / "out"))
    assert res.n_images == 1 and res.n_cells == src.counts()
    assert sorted(r for _, r in res.skipped) == ["no saved corrections (no sidecar)", "not marked reviewed"]
    res = run_job(export_training_set(paths, tmp_path / "out2", reviewed_only=False))
    assert res.n_images == 2


def test_split_is_stable_and_never_leaves_a_part_empty():
    names = [f"img{i}.png" for i in range(10)]
    s = split_for(names)
    assert s == split_for(list(reversed(names)))
    assert sorted(s.values()).count("test") == 2 and sorted(s.values()).count("val") == 1
    assert set(split_for(names[:3]).values()) == {"train", "val", "test"}


def test_bad_options_and_cancel(tmp_path):
    with pytest.raises(CellviewerError, match="format"):
        run_job(export_training_set([], tmp_path, formats=("yolo",)))
    with pytest.raises(CellviewerError, match="tile"):
        run_job(export_training_set([], tmp_path, tile=4))
    tok = CancelToken()
    job = export_training_set([random_doc(i) for i in range(3)], tmp_path / "k", cancel=tok)
    next(job)
    tok.cancel()
    with pytest.raises(Cancelled):
        run_job(job)
    with pytest.raises(CellviewerError, match="not a cellviewer export"):
        load_exported(tmp_path)


def test_counts_are_markers_removed_counts_leave_their_outline_out(tmp_path):
    from cellviewer.core import operations as ops

    doc = disc_doc([("rbc", 20, 20, 8, 0.9), ("rbc", 60, 20, 8, 0.9), ("rbc", 100, 50, 10, 0.9),
                    ("wbc", 40, 65, 14, 0.8)])
    gone = doc.markers_of_cell("rbc", 2)[0]
    ops.remove_marker(doc, gone.id).apply(doc)  # "not a cell": its outline stays on screen, uncounted
    ops.add_marker(doc, "rbc", 103, 53).apply(doc)  # two red cells under the third outline
    assert doc.counts()["rbc"] == 3 and doc.labels["rbc"].max() == 3
    res = run_job(export_training_set([doc], tmp_path / "u"))
    assert res.uncounted == 1 and res.n_cells == doc.counts()
    boxes = _rows(tmp_path / "u" / "annotations.csv")
    assert sum(b["cls"] == "RBC" for b in boxes) == 3  # what the report counts
    s = D.load_samples("export", tmp_path / "u")[0]
    lab = read_labels(s)["rbc"]
    assert lab[20, 60] == 0 and lab[20, 20] > 0 and lab[50, 100] > 0  # the uncounted outline is background
    cmap = cv2.imread(str(tmp_path / "u" / "masks" / s.image_id), cv2.IMREAD_GRAYSCALE)
    assert cmap[20, 60] == 0 and cmap[20, 20] == 1
    assert doc.labels["rbc"][20, 60] == 2  # the document itself is untouched
    run_job(export_training_set([doc], tmp_path / "c", formats=("coco",)))
    coco = json.loads((tmp_path / "c" / "coco.json").read_text())
    assert sorted(a["category_id"] for a in coco["annotations"]) == [1, 1, 2]


def test_an_empty_image_no_model_looked_at_is_not_exported_as_having_no_cells(tmp_path):
    never = random_doc(3)
    never.labels = {k: np.zeros_like(v) for k, v in never.labels.items()}
    never.markers = {}
    never.provenance.model_name = ""
    checked = random_doc(4)  # segmented, and the reviewer agreed it holds no cells: a true empty field
    checked.labels = {k: np.zeros_like(v) for k, v in checked.labels.items()}
    checked.markers = {}
    checked.provenance.model_name = "blood-cells"
    res = run_job(export_training_set([never, checked, random_doc(5)], tmp_path / "x"))
    assert res.n_images == 2
    assert [(p, r.split(" —")[0]) for p, r in res.skipped] == [
        ("/nowhere/synth_3.png", "marked reviewed but never segmented and no cell drawn")]


def test_the_skip_reason_of_an_empty_unsegmented_image_says_reviewed_only_when_it_is(tmp_path):
    doc = random_doc(3, reviewed=False)
    doc.labels = {k: np.zeros_like(v) for k, v in doc.labels.items()}
    doc.markers = {}
    doc.provenance.model_name = ""
    res = run_job(export_training_set([doc, random_doc(5)], tmp_path / "x", reviewed_only=False))
    assert res.skipped[0][1].startswith("never segmented and no cell drawn")
