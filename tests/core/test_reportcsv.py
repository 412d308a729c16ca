"""Report CSVs: a table written whole leaves an earlier file as it was when it fails; names that are not
valid UTF-8 are written in their readable form."""

import os

import pytest

from cellviewer.core.reportcsv import COUNT_COLUMNS, CsvStream, write_csvs


def test_a_table_written_whole_that_fails_leaves_the_earlier_file(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("image,rbc,wbc,platelets\nold.png,1,2,3\n")
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with CsvStream(path, COUNT_COLUMNS, keep_partial=False) as s:
            s.write({"image": "new.png", "rbc": 4, "wbc": 5, "platelets": 6})
            raise RuntimeError("the PDF failed")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["counts.csv"]  # no temp file left
    with CsvStream(path, COUNT_COLUMNS, keep_partial=False) as s:  # without an error it replaces the file
        s.write({"image": "new.png", "rbc": 4, "wbc": 5, "platelets": 6})
    assert path.read_text().splitlines()[1] == "new.png,4,5,6"


def test_a_name_that_is_not_utf8_is_written_readable(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")
    counts, cells = write_csvs(tmp_path, [{"image": name, "rbc": 1, "wbc": 0, "platelets": 0}],
                               [{"image": name, "cell_id": 1, "cls": "rbc"}])
    assert counts.read_text(encoding="utf-8").splitlines()[1] == "caf\\xe9.png,1,0,0"
    assert cells.read_text(encoding="utf-8").splitlines()[1].startswith("caf\\xe9.png,1,rbc,")
