"""Reports from a :class:`~cellviewer.core.document.Document`: rows, class maps, overlays, PDF.

Reads the Document only (never widgets); numpy, scipy, Pillow and reportlab.

* ``cells.csv`` columns :data:`CELL_COLUMNS`: one row per counted marker (= counted cell;
  ``morphology`` / ``morphology_p``: a red cell's morphology class and its probability,
  1 when set by hand, empty when not classified — :mod:`cellviewer.core.morphology`;
  a cell the document's border rule does not count has no row, see
  :mod:`cellviewer.core.countframe`). ``area_px`` and the bounding box come from the cell's mask when the marker is
  linked to one (``marker.cell > 0``); a mask-less manual marker has area 0 and
  a bounding box equal to its point. ``xmin..ymax`` are *inclusive* pixel indices.
* ``counts.csv`` columns :data:`COUNT_COLUMNS`. Both are written by :mod:`cellviewer.core.reportcsv`
  (:class:`CsvStream`, :func:`write_csvs`; re-exported here).
* class map (:mod:`cellviewer.core.render`): ``uint8`` with ``CLASS_MAP_VALUES`` (WBC pixels with a part are
  4 nucleus / 5 cytoplasm instead of 2; platelets drawn over WBC over RBC).
* PDF: one page per image (overview, counts, details); more than one image (or
  any skipped file, or images without a page) adds a first summary page with a table of all images.
  The shares of a differential add up to exactly 100.0 % (:func:`~cellviewer.core.partshares.shares_pct`).
  A name that is not valid UTF-8 is shown in its :func:`~cellviewer.core.csvtext.readable` form.
"""

from __future__ import annotations

import io as _io
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from cellviewer.core.countframe import rule_note
from cellviewer.core.document import CELL_CLASSES, DISPLAY_NAMES, Document, now_iso, os_user
from cellviewer.core.errors import SaveError
from cellviewer.core.csvtext import readable
from cellviewer.core.partshares import shares_pct, wbc_part_shares
from cellviewer.core.render import class_map, classes_json, overlay_rgb  # noqa: F401 - part of this module's API
from cellviewer.core.reportcsv import (CELL_COLUMNS, COUNT_COLUMNS, CsvStream,  # noqa: F401 - part of this API
                                       _tmp_beside, spreadsheet_safe, write_csvs)
from cellviewer.core.sizeprior import calibration_warning

THUMB_WIDTH = 800


# -- rows -------------------------------------------------------------------------------
def cell_rows(doc: Document, image_name: str) -> list[dict]:
    """One row per counted marker, sorted by marker id, with exactly :data:`CELL_COLUMNS`."""
    from scipy import ndimage

    h, w = doc.shape
    stats = {}  # computed once per class that has linked markers
    rows, uncounted = [], doc.uncounted()
    for m in sorted(doc.markers.values(), key=lambda m: m.id):
        if m.id in uncounted:
            continue
        area, box = 0, None
        if m.cell > 0 and m.cls in doc.labels:
            if m.cls not in stats:  # find_objects slices (index id - 1); areas counted on those crops
                stats[m.cls] = ndimage.find_objects(doc.labels[m.cls])
            slices = stats[m.cls]
            if m.cell <= len(slices) and slices[m.cell - 1] is not None:
                sy, sx = slices[m.cell - 1]
                area = int(np.count_nonzero(doc.labels[m.cls][sy, sx] == m.cell))
                box = (sx.start, sy.start, sx.stop - 1, sy.stop - 1)
        if box is None:
            px, py = int(np.clip(round(m.x), 0, w - 1)), int(np.clip(round(m.y), 0, h - 1))
            box = (px, py, px, py)
        rows.append({"image": image_name, "cell_id": m.id, "cls": m.cls, "x": round(float(m.x), 2),
                     "y": round(float(m.y), 2), "area_px": area, "xmin": box[0], "ymin": box[1],
                     "xmax": box[2], "ymax": box[3], "score": round(float(m.score), 4),
                     "morphology": m.morph, "morphology_p": round(float(m.morph_p), 4) if m.morph else ""})
    return rows


