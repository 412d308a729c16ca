"""The PyInstaller spec, checked fast (the real build takes tens of minutes: packaging/build.sh).

* a dry run of ``packaging/cellviewer.spec`` with stand-ins for PyInstaller's build classes:
  every script, data file, binary and runtime hook it names exists;
* the hand-added torchvision 0.29 extensions, the runtime hooks' environment, the Windows
  version resource, and that the "cpu" variant only drops CUDA libraries torch loads lazily;
* with ``CELLVIEWER_TEST_BUNDLE=dist/cellviewer`` set, the built bundle's ``--selftest``.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "packaging"
SPEC = PKG / "cellviewer.spec"


def _load_bundle():
    spec = importlib.util.spec_from_file_location("cellviewer_bundle_test", PKG / "bundle.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bundle = _load_bundle()


class _Recorder:
    """Stands in for Analysis / PYZ / EXE / COLLECT / BUNDLE and records what the spec passes."""

    calls: list = []

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        _Recorder.calls.append((type(self).__name__, self))


class Analysis(_Recorder):
    def __init__(self, scripts, **kwargs):
        super().__init__(scripts, **kwargs)
        self.scripts = [(Path(s).stem, s, "PYSOURCE") for s in scripts]
        self.pure = []
        self.datas = [(dest, src, "DATA") for src, dest in kwargs.get("datas", [])]
        # what the binary analysis would add: a DT_NEEDED library and lazily loaded ones
        self.binaries = [(dest + "/" + Path(src).name, src, "BINARY") for src, dest in kwargs.get("binaries", [])]
        self.binaries += [("nvidia/cudnn/lib/libcudnn.so.9", "x", "BINARY"),
                          ("nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9", "x", "BINARY"),
                          ("nvidia/cu13/lib/libcudart.so.13", "x", "BINARY"),
                          ("torch/lib/libtorch_cuda_linalg.so", "x", "BINARY")]


class PYZ(_Recorder):
    pass


class EXE(_Recorder):
    pass


class COLLECT(_Recorder):
    pass


class BUNDLE(_Recorder):
    pass


@pytest.fixture
def dry_run(tmp_path, monkeypatch, capsys):
    def run(variant="cpu"):
        monkeypatch.setenv("CELLVIEWER_BUNDLE", variant)
        _Recorder.calls = []
        env = {"__file__": str(SPEC), "SPECPATH": str(PKG), "workpath": str(tmp_path / "work"),
               "Analysis": Analysis, "PYZ": PYZ, "EXE": EXE, "COLLECT": COLLECT, "BUNDLE": BUNDLE}
        exec(compile(SPEC.read_text(encoding="utf-8"), str(SPEC), "exec"), env)
        capsys.readouterr()
        return {name: obj for name, obj in _Recorder.calls}, env

    return run


def test_spec_dry_run_names_only_existing_files(dry_run):
    calls, env = dry_run()
    a = calls["Analysis"]
    for script in a.args[0]:
        assert Path(script).is_file(), script
    datas = a.kwargs["datas"]
    assert datas, "no data files"
    for src, dest in datas:
        assert Path(src).is_file(), src
    dests = {(Path(src).name, dest) for src, dest in datas}
    assert ("BloodImage_00095.jpg", "resources/sample") in dests
    assert ("icon.png", "resources") in dests
    for hook in a.kwargs["runtime_hooks"]:
        assert Path(hook).is_file(), hook
    assert len(a.kwargs["runtime_hooks"]) == 2  # common + cpu-only
    exe = calls["EXE"]
    assert exe.kwargs["name"] == "cellviewer" and exe.kwargs["console"] is True
    assert exe.kwargs["icon"] and Path(exe.kwargs["icon"]).is_file()
    assert calls["COLLECT"].kwargs["name"] == "cellviewer"
    # the cpu variant drops lazily loaded CUDA libraries only
    names = {Path(d[0]).name for d in env["a"].binaries}
    assert {"libcudnn.so.9", "libcudart.so.13", "_C_stable.so", "image_stable.so"} <= names
    assert not names & {"libcudnn_engines_precompiled.so.9", "libtorch_cuda_linalg.so"}


def test_spec_cuda_variant_keeps_every_library(dry_run):
    calls, env = dry_run("cuda")
    names = {Path(d[0]).name for d in env["a"].binaries}
    assert {"libcudnn_engines_precompiled.so.9", "libtorch_cuda_linalg.so"} <= names
    assert len(calls["Analysis"].kwargs["runtime_hooks"]) == 1


def test_spec_windows_branch_has_version_resource_and_windowed_twin(dry_run, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "platform", "win32")
    calls, env = dry_run()
    exes = [obj for name, obj in _Recorder.calls if name == "EXE"]
    assert [e.kwargs["name"] for e in exes] == ["cellviewer", "cellviewer-gui"]
    assert [e.kwargs["console"] for e in exes] == [True, False]
    for e in exes:
        assert e.kwargs["icon"].endswith("icon.ico") and Path(e.kwargs["version"]).is_file()
    assert "ProductVersion" in Path(exes[0].kwargs["version"]).read_text(encoding="utf-8")


def test_every_shipped_model_is_bundled_with_its_weights():
    cards = sorted((REPO / "models").glob("*.json"))
    assert cards, "models/ has no model card"
    bundled = {Path(src).name for src, dest in bundle.data_files() if dest == "models"}
    for card in cards:
        if card.with_suffix(".safetensors").is_file():
            assert {card.name, card.with_suffix(".safetensors").name} <= bundled


def test_hidden_imports_cover_every_cli_command():
    hidden = set(bundle.hidden_imports())
    for f in (REPO / "cellviewer" / "commands").glob("*.py"):
        if f.stem != "__init__":
            assert f"cellviewer.commands.{f.stem}" in hidden
    assert {"cellviewer.core.resources", "cellviewer.gui.app", "torchvision"} <= hidden


def test_excludes_are_modules_the_app_does_not_need():
    ex = set(bundle.EXCLUDES)
    assert {"triton", "tensorboard", "tkinter", "pytest", "PySide6.QtQml"} <= ex
    # never exclude what the app imports
    assert not ex & {"torch", "torchvision", "PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets", "pyqtgraph",
                     "unittest", "sympy", "scipy", "skimage", "cv2", "reportlab", "safetensors"}


def test_torchvision_stable_extensions_are_found():
    tv = importlib.util.find_spec("torchvision")  # located, not imported (that would take seconds)
    if tv is None:
        pytest.skip("torchvision is not installed")
    found = bundle.torchvision_binaries()
    assert [Path(src).name.split(".")[0] for src, _ in found] == ["_C_stable", "image_stable"]
    for src, dest in found:
        assert Path(src).is_file() and Path(src).parent == Path(tv.origin).parent and dest == "torchvision"


def _needed(lib: Path) -> set[str]:
    out = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True, timeout=30).stdout
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))


@pytest.mark.skipif(not sys.platform.startswith("linux") or not shutil.which("readelf"), reason="needs Linux readelf")
def test_lazy_cuda_libs_are_no_load_time_dependency():
    """What the cpu variant drops must not be a DT_NEEDED of any library torch loads at import."""
    torch_lib = bundle.site_packages() / "torch" / "lib"
    nvidia = bundle.site_packages() / "nvidia"
    if not torch_lib.is_dir():
        pytest.skip("torch is not installed")
    libs = [p for p in torch_lib.glob("*.so*") if not bundle.is_lazy_cuda_lib(p.name)]
    libs += [p for p in nvidia.rglob("*.so*") if not bundle.is_lazy_cuda_lib(p.name)] if nvidia.is_dir() else []
    libs += [Path(src) for src, _ in bundle.torchvision_binaries()]
    needed = set().union(*(_needed(p) for p in libs))
    assert needed, "readelf found no dependencies"
    dropped = sorted(n for n in needed if bundle.is_lazy_cuda_lib(n))
    assert dropped == [], f"needed at load time but left out of the cpu bundle: {dropped}"


def test_runtime_hooks_fix_the_environment():
    code = ("import os, runpy, sys\n"
            "for h in sys.argv[1:]: runpy.run_path(h)\n"
            "print({k: os.environ.get(k) for k in ('HF_HUB_OFFLINE', 'PYQTGRAPH_QT_LIB', 'QT_API', "
            "'CUDA_VISIBLE_DEVICES')})")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES")}
    env["PYQTGRAPH_QT_LIB"] = "PyQt5"  # a machine-wide setting must not win inside the bundle
    r = subprocess.run([sys.executable, "-c", code, *bundle.runtime_hooks("cpu")], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert eval(r.stdout) == {"HF_HUB_OFFLINE": "1", "PYQTGRAPH_QT_LIB": "PySide6", "QT_API": "pyside6",  # noqa: S307
                              "CUDA_VISIBLE_DEVICES": ""}


def test_windows_version_resource_is_valid(tmp_path):
    from cellviewer import __version__

    assert bundle.app_version() == __version__
    path = bundle.write_version_file(tmp_path)
    text = path.read_text(encoding="utf-8")
    # evaluate it as PyInstaller does, with stand-ins for its version-info classes (pefile-free)
    names = ("VSVersionInfo", "FixedFileInfo", "StringFileInfo", "StringTable", "StringStruct", "VarFileInfo",
             "VarStruct")
    info = eval(text, {n: (lambda n: lambda *a, **k: (n, a, k))(n) for n in names})  # noqa: S307
    assert info[0] == "VSVersionInfo"
    ffi = info[2]["ffi"]
    assert ffi[2]["filevers"] == bundle.version_tuple(__version__) and len(ffi[2]["filevers"]) == 4
    strings = dict(s[1] for s in info[2]["kids"][0][1][0][0][1][1])
    assert strings["ProductVersion"] == __version__ and strings["OriginalFilename"] == "cellviewer.exe"
    try:  # the real parser when PyInstaller's Windows helpers are importable (they need pefile)
        from PyInstaller.utils.win32 import versioninfo
    except ImportError:
        return
    assert __version__ in str(versioninfo.load_version_info_from_text_file(str(path)))


def test_icons_are_drawn_by_the_committed_script(tmp_path):
    spec = importlib.util.spec_from_file_location("make_icon", PKG / "make_icon.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    img = mod.draw_icon(64)
    assert img.size == (64, 64) and img.mode == "RGBA"
    alpha = img.getchannel("A")
    assert alpha.getpixel((0, 0)) == 0 and alpha.getpixel((32, 32)) == 255  # transparent corner, opaque cells
    from PIL import Image

    with Image.open(REPO / "resources" / "icon.ico") as ico:
        assert (256, 256) in ico.info["sizes"] and (16, 16) in ico.info["sizes"]


@pytest.mark.skipif(not os.environ.get("CELLVIEWER_TEST_BUNDLE"), reason="set CELLVIEWER_TEST_BUNDLE=dist/cellviewer "
                    "after 'bash packaging/build.sh' to self-test the built bundle")
def test_built_bundle_selftest():
    folder = Path(os.environ["CELLVIEWER_TEST_BUNDLE"])
    folder = folder if folder.is_absolute() else REPO / folder
    exe = folder / ("cellviewer.exe" if sys.platform.startswith("win") else "cellviewer")
    assert exe.is_file(), f"no bundle at {exe}; run bash packaging/build.sh"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    r = subprocess.run([str(exe), "--selftest"], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PyInstaller bundle" in r.stdout and "self-test passed" in r.stdout
    assert "ops ok" in r.stdout


_BLOCKED_RUN = r'''
import importlib.abc, importlib.util, os, sys
EX = set(sys.argv[1:])
def blocked(name):
    return any(name == e or name.startswith(e + ".") for e in EX)
class Block(importlib.abc.MetaPathFinder):  # what PyInstaller's excludes leave: no such module
    def find_spec(self, name, path, target=None):
        if blocked(name):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
_find = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: None if blocked(name) else _find(name, package)
from cellviewer.cli import main
rc = main(["--selftest"])
from cellviewer.gui.app import create_app, create_window
app = create_app()
win = create_window()
opened = win.session.doc is not None
win.close()  # while the sample may still be segmenting: the job is cancelled and joined
print("RESULT", rc, opened)
'''


def test_app_runs_without_the_excluded_modules(tmp_path):
    """The self-test and the main window work with every module in EXCLUDES unimportable (as in the bundle)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYQTGRAPH_QT_LIB="PySide6", HF_HUB_OFFLINE="1",
               CELLVIEWER_HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", _BLOCKED_RUN, *bundle.EXCLUDES], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "RESULT 0 True" in r.stdout, r.stdout[-2000:] + r.stderr[-3000:]


