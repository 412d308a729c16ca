"""Readers of the shared data, the split and the weak labels."""

import numpy as np
import pytest

from cellviewer.core import datasets as D


def test_split_is_deterministic_and_roughly_70_15_15():
    ids = [f"img_{i:04d}.jpg" for i in range(2000)]
    splits = [D.split_of(i) for i in ids]
    assert splits == [D.split_of(i) for i in ids]
    frac = {s: splits.count(s) / len(ids) for s in D.SPLITS}
    assert abs(frac["train"] - 0.70) < 0.04 and abs(frac["test"] - 0.15) < 0.03
    assert D.split_of("x.jpg", seed="other") in D.SPLITS


def test_weak_labels_ellipses_edges_and_overlap():
    boxes = {"rbc": np.array([[10, 10, 40, 40], [35, 10, 65, 40]], float), "wbc": np.zeros((0, 4)),
             "platelet": np.array([[70, 70, 78, 78]], float)}
    cm, edge = D.weak_labels((100, 100), boxes, edge_px=2)
    assert cm.shape == edge.shape == (100, 100) and cm.dtype == np.uint8
    assert cm[25, 25] == 1 and cm[74, 74] == 3 and cm[5, 5] == 0
    assert edge[25, 11] == 1 and edge[25, 25] == 0  # ring inside the boundary, not the centre
    assert edge[25, 37] == 1  # the overlap of the two red cells is edge
    # a scale factor draws the same thing smaller
    cm2, _ = D.weak_labels((50, 50), boxes, scale=0.5)
    assert cm2[12, 12] == 1 and cm2[37, 37] == 3


def test_mask_thresholds():
    m = np.array([[0, 63, 64, 128, 191, 192, 255]], np.uint8)
    assert D.mask_to_parts(m).tolist() == [[0, 0, 2, 2, 2, 1, 1]]


def test_synthetic_items_have_targets():
    items = D.synthetic_items(2, 16, seed=1, size=64)
    assert len(items) == 2
    it = items[0]
    assert it["image"].shape == (64, 64, 3) and it["classmap"].shape == (64, 64)
    assert set(np.unique(it["classmap"])) <= {0, 1, 2, 3} and it["edge"].any()


@pytest.mark.data
def test_box_readers_on_real_data(data_dir):
    bccd = D.load_samples("bccd", data_dir)
    assert len(bccd) == 255
    assert sum(s.weak for s in bccd) == 98  # no TXL re-annotation: original VOC boxes
    txl = [s for s in bccd if not s.weak]
    assert all(s.boxes["rbc"].shape[1] == 4 for s in txl)
    assert 80 < np.median([s.rbc_diameter for s in bccd]) < 125
    pbc = D.load_samples("txl_pbc", data_dir, "test")
    assert pbc and all(s.split == "test" for s in pbc)
    assert {s.origin for s in pbc} == {"pbc", "raabin_wbc"}
    item = D.working_item(bccd[0], 32.0)
    assert item["classmap"].shape == item["edge"].shape == item["image"].shape[:2]
    assert abs(item["image"].shape[1] - 640 * 32 / bccd[0].rbc_diameter) <= 1
    if bccd[0].weak:
        assert (item["classmap"] == D.IGNORE).any()


@pytest.mark.data
def test_mask_and_point_readers_on_real_data(data_dir):
    seg = D.load_samples("wbc_seg", data_dir, "test")
    assert {s.origin for s in seg} == {"d1", "d2"}
    parts = seg[0].read_parts()
    assert parts.shape == seg[0].read_image().shape[:2] and set(np.unique(parts)) <= {0, 1, 2}
    assert (parts == 1).any()
    chula = D.load_samples("chula_rbc12", data_dir)
    assert len(chula) == 105 and chula[0].points.shape[1] == 2