def count_row(doc: Document, image_name: str) -> dict:
    c = doc.counts()
    return {"image": image_name, "rbc": c.get("rbc", 0), "wbc": c.get("wbc", 0), "platelets": c.get("platelet", 0)}


# -- report entries ---------------------------------------------------------------------
def _pct(n, total) -> str:
    return f"{100.0 * n / total:.1f} %" if total else "–"


def differential(doc: Document, sizes: dict[str, str] | None = None) -> dict[str, str]:
    """Composition, RBC:WBC ratio, platelets per 100 RBC, WBC subtypes and parts (when present).
    ``sizes``: :func:`rbc_size_summary` when the caller keeps it (it reads every label pixel)."""
    c = doc.counts()
    rbc, wbc, plt = c.get("rbc", 0), c.get("wbc", 0), c.get("platelet", 0)
    out = {f"{DISPLAY_NAMES.get(k, k)} share": v for k, v in shares_pct({k: n for k, n in c.items() if n}).items()}
    out["RBC : WBC"] = f"{rbc / wbc:.1f} : 1" if wbc else "– (no WBC)"
    out["Platelets per 100 RBC"] = f"{100.0 * plt / rbc:.1f}" if rbc else "– (no RBC)"
    extra = {k: n for k, n in c.items() if k not in CELL_CLASSES and n}  # WBC subtypes, if a model gives them
    for k, v in shares_pct(dict(sorted(extra.items()))).items():
        out[f"WBC differential: {k}"] = v
    out.update(morphology_differential(doc))
    out.update(rbc_size_summary(doc) if sizes is None else sizes)
    out.update(wbc_part_shares(doc))
    return out


#: the size variation (CV) is given from this many whole red cells on
CV_MIN_CELLS = 10


def whole_rbc_areas(doc: Document) -> dict[int, int]:
    """``cell id -> area (px)`` of the red-cell masks not cut by the image edge: the part of
    :func:`rbc_size_summary` that reads every label pixel (a caller may keep it until the red-cell
    masks change)."""
    from cellviewer.core.countframe import edge_flags

    lab = doc.labels["rbc"]
    area = np.bincount(lab.ravel())
    cut = edge_flags(lab, doc.field_edge())
    return {i: int(area[i]) for i in np.nonzero(area)[0].tolist() if i and i not in cut}


def rbc_size_summary(doc: Document, whole: dict[int, int] | None = None) -> dict[str, str]:
    """The whole red cells' (masks not cut by the image edge, with a count marker) equivalent diameter,
    mean ± SD, in µm when the image's calibration is known (else px), and, from :data:`CV_MIN_CELLS` cells
    on, its coefficient of variation (size variation, anisocytosis); empty with fewer than 3 whole red cells.
    ``whole``: :func:`whole_rbc_areas` of ``doc`` when the caller keeps it."""
    whole = whole_rbc_areas(doc) if whole is None else whole
    counted = {m.cell for m in doc.markers.values() if m.cls == "rbc" and m.cell}  # not a removed count
    a = np.array([v for i, v in whole.items() if i in counted], float)
    if len(a) < 3:
        return {}
    d = 2.0 * np.sqrt(a / np.pi)
    um = doc.um_per_px
    unit, d = ("µm", d * float(um)) if um else ("px", d)
    prec = 1 if unit == "µm" else 0
    out = {"RBC diameter (whole cells)": f"{d.mean():.{prec}f} ± {d.std(ddof=1):.{prec}f} {unit} (n {len(d)})"}
    if len(d) >= CV_MIN_CELLS:  # a spread from a handful of cells (a merged pair among them) says little
        out["RBC diameter variation (CV)"] = _pct(d.std(ddof=1), d.mean())
    return out


