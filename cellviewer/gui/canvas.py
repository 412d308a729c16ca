"""The image view: image, class overlays, count markers and tool previews (pyqtgraph).

* The ViewBox has a locked aspect ratio and an inverted y axis, so scene coordinates are image pixel
  coordinates (x = column, y = row).
* The image is one ``ImageItem`` showing a level of an image pyramid (``cv2.INTER_AREA`` halvings, made on
  demand): the coarsest level that still has one image pixel per screen pixel, so a zoomed-out 5-megapixel
  image paints a ~1-megapixel texture (pyqtgraph's own auto-downsampling averages in float on every paint).
* The overlays are one persistent RGBA composite (:mod:`cellviewer.gui.overlay`) shown through a grid of
  tile ``ImageItem``\\ s: a :class:`Change` re-renders only its rectangle (+1 px for outlines) and re-uploads
  only the tiles it touches (a brush dab on a 5-megapixel image: well under a millisecond of numpy plus one
  small texture). A whole re-render of a big image (a segmentation, its undo) goes a few tiles per turn of
  the event loop, those in view first (:mod:`cellviewer.gui.slices`).
* Markers are one ``ScatterPlotItem`` per class (11 px on screen, smaller — at least 4 px — when a red cell
  is under ~30 screen px, so a zoomed-out field of a thousand cells still shows its cells; auto markers
  ``o``, manual ``+``; hollow when the document's border rule does not count the cell). A cell that is not
  counted (left out by the border rule, or its count marker removed by hand) is drawn as an outline without
  its fill tint (``overlay.render``'s ``hollow``), as in the report's overview.
* Mouse input goes to ``canvas.handler`` (the tool controller) in image coordinates; with no handler (or
  the navigate tool) the view pans and zooms.
"""

from __future__ import annotations

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import QGraphicsEllipseItem
from shiboken6 import isValid

from cellviewer.core.document import CELL_CLASSES, CLASS_COLORS, Change, Document
from cellviewer.gui import overlay
from cellviewer.gui.state import ViewState

TILE = 512
MARKER_SIZE = 11
MIN_MARKER_SIZE = 4
MARKER_CELL_FRACTION = 0.35  # a zoomed-out marker is at most this fraction of a red cell's diameter
_ROW = {"axisOrder": "row-major"}


class PassiveScatter(pg.ScatterPlotItem):
    """Marker dots that never take a click: pyqtgraph's scatter accepts a left click on a dot, so a
    tool (remove / reclassify marker, delete cell, ...) would never see a click aimed at the dot."""

    def mouseClickEvent(self, ev):
        ev.ignore()

    def clear(self):  # pyqtgraph's repaints only the new, empty box: the dots stayed on screen (a merge ring)
        self.prepareGeometryChange()
        super().clear()


class ToolViewBox(pg.ViewBox):
    """A ViewBox that hands left-button clicks and drags to a tool handler."""

    def __init__(self, canvas: "Canvas"):
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._canvas = canvas
        self._dragging = False

    def _xy(self, scene_pos) -> tuple[float, float]:
        p = self.mapSceneToView(scene_pos)
        return float(p.x()), float(p.y())

    def mouseClickEvent(self, ev):
        h = self._canvas.handler
        if h is not None and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            h.click(*self._xy(ev.scenePos()))
            return
        super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None):
        h = self._canvas.handler
        if ev.button() == Qt.MouseButton.LeftButton and h is not None:
            if ev.isStart():
                self._dragging = h.drag_start(*self._xy(ev.buttonDownScenePos()))
            if self._dragging:
                ev.accept()
                x, y = self._xy(ev.scenePos())
                if ev.isFinish():
                    self._dragging = False
                    h.drag_end(x, y)
                else:
                    h.drag_move(x, y)
                return
        super().mouseDragEvent(ev, axis)