@pytest.mark.parametrize("n, new", [(120, 130), (300, 152), (300, 150), (121, 61)])
def test_resize_classmap_stays_registered_with_the_resized_image(n, new):
    import cv2

    yy, xx = np.mgrid[:n, :n]
    c = (n - 1) / 2
    cm = np.zeros((n, n), np.uint8)
    cm[(yy - c) ** 2 + (xx - 0.8 * c) ** 2 < (n / 3) ** 2] = 2  # cytoplasm
    cm[(yy - c) ** 2 + (xx - 0.8 * c) ** 2 < (n / 8) ** 2] = 1  # nucleus
    out = D.resize_classmap(cm, (new, new))
    assert out.shape == (new, new) and out.dtype == cm.dtype and set(np.unique(out)) == {0, 1, 2}
    # where the cell's centre lands in an image resized by cv2 (pixel centres aligned)
    expect = (np.array([c, 0.8 * c]) + 0.5) * new / n - 0.5
    got = np.argwhere(out > 0).mean(0)
    assert np.abs(got - expect).max() < 0.1
    # plain INTER_NEAREST (what training used before) is off by about half an output pixel
    if n % new:
        old = np.argwhere(cv2.resize(cm, (new, new), interpolation=cv2.INTER_NEAREST) > 0).mean(0)
        assert (old - expect).min() > 0.3
    # area kept within the resampling of the outline
    assert abs((out > 0).sum() / (cm > 0).sum() * (n / new) ** 2 - 1) < 0.03
    np.testing.assert_array_equal(D.resize_classmap(cm, (n, n)), cm)


# -- reading data folders of other hands: Excel, other labels, damaged files --------------------------------
def _txl_folder(root, images=(("a.png", 96, 80), ("b.png", 96, 80)), boxes=None, bom=False, labels=("RBC",)):
    """``root/txl_pbc`` in the shared layout (blank images); ``boxes``: annotation lines (default: one box of
    each label per image). ``bom``: every CSV starts with a UTF-8 byte-order mark (Excel's "CSV UTF-8")."""
    import cv2

    folder = root / "txl_pbc"
    (folder / "images").mkdir(parents=True)
    for name, w, h in images:
        cv2.imwrite(str(folder / "images" / name), np.full((h, w, 3), 230, np.uint8))
    if boxes is None:
        boxes = [f"{name},{lab},10,10,30,30" for name, _, _ in images for lab in labels]
    enc = "utf-8-sig" if bom else "utf-8"
    (folder / "images.csv").write_text("image,width,height,origin\r\n" + "".join(
        f"{n},{w},{h},pbc\r\n" for n, w, h in images), encoding=enc)
    (folder / "annotations.csv").write_text("image,cls,xmin,ymin,xmax,ymax\r\n" + "".join(
        b + "\r\n" for b in boxes), encoding=enc)
    return folder


def test_csvs_with_a_byte_order_mark_are_read(tmp_path):
    _txl_folder(tmp_path, bom=True)
    s = D.load_samples("txl_pbc", tmp_path)
    assert [x.image_id for x in s] == ["a.png", "b.png"] and all(len(x.boxes["rbc"]) == 1 for x in s)
    assert s[0].width == 96 and s[0].origin == "pbc"
    folder = tmp_path / "chula_rbc12"
    (folder / "images").mkdir(parents=True)
    (folder / "images.csv").write_text("image,width,height\na.jpg,64,48\n", encoding="utf-8-sig")
    (folder / "points.csv").write_text("image,cls_id,cls_name,x,y\na.jpg,0,normal,5.5,6\n", encoding="utf-8-sig")
    c = D.load_samples("chula_rbc12", tmp_path)
    assert c[0].points.tolist() == [[5.5, 6.0]] and c[0].meta["point_classes"].tolist() == [0]


