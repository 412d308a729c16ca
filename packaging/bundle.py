"""What goes into the PyInstaller bundle: data, hand-added binaries, excludes, version info.

Plain Python without PyInstaller imports, so that ``packaging/cellviewer.spec`` and the
fast test (``tests/test_packaging.py``) read the same lists. Paths are absolute,
computed from this file's location. Load it by path (the folder name ``packaging``
would shadow the PyPI package of that name)::

    spec = importlib.util.spec_from_file_location("cellviewer_bundle", "packaging/bundle.py")

Variants (``CELLVIEWER_BUNDLE``): ``cpu`` (default) leaves out the CUDA libraries that
torch only loads lazily, and makes the bundle ignore GPUs; ``cuda`` keeps them all.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NAME = "cellviewer"
VARIANTS = ("cpu", "cuda")

#: runtime hooks, run before any app code: env fixes (offline, Qt binding) and, for "cpu", no GPU
RUNTIME_HOOKS = {"common": HERE / "rthook_cellviewer.py", "cpu": HERE / "rthook_cpu_only.py"}

#: Python modules the app never uses (keeps the bundle lean and the analysis fast). Not excluded
#: although tempting: unittest and torch.testing._internal (``import torch`` needs them, via
#: torch.utils.checkpoint), PySide6.QtOpenGL (pyqtgraph's PlotCurveItem imports it), sympy
#: (torch.fx), huggingface_hub/timm (segmentation_models_pytorch; HF_HUB_OFFLINE is set).
#: tests/test_packaging.py runs the self-test and opens the window with these blocked.
EXCLUDES = [
    "triton", "tensorboard", "torch.utils.tensorboard", "tensorflow",
    "torch._inductor.kernel", "torch.utils.benchmark", "torch.distributed.elastic",
    "caffe2", "functorch.dim",
    "pytest", "_pytest", "pytestqt", "pytest_timeout", "hypothesis", "importlinter", "grimp",
    "PyInstaller", "pyinstrument", "IPython", "jupyter_client", "notebook", "matplotlib", "pandas",
    "tkinter", "_tkinter", "turtle", "turtledemo", "idlelib", "lib2to3", "pydoc_data",
    "PyQt5", "PyQt6", "PySide2",
    # Qt modules the app does not use (pyqtgraph imports QtSvg and QtTest only optionally)
    "PySide6.QtNetwork", "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtQuickWidgets", "PySide6.QtQuickControls2",
    "PySide6.QtSvg", "PySide6.QtSvgWidgets", "PySide6.QtTest",
    "PySide6.QtSql", "PySide6.QtXml", "PySide6.QtDesigner", "PySide6.QtHelp", "PySide6.QtUiTools",
    "PySide6.QtConcurrent", "PySide6.QtDBus", "PySide6.QtPrintSupport", "PySide6.QtStateMachine",
    "PySide6.scripts",
]

#: pulled in only lazily (torchvision is loaded by timm/smp inside functions); every module of
#: cellviewer itself is added by :func:`hidden_imports` (the CLI loads its commands with importlib)
EXTRA_HIDDEN_IMPORTS = ["torchvision", "torchvision.io.image", "torchvision.ops"]


def cellviewer_modules() -> list[str]:
    """Every module of the ``cellviewer`` package, from the source tree (nothing imported)."""
    pkg = REPO / "cellviewer"
    mods = []
    for f in sorted(pkg.rglob("*.py")):
        rel = f.relative_to(REPO).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if "__pycache__" not in parts:
            mods.append(".".join(parts))
    return mods


def hidden_imports() -> list[str]:
    return cellviewer_modules() + EXTRA_HIDDEN_IMPORTS


#: binaries of the CUDA build that torch/cuDNN dlopen lazily (never a DT_NEEDED of what torch
#: loads at import): left out of the "cpu" variant. Everything else under nvidia/ is needed for
#: ``import torch`` to succeed even without a GPU (libtorch_cpu.so itself needs libcudart/libcupti,
#: libtorch_cuda.so needs cublas, cufft, curand, cusparse(+nvJitLink), cusparseLt, nccl, nvrtc, cudnn).
LAZY_CUDA_LIBS = [
    "libcudnn_adv.so*", "libcudnn_cnn.so*", "libcudnn_ops.so*", "libcudnn_graph.so*", "libcudnn_heuristic.so*",
    "libcudnn_engines_precompiled.so*", "libcudnn_engines_runtime_compiled.so*", "libcudnn_engines_tensor_ir.so*",
    "libcudnn_ext.so*", "libcusolver.so*", "libcusolverMg.so*", "libnvrtc.alt.so*", "libnvrtc-builtins*.so*",
    "libnvperf_host.so*", "libnvperf_target.so*", "libpcsamplingutil.so*", "libcheckpoint.so*",
    "libtorch_cuda_linalg.so", "libnvblas.so*", "libcufftw.so*", "libOpenCL.so*", "libnvToolsExt.so*",
]


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def variant() -> str:
    v = os.environ.get("CELLVIEWER_BUNDLE", "cpu").strip().lower()
    if v not in VARIANTS:
        raise SystemExit(f"CELLVIEWER_BUNDLE={v!r}: expected one of {', '.join(VARIANTS)}")
    return v


def data_files() -> list[tuple[str, str]]:
    """``(source, destination folder)`` pairs: model cards + weights, the sample smear, icons."""
    pairs: list[tuple[str, str]] = []
    models = sorted((REPO / "models").glob("*.json"))
    for card in models:
        weights = card.with_suffix(".safetensors")
        if weights.is_file():  # a card without weights is not a model
            pairs += [(str(card), "models"), (str(weights), "models")]
    for f in sorted((REPO / "resources" / "sample").iterdir()):
        if f.is_file():
            pairs.append((str(f), "resources/sample"))
    for name in ("icon.png", "icon.ico"):
        if (REPO / "resources" / name).is_file():
            pairs.append((str(REPO / "resources" / name), "resources"))
    return pairs


def torchvision_binaries() -> list[tuple[str, str]]:
    """torchvision 0.29's ``_C_stable`` and ``image_stable`` (the stock hook misses them).

    They are loaded by file path from the ``torchvision`` folder (``extension._load_library``),
    not imported, so they must land in ``<bundle>/_internal/torchvision``. Their own
    dependencies (``torchvision.libs/*``, torch's libraries) are found by the binary analysis.
    """
    import importlib.machinery

    folder = site_packages() / "torchvision"
    found = []
    for stem in ("_C_stable", "image_stable"):
        hits = [folder / (stem + suf) for suf in importlib.machinery.EXTENSION_SUFFIXES
                if (folder / (stem + suf)).is_file()]
        if not hits:
            raise FileNotFoundError(f"torchvision's {stem} extension is not in {folder}")
        found.append((str(hits[0]), "torchvision"))
    return found


def is_lazy_cuda_lib(dest_name: str) -> bool:
    base = os.path.basename(dest_name)
    return any(fnmatch.fnmatch(base, pat) for pat in LAZY_CUDA_LIBS)


def filter_binaries(binaries, chosen_variant: str):
    """The TOC of binaries without the lazily loaded CUDA libraries (``cpu``), unchanged for ``cuda``."""
    if chosen_variant == "cuda":
        return binaries, []
    kept, dropped = [], []
    for entry in binaries:
        (dropped if is_lazy_cuda_lib(entry[0]) else kept).append(entry)
    return kept, dropped


def runtime_hooks(chosen_variant: str) -> list[str]:
    hooks = [str(RUNTIME_HOOKS["common"])]
    if chosen_variant == "cpu":
        hooks.append(str(RUNTIME_HOOKS["cpu"]))
    return hooks


def app_version() -> str:
    """``cellviewer.__version__`` read from the source (no import)."""
    text = (REPO / "cellviewer" / "__init__.py").read_text(encoding="utf-8")
    m = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.M)
    if not m:
        raise ValueError("no __version__ in cellviewer/__init__.py")
    return m.group(1)


def version_tuple(version: str) -> tuple[int, int, int, int]:
    nums = [int(x) for x in re.findall(r"\d+", version)[:4]]
    return tuple((nums + [0, 0, 0, 0])[:4])  # type: ignore[return-value]


def windows_version_text(version: str | None = None) -> str:
    """A PyInstaller Windows version resource (``VSVersionInfo``) for ``cellviewer.exe``."""
    version = version or app_version()
    t = version_tuple(version)
    strings = {
        "CompanyName": "cellviewer", "FileDescription": "cellviewer - blood-smear review and counting",
        "FileVersion": version, "InternalName": NAME, "LegalCopyright": "MIT licence",
        "OriginalFilename": f"{NAME}.exe", "ProductName": "cellviewer", "ProductVersion": version,
    }
    items = ",\n            ".join(f"StringStruct({k!r}, {v!r})" for k, v in strings.items())
    return f"""# generated by packaging/bundle.py from cellviewer.__version__ = {version!r}
VSVersionInfo(
  ffi=FixedFileInfo(filevers={t}, prodvers={t}, mask=0x3f, flags=0x0, OS=0x40004, fileType=0x1,
                    subtype=0x0, date=(0, 0)),
  kids=[
    StringFileInfo([StringTable('040904B0', [
            {items}])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
"""


def write_version_file(folder) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cellviewer-version.txt"
    path.write_text(windows_version_text(), encoding="utf-8")
    return path


def icon_file(platform: str) -> str | None:
    """``.ico`` on Windows, ``.png`` elsewhere (PyInstaller converts it for macOS with Pillow)."""
    name = "icon.ico" if platform.startswith("win") else "icon.png"
    p = REPO / "resources" / name
    return str(p) if p.is_file() else None
