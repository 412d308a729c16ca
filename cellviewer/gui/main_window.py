"""The main window: wiring only — menus, docks, status bar, drag and drop, persistence."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox

from cellviewer import __version__
from cellviewer.core.countframe import rule_or_default
from cellviewer.core.document import CELL_CLASSES
from cellviewer.core.errors import Cancelled, CellviewerError
from cellviewer.gui import keyboard, notifications, settings
from cellviewer.gui.actions import ShortcutsDialog, make_action
from cellviewer.gui.canvas import Canvas
from cellviewer.gui.statusbits import (CautionLabel, JobProgressBar, LastingWarning, counts_text, cursor_text,
                                      keep_status_line, size_text)
from cellviewer.gui.docks import add_dock, restore_layout, save_layout
from cellviewer.gui.export import Exporter
from cellviewer.gui.humanloop import install as install_human_loop
from cellviewer.gui.folder_report import FolderReporter
from cellviewer.gui.panels.counts import CountsPanel
from cellviewer.gui.panels.edit import EditPanel
from cellviewer.gui.panels.files import FilesPanel
from cellviewer.gui.panels.layers import LayersPanel
from cellviewer.gui.panels.segment import SegmentPanel
from cellviewer.gui.segmentation import SegmentationController
from cellviewer.gui.session import Session
from cellviewer.gui.shortcuts import DOCUMENT_ACTIONS
from cellviewer.gui.state import TOOLS, CountSettings, Observable, SegmentParams, ToolState, ViewState
from cellviewer.gui.tools import ToolController

IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.tif *.tiff);;All files (*)"


class MainWindow(QMainWindow):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("cellviewer")
        self.setAcceptDrops(True)
        self._shut_down = False
        self.view_state = Observable(settings.load_dataclass("view", ViewState), self)
        self.tool_state = Observable(replace(settings.load_dataclass("tools", ToolState), tool="navigate"), self)
        # (class and brush size are kept; a first click never deletes a cell because the last session ended so)
        self.seg_params = Observable(settings.load_dataclass("segment", SegmentParams), self)
        self.count_settings = Observable(settings.load_dataclass("counts", CountSettings), self)
        counts = self.count_settings.value
        counts.border_rule = rule_or_default(counts.border_rule)  # checked once: settings files can be edited
        self.session = Session(self)
        self.canvas = Canvas()
        self.canvas.set_view_state(self.view_state.value)
        self.setCentralWidget(self.canvas)
        self.tools = ToolController(self.tool_state, self.canvas, self, view_state=self.view_state)
        self.canvas.handler = self.tools
        self.segmentation = SegmentationController(self.session, self.seg_params, self.tools, self)
        self.exporter = Exporter(self)
        self.folder_reporter = FolderReporter(self)
        self.edit_panel = EditPanel(self.tool_state)
        self.layers_panel = LayersPanel(self.view_state)
        self.counts_panel = CountsPanel(self.count_settings)
        self.counts_panel.push = self.tools.push  # the border rule: an undo step
        self.segment_panel = SegmentPanel(self.seg_params)
        self.files_panel = FilesPanel()
        self.docks = {}
        for key, title, widget, area in (
                ("edit", "Edit", self.edit_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
                ("layers", "Layers", self.layers_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
                ("counts", "Counts", self.counts_panel, Qt.DockWidgetArea.RightDockWidgetArea),
                ("segment", "Segmentation", self.segment_panel, Qt.DockWidgetArea.RightDockWidgetArea),
                ("files", "Files", self.files_panel, Qt.DockWidgetArea.RightDockWidgetArea)):
            add_dock(self, key, title, widget, area)
        self._build_status_bar()
        self._build_actions()
        self._build_menus()
        self._connect()
        self.human_loop = install_human_loop(self)  # review queue, training-set export, retrain, model versions
        keyboard.install(self)  # zoom keys, arrow keys pan, Esc in a panel back to the image
        self._enable_for_document(None)
        restore_layout(self)

    # -- construction -------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.device_label, self.size_label, self.cursor_label, self.counts_label = (QLabel() for _ in range(4))
        self.caution_label, self.job_bar, self.lasting_warning = CautionLabel(), JobProgressBar(), LastingWarning()
        for w in (self.lasting_warning, self.caution_label, self.job_bar, self.cursor_label, self.counts_label, self.size_label, self.device_label):
            bar.addPermanentWidget(w)
        notifications.set_status_bar(bar, lasting=self.lasting_warning)
        notifications.set_parent(self)
        keep_status_line(self)  # an empty status tip (hovering) no longer wipes the last line

    def _build_actions(self) -> None:
        A = self.actions_by_id = {}
        add = lambda aid, slot, **kw: A.setdefault(aid, make_action(self, aid, slot, **kw))  # noqa: E731
        add("file.open", self.choose_image)
        add("file.open_folder", self.choose_folder)
        add("file.save", self.save)
        add("file.export", self.choose_export)
        add("file.report_folder", self.choose_folder_report)
        add("file.next", lambda: self.files_panel.step(+1))
        add("file.previous", lambda: self.files_panel.step(-1))
        add("file.quit", self.close)
        for tool in TOOLS:
            add(f"tool.{tool}", lambda _=False, t=tool: self.tools.set_tool(t), checkable=True)
        for aid, slot in self.tools.key_slots().items():  # class, brush size, nucleus / cytoplasm
            add(aid, slot)
        add("cancel", self.escape)
        add("view.outline", lambda on: self.view_state.update(outline=on), checkable=True)
        add("view.hide_overlays", lambda on: self.view_state.update(hide_overlays=on), checkable=True)
        add("view.fit", self.canvas.zoom_to_fit)
        add("seg.run", lambda: self.segmentation.run())
        add("seg.cancel", self.segmentation.cancel)
        add("seg.reclassify", self.segmentation.reclassify)
        add("help.shortcuts", self.show_shortcuts)
        add("edit.undo", self.undo)
        add("edit.redo", self.redo)
        group = self.session.undo_group
        for aid, word, can, text in (("edit.undo", "Undo", group.canUndoChanged, group.undoTextChanged),
                                     ("edit.redo", "Redo", group.canRedoChanged, group.redoTextChanged)):
            A[aid].setEnabled(False)
            can.connect(A[aid].setEnabled)
            text.connect(lambda t, a=A[aid], w=word: a.setText(f"{w} {t}".strip()))

    def _build_menus(self) -> None:
        A, mb = self.actions_by_id, self.menuBar()
        m = mb.addMenu("&File")
        m.addActions([A["file.open"], A["file.open_folder"]])
        self.recent_menu = m.addMenu("Recent files")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        m.addActions([A["file.save"], A["file.export"], A["file.report_folder"]])
        m.addSeparator()
        m.addActions([A["file.next"], A["file.previous"]])
        m.addSeparator()
        m.addAction(A["file.quit"])
        m = mb.addMenu("&Edit")
        m.addActions([A["edit.undo"], A["edit.redo"]])
        m.addSeparator()
        m.addActions([A[f"tool.{t}"] for t in TOOLS])
        m.addSeparator()
        m.addActions([A[f"class.{c}"] for c in CELL_CLASSES]
                     + [A[k] for k in ("parts.switch", "brush.smaller", "brush.larger", "cancel")])
        m = mb.addMenu("&View")
        m.addActions([A["view.outline"], A["view.hide_overlays"], A["view.fit"]])
        m.addSeparator()
        for dock in self.docks.values():
            m.addAction(dock.toggleViewAction())
        m = mb.addMenu("&Segmentation")
        m.addActions([A["seg.run"], A["seg.cancel"], A["seg.reclassify"]])
        m = mb.addMenu("&Help")
        m.addAction(A["help.shortcuts"])
        m.addAction("About cellviewer", self.show_about)

    def _connect(self) -> None:
        s = self.session
        s.document_changed.connect(self._on_document)
        s.saved.connect(self.files_panel.refresh_saved)  # the image of that sidecar (maybe no longer open)
        s.dirty_changed.connect(self.setWindowModified)
        self.view_state.changed.connect(self._on_view_changed)
        self.tool_state.changed.connect(self._on_tool_changed)
        self.segmentation.device_text.connect(self._show_device)
        self.segmentation.replaced.connect(self.tools.reset)  # a merge pick, a marker drag: by id, now stale
        self.canvas.hovered.connect(self._on_hover)
        self.canvas.left.connect(self.canvas.hide_brush)
        self.counts_panel.updated.connect(self._on_counts)
        self.files_panel.activated.connect(self.open_image)
        sp, runner = self.segment_panel, self.segmentation.runner
        sp.run_requested.connect(lambda: self.segmentation.run())
        sp.cancel_requested.connect(self.segmentation.cancel)
        runner.running_changed.connect(sp.set_running)
        runner.progress.connect(sp.set_progress)
        runner.progress.connect(lambda f, msg: notifications.progress(f"Segmentation {f:.0%}: {msg}"))
        self.job_bar.attach(runner, self.segmentation.cancel)
        self.segmentation.applied.connect(lambda r: self.device_label.setText(f"Device: {r.device} ({r.model_name})"))
        self.segmentation.applied.connect(lambda _r: self._show_size(self.session.doc))
        self._on_tool_changed(frozenset({"tool"}))
        self._on_view_changed(frozenset())
        self.segmentation.update_device()

    # -- documents ---------------------------------------------------------------------------
    def open_image(self, path) -> bool:
        """Open one image (saving the current one first); auto-segments when it has no sidecar nor recovered edits."""
        self.tools.finish_active()
        if self.segmentation.runner.is_running:
            self.segmentation.cancel()
        try:
            self.session.open(path)
        except Cancelled as e:  # the user chose not to open it (open elsewhere)
            notifications.status(e.message, 8000)
            return False
        except CellviewerError as e:
            self.files_panel.skip_failed(path)  # Next goes past it, not back to it
            notifications.show_error(e, "Open")
            return False
        path = Path(path)
        if self.files_panel.folder is None or self.files_panel.index_of(path) is None:
            self.files_panel.set_folder(path.parent, path)
        else:
            self.files_panel.set_current(path)
        settings.add_recent_file(str(path))
        settings.put("last_folder", str(path.parent))
        if not self.session.had_sidecar and self.seg_params.value.auto_run and self.session.recovered is None:
            self.segmentation.run(confirm=False)
        elif not self.session.had_sidecar and self.seg_params.value.auto_run:  # a crash before the first save
            notifications.status("Not segmented automatically: it would replace the recovered corrections.", 15000)
        return True

    def open_folder(self, folder) -> bool:
        try:
            self.files_panel.set_folder(folder)
        except CellviewerError as e:
            notifications.show_error(e, "Open folder")
            return False
        settings.put("last_folder", str(folder))
        if not self.files_panel.paths:
            notifications.warn(f"No images in {folder}.")
            return False
        # the first image that opens (one that cannot be read says so, and the next is tried)
        return any(self.open_image(p) for p in list(self.files_panel.paths))

    def _enable_for_document(self, doc) -> None:
        """Actions on the open image are greyed out while none is open."""
        for aid in DOCUMENT_ACTIONS:
            self.actions_by_id[aid].setEnabled(doc is not None)

    def _on_document(self, doc) -> None:
        self._enable_for_document(doc)
        if doc is not None and not self.session.had_sidecar and "border_rule" not in self.session.recovered_settings:
            doc.border_rule = self.count_settings.value.border_rule  # the user's rule for new images
        self.canvas.set_document(doc)
        self.tools.set_document(doc, self.session.stack)
        self.counts_panel.set_document(doc)
        name = self.session.path.name if doc is not None else ""
        self.setWindowTitle(f"cellviewer — {name} [*]" if doc is not None else "cellviewer")
        self.setWindowModified(False)
        self.caution_label.set_document(doc, name)
        self._show_size(doc)
        self.segmentation.update_device()  # (_show_device: the masks' model and device, when there are masks)
        self._hover = None  # the last image's position and cell mean nothing here
        self.cursor_label.setText("")

    def _show_device(self, text: str) -> None:
        """The device label: which model made the open image's masks, on what device; else ``text`` (what a run
        would use)."""
        prov = self.session.doc.provenance if self.session.doc is not None else None
        if prov is not None and prov.model_name:
            text = f"Device: {prov.device or '?'} ({prov.model_name})"
        self.device_label.setText(text)

    def _show_size(self, doc) -> None:
        """Image size, and the red-cell size the last segmentation used (so a wrong estimate is seen)."""
        text, tip = size_text(doc)
        self.size_label.setText(text)
        self.size_label.setToolTip(tip)

    def undo(self) -> None:
        self.tools.finish_active()  # a stroke in progress becomes its own step first
        self.tools.cancel()  # a merge pick (by cell id), a split line: stale after the undo
        self.session.undo()

    def redo(self) -> None:
        self.tools.finish_active()
        self.tools.cancel()
        self.session.redo()

    def save(self) -> bool:
        self.tools.finish_active()
        return self.session.save_by_user()

    def export_report(self, pdf_path) -> bool:
        self.tools.finish_active()
        name = self.session.path.name if self.session.path else "image"
        return self.exporter.export(self.session.doc, name, pdf_path)

    # -- dialogs -----------------------------------------------------------------------------
    def _start_dir(self) -> str:
        return str(settings.get("last_folder", "") or Path.home())

    def choose_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self._start_dir(), IMAGE_FILTER)
        if path:
            self.open_image(path)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder", self._start_dir())
        if folder:
            self.open_folder(folder)

    def choose_export(self) -> None:
        if self.session.doc is None:
            notifications.status("Open an image first.")
            return
        default = self.session.path.with_name(self.session.path.stem + "_report.pdf")
        path, _ = QFileDialog.getSaveFileName(self, "Export report", str(default), "PDF (*.pdf)")
        if path:
            self.export_report(path)

    def choose_folder_report(self) -> None:
        folder = self.files_panel.folder
        if folder is None or not self.files_panel.paths:
            notifications.status("Open a folder with images first.")
            return
        default = Path(folder) / f"{Path(folder).name}_report.pdf"
        path, _ = QFileDialog.getSaveFileName(self, "Report for folder", str(default), "PDF (*.pdf)")
        if path:
            self.report_folder(path)

    def report_folder(self, pdf_path) -> bool:
        """Every image of the open folder (saved corrections, else segmented) in one report, in a worker."""
        self.tools.finish_active()
        self.session.save_now()  # the open image's latest corrections count
        name, opts = self.segmentation.segmenter_request()
        folder = self.files_panel.folder
        return self.folder_reporter.start(self.files_panel.paths, pdf_path, name, opts, folder.name if folder else "",
                                          self.count_settings.value.border_rule)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for p in settings.recent_files():
            self.recent_menu.addAction(p, lambda p=p: self.open_image(p))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none)").setEnabled(False)

    def show_shortcuts(self) -> None:
        ShortcutsDialog(self).exec()

    def show_about(self) -> None:
        QMessageBox.about(self, "About cellviewer",
                          f"cellviewer {__version__}\nReview, correct and count blood-smear segmentations.")

    # -- reactions ---------------------------------------------------------------------------
    def escape(self) -> None:
        keyboard.escape(self)  # a half-done tool action, a running job, the focus back from a panel, else Navigate

    def _on_view_changed(self, names) -> None:
        self.canvas.set_view_state(self.view_state.value, names or None)
        for aid, field in (("view.outline", "outline"), ("view.hide_overlays", "hide_overlays")):
            self.actions_by_id[aid].setChecked(bool(getattr(self.view_state.value, field)))

    def _on_tool_changed(self, _names) -> None:
        for tool in TOOLS:
            self.actions_by_id[f"tool.{tool}"].setChecked(tool == self.tool_state.value.tool)

    def _on_hover(self, x: float, y: float) -> None:
        self.tools.hover(x, y)
        self._hover = (x, y)
        self._show_cursor()

    def _show_cursor(self) -> None:
        """Position and cell under the mouse (again after an edit: a deleted cell is not named)."""
        doc = self.session.doc
        if doc is None or getattr(self, "_hover", None) is None:
            return
        self.cursor_label.setText(cursor_text(doc, *self._hover))

    def _on_counts(self, counts) -> None:
        self._show_cursor()
        self.counts_label.setText(counts_text(counts))

    # -- drag and drop -------------------------------------------------------------------------
    def dragEnterEvent(self, ev) -> None:
        if any(u.isLocalFile() for u in ev.mimeData().urls()):
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        paths = [Path(u.toLocalFile()) for u in ev.mimeData().urls() if u.isLocalFile()]
        if not paths:
            return
        ev.acceptProposedAction()
        self.open_folder(paths[0]) if paths[0].is_dir() else self.open_image(paths[0])

    # -- persistence -----------------------------------------------------------------------------
    def save_settings(self) -> None:
        save_layout(self)
        for key, state in (("view", self.view_state), ("tools", self.tool_state), ("segment", self.seg_params),
                           ("counts", self.count_settings)):
            settings.save_dataclass(key, state.value)

    def closeEvent(self, ev) -> None:
        self.shutdown()
        super().closeEvent(ev)

    def shutdown(self) -> None:
        """Save the settings, stop every job and flush the session; once (close, or a quit that skips it)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.save_settings()
        self.segmentation.runner.shutdown()
        self.exporter.runner.shutdown()
        self.human_loop.shutdown()
        self.folder_reporter.runner.shutdown()
        self.segmentation.probe.shutdown()
        self.tools.finish_active()
        self.session.shutdown()
        notifications.detach(self, self.statusBar())
