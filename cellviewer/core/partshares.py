"""Shares for the Counts panel and the report: :func:`shares_pct` (percentages that add up to 100.0 %) and
the white-cell nucleus / cytoplasm area shares (:func:`wbc_part_shares`).

Only the counted white cells (with a count marker the border rule counts, as in the counts) that have parts
count: a white cell brushed as a whole (no nucleus / cytoplasm) would add to the area but to neither part,
and the two shares would not add up to 100 %. When not all counted white cells have parts, ``"WBC parts
from"`` says of how many they are. Pixels of those cells that have no part (a Merge of a cell with parts and
one without) are a third share, ``"WBC area: no part"``, so that the shares shown add up to 100.0 %.
"""

from __future__ import annotations

import numpy as np


def shares_pct(counts: dict) -> dict:
    """``key -> "12.3 %"``: each count's share of their sum to one decimal, rounded by the largest remainder so
    that the shares shown add up to exactly 100.0 % (each is within 0.1 of its true value; a tie goes to the
    key that comes first). ``"–"`` for every key when the sum is 0."""
    counts = {k: int(n) for k, n in counts.items()}
    total = sum(counts.values())
    if total <= 0:
        return {k: "–" for k in counts}
    tenths, rest = {}, {}
    for k, n in counts.items():
        tenths[k], rest[k] = divmod(1000 * n, total)  # exact (integers): floor of the share in 0.1 %
    for k in sorted(counts, key=lambda k: -rest[k])[:1000 - sum(tenths.values())]:
        tenths[k] += 1
    return {k: f"{t / 10:.1f} %" for k, t in tenths.items()}


def _counted_cells(doc) -> np.ndarray:
    """Ids of the white cells that count: linked to a count marker the document's border rule counts."""
    skip = doc.uncounted()
    ids = {m.cell for m in doc.markers.values() if m.cls == "wbc" and m.cell > 0 and m.id not in skip}
    return np.array(sorted(ids), np.int64)


def wbc_part_shares(doc) -> dict[str, str]:
    """Nucleus / cytoplasm shares of the white-cell area, from the counted white cells that have parts only (a
    white cell brushed without parts would count in the area but in neither share: they would not add
    up to 100 %; a white cell without a count marker, or one the border rule leaves out, is not in the counts
    either); when not all counted white cells have parts, "WBC parts from" says of how many. {} without parts."""
    if doc.parts is None or not doc.parts.any():  # no parts: skip reading the whole map
        return {}
    lab = doc.labels["wbc"]
    wmask = lab > 0
    counted = np.intersect1d(np.unique(lab[wmask]), _counted_cells(doc))
    with_parts = np.intersect1d(np.unique(lab[wmask & (doc.parts > 0)]), counted)
    if with_parts.size == 0:
        return {}
    cells = np.isin(lab, with_parts)
    nuc, cyt = int(np.count_nonzero(doc.parts[cells] == 1)), int(np.count_nonzero(doc.parts[cells] == 2))
    if not nuc + cyt:
        return {}
    area = int(np.count_nonzero(cells))  # pixels of these cells with no part (e.g. a merged cell's half without):
    shares = shares_pct({"nucleus": nuc, "cytoplasm": cyt, "none": area - nuc - cyt})  # shown, so all add up
    out = {"WBC area: nucleus": shares["nucleus"], "WBC area: cytoplasm": shares["cytoplasm"]}
    if area > nuc + cyt:
        out["WBC area: no part"] = shares["none"]
    out["Nucleus : cytoplasm (area)"] = f"{nuc / cyt:.2f}" if cyt else "–"
    if with_parts.size < counted.size:
        out["WBC parts from"] = f"{with_parts.size} of {counted.size} white cells with parts"
    return out
