"""The open document: loading (with sidecar + journal recovery), undo stack, autosave.

* ``open(path)`` asks first when another window or computer has the image open
  (``core.openlock``; raises ``Cancelled`` when the user says no), reads the image and its
  sidecar (``core.sidecar.load_document``; a big file in a thread, the window painting meanwhile),
  offers to replay journaled edits that were not saved (a crash) — each lands on the undo stack as
  the step it was (:func:`cellviewer.gui.commands.push_recovered`) — then attaches
  a fresh journal so every edit is logged at once.
* Autosave: every document change (re)starts a single-shot timer
  (:data:`AUTOSAVE_MS`); when it fires, a snapshot is taken on the GUI thread (on a big image its
  maps a slice per turn of the event loop, :mod:`cellviewer.gui.slices`: started again when an edit
  comes in between) and written atomically by a worker thread (:mod:`cellviewer.gui.saving`). Switching
  image and closing save synchronously; Ctrl+S too, but on a big image in the background. A change the journal cannot hold (a segmentation result replacing the
  maps, its undo/redo) logs a journal *barrier* and starts the background save at once
  (:meth:`Session.save_soon`): the GUI does not wait for the write, and a crash before
  it lands recovers the journaled edits up to the barrier. A failed save is a status-bar warning; if saving keeps failing
  (:data:`FAILURES_BEFORE_DIALOG` in a row) one dialog says so. When the image folder
  refuses (read-only), the sidecar goes to the per-user store and the status bar says where.
* When the crash-recovery journal cannot be written (disk full, read-only), the edit is
  kept (in memory and by the autosave) and one dialog per image says so.
* One ``QUndoStack`` per document, all in one ``QUndoGroup`` (so the Edit menu's
  undo/redo actions follow the current image). A closed image's stack is kept
  (:mod:`cellviewer.gui.undocache`, bounded): opened again in this app session, its undo
  history is back.
* Undo / redo of a segmentation: its kept maps are unpacked in a worker thread first, the window painting
  meanwhile (user input waits); the step then only swaps them in (:meth:`Session.undo`, ``prepare_undo`` /
  ``prepare_redo`` of :class:`cellviewer.gui.commands.SegmentationCommand`).
* A brush stroke still being painted (``doc.open_stroke``) holds the autosave back: one drag is
  one saved state, never half of one.
* Declined crash recovery keeps the journal as ``<journal>.declined-<time>`` (and says so). Only the
  journals of copies no longer open are offered: the same image open in another window or process
  journals to its own file, never read, renamed or trimmed here (:mod:`cellviewer.core.journalfiles`).
* :meth:`Session.keep_before_replace`: before a segmentation replaces corrected masks, the saved
  sidecar is copied to ``<sidecar>.replaced-<time>``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoGroup

from cellviewer.core import openlock
from cellviewer.core.document import Document
from cellviewer.core.errors import Cancelled, SaveError
from cellviewer.gui import notifications
from cellviewer.gui.commands import make_stack, push_recovered
from cellviewer.gui.saving import FAILURES_BEFORE_DIALOG, SavingMixin  # noqa: F401 - (this module's API)
from cellviewer.gui.undocache import UndoCache
from cellviewer.gui.workers import JobRunner


log = logging.getLogger("cellviewer.gui")

AUTOSAVE_MS = 1000
BACKGROUND_OPEN_BYTES = 4 << 20  # image files from this size are read and decoded in a thread (_load)


def _load(load, path: Path):
    """``load(path)``; for a big image file (a 48-MP JPEG and its sidecar: 1–2 s) in a worker thread while
    the window keeps painting (:func:`cellviewer.gui.workers.run_painting`). Raises what ``load`` raises."""
    from cellviewer.gui.workers import run_painting

    try:
        big = path.stat().st_size >= BACKGROUND_OPEN_BYTES
    except OSError:
        big = False  # (load says why)
    return run_painting(load, path) if big else load(path)


class Session(QObject, SavingMixin):
    document_changed = Signal(object)  # the new Document (or None)
    saved = Signal(str)  # where the sidecar went
    dirty_changed = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        from cellviewer.gui import gcguard

        gcguard.install()  # autosave writers and undo packing run in threads: collect in this one only
        self.doc: Document | None = None
        self.path: Path | None = None
        self.had_sidecar = False
        self.undo_group = QUndoGroup(self)
        self.stack = None
        self.undo_cache = UndoCache()  # the undo stacks of images closed in this app session
        self._saved_revision = 0
        self._save_failures = 0
        self._failure_dialog_shown = False
        self.autosave_ms = AUTOSAVE_MS
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.autosave)
        from cellviewer.gui.slices import Stepper

        self._copier = Stepper(self)  # an autosave's copy of a big image's maps, a slice at a time
        self.saver = JobRunner("autosave", self)
        self.saver.finished.connect(self._on_saved)
        self.saver.failed.connect(self._on_save_failed)
        self._pending_revision = 0
        self._pending_doc: Document | None = None
        self._landed: tuple = (lambda: None, 0)  # (weakref to the document, revision) last written in the background
        self._user_save = False  # a Ctrl+S being written in the background (big images)
        self._must_save = False  # a change the journal cannot hold (save_soon) is not on disk yet
        self._barrier_revision = 0  # the document revision at that change
        self._closing = False  # the window is closing (shutdown)
        self._journal_notified = False
        self._stamp = None  # core.openlock.stamp of the sidecar as this window last read or wrote it
        self.recovered = None  # the open image's core.journal.Recovered history, when a crash recovery replayed edits

    # -- state ----------------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        return self.doc is not None and self.doc.revision != self._saved_revision

    @property
    def recovered_settings(self) -> list[str]:
        """The settings the crash recovery of the open image restored (e.g. ``"border_rule"``)."""
        return self.recovered.settings if self.recovered is not None else []

    def _on_change(self, _change) -> None:
        if self.dirty:
            if self._must_save:  # a save the journal's barrier waits for: never put off by edits (saving.py)
                if not self.timer.isActive():
                    self.timer.start(0)
            else:
                self.timer.start(self.autosave_ms)  # restart: debounced
            self.dirty_changed.emit(True)

    # -- open / close -----------------------------------------------------------------------
    def open(self, path) -> Document:
        """Save and close the current image, then open ``path``. Raises CellviewerError."""
        from cellviewer.core.sidecar import attach_journal, find_sidecar, load_document

        path = Path(path)
        self.save_now()  # first: reopening the same image must read what is on screen
        if self.path is not None and path == self.path:
            self.close_document()  # (its journal is nobody's then: what a failed save left in it is offered)
        other = openlock.holder(path)
        if other is not None and not notifications.ask(
                "Image open elsewhere",
                f"{path.name} is open for correcting by {other.describe()}.\n\nIf both save, the later save "
                "replaces the other's corrections. Open it here as well?", default_yes=False):
            raise Cancelled(f"{path.name} is open elsewhere; it was not opened here")
        doc = _load(load_document, path)  # raises before the current document is closed
        self.close_document()
        self.had_sidecar = find_sidecar(path) is not None
        foreign = doc.left_over is not None and doc.left_over.foreign  # (made on a version another copy saved)
        recovered = self.recovered = self._recover(doc)
        attach_journal(doc)
        self._journal_notified = False
        if doc.journal is not None:
            doc.journal.on_error = self._journal_failed
        self.doc, self.path = doc, path
        self._stamp = openlock.stamp(find_sidecar(path))  # the sidecar as read: was it saved by others since?
        if recovered and foreign:
            self._stamp = None  # the next save keeps the version it replaces, as when another window saved it
        if other is None:  # others opening it are warned (core.openlock); opened beside another
            openlock.acquire(path)  # window anyway, the lock stays that window's
        self._saved_revision = -1 if recovered else doc.revision
        kept = None if recovered else self.undo_cache.take(path, doc, self._stamp)
        self.undo_cache.drop(path)  # (recovered: the kept history no longer fits)
        self.stack = kept or make_stack(self.undo_group)
        if recovered:  # Ctrl+Z walks back through the recovered edits, Ctrl+Shift+Z redoes them
            push_recovered(self.stack, doc, recovered.done, recovered.undone)
        self.undo_group.addStack(self.stack)
        self.undo_group.setActiveStack(self.stack)
        doc.subscribe(self._on_change)
        from cellviewer.core.io import CAUTION

        for w in doc.load_warnings:
            notifications.warn(w)
        for n in doc.image.info.notes:  # a caution also stays on the status bar (gui.statusbits.CautionLabel):
            if n.startswith(CAUTION):  # a plain line, so a segmentation's summary replaces it
                notifications.status("⚠ " + n[len(CAUTION):], 6000)
        self.document_changed.emit(doc)
        if self.dirty:
            self.timer.start(self.autosave_ms)
        return doc

    def _recover(self, doc: Document):
        """Offer to replay the unsaved journaled edits (of copies no longer open: see
        :mod:`cellviewer.core.journalfiles`); the :class:`~cellviewer.core.journal.Recovered` history when
        some were replayed, else None."""
        from cellviewer.core import journalfiles
        from cellviewer.core.journal import history, replay

        entries = doc.pending_journal
        if not entries:
            return None
        name = Path(doc.image.info.path).name
        if notifications.ask("Recover unsaved corrections?",
                             f"Unsaved changes of {name} were found (cellviewer was closed unexpectedly): "
                             f"{history(entries).describe()}. Recover them?", default_yes=True):
            rec = replay(doc, entries)  # (attach_journal moves the records into this window's journal)
            notifications.status(f"Recovered {rec.describe()}"
                                 + (" (Ctrl+Z undoes them one by one)." if rec.done else "."))
        else:
            kept = journalfiles.set_aside(doc.left_over) if doc.left_over is not None else []
            doc.left_over = None  # not deleted: a wrong "No" can still be undone by hand
            rec = None
            notifications.status("Unsaved corrections not recovered; " + (
                f"they are kept in {', '.join(map(str, kept))}" if kept else "they could not be kept"), 15000)
        doc.pending_journal = []
        return rec if rec is not None and rec.n else None

    def close_document(self) -> None:
        """Save (synchronously) and forget the current document."""
        self.timer.stop()
        self._copier.cancel()
        if self.doc is None:
            return
        saved = self.save_now()
        if self.doc.journal is not None:
            self.doc.journal.close()  # nobody's now: what a failed save left in it is offered at the next open
        if self.path is not None:
            openlock.release(self.path)
        self.doc.unsubscribe(self._on_change)
        if self.stack is not None:
            self.undo_group.removeStack(self.stack)
            if saved and self.path is not None:  # the history fits the sidecar just saved: kept for a reopen
                from cellviewer.core.sidecar import find_sidecar

                self.undo_cache.put(self.path, self.stack, openlock.stamp(find_sidecar(self.path)))
            else:
                self.stack.deleteLater()
        self.doc, self.path, self.stack, self.recovered = None, None, None, None
        self._must_save = self._user_save = False  # (what they waited for was this document's save, above)
        self.document_changed.emit(None)

    # -- undo / redo -----------------------------------------------------------------------
    def undo(self) -> bool:
        if not self.undo_group.canUndo():
            notifications.status("Nothing to undo.", 3000, until_edit=True)
            return False
        self._step("undo")
        return True

    def redo(self) -> bool:
        if not self.undo_group.canRedo():
            notifications.status("Nothing to redo.", 3000, until_edit=True)
            return False
        self._step("redo")
        return True

    def _step(self, which: str) -> None:
        """``undo_group.undo()`` / ``redo()``; a step that has work to do first (a segmentation's kept maps
        to unpack: ~1 s on a 48-MP field) gets it done in a worker thread while the window paints (user input
        waits), so the step itself only swaps the maps in. Whatever the wait lets through (a timer, a result
        arriving), the step taken is the one on the stack then; what was unpacked for another is let go."""
        stack = self.undo_group.activeStack()
        cmd = None
        if stack is not None:
            i = stack.index() - 1 if which == "undo" else stack.index()
            cmd = stack.command(i) if 0 <= i < stack.count() else None
        prepare = getattr(cmd, "prepare_" + which, None)
        work = prepare() if prepare is not None else None
        try:
            if work is not None:
                from cellviewer.gui.workers import run_painting

                try:
                    run_painting(work)
                except Exception:  # noqa: BLE001 - e.g. out of memory: the step unpacks (and says so) itself
                    log.exception("unpacking ahead of %s failed", which)
            getattr(self.undo_group, which)()
        finally:
            if cmd is not None and hasattr(cmd, "drop_prepared"):
                cmd.drop_prepared()

    def keep_before_replace(self) -> Path | None:
        """Before a segmentation replaces an image's corrections: save them, then copy the sidecar to
        ``<sidecar>.replaced-<YYYYmmdd-HHMMSS>`` so they are never lost; the copy (None: no corrections,
        no sidecar, or the copy failed — then a warning says so)."""
        from cellviewer.core.sidecar import find_sidecar

        if self.doc is None or not self.doc.n_manual_edits:
            return None
        self.save_now()
        found = find_sidecar(self.path) if self.path is not None else None
        kept = openlock.keep_copy(found) if found is not None else None
        if found is not None and kept is None:
            notifications.warn(f"Could not keep a copy of {found.name} before replacing its corrections "
                               "(undo brings them back)", 15000)
        return kept

    def _journal_failed(self, exc) -> None:
        """The journal could not log an edit: the edit is kept; say so once per image (deferred:
        this runs inside the edit, e.g. at the end of a brush drag)."""
        notifications.warn(f"Crash-recovery log paused: {exc.message}")
        if not self._journal_notified:
            self._journal_notified = True
            QTimer.singleShot(0, lambda: notifications.show_error(SaveError(
                f"{exc.message}. Your corrections are kept and still autosaved, but until a save goes "
                "through they cannot be recovered after a crash.", hint=exc.hint), "Crash-recovery log"))

    def shutdown(self) -> None:
        """Window close: save (a big image's last write in a thread, the window painting meanwhile: the jobs
        that could change the document have stopped), stop the autosave thread."""
        self._closing = True
        self.close_document()
        self.undo_cache.clear()
        self.saver.shutdown()

