"""Saving the open document (a mix-in of :class:`cellviewer.gui.session.Session`; see its docstring).

* The autosave: a snapshot taken on the GUI thread — on a big image (:func:`cellviewer.gui.slices.is_big`)
  its maps a slice per turn of the event loop (:func:`cellviewer.gui.slices.copy_maps`: where an edit
  coming in between changed them is copied again; it waits for a brush stroke being painted to end, so a
  snapshot never holds half of one) — written atomically by a worker thread (:class:`JobRunner`). The
  save after a change the journal cannot hold (:meth:`SavingMixin.save_soon`) is taken the same way.
* :meth:`SavingMixin.save_now` saves synchronously (image switch, close); an autosave that has just
  landed on disk counts (no second write of the same state). Ctrl+S (:meth:`SavingMixin.save_by_user`)
  saves synchronously on a small image; on a big one it takes the autosave's way and says "Saved"
  once written: until then the crash-recovery journal holds every edit, as it does between autosaves.
"""

from __future__ import annotations

import weakref
from pathlib import Path

from PySide6.QtCore import QTimer

from cellviewer.core import openlock
from cellviewer.core.document import Document
from cellviewer.core.errors import CellviewerError, SaveError
from cellviewer.core.jobs import Progress
from cellviewer.gui import notifications

FAILURES_BEFORE_DIALOG = 3


def _write_job(snap, image_path, written=None):
    held = [snap]  # let go of once written: the job (and the thread object that keeps it until Qt deletes
    del snap  # it) must not hold the maps' copies (~340 MB on a 48-MP field) after the save

    def make(_token):
        from cellviewer.core.sidecar import save_snapshot
        from cellviewer.gui.workers import lower_priority

        lower_priority(5)
        yield Progress(0.0, "saving")
        path = save_snapshot(held.pop(), image_path)  # beside the image, else in the per-user store
        if written is not None:
            written(path)  # in this thread, before anything can look at the file again
        return path

    return make


