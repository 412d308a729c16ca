"""White-cell nucleus / cytoplasm area shares for the Counts panel and the report.

Only the white cells that have parts count: a white cell brushed as a whole (no nucleus /
cytoplasm) would add to the area but to neither part, and the two shares would not add up to
100 %. When not all white cells have parts, ``"WBC parts from"`` says of how many they are.
"""

from __future__ import annotations

import numpy as np


def _pct(n, total) -> str:
    return f"{100.0 * n / total:.1f} %" if total else "–"


def wbc_part_shares(doc, pct=_pct) -> dict[str, str]:
    """Nucleus / cytoplasm shares of the white-cell area, from the white cells that have parts only (a
    white cell brushed without parts would count in the area but in neither share: they would not add
    up to 100 %); when not all have parts, "WBC parts from" says of how many. {} without parts."""
    if doc.parts is None or not doc.parts.any():  # no parts: skip reading the whole map
        return {}
    lab = doc.labels["wbc"]
    wmask = lab > 0
    ids = np.unique(lab[wmask])
    with_parts = np.unique(lab[wmask & (doc.parts > 0)])
    if with_parts.size == 0:
        return {}
    cells = np.isin(lab, with_parts)
    nuc, cyt = int(np.count_nonzero(doc.parts[cells] == 1)), int(np.count_nonzero(doc.parts[cells] == 2))
    if not nuc + cyt:
        return {}
    area = int(np.count_nonzero(cells))
    out = {"WBC area: nucleus": pct(nuc, area), "WBC area: cytoplasm": pct(cyt, area),
           "Nucleus : cytoplasm (area)": f"{nuc / cyt:.2f}" if cyt else "–"}
    if with_parts.size < ids.size:
        out["WBC parts from"] = f"{with_parts.size} of {ids.size} white cells with parts"
    return out
