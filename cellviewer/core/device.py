"""Choosing the compute device: CUDA, then Apple MPS, then CPU (overridable).

torch is imported only when a device must actually be resolved, so start-up and
``--help`` stay fast.
"""

from __future__ import annotations

from cellviewer.core.errors import SegmentationError

CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(preference: str = "auto") -> str:
    """Return ``"cuda"``, ``"mps"`` or ``"cpu"`` for a preference in :data:`CHOICES`."""
    pref = (preference or "auto").lower()
    if pref not in CHOICES and not pref.startswith("cuda:"):
        raise SegmentationError(f"Unknown device '{preference}'.", hint=f"use one of {', '.join(CHOICES)}")
    if pref == "cpu":
        return "cpu"
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if pref == "auto":
        return "cuda" if cuda else ("mps" if mps else "cpu")
    if pref.startswith("cuda") and not cuda:
        raise SegmentationError("CUDA was requested but no CUDA GPU is available.", hint="use --device cpu or auto")
    if pref == "mps" and not mps:
        raise SegmentationError("MPS was requested but is not available.", hint="use --device cpu or auto")
    return pref


def describe_device(device: str) -> str:
    """A short human description, e.g. for the status bar."""
    if device.startswith("cuda"):
        import torch

        try:
            return f"GPU: {torch.cuda.get_device_name(0)}"
        except (RuntimeError, AssertionError):
            return "GPU (CUDA)"
    if device == "mps":
        return "GPU (Apple MPS)"
    import os

    return f"CPU ({os.cpu_count() or 1} cores)"
