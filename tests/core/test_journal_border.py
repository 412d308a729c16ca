"""The border rule is journaled (survives a crash); a declined journal is set aside, not deleted."""

import pytest

from cellviewer.core import journal, sidecar
from cellviewer.core.edits import Edit, FlagChange
from cellviewer.core.errors import OptionError
from tests.core.test_edits import seeded_doc
from tests.core.test_sidecar import doc_at


def _crashed_copy(doc):
    fresh = seeded_doc()
    fresh.image.info = doc.image.info
    meta, arrays = sidecar.read_sidecar(sidecar.find_sidecar(doc.image.info.path))
    sidecar.apply_sidecar(fresh, meta, arrays)
    return fresh


def test_a_border_rule_change_survives_a_crash_before_the_save(tmp_path):
    doc = doc_at(tmp_path)
    sidecar.save_sidecar(doc)
    sidecar.attach_journal(doc)
    doc.set_border_rule("inside")
    doc.set_border_rule("inside")  # no change: nothing logged
    entries = journal.read_entries(doc.journal.path)
    assert [(k, e.name) for k, e in entries] == [("apply", "Border rule")]
    fresh = _crashed_copy(doc)
    assert fresh.border_rule == "all"
    assert journal.recover(fresh, entries) == 1
    assert fresh.border_rule == "inside"
    assert fresh.provenance.edits == doc.provenance.edits  # a setting, not a correction: no audit entry
    # and after a save it is in the sidecar
    sidecar.save_sidecar(doc)
    assert _crashed_copy(doc).border_rule == "inside"


def test_a_bad_border_rule_is_refused_and_not_logged(tmp_path):
    doc = doc_at(tmp_path)
    sidecar.attach_journal(doc)
    with pytest.raises(OptionError):
        doc.set_border_rule("most")
    assert doc.border_rule == "all" and not doc.journal.path.exists()


def test_a_journal_record_with_an_unknown_border_rule_is_rejected(tmp_path):
    p = tmp_path / "x.journal"
    good = journal.encode("apply", Edit("Border rule", [FlagChange("border_rule", "all", "frame")]), "a")
    bad = journal.encode("apply", Edit("Border rule", [FlagChange("border_rule", "all", "../../etc")]), "b")
    p.write_bytes(good + bad)
    entries = journal.read_entries(p)
    assert len(entries) == 1 and entries[0][1].atoms[0].new == "frame"


def test_set_aside_renames_the_journal_and_starts_afresh(tmp_path):
    doc = doc_at(tmp_path)
    sidecar.attach_journal(doc)
    doc.set_border_rule("frame")
    path = doc.journal.path
    data = path.read_bytes()
    kept = doc.journal.set_aside()
    assert kept is not None and kept.read_bytes() == data and not path.exists()
    assert kept.name.startswith(path.name + ".declined-")
    doc.journal.set_aside()  # nothing there now
    doc.set_border_rule("inside")  # logging goes on in a fresh journal
    assert [e.atoms[0].new for _, e in journal.read_entries(path)] == ["inside"]
    again = doc.journal.set_aside()  # a second decline in the same second does not overwrite the first
    assert again is not None and again != kept and kept.exists()


def test_the_morphology_model_a_classify_again_recorded_survives_a_crash(tmp_path):
    from cellviewer.core.operations import set_morphologies

    doc = doc_at(tmp_path)
    sidecar.save_sidecar(doc)
    sidecar.attach_journal(doc)
    set_morphologies(doc, {1: ("macrocyte", 0.7)}, morphology="rbc-morphology 3").apply(doc)
    entries = journal.read_entries(doc.journal.path)
    fresh = _crashed_copy(doc)
    assert "morphology" not in fresh.provenance.params
    assert journal.recover(fresh, entries) == 1
    assert fresh.provenance.params["morphology"] == "rbc-morphology 3" and fresh.markers[1].morph == "macrocyte"


def test_every_kind_of_undo_atom_goes_through_the_journal():
    """An atom the journal codec does not know would be dropped from the journal and lost in a crash."""
    import typing

    import numpy as np

    from cellviewer.core import journalcodec
    from cellviewer.core.document import Marker
    from cellviewer.core.edits import Atom, LabelPatch, MarkerChange, ParamChange

    examples = {LabelPatch: LabelPatch.from_arrays("rbc", (0, 0, 2, 2), np.zeros((2, 2), np.int32),
                                                   np.ones((2, 2), np.int32)),
                MarkerChange: MarkerChange(None, Marker(1, "rbc", 1.0, 1.0)),
                FlagChange: FlagChange("reviewed", False, True),
                ParamChange: ParamChange("morphology", None, "rbc-morphology 3")}
    assert set(typing.get_args(Atom)) == set(examples)
    edit = Edit("all kinds", list(examples.values()))
    def round_trip(e):
        framed = journalcodec.encode("apply", e)  # magic, length, payload, crc
        return journalcodec.decode(framed[len(journalcodec.MAGIC) + 8:-4])[1]

    back = round_trip(edit)
    assert [type(a) for a in back.atoms] == [type(a) for a in edit.atoms]
    bad = Edit("hostile", [ParamChange("model_name", None, "x")])  # only known keys are read back
    with pytest.raises(ValueError):
        round_trip(bad)
