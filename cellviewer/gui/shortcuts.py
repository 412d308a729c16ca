"""Every keyboard shortcut, in one table (menus, tool buttons and Help ▸ Shortcuts read it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shortcut:
    action: str  # action id used by the main window
    keys: tuple[str, ...]  # QKeySequence strings; the first one is shown in menus
    text: str  # what it does (also the menu text)
    group: str


#: the actions that work on the open image (disabled while none is open)
DOCUMENT_ACTIONS = ("file.save", "file.export", "seg.run", "seg.reclassify", "review.next", "review.previous",
                    "review.mark", "review.image")

SHORTCUTS: tuple[Shortcut, ...] = (
    # tools
    Shortcut("tool.navigate", ("V",), "Navigate (pan/zoom) / move marker", "Tools"),
    Shortcut("tool.brush", ("B",), "Brush", "Tools"),
    Shortcut("tool.eraser", ("E",), "Eraser", "Tools"),
    Shortcut("tool.parts", ("W",), "Parts brush (paint a white cell's nucleus / cytoplasm)", "Tools"),
    Shortcut("parts.switch", ("X",), "Parts brush: switch nucleus / cytoplasm", "Tools"),
    Shortcut("tool.fill", ("F",), "Fill", "Tools"),
    Shortcut("tool.delete", ("D",), "Delete cell (click)", "Tools"),
    Shortcut("tool.merge", ("M",), "Merge cells (click A, then B)", "Tools"),
    Shortcut("tool.split", ("S",), "Split cell (drag a line across it)", "Tools"),
    Shortcut("tool.reclassify", ("C",), "Reclassify cell to the selected class", "Tools"),
    Shortcut("tool.marker_add", ("A",), "Add marker", "Tools"),
    Shortcut("tool.marker_remove", ("R",), "Remove marker", "Tools"),
    Shortcut("tool.marker_reclassify", ("Shift+C",), "Reclassify marker", "Tools"),
    Shortcut("class.rbc", ("1",), "Select class RBC", "Tools"),
    Shortcut("class.wbc", ("2",), "Select class WBC", "Tools"),
    Shortcut("class.platelet", ("3",), "Select class Platelets", "Tools"),
    Shortcut("brush.smaller", ("[",), "Smaller brush", "Tools"),
    Shortcut("brush.larger", ("]",), "Larger brush", "Tools"),
    Shortcut("cancel", ("Esc",), "Cancel the current tool action / running job", "Tools"),
    # view
    Shortcut("view.outline", ("O",), "Toggle outline mode", "View"),
    Shortcut("view.hide_overlays", ("H",), "Hide / show all overlays", "View"),
    Shortcut("view.fit", ("Ctrl+0",), "Zoom to fit", "View"),
    Shortcut("view.zoom_in", ("Ctrl++", "Ctrl+="), "Zoom in", "View"),
    Shortcut("view.zoom_out", ("Ctrl+-",), "Zoom out", "View"),
    # edit
    Shortcut("edit.undo", ("Ctrl+Z",), "Undo", "Edit"),
    Shortcut("edit.redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Redo", "Edit"),
    # review queue (human in the loop)
    Shortcut("review.next", ("N",), "Next doubtful cell", "Edit"),
    Shortcut("review.previous", ("P",), "Previous doubtful cell", "Edit"),
    Shortcut("review.mark", ("Y",), "Mark the cell reviewed and go to the next", "Edit"),
    Shortcut("review.image", ("Ctrl+Shift+R",), "Mark / unmark the image reviewed", "Edit"),
    # file
    Shortcut("file.open", ("Ctrl+O",), "Open image…", "File"),
    Shortcut("file.open_folder", ("Ctrl+Shift+O",), "Open folder…", "File"),
    Shortcut("file.save", ("Ctrl+S",), "Save corrections", "File"),
    Shortcut("file.export", ("Ctrl+P",), "Export report (PDF + CSV)…", "File"),
    Shortcut("file.report_folder", ("Ctrl+Shift+P",), "Report for folder (PDF + CSV)…", "File"),
    Shortcut("file.export_training", ("Ctrl+Shift+E",), "Export training set…", "File"),
    Shortcut("file.next", ("PgDown",), "Next image in folder", "File"),
    Shortcut("file.previous", ("PgUp",), "Previous image in folder", "File"),
    Shortcut("file.quit", ("Ctrl+Q",), "Quit", "File"),
    # segmentation
    Shortcut("seg.run", ("Ctrl+R",), "Run segmentation", "Segmentation"),
    Shortcut("seg.cancel", ("Ctrl+.",), "Cancel segmentation", "Segmentation"),
    Shortcut("seg.reclassify", ("Ctrl+Shift+C",),
             "Classify red cells again (keeps corrections)", "Segmentation"),
    Shortcut("models.retrain", ("Ctrl+Shift+T",), "Retrain a model on the reviewed images…", "Segmentation"),
    Shortcut("models.versions", ("Ctrl+Shift+M",), "Model versions (make active / roll back)", "Segmentation"),
    # help
    Shortcut("help.shortcuts", ("F1",), "Keyboard shortcuts", "Help"),
)

BY_ACTION = {s.action: s for s in SHORTCUTS}


def shortcut(action: str) -> Shortcut:
    return BY_ACTION[action]


def check_unique() -> list[str]:
    """Key sequences bound twice (should be empty)."""
    seen: dict[str, str] = {}
    dup = []
    for s in SHORTCUTS:
        for k in s.keys:
            if k.lower() in seen:
                dup.append(f"{k}: {seen[k.lower()]} and {s.action}")
            seen[k.lower()] = s.action
    return dup
