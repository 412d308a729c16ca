"""Reading a cellviewer export back (:mod:`cellviewer.core.export_read`) after it went through other hands."""

import pytest

from cellviewer.core.errors import OptionError
from cellviewer.core.export_read import load_exported


@pytest.fixture
def export_dir(tmp_path):
    from cellviewer.core.export_dataset import export_training_set
    from cellviewer.core.jobs import run_job
    from tests.synthdocs import random_doc

    run_job(export_training_set([random_doc(i) for i in range(3)], tmp_path / "x", formats=("shared",)))
    return tmp_path / "x"


def test_an_export_saved_again_by_excel_is_read_the_same(export_dir):
    before = load_exported(export_dir)
    for name in ("images.csv", "annotations.csv"):  # "CSV UTF-8": a byte-order mark before the header
        p = export_dir / name
        p.write_text(p.read_text(encoding="utf-8"), encoding="utf-8-sig")
    after = load_exported(export_dir)
    assert [s.image_id for s in after] == [s.image_id for s in before]
    assert all(a.counts() == b.counts() and a.split == b.split for a, b in zip(after, before))


def test_labels_case_boxes_outside_and_rows_of_other_images(export_dir):
    before = load_exported(export_dir)
    p = export_dir / "annotations.csv"
    first = before[0]
    text = p.read_text(encoding="utf-8").replace(",RBC,", ",rbc,")
    text += (f"{first.image_id},Platelets,{first.width + 5},0,{first.width + 9},4\n"  # wholly outside
             f"{first.image_id},WBC,-3,-3,4,4\n"  # reaches past the corner: clipped
             "gone.png,RBC,1,1,5,5\n")  # an image not in images.csv
    p.write_text(text, encoding="utf-8")
    notes: list[str] = []
    after = load_exported(export_dir, notes=notes)
    assert [s.counts()["rbc"] for s in after] == [s.counts()["rbc"] for s in before]  # 'rbc' is RBC
    assert after[0].counts()["wbc"] == before[0].counts()["wbc"] + 1
    assert after[0].counts()["platelet"] == before[0].counts()["platelet"]
    assert after[0].boxes["wbc"][-1].tolist() == [0, 0, 4, 4]
    assert any("1 box(es) outside their image" in n for n in notes)
    assert any("not in images.csv left out (e.g. gone.png)" in n for n in notes)
    p.write_text(text.replace(",rbc,", ",Erythrocyte,", 1), encoding="utf-8")
    with pytest.raises(OptionError, match="unknown cell label.*'Erythrocyte' \\(1 rows\\)") as e:
        load_exported(export_dir)
    assert str(p) in str(e.value) and e.value.exit_code == 2
