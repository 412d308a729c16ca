"""The model store: versions with cards, activation by name through the segmenter registry, rollback."""

import json

import pytest

pytest.importorskip("torch")

from cellviewer.core.errors import CellviewerError, ModelLoadError  # noqa: E402
from cellviewer.core.modelstore import ModelStore, default_root  # noqa: E402
from tests.synthdocs import save_tiny_base  # noqa: E402
from tests.tinymodels import isolated_registry  # noqa: E402,F401


@pytest.fixture
def tiny(isolated_registry, tmp_path):  # noqa: F811
    save_tiny_base("tiny-cells")
    from cellviewer.core.netsegment import find_models

    return find_models()["tiny-cells"][0].with_suffix("")


def test_versions_cards_activation_and_rollback(tiny, isolated_registry):  # noqa: F811
    from cellviewer.core.segment import create_segmenter

    store = ModelStore()
    assert store.root == default_root() and store.versions("lab") == [] and store.active("lab") is None
    v1 = store.add(tiny, "lab", parent="tiny-cells", data_hashes=["ab" * 32], metrics={"score": 0.5})
    v2 = store.add(tiny, "lab", parent="lab@1", data_hashes=[], metrics={"score": 0.6}, gate={"accepted": True})
    assert (v1.version, v2.version) == (1, 2) and not v1.active and store.active("lab") is None
    card = json.loads((store.root / "lab" / "v2.json").read_text())
    assert card["name"] == "lab" and card["version"] == "2" and card["weights"] == "v2.safetensors"
    assert card["parent"] == {"model": "lab", "version": "1"} and card["gate"] == {"accepted": True}
    assert v1.card["parent"] == {"model": "tiny-cells", "version": "3"} and v1.card["data_hashes"] == ["ab" * 32]
    assert card["metrics"] == {"score": 0.6} and len(card["sha256"]) == 64
    with pytest.raises(ModelLoadError):
        create_segmenter("lab")  # nothing active yet
    store.activate("lab", 1)
    assert create_segmenter("lab").version == "1"
    store.activate("lab", 2)
    assert [v.active for v in store.versions("lab")] == [False, True]
    assert create_segmenter("lab").version == "2"
    assert store.rollback("lab").version == 1 and create_segmenter("lab").version == "1"
    assert store.rollback("lab") is None and store.active("lab") is None
    with pytest.raises(ModelLoadError):
        create_segmenter("lab")
    with pytest.raises(CellviewerError, match="no active"):
        store.rollback("lab")


def test_a_store_version_overrides_a_shipped_name_until_rolled_back(tiny, isolated_registry):  # noqa: F811
    from cellviewer.core.segment import create_segmenter

    store = ModelStore()
    store.add(tiny, "tiny-cells", parent="tiny-cells", data_hashes=[], metrics={}, activate=True)
    seg = create_segmenter("tiny-cells")
    # the shipped card is version 3: its first fine-tuned version is 4, not a second "1"
    assert seg.version == "4" and "/tiny-cells/v4" in seg.checkpoint.replace("\\", "/")
    store.rollback("tiny-cells")
    assert create_segmenter("tiny-cells").version == "3"  # the original card again


def test_bad_inputs_are_refused(tiny, tmp_path):
    store = ModelStore(tmp_path / "s")
    with pytest.raises(CellviewerError, match="model name"):
        store.add(tiny, "../evil", parent="x", data_hashes=[], metrics={})
    with pytest.raises(ModelLoadError):
        store.add(tmp_path / "missing", "lab", parent="x", data_hashes=[], metrics={})
    card = json.loads(tiny.with_suffix(".json").read_text())
    card["sha256"] = "0" * 64
    bad = tmp_path / "bad"
    bad.with_suffix(".json").write_text(json.dumps({**card, "weights": tiny.name + ".safetensors"}))
    (tmp_path / (tiny.name + ".safetensors")).write_bytes(tiny.with_suffix(".safetensors").read_bytes())
    with pytest.raises(ModelLoadError, match="sha256"):
        store.add(bad, "lab", parent="x", data_hashes=[], metrics={})
    with pytest.raises(ModelLoadError, match="no stored version 7"):
        store.activate("lab", 7)
    assert store.names() == []


def _two_versions(tiny):
    store = ModelStore()
    store.add(tiny, "lab", parent="tiny-cells", data_hashes=[], metrics={}, activate=True)
    store.add(tiny, "lab", parent="lab@1", data_hashes=[], metrics={}, activate=True)
    return store


def test_an_unreadable_active_card_is_an_error_naming_it_never_another_model(tiny, isolated_registry):  # noqa: F811
    from cellviewer.core.modelstore import ModelFileError
    from cellviewer.core.segment import create_segmenter

    store = _two_versions(tiny)
    (store.root / "lab" / "v2.json").write_text("{not json")
    listed = store.versions("lab")
    assert [v.version for v in listed] == [1, 2] and listed[1].active and "unreadable" in listed[1].problem
    with pytest.raises(ModelFileError, match="v2.json") as e:
        store.active("lab")
    assert "--activate 1" in e.value.hint
    from cellviewer.core.netsegment import register_models

    register_models()
    with pytest.raises(ModelFileError, match="v2.json"):  # not version 1, not "Unknown model"
        create_segmenter("lab")
    with pytest.raises(ModelFileError, match="v2.json"):
        store.activate("lab", 2)
    store.activate("lab", 1)  # what the hint says to do
    assert create_segmenter("lab").version == "1"


def test_an_unreadable_store_file_is_an_error_and_activate_rewrites_it(tiny, isolated_registry):  # noqa: F811
    from cellviewer.core.modelstore import ModelFileError
    from cellviewer.core.segment import create_segmenter

    store = ModelStore()
    store.add(tiny, "tiny-cells", parent="tiny-cells", data_hashes=[], metrics={}, activate=True)
    (store.root / "tiny-cells" / "store.json").write_text("[1")
    from cellviewer.core.netsegment import register_models

    register_models()
    with pytest.raises(ModelFileError, match="store.json"):  # not the shipped version 3 without a word
        create_segmenter("tiny-cells")
    with pytest.raises(ModelFileError, match="store.json") as e:
        store.rollback("tiny-cells")
    assert "cellviewer versions tiny-cells --activate 4" in e.value.hint
    store.activate("tiny-cells", 4)
    assert create_segmenter("tiny-cells").version == "4"


def test_an_unreadable_loose_card_says_so_instead_of_unknown_model(tiny, isolated_registry):  # noqa: F811
    from cellviewer.core.modelstore import ModelFileError
    from cellviewer.core.netsegment import register_models
    from cellviewer.core.segment import create_segmenter

    tiny.with_suffix(".json").write_text("{")
    register_models()
    with pytest.raises(ModelFileError, match="tiny-cells.json' is unreadable"):
        create_segmenter("tiny-cells")
