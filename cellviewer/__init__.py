"""cellviewer: review and correct blood-smear segmentations.

Importing the package is cheap: no numpy, torch or Qt is imported here.
"""
__version__ = "0.1.0"
