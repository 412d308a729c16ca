"""``cellviewer evaluate``: the metric table, --json, --write-card and --check-card; real data with --limit."""

import json
import os

import pytest

pytest.importorskip("torch")

from cellviewer import cli  # noqa: E402
from tests.tinymodels import isolated_registry, save_tiny_model, tiny_wbc_data  # noqa: E402,F401

MASK_ROWS = ("wbc ", "nucleus ", "cytoplasm ", "3-class map: pixel acc", "class pixel acc", "mean IoU",
             "misclassification")
MASK_COLUMNS = ("dice", "iou", "precision", "recall", "specifici", "fpr", "fnr", "pixel_acc", "boundary_")


def test_table_write_card_and_check_card_on_data_in_the_shared_layout(isolated_registry, tiny_wbc_data, tmp_path,
                                                                      capsys):
    from cellviewer.core.netsegment import find_models

    save_tiny_model("tiny-wbc", "do-unet", {"base": 4, "depth": 2}, ["background", "nucleus", "cytoplasm"],
                    postprocess={"method": "components"})
    base = ["evaluate", "--model", "tiny-wbc", "--data", str(tiny_wbc_data), "--datasets", "wbc_seg", "-q"]
    assert cli.main(base + ["--json", str(tmp_path / "r.json"), "--write-card"]) == 0
    out = capsys.readouterr().out
    assert "[wbc_seg:d1] 2 images" in out and all(r in out for r in MASK_ROWS + MASK_COLUMNS)
    res = json.loads((tmp_path / "r.json").read_text())
    assert [r["image"] for r in res["images"]] == sorted(r["image"] for r in res["images"]) and len(res["images"]) == 2
    card = find_models()["tiny-wbc"][1]
    # a folder other than the development data is scored whole, and the stored command says which (absolute)
    assert card["metrics"]["command"] == ("cellviewer evaluate --model tiny-wbc --data "
                                          f"{tiny_wbc_data.resolve()} --split all --datasets wbc_seg")
    assert card["metrics"]["data"] == str(tiny_wbc_data.resolve())
    assert card["metrics"]["datasets"]["wbc_seg"]["n_images"] == 2
    # the sampling noise of each mean: a 95 % bootstrap interval over the images, inside their range
    assert "Dice 95 % CI (bootstrap over images): wbc " in out
    dices = [r["wbc_dice"] for r in res["images"]]
    lo, hi = res["datasets"]["wbc_seg"]["wbc"]["dice_ci95"]
    assert min(dices) - 1e-6 <= lo <= hi <= max(dices) + 1e-6
    # the stored numbers are reproduced ...
    assert cli.main(base + ["--check-card"]) == 0
    assert "every number of the card's metrics reproduced" in capsys.readouterr().out
    # ... and a changed one is reported with its key path
    path = find_models()["tiny-wbc"][0]
    card["metrics"]["datasets"]["wbc_seg"]["nucleus"]["dice"] = 0.123
    path.write_text(json.dumps(card))
    assert cli.main(base + ["--check-card"]) == 1
    assert "wbc_seg.nucleus.dice: card 0.123" in capsys.readouterr().out
    # a part of the split cannot reproduce the card: refused, not 70 differences
    assert cli.main(base + ["--check-card", "--limit", "1"]) == 2
    assert "--limit scores part of it" in capsys.readouterr().err
    # a dataset the card has but this run did not score is one short line, not its whole table
    card["metrics"]["datasets"]["wbc_seg"]["nucleus"]["dice"] = res["datasets"]["wbc_seg"]["nucleus"]["dice"]
    card["metrics"]["datasets"]["bccd"] = {"kind": "boxes", "n_images": 3}
    path.write_text(json.dumps(card))
    assert cli.main(base + ["--check-card"]) == 0  # --datasets wbc_seg: only that one is compared
    capsys.readouterr()
    assert cli.main([a for a in base if a not in ("--datasets", "wbc_seg")] + ["--check-card"]) == 1
    out = capsys.readouterr().out
    assert "bccd: card (a table), now (not scored in this run)" in out and "n_images" not in out


