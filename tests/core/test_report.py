"""Report data: cell rows, counts, class map, overlay, CSVs and the PDF report."""

import csv
import re
import shutil
import subprocess

import numpy as np
import pytest

from cellviewer.core.document import (CLASS_COLORS, CLASS_MAP_VALUES, Document, EditRecord, ImageData, ImageInfo,
                                      Marker)
from cellviewer.core.errors import SaveError
from cellviewer.core import report as R

CONTRACT_CELLS = ["image", "cell_id", "cls", "x", "y", "area_px", "xmin", "ymin", "xmax", "ymax", "score",
                  "morphology", "morphology_p"]
CONTRACT_COUNTS = ["image", "rbc", "wbc", "platelets"]


def _doc(h=120, w=160, notes=()):
    px = np.full((h, w, 3), 220, np.uint8)
    doc = Document(ImageData(px, ImageInfo("smear.png", w, h, notes=list(notes))))
    doc.labels["rbc"][10:20, 30:50] = 1  # 200 px, x 30..49, y 10..19
    doc.labels["wbc"][60:90, 60:100] = 1  # 1200 px
    doc.parts[60:75, 60:100] = 1  # nucleus: upper half of the WBC
    doc.parts[75:90, 60:100] = 2  # cytoplasm: lower half
    doc.parts[0:5, 0:5] = 1  # a stray part outside any WBC must not reach the class map
    doc.labels["platelet"][70:74, 70:74] = 1  # a platelet lying over the WBC
    doc.markers = {
        1: Marker(1, "rbc", 40.0, 15.0, cell=1, score=0.91),
        2: Marker(2, "wbc", 80.0, 75.0, cell=1, score=0.8),
        3: Marker(3, "platelet", 130.4, 100.6, origin="manual"),  # no mask
    }
    doc.provenance.model_name, doc.provenance.model_version = "classical", "1.0"
    doc.provenance.edits = [EditRecord("brush", "rbc", user="ann"), EditRecord("brush", "rbc", user="ann"),
                            EditRecord("add marker", "platelet", user="bob")]
    return doc


def test_cell_rows_use_masks_and_points():
    rows = R.cell_rows(_doc(), "smear.png")
    assert [list(r) for r in rows] == [CONTRACT_CELLS] * 3
    rbc, wbc, plt = rows
    assert (rbc["cell_id"], rbc["cls"], rbc["area_px"]) == (1, "rbc", 200)
    assert (rbc["xmin"], rbc["ymin"], rbc["xmax"], rbc["ymax"]) == (30, 10, 49, 19)
    assert rbc["score"] == pytest.approx(0.91) and rbc["image"] == "smear.png"
    assert (wbc["cls"], wbc["area_px"], wbc["xmin"], wbc["ymax"]) == ("wbc", 1200, 60, 89)
    assert (plt["cls"], plt["area_px"]) == ("platelet", 0)
    assert (plt["xmin"], plt["ymin"], plt["xmax"], plt["ymax"]) == (130, 101, 130, 101)
    assert plt["x"] == pytest.approx(130.4)


def test_marker_linked_to_a_missing_cell_falls_back_to_its_point():
    doc = _doc()
    doc.markers[4] = Marker(4, "rbc", 5.0, 6.0, cell=7)  # stale link
    row = R.cell_rows(doc, "s")[-1]
    assert (row["area_px"], row["xmin"], row["ymin"], row["xmax"], row["ymax"]) == (0, 5, 6, 5, 6)


def test_count_row():
    assert R.count_row(_doc(), "a.png") == {"image": "a.png", "rbc": 1, "wbc": 1, "platelets": 1}


def test_class_map_values_and_layering():
    cm = R.class_map(_doc())
    assert cm.dtype == np.uint8 and cm.shape == (120, 160)
    assert cm[15, 40] == CLASS_MAP_VALUES["rbc"] == 1
    assert cm[62, 90] == CLASS_MAP_VALUES["nucleus"] == 4
    assert cm[85, 90] == CLASS_MAP_VALUES["cytoplasm"] == 5
    assert cm[72, 72] == CLASS_MAP_VALUES["platelet"] == 3  # platelet over WBC
    assert cm[2, 2] == 0 and cm[110, 150] == 0
    doc = _doc()
    doc.parts[:] = 0
    assert R.class_map(doc)[80, 80] == 2  # WBC without parts


