"""The desktop GUI (PySide6 + pyqtgraph). Importing it applies the Qt-binding work-arounds."""

from cellviewer.gui.compat import guard_emit_refcount_bug as _guard

_guard()