def test_unknown_model_and_missing_data(tmp_path, capsys):
    assert cli.main(["evaluate", "--model", "no-such-model", "--data", str(tmp_path)]) == 6
    assert "Unknown model 'no-such-model'" in capsys.readouterr().err
    # usage errors are 2 (1 means "the numbers differ from the card")
    assert cli.main(["evaluate", "--model", "classical", "--data", str(tmp_path / "nope"), "-q"]) == 2
    assert "No data folder" in capsys.readouterr().err
    assert cli.main(["evaluate", "--model", "classical", "--data", str(tmp_path), "--datasets", "foo", "-q"]) == 2
    assert "Unknown dataset 'foo'" in capsys.readouterr().err
    assert cli.main(["evaluate", "--model", "classical", "--limit", "0"]) == 2
    # a folder that holds no dataset of the shared layout is a wrong --data too, not "the card differs"
    assert cli.main(["evaluate", "--model", "classical", "--data", str(tmp_path), "-q"]) == 2
    assert "No dataset this model is scored on" in capsys.readouterr().err
    assert cli.main(["evaluate", "--model", "classical", "--data", str(tmp_path), "--datasets", "bccd", "-q"]) == 2
    assert "Missing annotation file" in capsys.readouterr().err


@pytest.mark.parametrize("model, dataset, rows", [
    ("wbc-nucleus-cytoplasm", "wbc_seg", MASK_ROWS),
    ("blood-cells", "txl_pbc", ("count acc", "total acc", "MAE", "prec", "recall", "F1", "rbc ", "wbc ", "platelet")),
])
def test_shipped_models_on_shared_data_with_limit(data_dir, tmp_path, capsys, model, dataset, rows):
    assert cli.main(["evaluate", "--model", model, "--data", str(data_dir), "--datasets", dataset, "--limit", "2",
                     "-q", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"model {model} — split test") and all(r in out for r in rows)
    res = json.loads((tmp_path / "r.json").read_text())
    assert len(res["images"]) == 2 and all(r["dataset"] == dataset for r in res["images"])
    assert "95 % CI (bootstrap over images)" in out
    if dataset == "txl_pbc":
        acc = [1 - abs(p - t) / t for p, t in (r["rbc_pred_true"] for r in res["images"])]
        lo, hi = res["datasets"][dataset]["rbc"]["count_accuracy_ci95"]
        assert min(acc) - 1e-9 <= lo <= hi <= max(acc) + 1e-9
        # the detection errors are split into those at the image edge (cut cells) and the rest
        for c in ("rbc", "wbc", "platelet"):
            s = res["datasets"][dataset][c]
            assert s["false_positives"] == s["n_pred"] - round((s["precision"] or 0.0) * s["n_pred"])
            assert (s["precision"] is None) == (s["n_pred"] == 0)  # nothing predicted: undefined (null)
            assert 0 <= s["fp_at_edge"] <= s["false_positives"] and 0 <= s["fn_at_edge"] <= s["false_negatives"]
        assert "errors at the image edge (cut cells): rbc FP " in out


def _box_folder(root, names, dataset="txl_pbc"):
    """``root/DATASET`` in the shared layout: 96×96 fields with four red discs, each boxed."""
    import cv2
    import numpy as np

    folder = root / dataset
    (folder / "images").mkdir(parents=True)
    yy, xx = np.mgrid[:96, :96]
    rows, boxes = ["image,width,height,origin"], ["image,cls,xmin,ymin,xmax,ymax"]
    for name in names:
        img = np.full((96, 96, 3), (235, 225, 225), np.uint8)
        for cx, cy in ((26, 26), (70, 26), (26, 70), (70, 70)):
            img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 14 ** 2] = (200, 120, 130)
            boxes.append(f"{name},RBC,{cx - 14},{cy - 14},{cx + 14},{cy + 14}")
        cv2.imwrite(str(folder / "images" / name), img[..., ::-1])
        rows.append(f"{name},96,96,pbc")
    (folder / "images.csv").write_text("\n".join(rows) + "\n")
    (folder / "annotations.csv").write_text("\n".join(boxes) + "\n")


