"""QSettings access with an isolated scope for tests.

``CELLVIEWER_SETTINGS`` (a file path) makes every setting go to that INI file
instead of the user's settings — the test fixtures set it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields

from PySide6.QtCore import QSettings

ORG = "cellviewer"
APP = "cellviewer"
MAX_RECENT = 10


def app_settings() -> QSettings:
    path = os.environ.get("CELLVIEWER_SETTINGS")
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(ORG, APP)


def load_dataclass(key: str, cls):
    """An instance of ``cls`` from its JSON in the settings; defaults where absent or broken."""
    raw = app_settings().value(key)
    obj = cls()
    if not raw:
        return obj
    try:
        data = json.loads(str(raw))
    except ValueError:
        return obj
    for f in fields(obj):
        if f.name in data and type(data[f.name]) is type(getattr(obj, f.name)):
            setattr(obj, f.name, data[f.name])
        elif f.name in data and isinstance(getattr(obj, f.name), float) and isinstance(data[f.name], int):
            setattr(obj, f.name, float(data[f.name]))
    return obj


def save_dataclass(key: str, obj) -> None:
    app_settings().setValue(key, json.dumps(asdict(obj)))


def recent_files() -> list[str]:
    v = app_settings().value("recent_files") or []
    if isinstance(v, str):
        v = [v]
    return [str(p) for p in v if p]


def add_recent_file(path: str) -> list[str]:
    items = [p for p in recent_files() if p != str(path)]
    items.insert(0, str(path))
    items = items[:MAX_RECENT]
    app_settings().setValue("recent_files", items)
    return items


def get(key: str, default=None):
    v = app_settings().value(key)
    return default if v is None else v


def put(key: str, value) -> None:
    app_settings().setValue(key, value)
