"""``cellviewer --selftest`` (also ``cellviewer selftest``): is this installation whole?

Headless, offline, a few seconds: loads the default model, segments the bundled sample
smear, checks that the counts are plausible for it, loads every other shipped model (a
nucleus/cytoplasm model must find the sample's white cell with both parts, and the
splitting of touching white cells by their nuclei must work), checks torchvision's compiled ops
(the part a PyInstaller bundle most often misses), writes a PDF + CSV report into a
temporary folder and checks it, then prints a short summary. Exit 0 when all is well;
otherwise one line ``cellviewer: error: self-test failed: <reason>`` and a non-zero
code (1, or the code of the cellviewer error behind it, e.g. 6 for a model that does
not load — see :mod:`cellviewer.cli`).

The expected counts come from the sample's annotations: BloodImage_00095 has 15 RBC
boxes in BCCD (incomplete) and 26 RBC, 1 WBC and 2 platelets in the TXL-PBC
re-annotation (``../shared/data/bccd/annotations*.csv``); the ranges below leave room
for the model and the classical fallback (which counts 19 / 1 / 0) but not for a broken
pipeline (0 cells, or hundreds of fragments).
"""

from __future__ import annotations

import sys
import time

from cellviewer.core.errors import CellviewerError

#: class -> (lowest, highest) plausible count on the bundled sample
EXPECTED = {"rbc": (15, 40), "wbc": (1, 3), "platelet": (0, 8)}
NAMES = {"rbc": "RBC", "wbc": "WBC", "platelet": "platelets"}


class SelftestFailed(CellviewerError):
    """The self-test found something wrong (exit code 1)."""

    exit_code = 1


def _fail(message: str, hint: str = "reinstall cellviewer, or rebuild the bundle with packaging/build.sh") -> None:
    raise SelftestFailed(f"self-test failed: {message}", hint=hint)


def check_counts(counts: dict[str, int], expected: dict[str, tuple[int, int]] = EXPECTED) -> list[str]:
    """The problems of ``counts`` against ``expected`` ranges (empty when plausible)."""
    problems = []
    for cls, (lo, hi) in expected.items():
        n = int(counts.get(cls, 0))
        if not lo <= n <= hi:
            problems.append(f"{n} {NAMES.get(cls, cls)} (expected {lo}-{hi})")
    return problems


def _torchvision_ops() -> str:
    """Check that torchvision's compiled ops (``_C_stable``) load; a short status text."""
    try:
        import torchvision
        from torchvision import extension
    except Exception as e:  # noqa: BLE001 - any import failure means a broken install
        _fail(f"torchvision does not import ({type(e).__name__}: {e})")
    if not extension._has_ops():
        _fail("torchvision's compiled ops (_C_stable) are missing ('operator torchvision::nms does not exist')")
    return f"torchvision {torchvision.__version__} ops ok"


def _nucleus_split() -> None:
    """Two touching white cells with far-apart nuclei must come out as two (scipy's compiled graph code)."""
    import numpy as np

    from cellviewer.core.instances import split_by_nuclei

    yy, xx = np.mgrid[:40, :80]
    cells = ((yy - 20) ** 2 + (xx - 22) ** 2 < 18 ** 2) | ((yy - 20) ** 2 + (xx - 58) ** 2 < 18 ** 2)
    nuclei = ((yy - 20) ** 2 + (xx - 20) ** 2 < 6 ** 2) | ((yy - 20) ** 2 + (xx - 60) ** 2 < 6 ** 2)
    parts = np.where(nuclei, 1, np.where(cells, 2, 0)).astype(np.uint8)
    if split_by_nuclei(cells.astype(np.int32), parts, diameter=20.0).max() != 2:
        _fail("white cells are not split by their nuclei (cellviewer.core.instances.split_by_nuclei)")


def _other_models(default: str, device: str, pixels) -> list[str]:
    """Load every other shipped model; a WBC-parts model must give the sample's WBC a nucleus and a cytoplasm."""
    import numpy as np

    from cellviewer.core.jobs import run_job
    from cellviewer.core.netsegment import find_models, model_dirs
    from cellviewer.core.segment import create_segmenter

    shipped = {d.resolve() for d in model_dirs()[:-1]}  # bundled / installed, not the user's own store
    lines = []
    for name, (path, _card) in sorted(find_models().items()):
        if name == default or path.resolve().parent not in shipped:
            continue
        t = time.perf_counter()
        seg = create_segmenter(name, device=device)
        line = f"  model: {name} v{seg.version} loaded"
        if "nucleus" in (getattr(seg, "classes", None) or []):
            res = run_job(seg.segment(pixels))
            wbc = res.labels["wbc"] > 0
            parts = res.parts if res.parts is not None else np.zeros(wbc.shape, np.uint8)
            nuc, cyto = int(((parts == 1) & wbc).sum()), int(((parts == 2) & wbc).sum())
            if not wbc.any() or nuc == 0 or cyto == 0:
                _fail(f"model '{name}' found no white cell with nucleus and cytoplasm on the sample "
                      f"({int(wbc.any())} WBC, nucleus {nuc} px, cytoplasm {cyto} px)",
                      hint="the model or its post-processing is broken; reinstall the models/ folder")
            _nucleus_split()
            line += f"; sample WBC: nucleus {nuc} px, cytoplasm {cyto} px; nucleus split ok"
        lines.append(f"{line} ({time.perf_counter() - t:.1f} s)")
    return lines