class SavingMixin:
    """Autosave, synchronous save and Ctrl+S; the session provides ``doc``, ``path``, ``timer``, ``saver``,
    ``_copier`` and the revision bookkeeping."""

    def autosave(self) -> None:
        """Timer slot: write a snapshot in the background when there is something new."""
        if not self.dirty:
            return
        if self.doc.open_stroke is not None:  # a brush drag is being painted: save it whole, when it ends
            self.timer.start(self.autosave_ms)
            return
        if self.saver.is_running:
            self.timer.start(self.autosave_ms // 4)
            return
        if self._copier.busy:
            return  # the maps are being copied (a big image): the save starts when they are
        from cellviewer.gui.slices import copy_maps, is_big

        doc = self.doc
        # a big image's maps are copied a slice per turn of the event loop; an edit coming in between is copied
        # again where it changed the maps (never a new start), so even after a change the journal cannot hold
        # (save_soon) the save lands within a few turns while edits keep coming (and the GUI thread never
        # stops for the ~1 s a whole copy of a 48-MP field takes)
        big = is_big(doc.shape)
        self._copier.start(copy_maps(doc, wait_stroke=big), lambda arrays: self._start_write(doc, arrays),
                           sync=not big)

    def _start_write(self, doc: Document, arrays) -> None:
        """The maps of ``doc`` are copied (:func:`cellviewer.gui.slices.copy_maps`, a slice per turn of the
        event loop on a big image): the rest of the snapshot, then the write in the background. None: the
        document changed while they were copied: later, once more."""
        if doc is not self.doc:
            return
        if arrays is None:  # (a segmentation, its undo or redo replaced the maps: save_soon's save comes next)
            self.timer.start(0 if self._must_save else self.autosave_ms // 4)
            return
        from cellviewer.core.sidecar import snapshot

        self._keep_others_save()
        snap = snapshot(doc, arrays)
        self._pending_revision = rev = doc.revision
        self._pending_doc = doc

        def written(path):  # (in the writer thread) the state of revision ``rev`` is on disk
            self._written(path)
            self._landed = (weakref.ref(doc), rev)

        self.saver.start(_write_job(snap, doc.image.info.path, written), "autosave")

    def save_soon(self) -> None:
        """After a change that is not journaled (a segmentation result, its undo/redo): a barrier in
        the journal, then the autosave at the next turn of the event loop (the snapshot, on this
        thread, does not add to the stall of applying the result; the write is in the background)."""
        if self.doc is None:
            return
        if self.doc.journal is not None:
            self.doc.journal.barrier()  # edits from here on apply to the new maps only
        self._must_save = True  # until a save lands, the journal recovers nothing after the barrier
        self._barrier_revision = self.doc.revision  # (the change is notified before this is called)
        self.timer.start(0)  # autosave(): or, when a save is running, shortly after it

    def _on_saved(self, path) -> None:
        if self._pending_doc is self.doc:  # revisions only grow: never step back after a newer sync save
            self._saved_revision = max(self._saved_revision, self._pending_revision)
            self._must_save = self._must_save and self._pending_revision < self._barrier_revision
        self._save_ok(path)
        if self._user_save and self._pending_doc is self.doc:  # Ctrl+S on a big image
            self._say_saved(True)
        self._user_save = False
        if self.dirty:
            self.timer.start(self.autosave_ms)

    def _on_save_failed(self, exc) -> None:
        self._user_save = False
        self._save_failed(exc)
        if self.dirty:
            self.timer.start(self.autosave_ms * 5)  # try again, not too often

    def save_now(self) -> bool:
        """Save synchronously (image switch, close, Ctrl+S); False when it failed (reported)."""
        if self.doc is None:
            return False
        user, self._user_save = self._user_save, False  # a Ctrl+S being written in the background: this covers it
        saved = self._save_now()
        if user and saved:
            self._say_saved(True)
        return saved

    def _save_now(self) -> bool:
        self.timer.stop()
        self._copier.cancel()  # (an autosave's copy in progress: this save takes all of it now)
        self.saver.wait_painting() if self._closing else self.saver.wait()  # (an autosave being written)
        if self._landed[0]() is self.doc:  # an autosave just written (its signal not handled yet) counts
            self._saved_revision = max(self._saved_revision, self._landed[1])
        if not self.dirty:
            return True
        from cellviewer.core.sidecar import save_sidecar, save_snapshot, snapshot
        from cellviewer.gui.slices import is_big
        from cellviewer.gui.workers import run_painting

        rev = self.doc.revision
        self._keep_others_save()
        try:
            doc = self.doc  # closing: the jobs that could change it have stopped, user input waits
            if self._closing and doc.image.info.path and is_big(doc.shape):
                path = run_painting(lambda: save_snapshot(snapshot(doc), doc.image.info.path))
            else:
                path = save_sidecar(self.doc)
        except CellviewerError as e:
            self._save_failed(e)
            return False
        self._written(path)
        self._saved_revision = rev
        self._must_save = False
        self._save_ok(path)
        return True

    def save_by_user(self) -> bool:
        """Ctrl+S: :meth:`save_now`, and a status line that says so (the autosave's note is routine and
        gives way to other lines; this one answers the user, also when nothing was left to save)."""
        if self.doc is None:
            notifications.status("No image open: nothing to save.", 3000)
            return False
        from cellviewer.core.sidecar import find_sidecar, in_user_store

        from cellviewer.gui.slices import is_big

        was_dirty = self.dirty
        if was_dirty and is_big(self.doc.shape):  # the autosave's way: its maps copied a slice per turn of the
            self._user_save = True  # event loop, written in the background (the journal holds every edit until
            notifications.status("Saving…", 10000)  # then); "Saved" when it is written (_on_saved)
            self.timer.stop()
            self.autosave()
            return True
        if not self.save_now():
            return False
        self._say_saved(was_dirty)
        return True

    def _say_saved(self, was_dirty: bool) -> None:
        from cellviewer.core.sidecar import find_sidecar, in_user_store

        found = find_sidecar(self.path) if self.path is not None else None
        if found is not None and not (was_dirty and in_user_store(found)):  # (that save's line says where)
            where = str(found) if in_user_store(found) else found.name
            notifications.status(f"Saved {where}" + ("" if was_dirty else " (no changes since the last save)"), 4000)

    def _written(self, path) -> None:
        """This window wrote the sidecar at ``path`` (any thread): that version is ours, not someone else's."""
        self._stamp = openlock.stamp(path)

    def _keep_others_save(self) -> None:
        """Before saving over a sidecar that another window or user saved since this one read or wrote it:
        keep their version beside it (nothing of theirs is lost) and say so."""
        from cellviewer.core.sidecar import find_sidecar

        found = find_sidecar(self.path) if self.path is not None else None
        now = openlock.stamp(found)
        if found is None or now is None or now == self._stamp:
            return
        kept = openlock.keep_copy(found)
        self._stamp = now
        where = f"kept as {kept.name}" if kept else "could not be kept"
        err = SaveError(f"{self.path.name}'s corrections were also saved by another window or user. Their version "
                        f"is {where}; this window's corrections are saved over it.",
                        hint="compare the two and keep one; open an image in one window at a time")
        QTimer.singleShot(0, lambda: notifications.show_error(err, "Saved by someone else"))

    def _save_ok(self, path) -> None:
        from cellviewer.core.sidecar import in_user_store

        if self.path is not None and openlock.holder(self.path) is None:  # ours, or the other window closed
            openlock.acquire(self.path)  # (opened beside it): from now on others are asked again

        self._save_failures = 0
        self._failure_dialog_shown = False
        if in_user_store(path):
            notifications.status(f"Saved to {path} — the image folder is not writable", 10000)
        elif self.path is not None and not self.path.exists():  # moved, renamed or deleted while open
            notifications.warn(f"Saved {Path(path).name}, but {self.path.name} is no longer there (moved, renamed "
                               f"or deleted): move {Path(path).name} beside the image's new name to keep the "
                               "corrections with it")
        else:
            notifications.note(f"Saved {Path(path).name}", 2000)
        self.saved.emit(str(path))
        self.dirty_changed.emit(self.dirty)

    def _save_failed(self, exc) -> None:
        self._save_failures += 1
        if not isinstance(exc, CellviewerError):
            exc = SaveError(f"Saving failed: {type(exc).__name__}: {exc}", hint="see the log for details")
        if self._save_failures >= FAILURES_BEFORE_DIALOG and not self._failure_dialog_shown:
            self._failure_dialog_shown = True
            notifications.show_error(exc, "Saving keeps failing")
        else:
            notifications.warn(f"Not saved: {exc.message}" + (f" — {exc.hint}" if exc.hint else ""))