def test_a_folder_other_than_the_development_data_is_scored_whole(tmp_path, capsys):
    """A held-out set or a lab's own annotations were not split by file-name hash: by default every
    image is scored; ``--split test`` still picks the hash split; datasets not in the folder are skipped."""
    from cellviewer.core.datasets import default_data_root, split_of
    from cellviewer.core.evaluate import resolve_split

    names = [f"f{i:02d}.png" for i in range(40)]
    names = ([n for n in names if split_of(n) == "test"][:1] + [n for n in names if split_of(n) == "train"][:2])
    _box_folder(tmp_path, names)
    args = ["evaluate", "--model", "classical", "--data", str(tmp_path), "-q", "--json", str(tmp_path / "r.json")]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("model classical — split all (every image) — 3 images")
    assert "not in the data folder, skipped: bccd, chula_rbc12" in out and "[txl_pbc] 3 images (boxes)" in out
    res = json.loads((tmp_path / "r.json").read_text())
    assert sorted(r["image"] for r in res["images"]) == sorted(names)
    assert res["datasets"]["txl_pbc"]["rbc"]["n_true"] == 12
    assert cli.main(args + ["--split", "test"]) == 0
    assert "[txl_pbc] 1 images (boxes)" in capsys.readouterr().out
    # the development data keeps the test split as its default, however it is named
    assert resolve_split(None, None) == "test" and resolve_split(None, default_data_root()) == "test"
    assert resolve_split(None, tmp_path) == "all" and resolve_split("val", tmp_path) == "val"
    # a folder holding none of the model's datasets says which folders it looked for
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["evaluate", "--model", "classical", "--data", str(empty), "-q"]) == 2  # a wrong --data: usage
    err = capsys.readouterr().err
    assert "No dataset this model is scored on" in err and "bccd, txl_pbc, chula_rbc12" in err
    # pointing at one dataset's folder instead of the data root says which folder to give
    assert cli.main(["evaluate", "--model", "classical", "--data", str(tmp_path / "txl_pbc"), "-q"]) == 2
    assert "'txl_pbc' looks like one dataset's folder: pass its parent as --data" in capsys.readouterr().err


def test_undefined_metrics_are_written_as_json_null():
    import numpy as np

    from cellviewer.core.evaluate import json_safe

    res = {"a": float("nan"), "b": [np.float32(0.5), float("inf")], "c": {"d": np.int64(3), "e": "x"}}
    text = json.dumps(json_safe(res), allow_nan=False)  # raises on NaN / Infinity
    assert json.loads(text) == {"a": None, "b": [0.5, None], "c": {"d": 3, "e": "x"}}


def test_no_calibration_is_part_of_the_reproducing_command():
    import argparse

    from cellviewer.commands.evaluate import command_of
    from cellviewer.core.cliopts import add_evaluate_arguments

    ap = argparse.ArgumentParser()
    add_evaluate_arguments(ap)
    args = ap.parse_args(["--model", "blood-cells", "--datasets", "chula_rbc12", "--no-calibration"])
    args.split = "test"
    assert command_of(args).endswith("--datasets chula_rbc12 --no-calibration")
    assert not ap.parse_args(["--model", "x"]).no_calibration