def morphology_differential(doc: Document) -> dict[str, str]:
    """``"RBC morphology: <class>" -> "<share> (<n>)"`` over the counted red cells that have a
    morphology class (most frequent first); empty when none has one. When not all counted red cells have a
    class (cut cells, a hand-placed marker, a Split's pieces), ``"RBC morphology from"`` says of how many
    the shares are: they are not shares of the red-cell count."""
    skip = doc.uncounted()
    rbc = [m for m in doc.markers.values() if m.cls == "rbc" and m.id not in skip]
    morphs = Counter(m.morph for m in rbc if m.morph)
    shares = shares_pct(dict(morphs.most_common()))  # add up to 100.0 %
    out = {f"RBC morphology: {k.replace('_', ' ')}": f"{share} ({morphs[k]})" for k, share in shares.items()}
    if out and sum(morphs.values()) < len(rbc):
        out["RBC morphology from"] = f"{sum(morphs.values())} of {len(rbc)} counted red cells (others unclassified)"
    return out


@dataclass
class ReportEntry:
    image: str
    thumbnail: np.ndarray | None = None  # RGB uint8 overview, ≤ THUMB_WIDTH px wide
    counts: dict[str, int] = field(default_factory=dict)
    differential: dict[str, str] = field(default_factory=dict)
    model_name: str = ""
    model_version: str = ""
    tta: str = ""  # the test-time augmentation the model ran with (none, flips, d4); "" for a model without
    device: str = ""
    user: str = ""
    time: str = ""  # when it was segmented
    n_corrections: int = 0
    audit: dict[str, int] = field(default_factory=dict)  # edit action -> how many
    notes: list[str] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)  # width, height
    reviewed: bool = False
    cell_size: str = ""  # the red-cell size the segmentation worked at, and how it was found
    morphology: str = ""  # the morphology model (and its size prior) that classed the red cells
    um_per_px: float | None = None  # the calibration the red-cell sizes are given at (None: sizes in px)

    @classmethod
    def from_document(cls, doc: Document, image_name: str, thumbnail: bool = True,
                      thumb_width: int = THUMB_WIDTH) -> "ReportEntry":
        p, (h, w) = doc.provenance, doc.shape
        return cls(
            image=image_name,
            thumbnail=overlay_rgb(doc, max_width=thumb_width) if thumbnail else None,
            counts=dict(doc.counts()), differential=differential(doc),
            model_name=p.model_name, model_version=p.model_version, tta=str((p.params or {}).get("tta") or ""),
            device=p.device,
            user=", ".join(sorted({e.user for e in p.edits if e.user})) or os_user(), time=p.segmented_at,
            n_corrections=doc.n_manual_edits, audit=dict(Counter(e.action for e in doc.corrections()).most_common()),
            notes=list(doc.image.info.notes) + list(doc.load_warnings) + _rule_note(doc)
            + [w for w in [calibration_warning(doc.labels["rbc"], doc.um_per_px) if doc.um_per_px else None] if w],
            size=(w, h), reviewed=bool(doc.reviewed), cell_size=_cell_size(p.params or {}, doc.um_per_px),
            morphology=_morphology_line(p.params or {}, doc.um_per_px), um_per_px=doc.um_per_px or None)


# -- PDF --------------------------------------------------------------------------------
def _rule_note(doc: Document) -> list[str]:
    """The report line on the border rule (none for "all")."""
    if doc.border_rule == "all":
        return []
    return rule_note(doc.border_rule, len(doc.uncounted()), doc.field_edge() is not None)


def _morphology_line(params: dict, um_per_px: float | None) -> str:
    """The morphology model that classed the red cells, with the size prior when the image's calibration (the
    one its current classes were made with: a "Classify red cells again" may have changed it) is known."""
    base = str(params.get("morphology") or "").split(" + size prior")[0]
    return base + (f" + size prior at {um_per_px:g} µm/px" if base and um_per_px else "")


def _cell_size(params: dict, um_per_px: float | None) -> str:
    """"105 px (estimated)", with µm when the calibration is known ("" without a segmentation)."""
    d = params.get("diameter_px")
    if not d:
        return ""
    um = f" = {float(d) * um_per_px:.1f} µm at {um_per_px:g} µm/px" if um_per_px else ""
    return f"{float(d):.0f} px{um} ({str(params.get('diameter_source') or 'given').replace('+', ', ')})"


