"""Where bundled resources live (source checkout, installed package or PyInstaller)."""

from __future__ import annotations

from pathlib import Path

from cellviewer.core.resources import SAMPLE_NAME, resources_dir, sample_image  # noqa: F401 - re-exported


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