def test_undefined_scores_are_nan_and_shown_as_a_dash():
    """0/0 is neither 0 nor 100 %: precision with nothing predicted, recall with nothing true, a region both
    leave empty."""
    import math

    import numpy as np

    from cellviewer.core.evalsummary import box_acc, box_summary, mask_scores
    from cellviewer.core.evaltable import format_table

    acc = box_acc()
    acc["rbc"].update(tp=3, fp=1, fn=0, pred=4, true=3, acc=[0.67])
    acc["wbc"].update(tp=0, fp=0, fn=2, pred=0, true=2, acc=[0.0])  # nothing predicted: precision 0/0
    # platelets: nothing predicted, nothing true: precision, recall and F1 all 0/0
    s = box_summary(acc, 1)
    assert s["rbc"]["precision"] == 0.75 and s["rbc"]["recall"] == 1.0
    assert math.isnan(s["wbc"]["precision"]) and s["wbc"]["recall"] == 0.0 and s["wbc"]["f1"] == 0.0
    assert all(math.isnan(s["platelet"][k]) for k in ("precision", "recall", "f1"))
    table = format_table({"model": "m", "split": "test", "n_images": 1, "seconds_per_image": 0.1,
                          "diameter": "estimate", "datasets": {"x": {"kind": "boxes", **s}}})
    row = next(ln for ln in table.splitlines() if ln.startswith("platelet"))
    assert row.count("—") >= 5 and "100.00" not in row and " 0.00" not in row
    empty = np.zeros((8, 8), np.uint8)
    truth = empty.copy()
    truth[2:5, 2:5] = 1  # a nucleus, no cytoplasm; nothing predicted
    m = mask_scores(empty, truth)
    assert math.isnan(m["nucleus"]["precision"]) and m["nucleus"]["recall"] == 0.0 and m["nucleus"]["dice"] == 0.0
    assert all(math.isnan(m["cytoplasm"][k]) for k in ("dice", "iou", "precision", "recall", "boundary_f1"))
    assert m["cytoplasm"]["specificity"] == 1.0  # background everywhere, all of it right


