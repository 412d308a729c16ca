"""PyInstaller runtime hook: runs in the bundle before any cellviewer code.

* offline: nothing may download (Hugging Face / timm hubs, torch hub);
* the Qt binding is fixed to PySide6 for pyqtgraph and qtpy, whatever the machine has;
* Qt finds its plugins inside the bundle (PyInstaller's own PySide6 hook sets the paths).
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["PYQTGRAPH_QT_LIB"] = "PySide6"
os.environ["QT_API"] = "pyside6"
