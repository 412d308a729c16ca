"""PyInstaller runtime hook: runs in the bundle before any cellviewer code.

* offline: nothing may download (Hugging Face / timm hubs, torch hub);
* the Qt binding is fixed to PySide6 for pyqtgraph and qtpy, whatever the machine has;
* Qt finds its plugins inside the bundle (PyInstaller's own PySide6 hook sets the paths);
* a UTF-8 locale when none is set (C.UTF-8).
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["PYQTGRAPH_QT_LIB"] = "PySide6"
os.environ["QT_API"] = "pyside6"
# a clean environment (env -i, some launchers) has no locale: Qt warns "Detected locale C..." on every start
# (Qt reads it when the application object is made, after this hook); C.UTF-8 is on every glibc >= 2.35
if not (os.environ.get("LC_ALL") or os.environ.get("LC_CTYPE") or os.environ.get("LANG")):
    os.environ["LC_ALL"] = "C.UTF-8"
