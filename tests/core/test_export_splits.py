"""Splits of an export: every split with a share gets an image once there are three — also when the export
is made in several steps (earlier images keep their split; images of this export fill an empty one) — and
a split that stays empty is a note saying what it means."""

import csv

from cellviewer.core.export_dataset import _rank, export_training_set, split_for
from cellviewer.core.export_merge import fill_empty_splits
from cellviewer.core.jobs import run_job
from tests.synthdocs import random_doc


def _splits(out):
    with open(out / "images.csv", newline="") as f:
        return {r["image"]: r["split"] for r in csv.DictReader(f)}


def _export(docs, out, **kw):
    return run_job(export_training_set(docs, out, merge=True, **kw))


def test_a_fresh_split_keeps_a_train_image_whatever_the_shares():
    names = [f"n{i}.png" for i in range(3)]
    for fractions in ((0.4, 0.1, 0.5), (0.2, 0.3, 0.5), (0.05, 0.05, 0.9), (0.7, 0.1, 0.2)):
        got = sorted(split_for(names, fractions).values())
        assert got == ["test", "train", "val"], fractions
    assert sorted(split_for(names, (0.5, 0.0, 0.5)).values()).count("train") >= 1
    assert "val" not in split_for(names, (0.5, 0.0, 0.5)).values()


def test_two_then_one_more_gives_every_split_an_image_and_earlier_images_keep_theirs(tmp_path):
    out = tmp_path / "x"
    first = _export([random_doc(0), random_doc(1)], out)
    assert any("no test image" in n and "gate" in n for n in first.notes)  # two images: no test image yet
    before = _splits(out)
    assert sorted(before.values()) == ["train", "train"]
    res = _export([random_doc(2)], out)
    after = _splits(out)
    assert after["synth_2.png"] == "test"  # the gate's held-out image comes first
    assert all(after[n] == s for n, s in before.items())  # an earlier image never moves
    assert any("no val image" in n for n in res.notes)
    res = _export([random_doc(3), random_doc(4)], out)
    after = _splits(out)
    assert {"train", "val", "test"} <= set(after.values()) and not res.notes
    assert all(after[n] == s for n, s in before.items())


def test_when_only_earlier_images_could_fill_a_split_it_is_a_note(tmp_path):
    out = tmp_path / "x"
    _export([random_doc(i) for i in range(3)], out, fractions=(1.0, 0.0, 0.0))  # all train
    assert set(_splits(out).values()) == {"train"}
    res = _export([random_doc(3)], out)  # one new image: test takes it, val stays empty
    after = _splits(out)
    assert after["synth_3.png"] == "test" and list(after.values()).count("train") == 3
    assert any("no val image" in n and "epoch" in n for n in res.notes)


def test_fill_empty_splits_moves_new_images_only_in_hash_order():
    rows = [{"source": s, "split": sp} for s, sp in (("a", "train"), ("b", "train"), ("c", "train"),
                                                      ("d", "train"), ("d", "train"))]  # d: two tiles
    notes = fill_empty_splits(rows, {"c", "d"}, (0.7, 0.1, 0.2), _rank)
    first = sorted({"c", "d"}, key=_rank)[0]
    assert {r["split"] for r in rows if r["source"] == first} == {"test"}
    assert {r["split"] for r in rows if r["source"] in ("a", "b")} == {"train"}
    assert len({r["split"] for r in rows if r["source"] == "d"}) == 1  # tiles follow their image
    assert notes == [] or notes == ["the export has no val image: training has no val image to choose its epoch "
                                    "by (train refuses such an export) — export more images into it (images "
                                    "exported earlier keep their split)"]
    assert any(r["split"] == "val" for r in rows) or notes