def test_classes_json_maps_every_value():
    cj = R.classes_json()
    assert cj == {str(v): k for k, v in CLASS_MAP_VALUES.items()}
    assert cj["0"] == "background" and cj["2"] == "wbc"


def test_overlay_colours_outlines_and_markers():
    doc = _doc()
    base = doc.image.pixels.copy()
    ov = R.overlay_rgb(doc, markers=False)
    assert ov.shape == (120, 160, 3) and ov.dtype == np.uint8
    assert np.array_equal(doc.image.pixels, base)  # never drawn in place
    assert tuple(ov[10, 40]) == CLASS_COLORS["rbc"]  # outline pixel
    inside = ov[15, 40].astype(int)
    assert inside[0] > inside[1] and not np.array_equal(inside, [220, 220, 220])  # reddish blend
    assert tuple(ov[110, 150]) == (220, 220, 220)  # background untouched
    plain = R.overlay_rgb(doc, alpha=0, outlines=False, markers=False)
    assert np.array_equal(plain, base)
    withm = R.overlay_rgb(doc, alpha=0, outlines=False, markers=True)
    assert tuple(withm[101, 130]) == CLASS_COLORS["platelet"]  # manual marker cross centre
    assert tuple(withm[15, 40]) == CLASS_COLORS["rbc"]  # auto marker dot centre


def test_an_outline_without_its_count_marker_is_drawn_unfilled():
    doc = _doc()
    doc.labels["rbc"][40:50, 10:25] = 2  # a second red cell ...
    doc.markers[4] = Marker(4, "rbc", 17.0, 45.0, cell=2)
    filled = R.overlay_rgb(doc, markers=False)[45, 17].astype(int)
    assert filled[0] > filled[1]  # ... drawn in its class colour
    del doc.markers[4]  # its count removed by hand: the outline stays, not the colour
    ov = R.overlay_rgb(doc, markers=False)
    assert tuple(ov[45, 17]) == (220, 220, 220) and tuple(ov[40, 17]) == CLASS_COLORS["rbc"]
    assert ov[15, 40, 0] > ov[15, 40, 1]  # the counted cell keeps its colour


def test_overlay_downscaled():
    ov = R.overlay_rgb(_doc(h=300, w=1000), max_width=300)
    assert ov.shape[1] <= 300 and ov.shape[2] == 3


def test_report_entry_from_document():
    e = R.ReportEntry.from_document(_doc(notes=["16-bit scaled"]), "smear.png", thumb_width=80)
    assert e.thumbnail.shape[1] <= 80
    assert e.counts == {"rbc": 1, "wbc": 1, "platelet": 1}
    assert e.n_corrections == 3 and e.audit == {"brush": 2, "add marker": 1}
    assert e.user == "ann, bob" and e.notes == ["16-bit scaled"]
    assert e.model_name == "classical" and e.size == (160, 120)
    d = e.differential
    assert d["RBC : WBC"] == "1.0 : 1" and d["Platelets per 100 RBC"] == "100.0"
    assert d["WBC area: nucleus"] == "50.0 %" and d["WBC area: cytoplasm"] == "50.0 %"
    assert R.ReportEntry.from_document(_doc(), "x", thumbnail=False).thumbnail is None


def _pages(path):
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", data))


def test_pdf_page_counts(tmp_path):
    e = R.ReportEntry.from_document(_doc(notes=["16-bit scaled"]), "a & <b>.png")
    one = R.write_pdf_report(tmp_path / "one.pdf", [e])
    assert _pages(one) == 1
    three = R.write_pdf_report(tmp_path / "three.pdf", [e, e, e], title="Folder")
    assert _pages(three) == 4  # summary + one page per image
    capped = R.write_pdf_report(tmp_path / "capped.pdf", [e, e, e], skipped=[("bad.jpg", "truncated")], max_pages=1)
    assert _pages(capped) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capped.pdf", "one.pdf", "three.pdf"]  # no temp files
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(capped), "-"], capture_output=True, text=True).stdout
        assert "a & <b>.png" in text and "bad.jpg" in text and "first 1 images" in text
        text = subprocess.run(["pdftotext", str(one), "-"], capture_output=True, text=True).stdout
        assert "16-bit scaled" in text and "brush ×2" in text and "Platelets per 100 RBC" in text


