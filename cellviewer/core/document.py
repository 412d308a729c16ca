"""The Document: one image plus everything known and corrected about it.

* ``labels[cls]`` is an ``int32`` instance-label map per cell class (0 = none,
  1..N = one cell each). Classes are :data:`CELL_CLASSES`.
* ``parts`` is a ``uint8`` map of WBC parts (0 none, 1 nucleus, 2 cytoplasm),
  filled when the model gives it.
* ``markers`` holds one count marker per cell (plus manual markers that need no
  mask). **Counts are markers per class**, less the cells that ``border_rule``
  does not count (cells cut by the image edge, see :mod:`cellviewer.core.countframe`).
* ``provenance`` says which model made the automatic part and lists every
  manual edit (what, where, when, OS user).

The document never touches Qt; views subscribe with :meth:`Document.subscribe`
and get a :class:`Change` carrying the touched bounding box.
"""

from __future__ import annotations

import datetime as _dt
import getpass
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from cellviewer.core.countframe import check_rule, excluded_markers

CELL_CLASSES: tuple[str, ...] = ("rbc", "wbc", "platelet")
DISPLAY_NAMES = {"rbc": "RBC", "wbc": "WBC", "platelet": "Platelets"}
#: audit-trail actions that mark what was reviewed; they change no cell, so they are not corrections
REVIEW_ACTIONS = frozenset({"Mark image reviewed", "Mark image unreviewed", "Review cell"})
#: audit-trail actions a model did on request (the user asked, the model chose): not manual corrections
AUTOMATIC_ACTIONS = frozenset({"Classify red cells again"})
#: RGB colours used by overlays, markers and reports.
CLASS_COLORS = {"rbc": (230, 60, 60), "wbc": (60, 110, 240), "platelet": (250, 200, 30)}
PART_NAMES = {0: "none", 1: "nucleus", 2: "cytoplasm"}
PART_COLORS = {1: (130, 40, 200), 2: (60, 200, 220)}
#: Pixel values of the 8-bit class map written by ``analyze`` and exports.
CLASS_MAP_VALUES = {"background": 0, "rbc": 1, "wbc": 2, "platelet": 3, "nucleus": 4, "cytoplasm": 5}

BBox = tuple[int, int, int, int]  # (y0, x0, y1, x1), half open
_NOT_YET = object()  # a cached value not computed yet


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _when(iso: str):
    """An ISO time (from :func:`now_iso`) as an aware datetime, None when empty or unreadable."""
    try:
        t = _dt.datetime.fromisoformat(iso) if iso else None
    except ValueError:
        return None
    return t if t is None or t.tzinfo is not None else t.replace(tzinfo=_dt.timezone.utc)


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some sandboxes
        return "unknown"


def union_bbox(a: BBox | None, b: BBox | None) -> BBox | None:
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


@dataclass
class ImageInfo:
    path: str | None
    width: int
    height: int
    dtype: str = "uint8"  # dtype of the file's pixels
    channels: int = 3  # channels in the file (1 gray, 3 RGB, 4 RGBA)
    notes: list[str] = field(default_factory=list)  # e.g. "multi-page TIFF: page 1 of 3 shown"
    sha256: str = ""


@dataclass
class ImageData:
    """Pixels ready to show and segment (``uint8`` RGB, H×W×3) plus what the file held."""

    pixels: np.ndarray
    info: ImageInfo


@dataclass
class Marker:
    id: int
    cls: str
    x: float
    y: float
    origin: str = "auto"  # "auto" (from a segmenter) or "manual"
    cell: int = 0  # instance label in labels[cls]; 0 = marker without a mask
    score: float = 1.0  # model confidence for auto markers, 1.0 for manual
    reviewed: bool = False
    morph: str = ""  # red-cell morphology class (core.morphology.CLASSES); "" = not classified
    morph_p: float = 0.0  # its probability (1.0 when a user set it)


@dataclass
class EditRecord:
    action: str
    cls: str | None = None
    bbox: BBox | None = None
    time: str = field(default_factory=now_iso)
    user: str = field(default_factory=os_user)
    detail: str = ""


@dataclass
class Provenance:
    model_name: str = ""
    model_version: str = ""
    params: dict = field(default_factory=dict)
    segmented_at: str = ""
    device: str = ""
    edits: list[EditRecord] = field(default_factory=list)


@dataclass(frozen=True)
class Change:
    """What changed: ``bbox`` None means everything; ``layers`` names the maps touched."""

    bbox: BBox | None = None
    layers: tuple[str, ...] = ()
    markers: bool = False


