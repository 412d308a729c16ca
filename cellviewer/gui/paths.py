"""Where bundled resources live (source checkout, installed package or PyInstaller)."""

from __future__ import annotations

import sys
from pathlib import Path

SAMPLE_NAME = "BloodImage_00000.jpg"


def resources_dir() -> Path:
    """The ``resources/`` folder: ``sys._MEIPASS/resources`` when frozen, else ``<repo>/resources``."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def sample_image() -> Path | None:
    """The bundled sample smear (``resources/sample/BloodImage_00000.jpg`` or the first JPG there)."""
    folder = resources_dir() / "sample"
    preferred = folder / SAMPLE_NAME
    if preferred.is_file():
        return preferred
    found = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png")) if folder.is_dir() else []
    return found[0] if found else None


def sample_working_copy() -> Path | None:
    """A copy of the sample in the user's cellviewer folder, so its sidecar never lands in ``resources/``."""
    import shutil

    from cellviewer.core.sidecar import user_store

    src = sample_image()
    if src is None:
        return None
    dst = user_store().parent / "sample" / src.name
    try:
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        return dst
    except OSError:
        return src  # read-only home: show the original (sidecars then go to the user store)
