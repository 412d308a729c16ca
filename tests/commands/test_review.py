"""``cellviewer review``: the doubt queue of saved corrections, printed and as CSV."""

import csv

from cellviewer import cli
from tests.synthdocs import random_doc, saved_doc


def test_review_lists_doubtful_cells_and_writes_csv(tmp_path, capsys):
    src = random_doc(4)
    p = tmp_path / "img.png"
    next(iter(src.markers.values())).reviewed = True
    saved_doc(p, src)
    assert cli.main(["review", str(p), "--top", "3", "--csv", str(tmp_path / "q.csv")]) == 0
    out = capsys.readouterr().out
    n = len({(m.cls, m.cell) for m in src.markers.values()})
    assert f"img.png: {n} cells, {n - 1} left to review" in out and len(out.strip().splitlines()) == 4
    rows = list(csv.DictReader(open(tmp_path / "q.csv")))
    assert len(rows) == n and sum(int(r["reviewed"]) for r in rows) == 1
    doubts = [float(r["doubt"]) for r in rows]
    assert doubts == sorted(doubts, reverse=True)
    assert cli.main(["review", str(tmp_path / "nope.png")]) == 3