class Canvas(pg.GraphicsView):
    hovered = Signal(float, float)  # image coordinates of the mouse
    left = Signal()  # the mouse left the view

    def __init__(self, parent=None):
        super().__init__(parent, background=pg.mkColor(40, 40, 40))
        self.vb = ToolViewBox(self)
        self.setCentralItem(self.vb)
        self.handler = None  # a ToolController (click/drag_start/drag_move/drag_end)
        self.doc: Document | None = None
        self.view = ViewState()
        self.image_item = pg.ImageItem(**_ROW)
        self.vb.addItem(self.image_item)
        self._pyramid: dict[int, np.ndarray] = {}
        self._level = -1
        self.vb.sigTransformChanged.connect(self._update_level)
        self.vb.sigTransformChanged.connect(self._update_marker_size)
        self._marker_size = MARKER_SIZE
        self.overlay_group = pg.ItemGroup()
        self.overlay_group.setZValue(10)
        self.vb.addItem(self.overlay_group)
        self._rgba: np.ndarray | None = None
        from cellviewer.gui.slices import Stepper

        self._overlay_steps = Stepper(self)  # a big image's whole overlay, re-rendered a few tiles at a time
        self._tiles: dict[tuple[int, int], pg.ImageItem] = {}
        self._hollow: dict[str, np.ndarray] = {}  # class -> ids of the cells not counted (drawn untinted)
        self._top_id: dict[str, int] = {}  # class -> highest cell id (kept up to date edit by edit, not rescanned)
        self.markers = {c: PassiveScatter(pxMode=True, size=MARKER_SIZE) for c in CELL_CLASSES}
        self.highlight = PassiveScatter(pxMode=True, size=MARKER_SIZE + 10, symbol="o",
                                        pen=pg.mkPen("w", width=2), brush=None)
        self.brush_preview = QGraphicsEllipseItem()
        self.brush_preview.setPen(pg.mkPen("w", width=1.5))  # (cosmetic: 1.5 screen px at any zoom)
        self.brush_preview.setVisible(False)
        self.line_preview = pg.PlotCurveItem(pen=pg.mkPen("w", width=2, style=Qt.PenStyle.DashLine))
        for z, item in [(20, m) for m in self.markers.values()] + [(25, self.highlight), (30, self.brush_preview),
                                                                    (30, self.line_preview)]:
            item.setZValue(z)
            self.vb.addItem(item)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.setMouseTracking(True)
        self.stats = {"overlay_updates": 0, "tile_uploads": 0}

    # -- document ---------------------------------------------------------------------
    def set_document(self, doc: Document | None) -> None:
        if self.doc is not None:
            self.doc.unsubscribe(self.on_change)
        self.doc = doc
        self.set_highlight([])  # a ring of the last image's cell means nothing here
        for t in self._tiles.values():
            if t.scene() is not None:
                t.scene().removeItem(t)
        self._tiles.clear()
        self._overlay_steps.cancel()
        self._rgba = None
        self._pyramid, self._level = {}, -1
        self._top_id = {}
        self._update_hollow()
        if doc is None:
            self.image_item.clear()
            for item in self.markers.values():
                item.clear()
            return
        self._pyramid[0] = doc.image.pixels
        h, w = doc.shape
        self._rgba = np.zeros((h, w, 4), np.uint8)
        for ty in range(0, h, TILE):
            for tx in range(0, w, TILE):
                item = pg.ImageItem(**_ROW)
                item.setPos(tx, ty)
                item.setParentItem(self.overlay_group)
                self._tiles[(ty // TILE, tx // TILE)] = item
        doc.subscribe(self.on_change)
        if any(lab.any() for lab in doc.labels.values()):  # a fresh image: nothing to draw yet
            self.refresh_overlay()
        self.refresh_markers()
        self.apply_view()
        self.zoom_to_fit()
        self._update_level()

    def _update_level(self, *_args) -> None:
        """Show the pyramid level for the current zoom (image px per screen px)."""
        if self.doc is None or 0 not in self._pyramid:
            return
        k = 0
        px = self.pixel_size() if self.vb.width() > 0 else 1.0
        h, w = self.doc.shape
        while 2 ** (k + 1) <= px and min(h, w) >> (k + 1) >= 16:
            k += 1
        if k == self._level:
            return
        if k not in self._pyramid:
            prev = self._pyramid[max(j for j in self._pyramid if j < k)]
            while prev.shape[0] > h >> k:  # halve (area average) down to level k
                prev = cv2.resize(prev, ((prev.shape[1] + 1) // 2, (prev.shape[0] + 1) // 2),
                                  interpolation=cv2.INTER_AREA)
            self._pyramid[k] = prev
        img = self._pyramid[k]  # uint8 shown as it is: levels (0, 255) would make pyqtgraph rescale every pixel
        self.image_item.setImage(img, autoLevels=False, levels=None if img.dtype == np.uint8 else (0, 255), **_ROW)
        self.image_item.setRect(QRectF(0, 0, w, h))
        self._level = k

    def on_change(self, change: Change) -> None:
        if self.doc is None:
            return
        self._note_ids(change)
        recount = change.markers or change.bbox is None or (change.layers and self._at_edge(change.bbox))
        if recount and self._update_hollow() and not self.view.outline:
            self.refresh_overlay()  # which cells count changed (border rule, an edge edit): redraw them
        elif change.layers:
            self.refresh_overlay(change.bbox)
        if recount:
            self.refresh_markers()

    def _update_hollow(self) -> bool:
        """Recompute which cells are not counted — left out by the border rule, or with no count marker (the
        marker was removed by hand), as in the report's overview (:func:`cellviewer.core.render.overlay_rgb`);
        True when that changed."""
        new: dict[str, np.ndarray] = {}
        doc = self.doc
        if doc is not None:
            out = doc.uncounted()
            counted: dict[str, set] = {}
            for m in doc.markers.values():
                if m.cell and m.id not in out:
                    counted.setdefault(m.cls, set()).add(m.cell)
            for cls, lab in doc.labels.items():
                if cls not in self._top_id:
                    self._top_id[cls] = int(lab.max(initial=0))
                n = self._top_id[cls]  # ids of deleted cells may be listed too: they match no pixel
                ids = np.setdiff1d(np.arange(1, n + 1, dtype=np.int32),
                                   np.fromiter(counted.get(cls, ()), np.int32), assume_unique=True)
                if len(ids):
                    new[cls] = ids
        old, self._hollow = self._hollow, new
        return old.keys() != new.keys() or any(not np.array_equal(old[k], new[k]) for k in new)

    def _note_ids(self, change: Change) -> None:
        """Keep :attr:`_top_id` up to date: an edit can only add ids inside its box (a whole-image change: scan
        again when needed); a deleted top id stays, harmlessly, in :attr:`_hollow`."""
        if change.bbox is None:
            self._top_id = {}
            return
        y0, x0, y1, x1 = change.bbox
        for cls in change.layers:
            if cls in self._top_id and cls in self.doc.labels:
                crop = self.doc.labels[cls][y0:y1, x0:x1]
                self._top_id[cls] = max(self._top_id[cls], int(crop.max(initial=0)))

    def _at_edge(self, bbox) -> bool:
        """An edit at the image edge, or at the edge of the field of view inside it, may change which cells the
        border rule counts."""
        if self.doc is None or self.doc.border_rule == "all":
            return False
        h, w = self.doc.shape
        if bbox[0] <= 0 or bbox[1] <= 0 or bbox[2] >= h or bbox[3] >= w:
            return True
        field = self.doc.field_edge()
        return field is not None and bool(np.any((field.ys >= bbox[0]) & (field.ys < bbox[2])
                                                 & (field.xs >= bbox[1]) & (field.xs < bbox[3])))

    # -- overlay ----------------------------------------------------------------------
    def refresh_overlay(self, bbox=None) -> None:
        """Re-render the composite in ``bbox`` (None = everything) and upload the touched tiles. Everything on a
        big image (:func:`cellviewer.gui.slices.is_big`): tile by tile, the ones in view first, a few per turn
        of the event loop (:meth:`finish_overlay` completes it at once)."""
        doc = self.doc
        if doc is None or self._rgba is None:
            return
        h, w = doc.shape
        if bbox is None:
            from cellviewer.gui.slices import is_big

            if is_big((h, w)):
                self._overlay_steps.start(self._render_tiles(), lambda _r: None)
                return
            self._overlay_steps.cancel()  # (everything now)
        box = (0, 0, h, w) if bbox is None else overlay.grow(bbox, 1, (h, w))
        self._render_box(box)

    def _render_tiles(self):
        """Generator: the whole composite, one tile per step, those in view first."""
        h, w = self.doc.shape
        view = self.vb.viewRect()
        keys = sorted(self._tiles, key=lambda k: not view.intersects(QRectF(k[1] * TILE, k[0] * TILE, TILE, TILE)))
        for ty, tx in keys:
            if not isValid(self._tiles[(ty, tx)]):  # the view went (a window closing)
                return
            self._render_box((ty * TILE, tx * TILE, min(h, (ty + 1) * TILE), min(w, (tx + 1) * TILE)))
            yield

    def finish_overlay(self) -> None:
        """Complete a whole-image re-render still going on (:meth:`refresh_overlay`)."""
        self._overlay_steps.finish()

    def _render_box(self, box) -> None:
        doc = self.doc
        if box[0] >= box[2] or box[1] >= box[3]:
            return
        y0, x0, y1, x1 = box
        self._rgba[y0:y1, x0:x1] = overlay.render(doc.labels, doc.parts, box, self.view.overlay_visible,
                                                  self.view.outline, self._hollow)
        self.stats["overlay_updates"] += 1
        for ty in range(y0 // TILE, (y1 - 1) // TILE + 1):
            for tx in range(x0 // TILE, (x1 - 1) // TILE + 1):
                item = self._tiles[(ty, tx)]
                item.setImage(np.ascontiguousarray(self._rgba[ty * TILE:(ty + 1) * TILE, tx * TILE:(tx + 1) * TILE]),
                              autoLevels=False, levels=None, **_ROW)
                self.stats["tile_uploads"] += 1

    def overlay_rgba(self) -> np.ndarray | None:
        """The current overlay composite (for tests and screenshots)."""
        self.finish_overlay()
        return self._rgba

    # -- markers ----------------------------------------------------------------------
    def marker_size_for_zoom(self) -> int:
        """On-screen marker size (px): :data:`MARKER_SIZE`, less when red cells look small."""
        d = (self.doc.provenance.params or {}).get("diameter_px") if self.doc is not None else None
        if not d or self.vb.width() <= 0:
            return MARKER_SIZE
        on_screen = float(d) / self.pixel_size()
        return int(max(MIN_MARKER_SIZE, min(MARKER_SIZE, round(MARKER_CELL_FRACTION * on_screen))))

    def _update_marker_size(self, *_args) -> None:
        size = self.marker_size_for_zoom()
        if size != self._marker_size:
            self._marker_size = size
            for item in self.markers.values():
                item.setSize(size)

    def refresh_markers(self) -> None:
        self._update_marker_size()
        doc = self.doc
        uncounted = doc.uncounted() if doc is not None else set()
        for cls, item in self.markers.items():
            if doc is None:
                item.clear()
                continue
            ms = [m for m in doc.markers.values() if m.cls == cls]
            color = CLASS_COLORS[cls]
            filled, hollow = pg.mkBrush(*color, 230), pg.mkBrush(*color, 40)  # hollow: not counted (border rule)
            item.setData(
                x=np.array([m.x for m in ms], float), y=np.array([m.y for m in ms], float),
                symbol=["+" if m.origin == "manual" else "o" for m in ms],
                brush=[hollow if m.id in uncounted else filled for m in ms], pen=pg.mkPen(20, 20, 20, width=1),
                data=[m.id for m in ms])

    def set_highlight(self, points) -> None:
        """White rings at ``points`` [(x, y), ...] (e.g. the first cell picked for a merge)."""
        if not points:
            self.highlight.clear()
        else:
            self.highlight.setData(x=[p[0] for p in points], y=[p[1] for p in points])

    # -- view state -------------------------------------------------------------------
    def set_view_state(self, view: ViewState, changed=None) -> None:
        self.view = view
        self.apply_view(changed)

    def apply_view(self, changed=None) -> None:
        v = self.view
        self.image_item.setVisible(v.show_image)
        self.overlay_group.setOpacity(float(v.opacity))
        for cls, item in self.markers.items():
            item.setVisible(v.show_markers and not v.hide_overlays and bool(v.classes.get(cls, True)))
        if changed and changed & {"classes", "show_parts", "outline", "hide_overlays"}:
            self.refresh_overlay()  # None = first set-up: set_document renders anyway

    def zoom_to_fit(self) -> None:
        if self.doc is not None:
            h, w = self.doc.shape
            self.vb.setRange(QRectF(0, 0, w, h), padding=0.02)

    def pixel_size(self) -> float:
        """Image pixels per screen pixel (for click tolerances)."""
        px = self.vb.viewPixelSize()
        return float(max(px[0], px[1])) or 1.0

    def map_to_view(self, x: float, y: float):
        """Widget (viewport) position of image point (x, y) — for synthetic mouse events."""
        scene = self.vb.mapViewToScene(QPointF(x, y))
        return self.mapFromScene(scene)

    # -- previews ---------------------------------------------------------------------
    def show_brush(self, x: float, y: float, radius: float) -> None:
        self.brush_preview.setRect(QRectF(x - radius, y - radius, 2 * radius, 2 * radius))
        self.brush_preview.setVisible(True)

    def hide_brush(self) -> None:
        self.brush_preview.setVisible(False)

    def show_line(self, points) -> None:
        if len(points) >= 2:
            self.line_preview.setData(x=[p[0] for p in points], y=[p[1] for p in points])
        else:
            self.line_preview.setData([], [])

    # -- mouse ------------------------------------------------------------------------
    def _on_mouse_moved(self, scene_pos) -> None:
        if self.doc is None:
            return
        p = self.vb.mapSceneToView(scene_pos)
        self.hovered.emit(float(p.x()), float(p.y()))

    def leaveEvent(self, ev):
        self.left.emit()
        super().leaveEvent(ev)
