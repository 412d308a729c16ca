"""Choosing the compute device: CUDA, then Apple MPS, then CPU (overridable).

torch is imported only when a device must actually be resolved, so start-up and
``--help`` stay fast.
"""

from __future__ import annotations

from cellviewer.core.errors import SegmentationOptionError

CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(preference: str = "auto") -> str:
    """Return ``"cuda"``, ``"mps"`` or ``"cpu"`` for a preference in :data:`CHOICES`.

    An unknown device, or one that is not there (``cuda`` without a CUDA GPU), raises
    :class:`SegmentationOptionError` (exit code 2: an option to change)."""
    pref = (preference or "auto").lower()
    if pref not in CHOICES and not pref.startswith("cuda:"):
        raise SegmentationOptionError(f"Unknown device '{preference}'.", hint=f"use one of {', '.join(CHOICES)}")
    if pref == "cpu":
        return "cpu"
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if pref == "auto":
        return "cuda" if cuda else ("mps" if mps else "cpu")
    if pref.startswith("cuda") and not cuda:
        raise SegmentationOptionError("CUDA was requested but no CUDA GPU is available on this machine.",
                                      hint="use --device cpu, or --device auto (the GPU when there is one)")
    if pref == "mps" and not mps:
        raise SegmentationOptionError("MPS (Apple GPU) was requested but is not available on this machine.",
                                      hint="use --device cpu, or --device auto (the GPU when there is one)")
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