def _calibration(um_per_px: float | None) -> str:
    """The pixel size the report's sizes are at (cells.csv's ``area_px`` and box are pixels either way)."""
    if not um_per_px:
        return "none: red-cell diameters in px (cells.csv: px)"
    return f"{um_per_px:g} µm/px: red-cell diameters in µm (cells.csv: px)"


def _p(text, style):
    from reportlab.platypus import Paragraph

    from cellviewer.core.pdffonts import markup
    # a file, user or note name in a script Helvetica lacks; a file name that is not UTF-8 in its readable form
    return Paragraph(markup(readable(str(text)), escape), style)


def _model(e: ReportEntry, short: bool = False) -> str:
    """"blood-cells 6 (test-time augmentation d4)": a model version's numbers depend on its augmentation."""
    name = f"{e.model_name or '–'} {e.model_version}".strip()
    if not e.tta:
        return name
    return f"{name} (tta {e.tta})" if short else f"{name} (test-time augmentation {e.tta})"


def _notes(notes) -> str:
    """The notes as one line, "; " between them (a note's own final full stop left out: never ".;")."""
    notes = (str(n).strip() for n in notes)
    return "; ".join(n[:-1] if n.endswith(".") and not n.endswith("..") else n for n in notes if n)


def _table(rows, widths, header=True):
    from reportlab.lib import colors
    from reportlab.platypus import LongTable, TableStyle
    t = LongTable(rows, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT")
    style = [("FONT", (0, 0), (-1, -1), "Helvetica", 8.5), ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
             ("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (0, 0), (-1, -1), 1.5),
             ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    if header:
        style += [("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 9), ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey)]
    t.setStyle(TableStyle(style))
    return t


def _jpeg(rgb: np.ndarray) -> _io.BytesIO:
    from PIL import Image
    Image.fromarray(np.ascontiguousarray(rgb, np.uint8)).save(buf := _io.BytesIO(), "JPEG", quality=85)
    return _io.BytesIO(buf.getvalue())


def _summary_page(entries, skipped, title, styles, max_pages) -> list:
    from reportlab.lib.units import cm
    from reportlab.platypus import PageBreak, Spacer

    from cellviewer.core.cautions import CAUTION, caution_headline

    body = styles["BodyText"]
    flow = [_p(title, styles["Title"]),
            _p(f"{len(entries)} image(s) analysed, {len(skipped)} skipped — generated {now_iso()} by {os_user()}", body),
            Spacer(1, 0.3 * cm)]
    rows = [["#", "Image", "RBC", "WBC", "Platelets", "Corrections", "Model"]]
    tot = [0, 0, 0]
    for i, e in enumerate(entries, 1):
        cc = [e.counts.get(k, 0) for k in CELL_CLASSES]
        tot = [a + b for a, b in zip(tot, cc)]
        warn = "; ".join(caution_headline(n) for n in e.notes if n.startswith(CAUTION))  # counts to check
        rows.append([i, _p(e.image + (f" — ⚠ {warn}" if warn else ""), body), *cc, e.n_corrections,
                     _p(_model(e, short=True), body)])
    rows.append(["", "Total", *tot, sum(e.n_corrections for e in entries), ""])
    flow.append(_table(rows, [1.0 * cm, 6.0 * cm, 1.5 * cm, 1.5 * cm, 1.7 * cm, 2.3 * cm, 3.8 * cm]))
    if len(entries) > max_pages:
        pages = f"only for the first {max_pages} images" if max_pages else "not included"
        flow += [Spacer(1, 0.3 * cm), _p(f"Detail pages {pages}; the CSVs hold all.", body)]
    if skipped:
        flow += [Spacer(1, 0.4 * cm), _p("Skipped files", styles["Heading2"]),
                 _table([["File", "Reason"]] + [[_p(n, body), _p(r, body)] for n, r in skipped],
                        [6.0 * cm, 12.0 * cm])]
    return flow + [PageBreak()]


def _image_page(e: ReportEntry, styles, frame_w, frame_h) -> list:
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, KeepInFrame, PageBreak, Spacer

    body = styles["BodyText"]
    flow = [_p(e.image, styles["Heading1"])]
    if e.thumbnail is not None:
        th, tw = e.thumbnail.shape[:2]
        scale = min(frame_w / tw, 11.5 * cm / th)
        flow += [Image(_jpeg(e.thumbnail), width=tw * scale, height=th * scale, hAlign="LEFT"), Spacer(1, 0.3 * cm)]
    c = e.counts
    rows = [["Class", "Count"]] + [[DISPLAY_NAMES.get(k, k), n] for k, n in c.items()]
    rows.append(["Total", sum(c.values())])
    diff = [["Differential", ""]] + [[k, v] for k, v in e.differential.items()]
    flow += [_table(rows, [4 * cm, 2.5 * cm]), Spacer(1, 0.3 * cm), _table(diff, [6 * cm, 8 * cm]),
             Spacer(1, 0.3 * cm)]
    audit = ", ".join(f"{a} ×{n}" for a, n in e.audit.items()) or "none"
    details = [["Image size", f"{e.size[0]} × {e.size[1]} px"],
               ["Model", _model(e)], ["Device", e.device or "–"],
               ["Red-cell size used", e.cell_size or "–"], ["Calibration", _calibration(e.um_per_px)],
               ["Morphology", e.morphology or "–"],
               ["Segmented at", e.time or "–"], ["User", e.user or "–"],
               ["Manual corrections", str(e.n_corrections)], ["Audit", audit],
               ["Reviewed", "yes" if e.reviewed else "no"], ["Notes", _notes(e.notes) or "–"]]
    flow.append(_table([[k, _p(v, body)] for k, v in details], [4 * cm, frame_w - 4 * cm], header=False))
    return [KeepInFrame(frame_w, frame_h, flow, mode="shrink"), PageBreak()]


def write_pdf_report(path, entries: list[ReportEntry], title: str = "cellviewer report",
                     skipped: list[tuple[str, str]] = (), max_pages: int | None = None) -> Path:
    """Write the PDF report atomically; returns ``path``.

    One page per entry (the first ``max_pages`` entries when given); a first
    summary page when there is more than one entry, any ``skipped`` file, or an entry without
    its page (``max_pages=0``: the summary page alone).
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import SimpleDocTemplate

    from cellviewer.core.pdffonts import draw_string

    path, entries, skipped, title = Path(path), list(entries), list(skipped), readable(title)
    max_pages = len(entries) if max_pages is None else max(0, max_pages)
    styles = getSampleStyleSheet()
    styles["BodyText"].fontSize, styles["BodyText"].leading = 8.5, 10.5  # compact table cells
    margin = 1.6 * cm
    frame_w, frame_h = A4[0] - 2 * margin, A4[1] - 2 * margin - 12  # frame padding
    flow = []
    if len(entries) > 1 or skipped or len(entries) > max_pages or not entries:
        flow += _summary_page(entries, skipped, title, styles, max_pages)
    for e in entries[:max_pages]:
        flow += _image_page(e, styles, frame_w, frame_h)
    if flow and type(flow[-1]).__name__ == "PageBreak":
        flow.pop()

    def _footer(canvas, doc):
        canvas.saveState()
        draw_string(canvas, margin, 0.8 * cm, f"{title} — page {doc.page}", "Helvetica", 8)
        canvas.restoreState()

    tmp = _tmp_beside(path)
    try:
        SimpleDocTemplate(str(tmp), pagesize=A4, leftMargin=margin, rightMargin=margin, topMargin=margin,
                          bottomMargin=margin, title=title, author=os_user(), creator="cellviewer",
                          ).build(flow, onFirstPage=_footer, onLaterPages=_footer)
        os.replace(tmp, path)
    except OSError as e:
        raise SaveError(f"Cannot write the report '{path}': {e.strerror or e}", hint="choose a writable folder") from e
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
