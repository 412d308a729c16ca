"""Where the bundled resources live, without Qt: source checkout, installed package or PyInstaller.

In a PyInstaller bundle everything added as data lies under ``sys._MEIPASS``
(``resources/``, ``models/``); in a source checkout (or an editable install) it is
``<repo>/resources``. ``CELLVIEWER_RESOURCES`` overrides the folder (tests, odd installs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: the sample smear shipped in ``resources/sample`` (BCCD, MIT; see its ATTRIBUTION.md)
SAMPLE_NAME = "BloodImage_00095.jpg"


def is_frozen() -> bool:
    """True inside a PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False) and getattr(sys, "_MEIPASS", None))


#: the bundle's executable runs ``python -m MODULE ARGS`` as ``cellviewer --run-module MODULE ARGS``
#: (``packaging/cellviewer_main.py``): inside it ``sys.executable`` is the app, not a Python
RUN_MODULE_FLAG = "--run-module"


def module_command(module: str, *args: str) -> list[str]:
    """The command line that runs ``python -m module args`` in a child process, from source or from the bundle
    (where ``-m`` would be read as a cellviewer command)."""
    if not is_frozen():
        return [sys.executable, "-m", module, *args]
    if module == "cellviewer":
        return [sys.executable, *args]
    return [sys.executable, RUN_MODULE_FLAG, module, *args]


def app_root() -> Path:
    """``sys._MEIPASS`` when frozen, else the repository root (the folder holding ``cellviewer/``)."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen)
    return Path(__file__).resolve().parents[2]


def resources_dir() -> Path:
    """The ``resources/`` folder (``$CELLVIEWER_RESOURCES`` when set)."""
    override = os.environ.get("CELLVIEWER_RESOURCES")
    return Path(override) if override else app_root() / "resources"


def resource(*parts: str) -> Path:
    """A path below :func:`resources_dir` (it may not exist)."""
    return resources_dir().joinpath(*parts)


def sample_image() -> Path | None:
    """The bundled sample smear: :data:`SAMPLE_NAME`, else the first JPG/PNG in ``resources/sample``."""
    folder = resource("sample")
    preferred = folder / SAMPLE_NAME
    if preferred.is_file():
        return preferred
    if not folder.is_dir():
        return None
    found = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))
    return found[0] if found else None


def icon_path() -> Path | None:
    """The application icon (``resources/icon.png``), or None when it is absent."""
    p = resource("icon.png")
    return p if p.is_file() else None