@pytest.mark.skipif(not sys.platform.startswith("linux") or not shutil.which("bash"), reason="Linux installer")
def test_linux_installer_installs_and_uninstalls(tmp_path):
    src = tmp_path / "bundle"
    src.mkdir()
    (src / "cellviewer").write_text("#!/bin/sh\necho fake cellviewer \"$@\"\n")
    (src / "cellviewer").chmod(0o755)
    env = dict(os.environ, CELLVIEWER_SRC=str(src), CELLVIEWER_DEST=str(tmp_path / "opt" / "cellviewer"),
               CELLVIEWER_BIN=str(tmp_path / "bin"), CELLVIEWER_SHARE=str(tmp_path / "share"))
    r = subprocess.run(["bash", str(PKG / "install-linux.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    link = tmp_path / "bin" / "cellviewer"
    assert link.is_symlink() and subprocess.run([str(link), "--selftest"], capture_output=True, text=True,
                                                timeout=30).stdout.strip() == "fake cellviewer --selftest"
    desktop = (tmp_path / "share" / "applications" / "cellviewer.desktop").read_text()
    assert f"Exec={tmp_path / 'opt' / 'cellviewer' / 'cellviewer'} gui %f" in desktop and "Icon=cellviewer" in desktop
    assert (tmp_path / "share" / "icons" / "hicolor" / "256x256" / "apps" / "cellviewer.png").is_file()
    r = subprocess.run(["bash", str(PKG / "install-linux.sh"), "--uninstall"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not link.exists() and not (tmp_path / "opt" / "cellviewer").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux") or not shutil.which("bash"), reason="Linux installer")
def test_linux_installer_never_replaces_or_removes_a_folder_that_is_not_an_install(tmp_path):
    """A destination that is some other folder (DEST=~/Documents from another tool's environment deleted it)
    is refused on install and on uninstall; so is a command of that name that is not this install's link.
    A path with a space, & and # gives a working, quoted menu entry."""
    src = tmp_path / "bundle"
    src.mkdir()
    (src / "cellviewer").write_text("#!/bin/sh\necho fake\n")
    (src / "cellviewer").chmod(0o755)
    docs = tmp_path / "Documents"
    docs.mkdir()
    (docs / "thesis.txt").write_text("precious")
    base = dict(os.environ, CELLVIEWER_SRC=str(src), CELLVIEWER_BIN=str(tmp_path / "bin"),
                CELLVIEWER_SHARE=str(tmp_path / "share"))

    def run(dest, *args):
        return subprocess.run(["bash", str(PKG / "install-linux.sh"), *args], env=dict(base, CELLVIEWER_DEST=str(dest)),
                              capture_output=True, text=True, timeout=60)

    for args in ((), ("--uninstall",)):
        r = run(docs, *args)
        assert r.returncode == 2 and "not a cellviewer install" in r.stderr
        assert (docs / "thesis.txt").read_text() == "precious"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "cellviewer").write_text("a user's own script")
    r = run(tmp_path / "opt" / "cellviewer")
    assert r.returncode == 2 and "not this install's link" in r.stderr and not (tmp_path / "opt").exists()
    (tmp_path / "bin" / "cellviewer").unlink()
    odd = tmp_path / "Dr Smith R&D #2" / "cellviewer"
    assert run(odd).returncode == 0 and (odd / ".cellviewer-install").is_file()
    desktop = (tmp_path / "share" / "applications" / "cellviewer.desktop").read_text()
    assert f'Exec="{odd / "cellviewer"}" gui %f' in desktop
    assert run(odd).returncode == 0  # an install is replaced by the next one
    r = run(odd, "--uninstall")
    assert r.returncode == 0 and not odd.exists() and not (tmp_path / "bin" / "cellviewer").exists()
    assert "nothing to remove" in run(odd, "--uninstall").stdout


def test_the_runtime_hook_sets_a_utf8_locale_only_when_none_is_set():
    """In a clean environment (env -i) Qt warned "Detected locale C" at every start of the bundle."""
    code = "import os, runpy; runpy.run_path(%r); print(os.environ.get('LC_ALL'))" % str(PKG / "rthook_cellviewer.py")
    bare = subprocess.run([sys.executable, "-c", code],  # (as in the bundle: no C-locale coercion by Python)
                          env={"PATH": os.environ.get("PATH", ""), "PYTHONCOERCECLOCALE": "0"},
                          capture_output=True, text=True, timeout=60)
    assert bare.stdout.strip() == "C.UTF-8", bare.stderr
    kept = subprocess.run([sys.executable, "-c", code], env={"PATH": os.environ.get("PATH", ""), "LANG": "de_DE.UTF-8"},
                          capture_output=True, text=True, timeout=60)
    assert kept.stdout.strip() == "None"
