"""Work-arounds for bugs in the Qt bindings.

PySide6 6.12.0 on CPython < 3.12: ``SignalInstance.emit()`` returns ``True``
without taking a reference, so every ``emit`` from Python (pyqtgraph emits on
every mouse move) lowers the reference count of ``True`` by one; after some
thousands of emits CPython aborts with "bool_dealloc: deallocating True or
False". 6.11.x is not affected, and on CPython ≥ 3.12 ``True`` is immortal.

:func:`guard_emit_refcount_bug` detects the bug (one emit on a throw-away
QObject) and, when present, makes ``True``/``False``/``None`` effectively
immortal — what CPython 3.12 does for them anyway — by raising their reference
counts by 2**40 (they are static objects and are never freed).
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)
_BUMP = 1 << 40
_applied = False


def emit_leaks_true() -> bool:
    """True when ``Signal.emit()`` drops a reference to ``True`` (the PySide6 6.12.0 bug)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        sig = Signal()

    p = _Probe()
    before = sys.getrefcount(True)
    for _ in range(4):
        p.sig.emit()
    return sys.getrefcount(True) < before


def guard_emit_refcount_bug() -> bool:
    """Apply the work-around when needed; returns True when it is (or was) applied."""
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12) or not emit_leaks_true():
        return False
    for obj in (True, False, None):
        before = sys.getrefcount(obj)
        cell = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt is the first field of PyObject
        cell.value += _BUMP
        if sys.getrefcount(obj) != before + _BUMP:  # unexpected object layout: undo, do nothing
            cell.value -= _BUMP
            return False
    _applied = True
    import PySide6

    log.debug("PySide6 %s drops a reference on every Signal.emit(); work-around applied "  # nothing for a user
              "(use PySide6 6.11 or a fixed release).", PySide6.__version__)  # to do: not on every start's stderr
    return True
