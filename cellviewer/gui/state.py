"""The GUI's parameters as typed dataclasses, plus a small observable holder.

A widget is never the only copy of a parameter: panels write into these
objects through :meth:`Observable.update` and redraw themselves from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from PySide6.QtCore import QObject, Signal

from cellviewer.core.document import CELL_CLASSES

TOOLS = ("navigate", "brush", "eraser", "parts", "fill", "delete", "merge", "split", "reclassify",
         "marker_add", "marker_remove", "marker_reclassify")
TOOL_NAMES = {
    "navigate": "Navigate / move marker", "brush": "Brush", "eraser": "Eraser", "parts": "Parts brush", "fill": "Fill",
    "delete": "Delete cell", "merge": "Merge cells", "split": "Split cell", "reclassify": "Reclassify cell",
    "marker_add": "Add marker", "marker_remove": "Remove marker", "marker_reclassify": "Reclassify marker",
}
COUNTING_METHODS = ("watershed", "components", "hough", "edt")


@dataclass
class ViewState:
    show_image: bool = True
    classes: dict = field(default_factory=lambda: {c: True for c in CELL_CLASSES})
    show_parts: bool = True
    show_markers: bool = True
    opacity: float = 0.55
    outline: bool = False
    hide_overlays: bool = False  # H: hide every overlay at once, keep the per-layer choice

    def overlay_visible(self, key: str) -> bool:
        if self.hide_overlays:
            return False
        return self.show_parts if key == "parts" else bool(self.classes.get(key, True))


@dataclass
class ToolState:
    tool: str = "navigate"
    cls: str = "rbc"
    brush_radius: int = 8  # shared by the brush, the eraser and the parts brush
    part: str = "nucleus"  # what the parts brush paints: "nucleus" or "cytoplasm" (core.partsbrush.PART_VALUES)


@dataclass
class SegmentParams:
    model: str = ""  # "" = the default segmenter
    device: str = "auto"  # auto | cpu | cuda | mps
    diameter_px: float = 0.0  # expected RBC diameter in px; 0 = the model's own
    use_um: bool = False  # give the diameter in µm with a µm/px calibration
    diameter_um: float = 7.5
    um_per_px: float = 0.0  # 0 = unknown
    counting: str = "watershed"  # classical counting method
    auto_run: bool = True  # segment automatically when an image without sidecar opens
    # ODE nets (NODE-UNet) only: solver settings at inference; "" / 0 = the model card's own
    ode_method: str = ""  # dopri5, bosh3, ..., rk4, euler (see cellviewer.core.modelcards.ODE_METHODS)
    ode_rtol: float = 0.0
    ode_atol: float = 0.0
    # trained nets: test-time augmentation ("" = the card's own, else none | flips | d4; see core.tta)
    tta: str = ""
    # trained nets: give each red cell a morphology class (core.morphology) when that model is installed
    morphology: bool = True

    def ode_solver(self) -> dict:
        """The solver settings to pass to an ODE net (only the ones that differ from the card's)."""
        s = {"method": self.ode_method, "rtol": self.ode_rtol, "atol": self.ode_atol}
        return {k: v for k, v in s.items() if v}

    def effective_diameter_px(self) -> float:
        if self.use_um and self.um_per_px > 0:
            return self.diameter_um / self.um_per_px
        return self.diameter_px


@dataclass
class CountSettings:
    # which cells cut by the image edge count (core.countframe.BORDER_RULES) in images opened
    # without saved corrections; an image's own choice is saved in its sidecar
    border_rule: str = "all"


class Observable(QObject):
    """Holds one dataclass; ``changed`` carries the names of the fields that changed."""

    changed = Signal(object)

    def __init__(self, value, parent=None):
        super().__init__(parent)
        self.value = value

    def update(self, **kw) -> None:
        names = {f.name for f in fields(self.value)}
        bad = set(kw) - names
        if bad:
            raise AttributeError(f"{type(self.value).__name__} has no field(s) {sorted(bad)}")
        touched = frozenset(k for k, v in kw.items() if getattr(self.value, k) != v)
        for k in touched:
            setattr(self.value, k, kw[k])
        if touched:
            self.changed.emit(touched)

    def replace(self, value) -> None:
        self.value = value
        self.changed.emit(frozenset(f.name for f in fields(value)))
