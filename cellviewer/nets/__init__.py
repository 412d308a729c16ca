"""Neural networks for blood-smear segmentation (torch only, never Qt).

Importing this package is cheap: the registry and the architectures are
imported on demand — use ``from cellviewer.nets.registry import create_net``.
"""
