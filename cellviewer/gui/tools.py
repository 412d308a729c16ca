"""Mouse handling for the editing tools -> :mod:`cellviewer.core.edits` -> the undo stack.

:class:`ToolController` is the canvas's ``handler``: the canvas calls
``click``, ``drag_start`` (returns True when the tool takes the drag; False
lets the view pan), ``drag_move``, ``drag_end`` and ``hover`` with image
coordinates. The same methods are the tool API for scripts and tests.

Every finished action becomes one :class:`~cellviewer.gui.commands.EditCommand`
(one brush drag = one undo step). A refused edit (``EditError``) is a status
line with the hint, never a dialog. The parts brush paints a layer that may be hidden: picking it (or
starting a stroke with it) shows that layer through the layers' :class:`~cellviewer.gui.state.ViewState`
(``view_state``), and the status bar says so. Such warnings and the tools' prompts speak of the state
before the next edit: an edit that goes through clears them (``notifications.edit_done``).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from cellviewer.core import edits
from cellviewer.core.document import CELL_CLASSES, DISPLAY_NAMES, Document
from cellviewer.core.errors import EditError
from cellviewer.core.partsbrush import PART_VALUES, PartsStroke
from cellviewer.gui import notifications
from cellviewer.gui.commands import EditCommand
from cellviewer.gui.state import TOOL_NAMES, Observable, ToolState

MARKER_PICK_PX = 12  # screen pixels around a marker that count as "on it"
BRUSH_TOOLS = ("brush", "eraser", "parts")  # drag tools that paint with the shared brush radius
MIN_RADIUS, MAX_RADIUS = 1, 200


class ToolController(QObject):
    edited = Signal(object)  # the Edit just pushed

    def __init__(self, tool_state: Observable, canvas=None, parent=None, view_state: Observable | None = None):
        super().__init__(parent)
        self.state = tool_state
        self.view_state = view_state  # the layers' ViewState: the parts brush shows the layer it paints
        self.canvas = canvas
        self.doc: Document | None = None
        self.stack = None  # QUndoStack of the document
        self._stroke: edits.BrushStroke | PartsStroke | None = None
        self._merge_first: tuple[str, int, float, float] | None = None
        self._split_points: list[tuple[float, float]] = []
        self._moving: int | None = None  # marker id being dragged
        self._hover: tuple[float, float] | None = None
        self._mark = 0  # notifications.mark() when the action now going on began
        tool_state.changed.connect(self._on_state_changed)

    @property
    def ts(self) -> ToolState:
        return self.state.value

    def set_document(self, doc: Document | None, stack) -> None:
        self.finish_active()
        self.doc, self.stack = doc, stack
        self.reset()

    # -- helpers ----------------------------------------------------------------------
    def push(self, edit: edits.Edit | None) -> None:
        if edit is None or self.stack is None:
            return
        self.stack.push(EditCommand(self.doc, edit))
        notifications.edit_done(self._mark)  # stale warnings and prompts go (not what the edit itself said)
        self.edited.emit(edit)

    def _try(self, build) -> bool:
        try:
            self.push(build())
            return True
        except EditError as e:
            notifications.warn(f"{e.message} — {e.hint}" if e.hint else e.message, until_edit=True)
            return False

    def pick_cell(self, x: float, y: float) -> tuple[str, int] | None:
        """The cell under (x, y), preferring the selected class where cells overlap."""
        doc = self.doc
        ix, iy = int(x), int(y)
        h, w = doc.shape
        if not (0 <= ix < w and 0 <= iy < h):
            return None
        c = self.ts.cls
        if doc.labels[c][iy, ix]:
            return c, int(doc.labels[c][iy, ix])
        return doc.cell_at(ix, iy)

    def pick_marker(self, x: float, y: float):
        scale = self.canvas.pixel_size() if self.canvas is not None else 1.0
        return edits.nearest_marker(self.doc, x, y, MARKER_PICK_PX * scale)

    def _show_brush(self) -> None:
        if self.canvas is None:
            return
        if self._hover is not None and self.ts.tool in BRUSH_TOOLS and self.doc is not None:
            self.canvas.show_brush(*self._hover, self.ts.brush_radius)
        else:
            self.canvas.hide_brush()

    def _on_state_changed(self, names) -> None:
        if "tool" in names or ("part" in names and self.ts.tool == "parts"):
            self.reset()
            what = f" — paints {self.part} (X switches)" if self.ts.tool == "parts" else ""
            shown = self._show_parts_layer() if self.ts.tool == "parts" else ""
            notifications.status(f"Tool: {TOOL_NAMES.get(self.ts.tool, self.ts.tool)}{what}"
                                 + (f"; {shown}" if shown else ""), 6000 if shown else 3000)
        self._show_brush()

    def _show_parts_layer(self) -> str:
        return self._show_layer("parts")

    def _show_layer(self, key: str) -> str:
        """Show the layer an edit paints (``"parts"`` or a cell class) when it is hidden (its own toggle or H,
        hide all overlays), in the view state the Layers panel and the canvas follow; what was shown, for the
        status bar ("" when it was visible already)."""
        vs = self.view_state
        if vs is None or vs.value.overlay_visible(key):
            return ""
        all_hidden = vs.value.hide_overlays
        if key == "parts":
            vs.update(show_parts=True, hide_overlays=False)
        else:
            vs.update(classes={**vs.value.classes, key: True}, hide_overlays=False)
        name = "nucleus / cytoplasm" if key == "parts" else DISPLAY_NAMES[key]
        return "overlays shown (H had hidden them)" if all_hidden else f"{name} layer shown (it was hidden)"

    def _showing(self, key: str, what: str) -> None:
        """A brush / eraser stroke or a Fill about to change the hidden layer ``key``: show it, and say so."""
        shown = self._show_layer(key)
        if shown:
            notifications.status(f"{shown[0].upper()}{shown[1:]}: the {what} changes it", 6000)

    # -- state changes from shortcuts -------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        self.finish_active()
        self.state.update(tool=tool)

    def set_class(self, cls: str) -> None:
        self.state.update(cls=cls)

    @property
    def part(self) -> str:
        """What the parts brush paints ("nucleus" / "cytoplasm"; a settings file's odd value reads as nucleus)."""
        return self.ts.part if self.ts.part in PART_VALUES else "nucleus"

    def switch_part(self) -> None:
        """X: the parts brush paints the other part (and is the tool)."""
        self.finish_active()
        self.state.update(part="cytoplasm" if self.part == "nucleus" else "nucleus", tool="parts")

    def key_slots(self) -> dict:
        """The shortcut table's actions (gui.shortcuts) that set the tools' options, with their slots."""
        slots = {f"class.{c}": (lambda _=False, c=c: self.set_class(c)) for c in CELL_CLASSES}
        return {**slots, "brush.smaller": lambda: self.resize_brush(0.8),
                "brush.larger": lambda: self.resize_brush(1.25), "parts.switch": self.switch_part}

    def resize_brush(self, factor: float) -> None:
        r = self.ts.brush_radius
        new = int(round(r * factor))
        if new == r:
            new = r + (1 if factor > 1 else -1)
        self.state.update(brush_radius=max(MIN_RADIUS, min(MAX_RADIUS, new)))

    def reset(self) -> None:
        """Forget half-done actions (merge pick, split line); Esc."""
        self._merge_first = None
        self._split_points = []
        self._moving = None
        if self.canvas is not None:
            self.canvas.set_highlight([])
            self.canvas.show_line([])

    def cancel(self) -> bool:
        """Esc: cancel a half-done action (a drag still painting too); True when there was one."""
        busy = self._merge_first is not None or bool(self._split_points) or self._moving is not None
        if self._stroke is not None:  # a drag still painting: its pixels go back, no undo step
            stroke, self._stroke, busy = self._stroke, None, True
            stroke.cancel()
        self.reset()
        if busy:  # (its prompt, "… picked — click the cell to merge with it", no longer holds)
            notifications.status(f"{TOOL_NAMES.get(self.ts.tool, self.ts.tool)}: cancelled", 3000)
        return busy

    def finish_active(self) -> None:
        """End a brush stroke in progress (before undo, image switch, segmentation)."""
        if self._stroke is not None:
            stroke, self._stroke = self._stroke, None
            self.push(stroke.finish())
            if isinstance(stroke, PartsStroke) and stroke.cell is None:
                notifications.warn("The parts brush paints inside white cells — start the stroke on a white cell.",
                                   until_edit=True)

    # -- canvas protocol --------------------------------------------------------------------
    def hover(self, x: float, y: float) -> None:
        self._hover = (x, y)
        self._show_brush()

    def click(self, x: float, y: float) -> None:
        if self.doc is None:
            return
        self._mark = notifications.mark()
        tool, cls = self.ts.tool, self.ts.cls
        if tool in BRUSH_TOOLS:
            if self.drag_start(x, y):
                self.drag_end(x, y)
        elif tool == "fill":
            if self._try(lambda: edits.fill(self.doc, cls, int(x), int(y))):
                self._showing(cls, "fill")
        elif tool in ("delete", "merge", "reclassify"):
            self._cell_click(tool, x, y)
        elif tool == "marker_add":
            ix, iy = int(x), int(y)
            h, w = self.doc.shape
            under = int(self.doc.labels[cls][iy, ix]) if 0 <= ix < w and 0 <= iy < h else 0
            counted = under and self.doc.markers_of_cell(cls, under)
            if self._try(lambda: edits.add_marker(self.doc, cls, x, y)) and counted:
                notifications.warn(f"{DISPLAY_NAMES[cls]} #{under} now counts twice: right for two cells in one "
                                   "outline (Split separates them), else R removes the marker")
        elif tool in ("marker_remove", "marker_reclassify"):
            m = self.pick_marker(x, y)
            if m is None:
                notifications.warn("No marker here — click closer to a marker.", until_edit=True)
            elif tool == "marker_remove":
                left = m.cell and len(self.doc.markers_of_cell(m.cls, m.cell)) == 1
                if self._try(lambda: edits.remove_marker(self.doc, m.id)) and left:
                    notifications.status("Marker removed: the cell is neither counted nor exported any more; "
                                         "its outline stays (D deletes both)", 6000)
            else:
                self._try(lambda: edits.reclassify_marker(self.doc, m.id, cls))

    def _cell_click(self, tool: str, x: float, y: float) -> None:
        picked = self.pick_cell(x, y)
        if picked is None:
            notifications.warn("No cell here — click inside a cell.", until_edit=True)
            return
        pcls, cell = picked
        if tool == "delete":
            self._try(lambda: edits.delete_cell(self.doc, pcls, cell))
        elif tool == "reclassify":
            self._try(lambda: edits.reclassify_cell(self.doc, pcls, cell, self.ts.cls))
        elif self._merge_first is None:
            self._merge_first = (pcls, cell, x, y)
            if self.canvas is not None:
                self.canvas.set_highlight([(x, y)])
            notifications.status(f"Merge: {DISPLAY_NAMES[pcls]} #{cell} picked — click the cell to merge with it "
                                 "(Esc cancels).", 8000, until_edit=True)
        else:
            acls, a, _, _ = self._merge_first
            self.reset()
            if pcls != acls:
                picked_b = self.doc.labels[acls][int(y), int(x)]
                if not picked_b:
                    notifications.warn(f"Both cells must be {DISPLAY_NAMES[acls]} to merge them.", until_edit=True)
                    return
                cell = int(picked_b)
            self._try(lambda: edits.merge_cells(self.doc, acls, a, cell))

    def drag_start(self, x: float, y: float) -> bool:
        if self.doc is None:
            return False
        self._mark = notifications.mark()
        tool = self.ts.tool
        if tool == "parts":  # nucleus / cytoplasm inside the white cell under the stroke; masks stay
            shown = self._show_parts_layer()  # (hidden since the tool was picked)
            if shown:
                notifications.status(f"{shown[0].upper()}{shown[1:]}: the parts brush paints it", 6000)
            self._stroke = PartsStroke(self.doc, self.part, self.ts.brush_radius)
            self._stroke.dab(x, y)
            return True
        if tool in BRUSH_TOOLS:
            erase = tool == "eraser"
            cls = self.ts.cls
            if erase:  # erase the class under the cursor when there is a cell there
                picked = self.pick_cell(x, y)
                cls = picked[0] if picked else cls
            self._showing(cls, tool)  # (an edit no one sees is a mistake no one sees)
            self._stroke = edits.BrushStroke(self.doc, cls, self.ts.brush_radius, erase=erase)
            self._stroke.dab(x, y)
            return True
        if tool == "split":
            self._split_points = [(x, y)]
            return True
        if tool == "navigate":
            m = self.pick_marker(x, y)
            if m is not None:
                self._moving = m.id
                if self.canvas is not None:
                    self.canvas.set_highlight([(m.x, m.y)])
                return True
        return False  # the view pans

    def drag_move(self, x: float, y: float) -> None:
        self._hover = (x, y)
        if self._stroke is not None:
            self._stroke.line_to(x, y)
            self._show_brush()
        elif self._split_points:
            self._split_points.append((x, y))
            if self.canvas is not None:
                self.canvas.show_line(self._split_points)
        elif self._moving is not None and self.canvas is not None:
            self.canvas.set_highlight([(x, y)])

    def drag_end(self, x: float, y: float) -> None:
        if self._stroke is not None:
            self._stroke.line_to(x, y)
            self.finish_active()
        elif self._split_points:
            points = self._split_points + [(x, y)]
            self.reset()
            self.split_along(points)
        elif self._moving is not None:
            mid = self._moving
            self.reset()
            if mid in self.doc.markers:
                was = self.doc.markers[mid]
                if self._try(lambda: edits.move_marker(self.doc, mid, x, y)):
                    self._moved_off(was, self.doc.markers[mid])

    def _moved_off(self, was, now) -> None:
        """A marker dragged off its cell: the count stays the same, so say what it now counts."""
        if not was.cell or now.cell == was.cell:
            return
        under = int(self.doc.labels[now.cls][int(now.y), int(now.x)])
        said = [f"{DISPLAY_NAMES[was.cls]} #{was.cell} is no longer counted (no marker on it)"
                if not self.doc.markers_of_cell(was.cls, was.cell) else "",
                f"{DISPLAY_NAMES[now.cls]} #{under} now counts twice" if under and not now.cell else ""]
        if any(said):
            notifications.warn("; ".join(t for t in said if t) + " — Ctrl+Z puts the marker back", until_edit=True)

    # -- tool API (also for tests and scripts) ----------------------------------------------
    def split_along(self, points) -> bool:
        """Split the cell the polyline crosses most (selected class preferred)."""
        target = self._cell_on_line(points)
        if target is None:
            notifications.warn("The line crosses no cell — drag a line right across the cell to split.",
                               until_edit=True)
            return False
        cls, cell = target
        return self._try(lambda: edits.split_cell(self.doc, cls, cell, points))

    def _cell_on_line(self, points) -> tuple[str, int] | None:
        h, w = self.doc.shape
        pts = np.asarray(points, float)
        samples = [pts[0]]
        for a, b in zip(pts[:-1], pts[1:]):
            n = max(2, int(np.hypot(*(b - a))) + 1)
            samples.append(a + (b - a) * np.linspace(0, 1, n)[:, None])
        s = np.vstack(samples).astype(int)
        s = s[(s[:, 0] >= 0) & (s[:, 0] < w) & (s[:, 1] >= 0) & (s[:, 1] < h)]
        for cls in [self.ts.cls] + [c for c in CELL_CLASSES if c != self.ts.cls]:
            vals = self.doc.labels[cls][s[:, 1], s[:, 0]]
            vals = vals[vals > 0]
            if vals.size:
                ids, counts = np.unique(vals, return_counts=True)
                return cls, int(ids[int(np.argmax(counts))])
        return None

    def stroke(self, points, erase: bool = False) -> None:
        """Paint a whole drag through ``points`` with the brush (or eraser): one undo step."""
        self.state.update(tool="eraser" if erase else "brush")
        self._drag_through(points)

    def paint_parts(self, points, part: str | None = None) -> None:
        """Paint a whole drag through ``points`` with the parts brush (``part``: else the chosen one): one undo step."""
        self.state.update(tool="parts", **({"part": part} if part else {}))
        self._drag_through(points)

    def _drag_through(self, points) -> None:
        self.drag_start(*points[0])
        for p in points[1:]:
            self.drag_move(*p)
        self.drag_end(*points[-1])