class Document:
    def __init__(self, image: ImageData):
        self.image = image
        h, w = image.pixels.shape[:2]
        self.labels: dict[str, np.ndarray] = {c: np.zeros((h, w), np.int32) for c in CELL_CLASSES}
        self.parts = np.zeros((h, w), np.uint8)
        self.markers: dict[int, Marker] = {}
        self.provenance = Provenance()
        self.um_per_px: float | None = None
        self.reviewed = False  # the whole image's corrections are reviewed (export filter)
        self.border_rule = "all"  # which cells cut by the image edge count (core.countframe.BORDER_RULES)
        self.revision = 0  # bumps on every change; the autosaver compares it
        self.load_warnings: list[str] = []  # what restoring a sidecar had to say
        self.journal = None  # a core.journal.Journal: every edit is logged at once (crash safety)
        self.pending_journal: list = []  # unsaved edits found on open (see core.journal.recover)
        self.left_over = None  # the journals they came from (core.journalfiles.LeftOver; see attach_journal)
        self.open_stroke = None  # a core.brush.BrushStroke painting live, not yet one edit: saves wait for it
        self._listeners: list[Callable[[Change], None]] = []
        self._field = _NOT_YET  # field_edge(image), found when first asked (the pixels never change)

    # -- shape and lookup ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self.image.pixels.shape[:2]

    def layer(self, key: str) -> np.ndarray:
        """A map by key: a cell class or ``"parts"``."""
        return self.parts if key == "parts" else self.labels[key]

    def cell_at(self, x: int, y: int, classes=CELL_CLASSES) -> tuple[str, int] | None:
        h, w = self.shape
        if not (0 <= x < w and 0 <= y < h):
            return None
        # smaller cells are drawn on top, so pick them first
        for cls in ("platelet", "wbc", "rbc"):
            if cls in classes and self.labels[cls][y, x]:
                return cls, int(self.labels[cls][y, x])
        return None

    def next_label(self, cls: str) -> int:
        return int(self.labels[cls].max()) + 1

    def next_marker_id(self) -> int:
        return max(self.markers, default=0) + 1

    def markers_of_cell(self, cls: str, cell: int) -> list[Marker]:
        return [m for m in self.markers.values() if m.cls == cls and m.cell == cell and cell]

    def counts(self) -> dict[str, int]:
        out = {c: 0 for c in CELL_CLASSES}
        skip = self.uncounted()
        for m in self.markers.values():
            if m.id not in skip:
                out[m.cls] = out.get(m.cls, 0) + 1
        return out

    def uncounted(self) -> set[int]:
        """Ids of the markers whose cells :attr:`border_rule` does not count."""
        if self.border_rule == "all":
            return set()
        return excluded_markers(self.markers.values(), self.labels, self.border_rule, self.field_edge())

    def field_edge(self):
        """The edge of the field of view inside the image (a round field stop, a white frame;
        :func:`cellviewer.core.countframe.field_edge`), None when the field fills the image; found once."""
        if self._field is _NOT_YET:
            from cellviewer.core.countframe import field_edge

            self._field = field_edge(self.image.pixels)
        return self._field

    def set_border_rule(self, rule: str) -> None:
        """Change which cells cut by the image edge count (an :class:`OptionError` for a bad rule). The change
        is journaled at once (a crash before the next save keeps it; see :mod:`cellviewer.core.journal`)."""
        edit = self.border_rule_edit(rule)
        if edit is not None:
            edit.apply(self)

    def border_rule_edit(self, rule: str):
        """The (unapplied) edit that sets the border rule — one undo step in the GUI, not in the audit trail of
        corrections; None when ``rule`` is the rule already (an :class:`OptionError` for a bad rule)."""
        if check_rule(rule) == self.border_rule:
            return None
        from cellviewer.core.edits import Edit, FlagChange  # edits imports this module

        return Edit("Border rule", [FlagChange("border_rule", self.border_rule, rule)])

    def corrections(self) -> list[EditRecord]:
        """The corrections of the current segmentation: audit-trail edits but review marks (they change no
        cell) and model runs the user asked for, made since it was segmented (a re-segmentation replaced what was corrected before; the audit
        trail keeps those records)."""
        since = _when(self.provenance.segmented_at)
        return [e for e in self.provenance.edits if e.action not in REVIEW_ACTIONS | AUTOMATIC_ACTIONS
                and (since is None or (_when(e.time) or since) >= since)]

    @property
    def n_manual_edits(self) -> int:
        return len(self.corrections())

    # -- events ---------------------------------------------------------------------
    def subscribe(self, fn: Callable[[Change], None]) -> None:
        self._listeners.append(fn)

    def unsubscribe(self, fn: Callable[[Change], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def notify(self, change: Change) -> None:
        self.revision += 1
        for fn in list(self._listeners):
            fn(change)

    def notify_all(self) -> None:
        self.notify(Change(None, tuple(CELL_CLASSES) + ("parts",), True))

    # -- whole-document updates -------------------------------------------------------
    def set_result(self, result) -> None:
        """Replace all automatic content by a ``SegmentationResult``."""
        for c in CELL_CLASSES:
            lab = result.labels.get(c)
            self.labels[c] = (
                np.zeros(self.shape, np.int32) if lab is None else np.ascontiguousarray(lab, np.int32)
            )
        self.parts = (
            np.zeros(self.shape, np.uint8) if result.parts is None else np.ascontiguousarray(result.parts, np.uint8)
        )
        self.markers = {i + 1: replace(m, id=i + 1) for i, m in enumerate(result.markers)}
        self.provenance.model_name = result.model_name
        self.provenance.model_version = result.model_version
        self.provenance.params = dict(result.params)
        self.provenance.device = result.device
        self.provenance.segmented_at = now_iso()
        self.um_per_px = result.params.get("um_per_px") or None  # the calibration its classes were made with
        self.notify_all()