def test_an_export_folder_given_as_data_says_how_to_score_it(tmp_path, capsys):
    from cellviewer.core.export_dataset import export_training_set
    from cellviewer.core.jobs import run_job
    from tests.synthdocs import random_doc

    run_job(export_training_set([random_doc(i) for i in range(3)], tmp_path / "x"))
    assert cli.main(["evaluate", "--model", "classical", "--data", str(tmp_path / "x"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "is a cellviewer export" in err and "--datasets export" in err
    # ... and what it says works
    assert cli.main(["evaluate", "--model", "classical", "--data", str(tmp_path / "x"), "--datasets", "export",
                     "-q", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "[export] 3 images (boxes)" in out and "[export:export]" not in out  # one table, not the same twice
    assert cli.main(["evaluate", "--help"]) == 0
    assert "cellviewer export" in capsys.readouterr().out


def test_a_bad_json_path_fails_before_the_run(tmp_path, capsys, monkeypatch):
    from cellviewer.core import evaluate

    ran = []
    monkeypatch.setattr(evaluate, "evaluate_model", lambda *a, **k: ran.append(1))
    assert cli.main(["evaluate", "--model", "classical", "--json", str(tmp_path / "no" / "r.json"), "-q"]) == 5
    assert "does not exist" in capsys.readouterr().err and not ran
    assert cli.main(["evaluate", "--model", "classical", "--json", str(tmp_path), "-q"]) == 5
    assert "it is a folder" in capsys.readouterr().err and not ran


def _split_names(split, n):
    from cellviewer.core.datasets import split_of

    return [f"f{i:02d}.png" for i in range(200) if split_of(f"f{i:02d}.png") == split][:n]


def test_a_dataset_named_twice_is_scored_once_and_one_origin_gets_no_second_table(tmp_path, capsys):
    _box_folder(tmp_path, _split_names("train", 2))
    args = ["evaluate", "--model", "classical", "--data", str(tmp_path), "-q"]
    assert cli.main(args + ["--datasets", "txl_pbc", "txl_pbc"]) == 0
    out = capsys.readouterr().out
    assert "— 2 images —" in out and out.count("[txl_pbc] 2 images") == 1
    assert "[txl_pbc:pbc]" not in out  # every image is from pbc: the same table again


def test_a_split_without_images_is_said_and_nothing_to_score_is_an_error(tmp_path, capsys):
    _box_folder(tmp_path, _split_names("train", 2))  # txl_pbc: no test image
    _box_folder(tmp_path, _split_names("test", 1), dataset="bccd")
    args = ["evaluate", "--model", "classical", "--data", str(tmp_path), "--split", "test", "-q"]
    assert cli.main(args + ["--json", str(tmp_path / "r.json")]) == 0
    cap = capsys.readouterr()
    assert "cellviewer: note: txl_pbc: no image in the 'test' split (of 2 in all): not scored" in cap.err
    assert "[bccd_voc] 1 images" in cap.out and "[txl_pbc]" not in cap.out
    assert json.loads((tmp_path / "r.json").read_text())["notes"][0].startswith("txl_pbc: no image")
    assert cli.main(args + ["--datasets", "txl_pbc"]) == 2  # no image at all: not an empty table with exit 0
    err = capsys.readouterr().err
    assert "No image to score" in err and "--split all" in err


def test_card_problems_are_reported_before_the_evaluation_runs(isolated_registry, tmp_path, capsys, monkeypatch):
    from cellviewer.core import evaluate

    ran = []
    monkeypatch.setattr(evaluate, "evaluate_model", lambda *a, **k: ran.append(1))
    _box_folder(tmp_path, _split_names("train", 1))
    base = ["evaluate", "--data", str(tmp_path), "-q"]
    assert cli.main(base + ["--model", "classical", "--write-card"]) == 2  # a classical segmenter has no card
    assert "has no model card to write metrics into" in capsys.readouterr().err and not ran
    save_tiny_model("tiny-cells", "do-unet", {"base": 4, "depth": 2}, ["background", "rbc", "wbc", "platelet"])
    assert cli.main(base + ["--model", "tiny-cells", "--check-card"]) == 6  # a card without metrics
    assert "has no card with metrics" in capsys.readouterr().err and not ran
    from cellviewer.core.netsegment import find_models

    card = find_models()["tiny-cells"][0]
    card.parent.chmod(0o555)  # the card's folder cannot take the new card
    try:
        if not os.access(card.parent, os.W_OK):  # (root writes anyway)
            assert cli.main(base + ["--model", "tiny-cells", "--write-card"]) == 5
            assert "--write-card" in capsys.readouterr().err and not ran
    finally:
        card.parent.chmod(0o755)


def test_check_card_scores_the_data_the_card_was_scored_on(isolated_registry, tmp_path, capsys):
    from cellviewer.core.netsegment import find_models

    save_tiny_model("tiny-cells", "do-unet", {"base": 4, "depth": 2}, ["background", "rbc", "wbc", "platelet"])
    _box_folder(tmp_path / "a", _split_names("train", 2))
    _box_folder(tmp_path / "b", _split_names("val", 1))
    run = ["evaluate", "--model", "tiny-cells", "--datasets", "txl_pbc", "-q"]
    assert cli.main(run + ["--data", str(tmp_path / "a"), "--write-card"]) == 0
    metrics = find_models()["tiny-cells"][1]["metrics"]
    assert f"--data {(tmp_path / 'a').resolve()} --split all" in metrics["command"]
    capsys.readouterr()
    assert cli.main(run + ["--check-card"]) == 0  # no --data: the card's folder, not ../shared/data
    cap = capsys.readouterr()
    assert f"scoring the data the card was scored on: {(tmp_path / 'a').resolve()}" in cap.err
    assert "every number of the card's metrics reproduced" in cap.out
    assert cli.main(run + ["--check-card", "--data", str(tmp_path / "b")]) == 1  # other images: other numbers
    assert "data folder: card " in capsys.readouterr().out