@pytest.mark.parametrize("header, row, expect", [
    ("image,class,xmin,ymin,xmax,ymax", "a.png,RBC,1,2,3,4", "line 1: missing column(s) cls"),
    ("image,cls,xmin,ymin,xmax,ymax", "a.png,RBC,abc,2,3,4", "line 2: column xmin 'abc' is not a number"),
    ("image,cls,xmin,ymin,xmax,ymax", "a.png,RBC,1,2,3", "line 2: column ymax is empty"),
    ("image;cls;xmin;ymin;xmax;ymax", "a.png;RBC;1;2;3;4", "separated by ';'"),
])
def test_a_damaged_annotation_file_names_the_file_the_line_and_what_is_wrong(tmp_path, header, row, expect):
    folder = _txl_folder(tmp_path)
    (folder / "annotations.csv").write_text(f"{header}\n{row}\n")
    with pytest.raises(D.OptionError) as e:
        D.load_samples("txl_pbc", tmp_path)
    assert e.value.exit_code == 2 and str(folder / "annotations.csv") in str(e.value) and expect in str(e.value)


def test_a_binary_file_or_a_bad_size_in_images_csv_is_a_data_error(tmp_path):
    folder = _txl_folder(tmp_path)
    (folder / "annotations.csv").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01")  # a JPEG named .csv
    with pytest.raises(D.OptionError, match="is not a UTF-8 text CSV") as e:
        D.load_samples("txl_pbc", tmp_path)
    assert e.value.exit_code == 2
    (folder / "annotations.csv").write_bytes(b"image,cls,xmin,ymin,xmax,ymax\na.png,RBC,1,2\x00,3,4\n")
    with pytest.raises(D.OptionError, match="line 2: column ymin '2.' is not a number"):  # a NUL byte in a cell
        D.load_samples("txl_pbc", tmp_path)
    _txl_folder(tmp_path / "w", images=(("a.png", 96, 80),))
    (tmp_path / "w" / "txl_pbc" / "images.csv").write_text("image,width,height\na.png,96.5,80\n")
    with pytest.raises(D.OptionError, match=r"images.csv' line 2: column width '96.5' is not a whole number"):
        D.load_samples("txl_pbc", tmp_path / "w")


def test_labels_in_other_letter_cases_count_and_unknown_ones_are_named(tmp_path):
    _txl_folder(tmp_path, labels=("rbc", "RBC", "wbc", "platelet", "Platelets", "PLT"))
    s = D.load_samples("txl_pbc", tmp_path)[0]
    assert s.counts() == {"rbc": 2, "wbc": 1, "platelet": 3}
    _txl_folder(tmp_path / "x", labels=("RBC", "Neutrophil", "Neutrophil", "debris"))
    with pytest.raises(D.OptionError) as e:
        D.load_samples("txl_pbc", tmp_path / "x")
    msg = str(e.value)
    assert "'Neutrophil' (4 rows)" in msg and "'debris' (2 rows)" in msg and "RBC, WBC or Platelets" in msg


def test_boxes_are_clipped_to_their_image_and_impossible_ones_left_out_with_a_note(tmp_path):
    boxes = ["a.png,RBC,10,10,30,30",  # inside
             "a.png,RBC,-5,60,20,90",  # past the left and bottom edges (96×80): clipped
             "a.png,RBC,120,10,140,30",  # wholly outside
             "a.png,RBC,40,30,20,50",  # inverted
             "a.png,WBC,50,50,50,60",  # one pixel wide (inclusive indices): kept
             "z.png,RBC,1,1,5,5", "z.png,WBC,1,1,5,5"]  # an image not in images.csv
    _txl_folder(tmp_path, images=(("a.png", 96, 80),), boxes=boxes)
    notes: list[str] = []
    s = D.load_samples("txl_pbc", tmp_path, notes=notes)[0]
    assert s.boxes["rbc"].tolist() == [[10, 10, 30, 30], [0, 60, 20, 80]] and len(s.boxes["wbc"]) == 1
    assert any("2 box(es) outside their image or inverted" in n for n in notes)
    assert any("1 box(es) reaching past the image edge clipped" in n for n in notes)
    assert any("2 row(s) of 1 image(s) not in images.csv left out (e.g. z.png)" in n for n in notes)
    assert all(str(tmp_path / "txl_pbc" / "annotations.csv") in n for n in notes)


def test_notes_go_to_stderr_when_no_list_is_given(tmp_path, capsys):
    _txl_folder(tmp_path, images=(("a.png", 96, 80),), boxes=["a.png,RBC,90,10,140,30"])
    D.load_samples("txl_pbc", tmp_path)
    assert "cellviewer: note: " in capsys.readouterr().err


