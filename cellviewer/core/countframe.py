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

A cell is "cut" when its mask touches the outermost pixel row or column, or comes within
:data:`FIELD_TOL` px of the edge of the field of view inside the image (:func:`field_edge`: a round
field stop's black ring, a white frame); the side of a field edge is that of its outward normal
(the lower-right half of a round field counts as bottom / right). Markers
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
#: with one of the side bits: cut by the field's edge inside the image, not by the image edge
STOP = 16
#: a cell mask coming this close (px) to the field's edge inside the image is cut by it
FIELD_TOL = 3


def check_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`BORDER_RULES`, else an :class:`OptionError` naming them."""
    if rule not in BORDER_RULES:
        raise OptionError(f"Unknown border-cell rule '{rule}'.", hint="use one of: " + ", ".join(BORDER_RULES))
    return rule


def rule_or_default(rule) -> str:
    """``rule`` when it is valid, else ``"all"`` (for values read back from settings files)."""
    return rule if rule in BORDER_RULES else "all"


class FieldEdge:
    """The pixels of the field of view that lie within :data:`FIELD_TOL` px of its edge inside the image,
    with the outward normal there (``ys``, ``xs``, ``nx``, ``ny``: 1-D arrays)."""

    def __init__(self, ys, xs, nx, ny):
        self.ys, self.xs, self.nx, self.ny = ys, xs, nx, ny

    def __len__(self) -> int:
        return len(self.ys)


#: the field is found on a copy at most this many px on its longer side (every ``step``-th pixel)
FIELD_SIDE_PX = 2048


def field_edge(image) -> FieldEdge | None:
    """The edge of the field of view inside ``image`` (RGB ``uint8``), None when the field fills the image.

    The field is the convex hull of what is not blank margin (:func:`cellviewer.core.weaklabels.field_of_view`:
    a black field stop, bars, a white frame; a saturated white smear background, around cells, is none). A
    large image is measured on every ``step``-th pixel (at most :data:`FIELD_SIDE_PX` on its longer side;
    48 megapixels in well under a second) and the edge band widened by a step."""
    import cv2
    import numpy as np

    from cellviewer.core.weaklabels import field_of_view

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] < 3 or min(img.shape[:2]) < 8:
        return None
    h, w = img.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / FIELD_SIDE_PX)))
    found = field_of_view(img[::step, ::step] if step > 1 else img)
    if found is None:
        return None
    hull = found[1]
    if hull.all():
        return None
    # distance to the nearest pixel outside the hull; the image's own edge is not such a pixel
    dist = cv2.distanceTransform(hull, cv2.DIST_L2, 5)
    tol = FIELD_TOL if step == 1 else int(np.ceil(FIELD_TOL / step)) + 1
    ys, xs = np.nonzero((dist > 0) & (dist <= tol))
    if not len(ys):
        return None
    d = np.pad(dist, 1, mode="edge")
    nx = d[ys + 1, xs] - d[ys + 1, xs + 2]  # outward: down the distance
    ny = d[ys, xs + 1] - d[ys + 2, xs + 1]
    if step > 1:  # each pixel of the copy stands for a step × step block of the image
        dy, dx = (a.ravel() for a in np.mgrid[:step, :step])
        ys = (ys[:, None] * step + dy).ravel()
        xs = (xs[:, None] * step + dx).ravel()
        nx, ny = np.repeat(nx, step * step), np.repeat(ny, step * step)
        inside = (ys < h) & (xs < w)
        ys, xs, nx, ny = ys[inside], xs[inside], nx[inside], ny[inside]
    return FieldEdge(ys.astype(np.int32), xs.astype(np.int32), nx.astype(np.float32), ny.astype(np.float32))


def edge_flags(labels, field: FieldEdge | None = None) -> dict[int, int]:
    """``{label: bits}`` for the labels touching the image edge (:data:`TOP` | :data:`LEFT` | ...) and, with
    ``field`` (:func:`field_edge`), those coming within :data:`FIELD_TOL` px of the field's edge (:data:`STOP`
    plus the side its outward normal points to)."""
    import numpy as np

    lab = np.asarray(labels)
    if lab.ndim != 2 or lab.size == 0:
        return {}
    out: dict[int, int] = {}
    for bit, line in ((TOP, lab[0]), (BOTTOM, lab[-1]), (LEFT, lab[:, 0]), (RIGHT, lab[:, -1])):
        for v in np.unique(line):
            if v:
                out[int(v)] = out.get(int(v), 0) | bit
    if field is not None and len(field) and lab.shape[0] > int(field.ys.max()) and lab.shape[1] > int(field.xs.max()):
        ids = lab[field.ys, field.xs]
        on = ids > 0
        if on.any():
            ids = ids[on].astype(np.int64)
            sx = np.bincount(ids, weights=field.nx[on])
            sy = np.bincount(ids, weights=field.ny[on])
            for v in np.unique(ids).tolist():
                x, y = float(sx[v]), float(sy[v])
                if x + y > 0:  # the lower-right half of the field's edge excludes, as the bottom and right edges
                    bit = RIGHT if x >= y else BOTTOM
                else:
                    bit = LEFT if x <= y else TOP
                out[v] = out.get(v, 0) | bit | STOP
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


def excluded_markers(markers, labels: dict, rule: str, field: FieldEdge | None = None) -> set[int]:
    """Ids of the ``markers`` (objects with ``id``, ``cls``, ``cell``) whose cell ``rule`` does not count
    (``field``: the field's edge inside the image, :func:`field_edge`)."""
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
            flags[m.cls] = edge_flags(lab, field)
        if not is_counted(flags[m.cls].get(int(m.cell), 0), rule):
            out.add(m.id)
    return out


def rule_note(rule: str, n_excluded: int, field: bool = False) -> list[str]:
    """The report line for a rule other than ``all`` (empty for ``all``); ``field``: the image has a field edge
    inside it (:func:`field_edge`), whose cut cells the rule treats alike."""
    if rule == "all":
        return []
    where = "the image edge or the edge of the field of view" if field else "the image edge"
    return [f"Cells cut by {where}: {BORDER_RULES[rule]} ({n_excluded} not counted)."]