def test_pdf_with_many_entries_without_thumbnails(tmp_path):
    e = R.ReportEntry.from_document(_doc(), "x.png", thumbnail=False)
    assert _pages(R.write_pdf_report(tmp_path / "r.pdf", [e] * 120, max_pages=0)) >= 2  # summary table spans pages


def test_pdf_unwritable_folder_raises_save_error(tmp_path):
    e = R.ReportEntry.from_document(_doc(), "x.png", thumbnail=False)
    with pytest.raises(SaveError):
        R.write_pdf_report(tmp_path / "missing" / "r.pdf", [e])


def test_write_csvs_columns_exact(tmp_path):
    doc = _doc()
    counts, cells = R.write_csvs(tmp_path, [R.count_row(doc, "a.png")], R.cell_rows(doc, "a.png"))
    with open(cells, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == CONTRACT_CELLS and len(rows) == 4
    assert rows[3][2] == "platelet" and rows[1][5] == "200"
    with open(counts, newline="") as f:
        assert list(csv.reader(f)) == [CONTRACT_COUNTS, ["a.png", "1", "1", "1"]]


def test_csv_stream_keeps_rows_written_before_an_error(tmp_path):
    path = tmp_path / "counts.csv"
    with pytest.raises(RuntimeError):
        with R.CsvStream(path, R.COUNT_COLUMNS) as s:
            s.write({"image": "a", "rbc": 1, "wbc": 2, "platelets": 3})
            assert not path.exists()  # appears only when closed
            raise RuntimeError("boom")
    assert path.read_text().splitlines() == ["image,rbc,wbc,platelets", "a,1,2,3"]
    assert [p.name for p in tmp_path.iterdir()] == ["counts.csv"]


def test_csv_cells_that_would_run_as_spreadsheet_formulas_are_quoted(tmp_path):
    path = tmp_path / "counts.csv"
    with R.CsvStream(path, R.COUNT_COLUMNS) as s:
        s.write({"image": '=HYPERLINK("http://x","y").png', "rbc": -1, "wbc": "-2.5", "platelets": "@SUM(A1)"})
        s.write({"image": "+cmd.png", "rbc": 1, "wbc": 0, "platelets": "plain"})
    rows = list(csv.reader(path.open(newline="")))
    assert rows[1] == ["'=HYPERLINK(\"http://x\",\"y\").png", "-1", "-2.5", "'@SUM(A1)"]  # numbers stay numbers
    assert rows[2] == ["'+cmd.png", "1", "0", "plain"]
    assert R.spreadsheet_safe("-x") == "'-x" and R.spreadsheet_safe("\tq") == "'\tq" and R.spreadsheet_safe(3) == 3


def test_review_marks_are_not_counted_as_corrections():
    from cellviewer.core import edits, operations
    from cellviewer.core.document import REVIEW_ACTIONS

    doc = _doc()
    n = doc.n_manual_edits
    h = edits.History(doc)
    h.push(operations.set_image_reviewed(doc, True))
    mid = next(iter(doc.markers))
    h.push(operations.set_marker_reviewed(doc, mid, True))
    assert {e.action for e in doc.provenance.edits[-2:]} <= REVIEW_ACTIONS  # the audit trail keeps them
    assert doc.n_manual_edits == n
    assert R.ReportEntry.from_document(doc, "smear.png", thumbnail=False).n_corrections == n


def test_the_page_names_the_red_cell_size_and_the_morphology_model():
    doc = _doc()
    doc.provenance.params = {"diameter_px": 104.56, "diameter_source": "estimated+refined",
                             "morphology": "rbc-morphology 3 + size prior at 0.17 µm/px", "um_per_px": 0.17}
    doc.um_per_px = 0.07  # "Classify red cells again" at the right calibration after a run at a wrong one
    e = R.ReportEntry.from_document(doc, "smear.png", thumbnail=False)
    assert e.cell_size == "105 px = 7.3 µm at 0.07 µm/px (estimated, refined)"
    assert e.morphology == "rbc-morphology 3 + size prior at 0.07 µm/px"
    doc.um_per_px = None
    assert R.ReportEntry.from_document(doc, "smear.png", thumbnail=False).morphology == "rbc-morphology 3"
    doc.provenance.params = {"diameter_px": 40.0, "diameter_source": "given"}
    assert R.ReportEntry.from_document(doc, "smear.png", thumbnail=False).cell_size == "40 px (given)"


def test_red_cell_size_summary_of_whole_cells_in_um_with_a_calibration():
    doc = _doc(h=200, w=300)
    doc.labels["rbc"][:] = 0
    yy, xx = np.mgrid[:200, :300]
    for i, (cx, r) in enumerate([(40, 10), (90, 12), (140, 14)], 1):
        doc.labels["rbc"][(yy - 100) ** 2 + (xx - cx) ** 2 <= r * r] = i
    doc.labels["rbc"][0:15, 200:230] = 9  # cut by the image edge: left out
    doc.labels["rbc"][150:170, 250:270] = 10  # its count marker removed: not a cell, left out
    doc.markers = {i: Marker(i, "rbc", 0.0, 0.0, cell=i) for i in (1, 2, 3, 9)}
    d = 2 * np.sqrt(np.bincount(doc.labels["rbc"].ravel())[1:4] / np.pi)
    s = R.rbc_size_summary(doc)
    assert s["RBC diameter (whole cells)"] == f"{d.mean():.0f} ± {d.std(ddof=1):.0f} px (n 3)"
    assert "RBC diameter variation (CV)" not in s  # 3 cells: no spread worth a number
    many = _doc(h=200, w=300)
    many.labels["rbc"][:] = 0
    for i in range(10):
        many.labels["rbc"][(yy - 60 - 60 * (i // 5)) ** 2 + (xx - 30 - 55 * (i % 5)) ** 2 <= (8 + i) ** 2] = i + 1
    many.markers = {i: Marker(i, "rbc", 0.0, 0.0, cell=i) for i in range(1, 11)}
    dm = 2 * np.sqrt(np.bincount(many.labels["rbc"].ravel())[1:] / np.pi)
    assert R.rbc_size_summary(many)["RBC diameter variation (CV)"] == f"{100 * dm.std(ddof=1) / dm.mean():.1f} %"
    doc.um_per_px = 0.25
    um = d * 0.25
    assert R.rbc_size_summary(doc)["RBC diameter (whole cells)"] == f"{um.mean():.1f} ± {um.std(ddof=1):.1f} µm (n 3)"
    assert "RBC diameter (whole cells)" in R.differential(doc)
    doc.labels["rbc"][doc.labels["rbc"] == 3] = 0
    assert R.rbc_size_summary(doc) == {}  # fewer than 3 whole cells


def test_corrections_count_only_since_the_segmentation_they_correct():
    from cellviewer.core.document import EditRecord

    doc = _doc()
    doc.provenance.edits = [EditRecord("Delete cell", "rbc", time="2026-12-07T02:56:16+00:00"),
                            EditRecord("Brush", "rbc", time="2026-12-07T02:57:00+00:00"),
                            EditRecord("Mark image reviewed", None, time="2026-12-07T02:58:00+00:00")]
    doc.provenance.segmented_at = "2026-12-07T02:56:24+00:00"  # re-run after the deletion
    e = R.ReportEntry.from_document(doc, "smear.png", thumbnail=False)
    assert e.n_corrections == 1 and e.audit == {"Brush": 1}
    assert len(doc.provenance.edits) == 3  # the audit trail itself keeps every record
    doc.provenance.segmented_at = "2026-12-07T03:56:24+01:00"  # the same instant in another time zone
    assert doc.n_manual_edits == 1


def test_pdf_shows_names_in_scripts_helvetica_lacks(tmp_path):
    from reportlab.pdfbase import pdfmetrics

    from cellviewer.core.pdffonts import needs_font, runs

    assert runs("smear µm ±.png") == [(None, "smear µm ±.png")] and not needs_font("Zürich é")  # Windows-1252
    cut = runs("血液_001 Ольга.png")
    assert "".join(p for _, p in cut) == "血液_001 Ольга.png"
    assert cut[0][0] and cut[0][1] == "血液" and (None, "_001 ") in cut  # ASCII stays in Helvetica
    names = ["血液塗抹_001.png", "Ольга мазок.png", "혈액.png"]
    fonts = {f for n in names for f, _ in runs(n) if f}
    assert len(fonts) >= 2  # every non-Latin piece gets a font (system TrueType, else a CJK CID font)
    entries = [R.ReportEntry.from_document(_doc(notes=["Ελληνικά"]), n, thumbnail=False) for n in names]
    pdf = R.write_pdf_report(tmp_path / "r.pdf", entries, title="Отчёт 报告")
    data = pdf.read_bytes()
    for f in fonts:  # in the file: an embedded TrueType subset by its face name, or a CID font by name
        face = getattr(pdfmetrics.getFont(f), "face", None)
        name = face.name if face is not None else f
        assert (name if isinstance(name, bytes) else name.encode()) in data
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
        assert "Ольга мазок.png" in text and "Ελληνικά" in text


def test_the_summary_page_flags_an_image_with_a_caution(tmp_path):
    ok = R.ReportEntry.from_document(_doc(), "fine.png", thumbnail=False)
    bad = R.ReportEntry.from_document(_doc(notes=["caution: damaged JPEG (premature end of data segment): ..."]),
                                      "cut.jpg", thumbnail=False)
    pdf = R.write_pdf_report(tmp_path / "r.pdf", [ok, bad])
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True).stdout
        first = text.split("\f")[0]
        assert "cut.jpg — ⚠ damaged JPEG" in first and "fine.png —" not in first
    else:
        assert pdf.read_bytes().startswith(b"%PDF")


def _text(pdf, layout=False):
    return subprocess.run(["pdftotext", *(["-layout"] if layout else []), str(pdf), "-"], capture_output=True,
                          text=True).stdout


def test_names_that_are_not_utf8_are_written_readable_in_the_pdf(tmp_path):
    import os

    name = os.fsdecode(b"caf\xe9.png")  # a Latin-1 file name on Linux
    e = R.ReportEntry.from_document(_doc(notes=[f"read {name}"]), name, thumbnail=False)
    pdf = R.write_pdf_report(tmp_path / "r.pdf", [e, e], title=f"cellviewer report — {name}",
                             skipped=[(os.fsdecode(b"bad\xff.jpg"), f"cannot read {name}")])
    assert _pages(pdf) == 3 and [p.name for p in tmp_path.iterdir()] == ["r.pdf"]
    if shutil.which("pdftotext"):
        text = _text(pdf)
        assert "cellviewer report — caf\\xe9.png" in text and "bad\\xff.jpg" in text and "read caf\\xe9.png" in text


def test_with_no_detail_pages_one_image_gets_the_summary_page(tmp_path):
    e = R.ReportEntry.from_document(_doc(), "one.png")
    pdf = R.write_pdf_report(tmp_path / "r.pdf", [e], max_pages=0)
    assert _pages(pdf) == 1
    if shutil.which("pdftotext"):
        text = _text(pdf)
        assert "one.png" in text and "Detail pages not included; the CSVs hold all." in text


def test_differential_shares_add_up_to_100():
    doc = _doc()
    doc.labels = {k: np.zeros_like(v) for k, v in doc.labels.items()}
    doc.parts = None
    classes = ["rbc"] * 17 + ["wbc", "platelet"]
    doc.markers = {i: Marker(i, c, 5.0, 5.0, morph={1: "normal", 2: "microcyte", 3: "teardrop"}.get(i, ""),
                             morph_p=0.9) for i, c in enumerate(classes, 1)}
    d = R.differential(doc)
    shares = [d["RBC share"], d["WBC share"], d["Platelets share"]]
    assert shares == ["89.5 %", "5.3 %", "5.2 %"]  # 89.47, 5.26, 5.26: each within 0.1, 100.0 in all
    morph = [v for k, v in d.items() if k.startswith("RBC morphology:")]
    assert round(sum(float(v.split()[0]) for v in morph), 1) == 100.0 and all(v.endswith("(1)") for v in morph)


def test_the_model_line_names_the_test_time_augmentation_and_notes_read_cleanly(tmp_path):
    doc = _doc(notes=["16-bit scaled"])
    doc.provenance.model_name, doc.provenance.model_version = "blood-cells", "6"
    doc.provenance.params = {"tta": "d4"}
    doc.border_rule = "inside"
    doc.load_warnings.append("segmented for this report (not reviewed)")
    e = R.ReportEntry.from_document(doc, "smear.png", thumbnail=False)
    assert e.tta == "d4" and e.notes[-1].endswith("not counted).")
    e.notes.append("the whole red cells measure 4.1 µm")  # (a calibration warning follows the border rule's)
    classical = R.ReportEntry.from_document(_doc(), "smear.png", thumbnail=False)  # no tta param: not named
    assert classical.tta == ""
    pdf = R.write_pdf_report(tmp_path / "r.pdf", [e, classical])
    if shutil.which("pdftotext"):
        text = _text(pdf)
        assert "blood-cells 6 (test-time augmentation d4)" in text and "blood-cells 6 (tta d4)" in text
        assert "augmentation" not in text.split("\f")[2]  # the classical model's page
        notes = " ".join(text.split("Notes")[1].split())
        assert "16-bit scaled; segmented for this report (not reviewed); Cells cut" in notes
        assert ".;" not in notes and "(0 not counted); the whole red cells measure" in notes


def test_the_morphology_differential_says_of_how_many_red_cells_its_shares_are(tmp_path):
    """Cut cells (and hand-placed markers) have no class: the shares are of the classed cells, not of the red-cell
    count, and the report says so; not said when every counted red cell has a class."""
    doc = _doc()
    doc.labels = {k: np.zeros_like(v) for k, v in doc.labels.items()}
    doc.parts = None
    doc.markers = {i: Marker(i, "rbc", 5.0, 5.0, morph="normal" if i <= 3 else "", morph_p=0.9 if i <= 3 else 0.0)
                   for i in range(1, 6)}
    d = R.differential(doc)
    assert d["RBC morphology: normal"] == "100.0 % (3)"
    assert d["RBC morphology from"] == "3 of 5 counted red cells (others unclassified)"
    pdf = R.write_pdf_report(tmp_path / "r.pdf", [R.ReportEntry.from_document(doc, "s.png", thumbnail=False)])
    if shutil.which("pdftotext"):
        assert "3 of 5 counted red cells" in _text(pdf)
    for m in list(doc.markers.values())[3:]:
        del doc.markers[m.id]
    assert "RBC morphology from" not in R.differential(doc)  # all 3 counted red cells have a class


def test_the_longest_differential_values_fit_their_column():
    """The PDF's differential table does not wrap: "… from" lines had run past its 4-cm value column (now 8 cm)."""
    from reportlab.lib.units import cm
    from reportlab.pdfbase.pdfmetrics import stringWidth

    longest = ["1234 of 1345 counted red cells (others unclassified)", "123 of 145 white cells with parts",
               "7.5 ± 0.6 µm (n 1234)", "– (no WBC)", "12.5 % (1234)"]
    assert all(stringWidth(v, "Helvetica", 8.5) < 8 * cm - 12 for v in longest)  # 8 cm less the padding
    assert "_table(diff, [6 * cm, 8 * cm])" in open(R.__file__, encoding="utf-8").read()


def test_the_pdf_states_the_pixel_size_its_sizes_are_at(tmp_path):
    """The red-cell diameter is in µm with a calibration, else px: the page says which, and at what pixel size."""
    doc = _doc()
    doc.labels["rbc"][:] = 0
    for i in range(3):  # three whole red cells of 100 px: diameter 2·√(100/π) = 11.3 px
        doc.labels["rbc"][30:40, 10 + 20 * i:20 + 20 * i] = i + 1
    doc.markers = {i: Marker(i, "rbc", 15.0 + 20 * (i - 1), 35.0, cell=i) for i in (1, 2, 3)}
    plain = R.ReportEntry.from_document(doc, "px.png", thumbnail=False)
    assert plain.um_per_px is None and plain.differential["RBC diameter (whole cells)"].endswith("px (n 3)")
    doc.um_per_px = 0.5
    cal = R.ReportEntry.from_document(doc, "um.png", thumbnail=False)
    assert cal.um_per_px == 0.5 and cal.differential["RBC diameter (whole cells)"] == "5.6 ± 0.0 µm (n 3)"
    pdf = R.write_pdf_report(tmp_path / "r.pdf", [plain, cal])
    if shutil.which("pdftotext"):
        text = " ".join(_text(pdf).split())
        assert "Calibration none: red-cell diameters in px (cells.csv: px)" in text
        assert "Calibration 0.5 µm/px: red-cell diameters in µm (cells.csv: px)" in text
