"""Masks are paired with their images by stem in any case (IMG_001.JPG with img_001_mask.png)."""

import cv2
import numpy as np

from cellviewer.core import datasets as D
from cellviewer.core.stemmatch import FolderIndex


def test_mask_for_matches_stems_in_any_case_and_prefers_the_exact_name(tmp_path):
    for name in ("img_001_mask.png", "IMG_002.PNG", "img_003.png", "IMG_003.png", "other.txt"):
        (tmp_path / name).write_bytes(b"x")
    idx = FolderIndex(tmp_path)
    assert idx.mask_for("IMG_001.JPG") == tmp_path / "img_001_mask.png"
    assert idx.mask_for("img_002.jpg") == tmp_path / "IMG_002.PNG"
    assert idx.mask_for("IMG_003.png") == tmp_path / "IMG_003.png"  # an exact name wins
    assert idx.mask_for("img_004.png") is None
    assert FolderIndex(tmp_path / "missing").find("a.png") is None


def test_wbc_seg_masks_named_in_another_case_are_read(tmp_path):
    folder = tmp_path / "wbc_seg"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    yy, xx = np.mgrid[:48, :48]
    r2 = (yy - 24) ** 2 + (xx - 24) ** 2
    rows = ["image,width,height,class_name"]
    for k, (img_name, mask_name) in enumerate([("D1_A.PNG", "d1_a_mask.png"), ("d1_b.png", "D1_B.png")]):
        cv2.imwrite(str(folder / "images" / img_name), np.full((48, 48, 3), 200, np.uint8))
        cv2.imwrite(str(folder / "masks" / mask_name), np.where(r2 <= (6 + k) ** 2, 255,
                                                                np.where(r2 <= 14 ** 2, 128, 0)).astype(np.uint8))
        rows.append(f"{img_name},48,48,neutrophil")
    (folder / "images.csv").write_text("\n".join(rows) + "\n")
    samples = {s.image_id: s for s in D.load_samples("wbc_seg", tmp_path)}
    assert samples["D1_A.PNG"].mask_path.name == "d1_a_mask.png" and samples["d1_b.png"].mask_path.name == "D1_B.png"
    for s in samples.values():
        parts = s.read_parts()
        assert parts[24, 24] == 1 and parts[24, 24 + 10] == 2 and parts[0, 0] == 0
