"""Wiring of the human-in-the-loop parts into the main window (wiring only).

:func:`install` adds the Review, Retrain and Models docks, the actions of the shortcut
table's ``review.*``, ``file.export_training`` and ``models.*`` entries, File ▸ Export
training set… and a Models menu, and connects them to the session, canvas and
segmentation. The window keeps the returned :class:`HumanLoop` (``window.human_loop``).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt

from cellviewer.gui import notifications
from cellviewer.gui.actions import make_action
from cellviewer.gui.dataset_export import DatasetExporter
from cellviewer.gui.docks import add_dock
from cellviewer.gui.panels.models import ModelsPanel
from cellviewer.gui.panels.review import ReviewPanel, centre_on
from cellviewer.gui.panels.training import TrainingPanel
from cellviewer.gui.retrain import RetrainController


def _menu(window, title: str):
    for a in window.menuBar().actions():
        if a.menu() is not None and a.text().replace("&", "") == title:
            return a.menu()
    return None


def _insert_after(menu, anchor, action) -> None:
    acts = menu.actions()
    i = acts.index(anchor) if anchor in acts else len(acts) - 1
    if i + 1 < len(acts):
        menu.insertAction(acts[i + 1], action)
    else:
        menu.addAction(action)


class HumanLoop(QObject):
    def __init__(self, window):
        super().__init__(window)
        from cellviewer.core.modelstore import ModelStore

        self.window = w = window
        self.review_panel = ReviewPanel()
        self.training_panel = TrainingPanel()
        self.models_panel = ModelsPanel(ModelStore())
        self.exporter = DatasetExporter(w)
        self.retrain = RetrainController(self.training_panel, self.models_panel, w)
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        for key, title, widget, area in (("review", "Review queue", self.review_panel, left),
                                         ("training", "Retrain", self.training_panel, right),
                                         ("models", "Model versions", self.models_panel, right)):
            add_dock(w, key, title, widget, area)
        if "segment" in w.docks:
            w.tabifyDockWidget(w.docks["segment"], w.docks["training"])
            w.tabifyDockWidget(w.docks["training"], w.docks["models"])
            w.docks["segment"].raise_()
        for key in ("training", "models"):  # occasional work: opened from the Models menu (keeps the canvas wide)
            w.docks[key].hide()
        self._actions()
        self._menus()
        self._connect()
        w.installEventFilter(self)  # a close while retraining asks first (eventFilter)

    def eventFilter(self, obj, ev) -> bool:
        """Closing the window (Ctrl+Q, its close button) while a retraining runs or waits for Accept / Reject
        asks first: it stopped the run without a word, and nothing in the GUI can resume or store it later. A
        close by a signal (Ctrl+C in the terminal, kill) does not ask (``app._close``)."""
        if obj is self.window and ev.type() == QEvent.Type.Close and self.retrain.busy \
                and not getattr(self.window, "closing_by_signal", False):
            what = "is waiting for Accept or Reject" if self.retrain.dialog is not None else "is running"
            if not notifications.ask("Quit while retraining?", f"A retraining {what}. Quitting stops it and stores "
                                     "no model (the run cannot be resumed from the window later). Quit anyway?",
                                     self.window):
                ev.ignore()
                return True
        return super().eventFilter(obj, ev)

    # -- construction ------------------------------------------------------------------------
    def _actions(self) -> None:
        w, rp = self.window, self.review_panel
        A = w.actions_by_id
        for aid, slot in (("review.next", lambda: rp.step(+1)), ("review.previous", lambda: rp.step(-1)),
                          ("review.mark", lambda: rp.mark_current()),
                          ("review.image", lambda: rp.toggle_image_reviewed()),
                          ("file.export_training", self.choose_export),
                          ("models.retrain", lambda: self.show_dock("training")),
                          ("models.versions", lambda: self.show_dock("models"))):
            A[aid] = make_action(w, aid, slot)

    def _menus(self) -> None:
        w, A = self.window, self.window.actions_by_id
        file_menu = _menu(w, "File")
        if file_menu is not None:
            _insert_after(file_menu, A.get("file.report_folder") or A.get("file.export"), A["file.export_training"])
        edit_menu = _menu(w, "Edit")
        if edit_menu is not None:
            edit_menu.addSeparator()
            edit_menu.addActions([A["review.next"], A["review.previous"], A["review.mark"], A["review.image"]])
        models = w.menuBar().addMenu("&Models")
        help_menu = _menu(w, "Help")
        if help_menu is not None:  # keep Help last
            w.menuBar().insertMenu(help_menu.menuAction(), models)
        models.addActions([A["models.retrain"], A["models.versions"]])
        models.addAction("Roll back the active version", lambda: self.models_panel.rollback())
        models.addSeparator()
        for key in ("review", "training", "models"):
            models.addAction(w.docks[key].toggleViewAction())
        self.models_menu = models

    def _connect(self) -> None:
        w = self.window
        w.session.document_changed.connect(self._on_document)
        w.session.saved.connect(self._on_saved)
        w.files_panel.folder_changed.connect(self.refresh_images)  # (set after the document: the new folder's)
        self.review_panel.focus_requested.connect(lambda x, y, half: centre_on(w.canvas, x, y, half))
        self.review_panel.cell_shown.connect(lambda x, y: w.canvas.set_highlight([(x, y)]))  # which cell it is
        w.segmentation.replaced.connect(self.review_panel.forget_queue)  # its cell ids name other cells now
        self.models_panel.activated.connect(self._on_model_activated)
        self.exporter.done.connect(lambda _r: w.files_panel.refresh_marks())
        self.retrain.stored.connect(self._on_model_activated)
        tp = self.training_panel  # the gate's verdict gives way to what became of the model
        self.retrain.stored.connect(lambda n, v: tp.set_progress(1.0, f"{n} version {v} stored and active."))
        self.retrain.discarded.connect(lambda: tp.set_progress(0.0, "The fine-tuned model was discarded."))
        self.retrain.stored.connect(lambda *_a: setattr(self, "_stored_run", self.retrain.run))
        self.training_panel.refresh_requested.connect(lambda: self.refresh_images(force=True))
        self.training_panel.train_requested.connect(lambda: self.start_training())
        self.training_panel.resume_requested.connect(lambda: self.start_training(resume=True))

    # -- reactions -----------------------------------------------------------------------------
    def _on_document(self, doc) -> None:
        w = self.window
        self.review_panel.diameter = w.seg_params.value.effective_diameter_px() or None
        self.review_panel.set_document(doc, w.session.stack if doc is not None else None)
        self.refresh_images()

    def _on_saved(self, _path) -> None:
        """The open image's reviewed flag reached its sidecar: update the retrain panel's list if it changed."""
        s = self.window.session
        if s.doc is None or s.path is None:
            return
        listed = str(s.path) in set(self.training_panel.listed_images())
        if listed != bool(s.doc.reviewed):
            self.refresh_images()

    def _on_model_activated(self, name: str, _version: str) -> None:
        """A stored version became active (or was rolled back): the model pickers read the registry again."""
        w = self.window
        sp = w.segment_panel
        reload_models = getattr(sp, "reload_models", None)
        if callable(reload_models):
            reload_models()
        else:
            from cellviewer.gui.segmentation import available_models

            sp.models = available_models()
        self.retrain.refresh_models()
        self.models_panel.refresh()
        from cellviewer.core.morphology import find_card

        # (this line replaces the store's own: it must still say which version — none stored: the shipped one)
        which = f"the active version ({_version})" if _version else "the shipped model (no stored version active)"
        if name in getattr(sp, "models", ()):
            notifications.status(f"Model '{name}' updated: new segmentations use {which}.", 8000)
        elif find_card(name) is not None:  # the red-cell morphology model: no segmenter, but classes every one
            notifications.status(f"Model '{name}' updated: new segmentations and Classify again use {which}.", 8000)
        else:  # its last stored version was rolled back and nothing ships under the name (the panel warned)
            notifications.status(f"Model '{name}' has no version left to use.", 8000)

    def show_dock(self, key: str) -> None:
        from cellviewer.gui.keyboard import focus_first

        dock = self.window.docks[key]
        dock.show()
        dock.raise_()
        focus_first(dock.widget())  # opened from the keyboard (Ctrl+Shift+T / M): Tab-free; Esc goes back
        if key == "training":
            self.refresh_images(force=True)
            self.retrain.refresh_models()
        elif key == "models":
            self.models_panel.refresh()

    # -- images of the folder ------------------------------------------------------------------
    def folder_images(self) -> list[Path]:
        fp = self.window.files_panel
        if fp.paths:
            return list(fp.paths)
        return [self.window.session.path] if self.window.session.path is not None else []

    def refresh_images(self, force: bool = False) -> None:
        """List the folder's reviewed images in the retrain panel (when it is open; opening it refreshes)."""
        from cellviewer.gui.retrain import reviewed_images

        if not force and not self.window.docks["training"].toggleViewAction().isChecked():
            return
        self.training_panel.set_images(reviewed_images(self.folder_images()), self.window.files_panel.folder)

    # -- export ----------------------------------------------------------------------------------
    def choose_export(self) -> None:
        w = self.window
        w.tools.finish_active()
        images = self.folder_images()
        if not images:
            notifications.status("Open an image or a folder first.")
            return
        if not self.exporter.options.out_dir:
            self.exporter.options.out_dir = str(Path(images[0]).parent / "training-set")
        opts = self.exporter.ask(w, len(images))
        if opts is not None:
            self.export(opts)

    def export(self, opts) -> bool:
        """Save the open image, then export the folder (or the open image) with ``opts``."""
        w = self.window
        w.tools.finish_active()  # a brush stroke in progress is saved whole
        w.session.save_now()
        images = self.folder_images() if opts.whole_folder else [w.session.path]
        return self.exporter.export([p for p in images if p is not None], opts)

    # -- retrain ---------------------------------------------------------------------------------
    def start_training(self, resume: bool = False) -> bool:
        self.window.tools.finish_active()
        self.window.session.save_now()
        self.retrain.device = self.window.seg_params.value.device or "auto"
        old = None if resume else self.retrain.run
        started = self.retrain.start(self.training_panel.chosen_images(), resume=resume)
        new = self.retrain.run
        if started and old is not None and old is not getattr(self, "_stored_run", None) and new is not None \
                and Path(old.folder) != Path(new.folder):  # a cancelled run nothing can resume now: not left behind
            import shutil

            shutil.rmtree(old.folder, ignore_errors=True)
        return started

    def shutdown(self) -> None:
        self.review_panel.shutdown()
        self.exporter.runner.shutdown()
        self.retrain.shutdown()


def install(window) -> HumanLoop:
    return HumanLoop(window)