def test_bccd_needs_its_original_boxes_only_for_images_without_txl_boxes(tmp_path):
    folder = tmp_path / "bccd"
    (folder / "images").mkdir(parents=True)
    (folder / "images.csv").write_text("image,width,height,has_txl\na.jpg,64,48,1\n")
    (folder / "annotations_txl.csv").write_text("image,cls,xmin,ymin,xmax,ymax\na.jpg,RBC,1,1,20,20\n")
    s = D.load_samples("bccd", tmp_path)  # no annotations.csv: not needed
    assert not s[0].weak and len(s[0].boxes["rbc"]) == 1
    (folder / "images.csv").write_text("image,width,height,has_txl\na.jpg,64,48,1\nb.jpg,64,48,0\n")
    with pytest.raises(D.OptionError, match="Missing annotation file"):
        D.load_samples("bccd", tmp_path)


def test_a_missing_mask_or_one_of_another_size_is_a_data_error(tmp_path):
    import cv2

    folder = tmp_path / "wbc_seg"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    (folder / "images.csv").write_text("image,width,height\nd1_001.png,40,40\n")
    cv2.imwrite(str(folder / "images" / "d1_001.png"), np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(D.OptionError, match="No mask for 'd1_001.png'"):
        D.load_samples("wbc_seg", tmp_path)
    cv2.imwrite(str(folder / "masks" / "d1_001.png"), np.zeros((30, 30), np.uint8))
    with pytest.raises(D.OptionError, match=r"is 30×30 px, its image 'd1_001.png' 40×40") as e:
        D.load_samples("wbc_seg", tmp_path)
    assert str(folder / "masks" / "d1_001.png") in str(e.value) and e.value.exit_code == 2


def test_a_copy_of_the_development_data_elsewhere_is_known_by_its_image_lists(tmp_path):
    """The installed app has no ``<repo>/../shared/data``: a copy given as ``--data`` is still the development
    data (scored on the test split, recorded as such in cards); a folder with other image lists is not."""
    import shutil

    from cellviewer.core.datasets import default_data_root, is_development_data
    from cellviewer.core.evaluate import data_of, resolve_split

    src = default_data_root()
    if not (src / "bccd" / "images.csv").is_file():
        pytest.skip("no development data beside the repository")
    copy = tmp_path / "copy"
    for name in ("bccd", "txl_pbc"):
        (copy / name).mkdir(parents=True)
        shutil.copy(src / name / "images.csv", copy / name / "images.csv")
    assert is_development_data(src) and is_development_data(copy)
    assert resolve_split(None, copy) == "test" and data_of(copy) is None
    other = tmp_path / "heldout" / "bccd"
    other.mkdir(parents=True)
    (other / "images.csv").write_bytes((src / "bccd" / "images.csv").read_bytes() + b"x.jpg,640,480\n")
    assert not is_development_data(other.parent) and resolve_split(None, other.parent) == "all"
    (copy / "txl_pbc" / "images.csv").write_text("changed\n")  # every list found must match
    assert not is_development_data(copy) and data_of(copy) == str(copy.resolve())
    assert not is_development_data(tmp_path / "missing")


def test_no_data_folder_says_what_to_give(tmp_path, monkeypatch):
    """The message names the layout to give with --data; the installed app (frozen) does not point at a folder
    inside its own install (data put there would go with an uninstall)."""
    import sys

    from cellviewer.core.datasets import resolve_data_root
    from cellviewer.core.errors import OptionError

    with pytest.raises(OptionError, match="No data folder at") as e:
        resolve_data_root(tmp_path / "nosuch")
    assert "--data DIR" in e.value.hint and "bccd/" in e.value.hint
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr("cellviewer.core.datasets.default_data_root", lambda: tmp_path / "install" / "shared" / "data")
    with pytest.raises(OptionError, match="installed application has no data folder") as e:
        resolve_data_root()
    assert str(tmp_path) not in str(e.value) and "--data DIR" in e.value.hint
