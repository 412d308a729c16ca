"""Exporting into an earlier export merges (added / replaced / kept, splits kept, manifest updated); ignore
targets for markers without outlines and outlines shared by two cells; the segmentation's red-cell size."""

import csv
import json

import cv2
import numpy as np
import pytest

from cellviewer.core import datasets as D
from cellviewer.core import operations as ops
from cellviewer.core.errors import OptionError
from cellviewer.core.export_dataset import export_training_set
from cellviewer.core.export_merge import MANIFEST, new_stem
from cellviewer.core.export_read import load_exported
from cellviewer.core.jobs import run_job
from tests.synthdocs import disc_doc, random_doc


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _export(docs, out, **kw):
    return run_job(export_training_set(docs, out, merge=True, **kw))


def test_a_second_export_adds_replaces_and_keeps(tmp_path):
    out = tmp_path / "x"
    first = _export([random_doc(i) for i in range(4)], out)
    assert not first.merged and first.added == 4
    before = {r["image"]: r["split"] for r in _rows(out / "images.csv")}
    again = random_doc(2)
    gone = next(m for m in again.markers.values() if m.cls == "rbc")
    ops.remove_marker(again, gone.id).apply(again)  # corrected since: one red cell fewer
    res = _export([again, random_doc(4), random_doc(5)], out)
    assert res.merged and (res.added, res.replaced, res.kept) == (2, 1, 3)
    rows = _rows(out / "images.csv")
    assert sorted(r["image"] for r in rows) == [f"synth_{i}.png" for i in range(6)]
    assert all(before[r["image"]] == r["split"] for r in rows if r["image"] in before)  # no split changes
    n_rbc = {r["image"]: int(r["n_rbc"]) for r in rows}
    assert n_rbc["synth_2.png"] == random_doc(2).counts()["rbc"] - 1  # the new version replaced the old
    boxes = _rows(out / "annotations.csv")
    assert sum(b["image"] == "synth_2.png" and b["cls"] == "RBC" for b in boxes) == n_rbc["synth_2.png"]
    assert {m["image"] for m in _rows(out / "markers.csv")} == set(n_rbc)
    coco = json.loads((out / "coco.json").read_text())
    ids = [im["id"] for im in coco["images"]]
    assert sorted(ids) == list(range(1, 7)) and len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])
    assert {a["image_id"] for a in coco["annotations"]} <= set(ids)
    per_image = {im["file_name"]: sum(a["image_id"] == im["id"] for a in coco["annotations"]) for im in coco["images"]}
    assert per_image["synth_2.png"] == sum(b["image"] == "synth_2.png" for b in boxes)  # one annotation a cell
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["images"]) == set(n_rbc) and [h["added"] for h in manifest["history"]] == [4, 2]
    assert manifest["history"][-1]["replaced"] == 1 and manifest["images"]["synth_0.png"]["stem"] == "synth_0"
    assert len(load_exported(out)) == 6


def test_tiles_of_an_image_exported_again_replace_its_earlier_tiles(tmp_path):
    out = tmp_path / "t"
    _export([random_doc(0), random_doc(1)], out, tile=48)
    files = sorted(p.name for p in (out / "images").iterdir())
    (out / MANIFEST).unlink()  # an export made before the manifest: tiles are recognised by their names
    res = _export([random_doc(1)], out, tile=48)
    assert (res.added, res.replaced, res.kept) == (0, 4, 4)
    assert sorted(p.name for p in (out / "images").iterdir()) == files and len(_rows(out / "images.csv")) == 8
    with pytest.raises(OptionError, match="--tile 48"):
        _export([random_doc(2)], out)  # without tiles: refused, says how the folder was made


def test_other_formats_or_tiles_than_the_earlier_export_are_refused(tmp_path):
    out = tmp_path / "x"
    _export([random_doc(0)], out, formats=("shared",))
    with pytest.raises(OptionError, match="--format shared") as e:
        _export([random_doc(1)], out)
    assert e.value.exit_code == 2
    with pytest.raises(OptionError, match="--tile 32"):
        _export([random_doc(1)], out, formats=("shared",), tile=32)
    # without merging the folder is written as before (its lists name this export's images only)
    res = run_job(export_training_set([random_doc(1)], out))
    assert res.n_images == 1 and [r["image"] for r in _rows(out / "images.csv")] == ["synth_1.png"]


def test_a_new_stem_never_takes_an_earlier_image_s_name():
    used = {"a", "a_2"}
    assert new_stem("a", "sha256:x", None, used) == ("a_3", False) and "a_3" in used


def test_ignore_targets_for_markers_without_outlines_and_shared_outlines(tmp_path):
    doc = disc_doc([("rbc", 20, 20, 8, 0.9), ("rbc", 100, 50, 10, 0.9), ("wbc", 40, 65, 14, 0.8)])
    ops.add_marker(doc, "rbc", 103, 53).apply(doc)  # two red cells under the second outline
    ops.add_marker(doc, "rbc", 70, 20).apply(doc)  # a red cell counted on background, not outlined
    doc.provenance.params["diameter_px"] = 17.5  # the size the segmentation used
    res = _export([doc], tmp_path / "i")
    ignore = cv2.imread(str(tmp_path / "i" / "ignore" / "synth.png"), cv2.IMREAD_GRAYSCALE)
    assert ignore[50, 100] == 255 and ignore[20, 70] == 255  # the shared outline, the mask-less marker's disc
    assert ignore[20, 20] == 0 and ignore[65, 40] == 0 and res.ignored_px == int((ignore > 0).sum())
    s = D.load_samples("export", tmp_path / "i")[0]
    it = D.working_item(s, 16.0)  # scale ≈ 1: the ignore pixels are not taught
    cm = it["classmap"]
    assert (cm == D.IGNORE).any() and cm[int(20 * it["scale"]), int(20 * it["scale"])] == 1
    # the red-cell sizes: the one training uses and the segmentation's own, in the manifest and COCO
    manifest = json.loads((tmp_path / "i" / MANIFEST).read_text())["images"]["synth.png"]
    assert manifest["segmentation_rbc_diameter"] == 17.5 and manifest["rbc_diameter"] > 0
    coco = json.loads((tmp_path / "i" / "coco.json").read_text())["images"][0]
    assert coco["segmentation_rbc_diameter"] == 17.5 and coco["rbc_diameter"] == manifest["rbc_diameter"]


def test_an_export_without_ignore_targets_still_reads(tmp_path):
    _export([random_doc(0)], tmp_path / "o")
    for p in (tmp_path / "o" / "ignore").iterdir():
        p.unlink()
    s = D.load_samples("export", tmp_path / "o")[0]
    assert s.meta["ignore"] is None and not (D.working_item(s, 16.0)["classmap"] == D.IGNORE).any()


def test_export_files_are_found_whatever_their_case(tmp_path):
    _export([random_doc(0)], tmp_path / "c", formats=("shared",))
    for p in (tmp_path / "c" / "labels").iterdir():
        p.rename(p.with_name(p.name.upper()))
    s = D.load_samples("export", tmp_path / "c")[0]
    from cellviewer.core.export_read import read_labels

    assert np.array_equal(read_labels(s)["rbc"], random_doc(0).labels["rbc"])
