"""Shares that add up to 100.0 %, and the white-cell part shares of the counted white cells only."""

import numpy as np

from cellviewer.core.document import Document, ImageData, ImageInfo, Marker
from cellviewer.core.partshares import shares_pct, wbc_part_shares


def _num(text):
    return float(text.split()[0])


def test_shares_add_up_to_100_and_stay_within_a_tenth():
    for counts in ({"rbc": 17, "wbc": 1, "platelet": 1}, {"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 2},
                   {"a": 5, "b": 7, "c": 11, "d": 13, "e": 1}, {"a": 1}):
        shares = shares_pct(counts)
        assert list(shares) == list(counts)
        assert round(sum(_num(v) for v in shares.values()), 1) == 100.0, shares
        total = sum(counts.values())
        assert all(abs(_num(shares[k]) - 100 * n / total) < 0.1 for k, n in counts.items())
    assert shares_pct({"rbc": 17, "wbc": 1, "platelet": 1}) == {"rbc": "89.5 %", "wbc": "5.3 %", "platelet": "5.2 %"}
    assert shares_pct({"a": 0, "b": 0}) == {"a": "–", "b": "–"}


def _two_white_cells():
    """Two white cells with parts: #1 (inside, nucleus 3/4 of it), #2 (cut by the right edge, nucleus 1/4)."""
    px = np.full((60, 100, 3), 220, np.uint8)
    doc = Document(ImageData(px, ImageInfo(None, 100, 60)))
    doc.labels["wbc"][10:30, 10:30] = 1
    doc.parts[10:25, 10:30], doc.parts[25:30, 10:30] = 1, 2
    doc.labels["wbc"][10:30, 80:100] = 2
    doc.parts[10:15, 80:100], doc.parts[15:30, 80:100] = 1, 2
    doc.markers = {1: Marker(1, "wbc", 20.0, 20.0, cell=1), 2: Marker(2, "wbc", 90.0, 20.0, cell=2)}
    return doc


def test_part_shares_come_from_the_counted_white_cells_only():
    doc = _two_white_cells()
    assert wbc_part_shares(doc)["WBC area: nucleus"] == "50.0 %"  # both count: (300 + 100) / 800
    doc.border_rule = "inside"  # the cut cell is not counted
    assert doc.uncounted() == {2}
    out = wbc_part_shares(doc)
    assert out["WBC area: nucleus"] == "75.0 %" and out["WBC area: cytoplasm"] == "25.0 %"
    assert "WBC parts from" not in out  # the one counted white cell has parts
    doc.border_rule = "all"
    del doc.markers[1]  # its count marker removed by hand: the cell is not counted
    assert wbc_part_shares(doc)["WBC area: nucleus"] == "25.0 %"
    del doc.markers[2]
    assert wbc_part_shares(doc) == {}  # no counted white cell


def test_part_shares_add_up_to_100_when_a_merged_white_cell_has_pixels_without_a_part():
    """A Merge of a white cell with parts and one without: the half without parts is a share of its own (it was
    in neither share, and nucleus + cytoplasm showed 50 % with nothing said of the rest)."""
    from cellviewer.core import edits

    doc = _two_white_cells()
    doc.parts[:, 60:] = 0  # cell #2 has no parts
    doc.labels["wbc"][10:30, 30:80] = 3  # a third cell, without parts, joining them
    doc.markers[3] = Marker(3, "wbc", 50.0, 20.0, cell=3)
    assert wbc_part_shares(doc)["WBC parts from"] == "1 of 3 white cells with parts"
    edits.History(doc).push(edits.merge_cells(doc, "wbc", 1, 3))  # 400 px with parts + 1000 px without
    out = wbc_part_shares(doc)
    assert out["WBC area: nucleus"] == "21.4 %" and out["WBC area: cytoplasm"] == "7.2 %"  # 300, 100 of 1400
    assert out["WBC area: no part"] == "71.4 %"
    assert round(sum(_num(v) for k, v in out.items() if k.startswith("WBC area:")), 1) == 100.0
    assert out["WBC parts from"] == "1 of 2 white cells with parts"
    assert "WBC area: no part" not in wbc_part_shares(_two_white_cells())  # every pixel has a part: no such line