def _morphology_line(doc, seg) -> str:
    """The red-cell morphology check: with the rbc-morphology model installed, every whole red cell
    (not cut by the image edge) of the sample has a class ("" when that model is not installed or
    the segmenter is classical)."""
    from cellviewer.core.countframe import edge_flags
    from cellviewer.core.morphology import find_card, morphology_counts

    if find_card() is None or not getattr(seg, "morphology", False):
        return ""
    cut = set(edge_flags(doc.labels["rbc"]))
    rbcs = [m for m in doc.markers.values() if m.cls == "rbc" and m.cell not in cut]
    missing = sum(1 for m in rbcs if not m.morph)
    if missing or not rbcs:
        _fail(f"{missing} of {len(rbcs)} whole red cells of the sample got no morphology class",
              hint="reinstall the models/ folder (rbc-morphology.json + .safetensors)")
    top = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in list(morphology_counts(rbcs).items())[:3])
    return f"  red-cell morphology: {doc.provenance.params.get('morphology', '?')}; sample: {top}"


def _write_report(doc, folder, model: str, name: str) -> str:
    """Write report.pdf + counts.csv + cells.csv into ``folder``; check them; a short description."""
    from pathlib import Path

    from cellviewer.core.report import ReportEntry, cell_rows, count_row, write_csvs, write_pdf_report

    counts_csv, cells_csv = write_csvs(folder, [count_row(doc, name)], cell_rows(doc, name))
    pdf = write_pdf_report(Path(folder) / "report.pdf", [ReportEntry.from_document(doc, name)],
                           title=f"cellviewer self-test ({model})")
    data = pdf.read_bytes()
    if not data.startswith(b"%PDF") or len(data) < 1000:
        _fail(f"the PDF report '{pdf}' is not a valid PDF")
    n_rows = len(cells_csv.read_text(encoding="utf-8").splitlines()) - 1
    if n_rows != sum(doc.counts().get(c, 0) for c in EXPECTED):
        _fail(f"cells.csv has {n_rows} rows, the counts say otherwise")
    if len(counts_csv.read_text(encoding="utf-8").splitlines()) != 2:
        _fail("counts.csv does not hold one row")
    return f"report.pdf ({len(data) // 1024} KiB), counts.csv, cells.csv ({n_rows} cells)"


def run_selftest(args) -> int:
    """The self-test; returns 0 or raises :class:`SelftestFailed` / another cellviewer error."""
    import shutil
    import tempfile

    from cellviewer import __version__
    from cellviewer.core import io
    from cellviewer.core.document import Document
    from cellviewer.core.jobs import run_job
    from cellviewer.core.resources import is_frozen, resources_dir, sample_image
    from cellviewer.core.segment import create_segmenter, default_segmenter_name

    t0 = time.perf_counter()
    out = print
    where = "PyInstaller bundle" if is_frozen() else "source/installed package"
    out(f"cellviewer {__version__} self-test ({where}, Python {sys.version.split()[0]})")
    sample = sample_image()
    if sample is None:
        _fail(f"the bundled sample smear is missing from {resources_dir() / 'sample'}")
    import torch

    out(f"  torch {torch.__version__}; {_torchvision_ops()}")
    model = getattr(args, "model", None) or default_segmenter_name()
    t = time.perf_counter()
    seg = create_segmenter(model, device=getattr(args, "device", None) or "auto")
    out(f"  model: {model} v{seg.version} on {getattr(seg, 'device', 'cpu')} (loaded in {time.perf_counter() - t:.1f} s)")
    img = io.read_image(sample)
    h, w = img.pixels.shape[:2]
    t = time.perf_counter()
    doc = Document(img)
    doc.set_result(run_job(seg.segment(img.pixels)))
    counts = doc.counts()
    shown = ", ".join(f"{counts.get(c, 0)} {NAMES[c]}" for c in EXPECTED)
    out(f"  sample: {sample.name} ({w}x{h}): {shown} in {time.perf_counter() - t:.1f} s")
    problems = check_counts(counts)
    if problems:
        _fail(f"implausible counts on the sample: {'; '.join(problems)}",
              hint="the model or its post-processing is broken; reinstall the models/ folder")
    morph = _morphology_line(doc, seg)
    if morph:
        out(morph)
    if getattr(args, "model", None) is None:  # the whole installation: every shipped model loads
        for line in _other_models(model, getattr(args, "device", None) or "auto", img.pixels):
            out(line)
    folder = tempfile.mkdtemp(prefix="cellviewer-selftest-")
    keep = bool(getattr(args, "keep", False))
    try:
        written = _write_report(doc, folder, model, sample.name)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    out(f"  report: {written} in {folder}{'' if keep else ' (removed)'}")
    out(f"self-test passed in {time.perf_counter() - t0:.1f} s")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "selftest", help="headless self-test of this installation (same as --selftest)",
        description="Load the default model, segment the bundled sample smear, check the counts are plausible, "
                    "write a PDF + CSV report to a temporary folder. Exit 0 when all is well.")
    p.add_argument("-m", "--model", default=None, help="model to test (default: the default model)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                   help="compute device (default auto)")
    p.add_argument("--keep", action="store_true", help="keep the temporary report folder and print its path")
    p.set_defaults(func=run_selftest)
