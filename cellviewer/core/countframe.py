"""Which cells cut by the image edge are counted: the counting rule for border cells.

A field of view cuts the cells on its edge. Labs differ in how they count them, and the
choice moves counts per field by several percent (a 640×480 BCCD field has ~11 of its
~23 red cells on the edge). The rule is a property of the :class:`Document`
(``doc.border_rule``), saved in its sidecar, shown in reports and chosen in the GUI's
Counts panel or with ``cellviewer analyze --border-cells``:

* ``all`` (default) — every cell is counted, also a sliver cut by the edge. This is what
  the shipped models were trained and evaluated on (the annotators of BCCD / TXL-PBC
  boxed cut cells too).
* ``frame`` — an unbiased counting frame (Gundersen 1977): the top and left edges are
  inclusion lines, the bottom and right edges exclusion lines. A cell cut by the bottom or
  right edge is not counted; one cut only by the top or left edge is. Over many
  adjacent fields every cell is counted exactly once, so counts per area are unbiased.
* ``inside`` — only cells wholly inside the image (cut cells never count). Biased low
  for density, but every counted cell can be judged whole (morphology).

A cell is "cut" when its mask touches the outermost pixel row or column. Markers
without a mask (manual markers) are always counted: there is no outline to judge.
Excluded cells keep their masks and markers (drawn hollow in the viewer); only the counts
(and ``cells.csv``, one row per counted cell) change. Numpy only, imported when first needed
so that ``cellviewer --help`` can list the rules without loading it.
"""

from __future__ import annotations

from cellviewer.core.errors import OptionError

#: rule -> what it means (the GUI and ``--help`` show these)
BORDER_RULES: dict[str, str] = {
    "all": "count every cell, also those cut by the image edge",
    "frame": "unbiased counting frame: cells cut by the bottom or right edge are not counted",
    "inside": "count only cells not cut by the image edge",
}
#: short names for menus
BORDER_RULE_NAMES = {"all": "count all cells", "frame": "counting frame (top/left in)",
                     "inside": "only whole cells"}
TOP, LEFT, BOTTOM, RIGHT = 1, 2, 4, 8


def check_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`BORDER_RULES`, else an :class:`OptionError` naming them."""
    if rule not in BORDER_RULES:
        raise OptionError(f"Unknown border-cell rule '{rule}'.", hint="use one of: " + ", ".join(BORDER_RULES))
    return rule


def rule_or_default(rule) -> str:
    """``rule`` when it is valid, else ``"all"`` (for values read back from settings files)."""
    return rule if rule in BORDER_RULES else "all"


def edge_flags(labels) -> dict[int, int]:
    """``{label: bits}`` for the labels touching the image edge (:data:`TOP` | :data:`LEFT` | ...)."""
    import numpy as np

    lab = np.asarray(labels)
    if lab.ndim != 2 or lab.size == 0:
        return {}
    out: dict[int, int] = {}
    for bit, line in ((TOP, lab[0]), (BOTTOM, lab[-1]), (LEFT, lab[:, 0]), (RIGHT, lab[:, -1])):
        for v in np.unique(line):
            if v:
                out[int(v)] = out.get(int(v), 0) | bit
    return out


def is_counted(flags: int, rule: str) -> bool:
    """Whether a cell with edge ``flags`` counts under ``rule``."""
    if rule == "all":
        return True
    if rule == "inside":
        return flags == 0
    if rule == "frame":
        return not flags & (BOTTOM | RIGHT)
    check_rule(rule)  # an unknown rule: raises an OptionError naming the valid ones
    return True


def excluded_markers(markers, labels: dict, rule: str) -> set[int]:
    """Ids of the ``markers`` (objects with ``id``, ``cls``, ``cell``) whose cell ``rule`` does not count."""
    check_rule(rule)
    if rule == "all":
        return set()
    flags: dict[str, dict[int, int]] = {}
    out = set()
    for m in markers:
        lab = labels.get(m.cls)
        if not m.cell or lab is None:
            continue
        if m.cls not in flags:
            flags[m.cls] = edge_flags(lab)
        if not is_counted(flags[m.cls].get(int(m.cell), 0), rule):
            out.add(m.id)
    return out


def rule_note(rule: str, n_excluded: int) -> list[str]:
    """The report line for a rule other than ``all`` (empty for ``all``)."""
    if rule == "all":
        return []
    return [f"Cells cut by the image edge: {BORDER_RULES[rule]} ({n_excluded} not counted)."]
