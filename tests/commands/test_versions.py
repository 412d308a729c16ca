"""``cellviewer versions``: list, activate, roll back and return to the shipped model from the command line."""

import pytest

pytest.importorskip("torch")

from cellviewer.cli import main  # noqa: E402
from cellviewer.core.modelstore import ModelStore  # noqa: E402
from tests.synthdocs import save_tiny_base  # noqa: E402
from tests.tinymodels import isolated_registry  # noqa: E402,F401


def test_list_activate_rollback_shipped(isolated_registry, capsys):  # noqa: F811
    save_tiny_base("tiny-cells")
    from cellviewer.core.netsegment import find_models

    stem = find_models()["tiny-cells"][0].with_suffix("")
    store = ModelStore()
    assert main(["versions"]) == 0
    assert "no stored model versions" in capsys.readouterr().out
    store.add(stem, "lab", parent="tiny-cells", data_hashes=[], metrics={}, gate={"accepted": True})
    store.add(stem, "lab", parent="lab@1", data_hashes=[], metrics={})

    assert main(["versions", "lab", "--activate", "2"]) == 0
    assert "version 2 is active" in capsys.readouterr().out
    assert store.active("lab").version == 2
    assert main(["versions"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("  lab v1") and "from tiny-cells" in out[0] and "gate: accepted" in out[0]
    assert out[1].startswith("● lab v2") and "from lab v1" in out[1]

    assert main(["versions", "lab", "--activate", "v1"]) == 0  # as the list writes it
    assert store.active("lab").version == 1
    assert main(["versions", "lab", "--activate", "vx"]) == 2
    assert main(["versions", "lab", "--rollback"]) == 0
    assert "version 2 is active" in capsys.readouterr().out.splitlines()[-1]
    assert main(["versions", "lab", "--shipped"]) == 0
    assert store.active("lab") is None
    assert main(["versions", "lab", "--rollback"]) == 0  # undoes --shipped: the version active before it
    assert store.active("lab").version == 2 and "version 2 is active" in capsys.readouterr().out.splitlines()[-1]


def test_errors_are_one_line_with_a_code(isolated_registry, capsys):  # noqa: F811
    assert main(["versions", "--rollback"]) == 2
    assert main(["versions", "nothing", "--activate", "3"]) == 6
    err = capsys.readouterr().err
    assert "no stored version 3" in err and "Traceback" not in err
    assert main(["versions", "nothing", "--rollback"]) == 6  # nothing to roll back: a documented code
    assert "no active stored version" in capsys.readouterr().err


def test_missing_version_lists_the_stored_ones_shipped_with_nothing_stored_is_ok(isolated_registry,  # noqa: F811
                                                                                  capsys):
    save_tiny_base("tiny-cells")
    from cellviewer.core.netsegment import find_models

    store = ModelStore()
    assert main(["versions", "tiny-cells", "--shipped"]) == 0  # nothing stored: already the shipped model
    assert "the shipped model is used already" in capsys.readouterr().out
    assert not (store.root / "tiny-cells").exists()  # and nothing was written
    stem = find_models()["tiny-cells"][0].with_suffix("")
    store.add(stem, "lab", parent="tiny-cells", data_hashes=[], metrics={})
    store.add(stem, "lab", parent="lab@1", data_hashes=[], metrics={})
    assert main(["versions", "lab", "--activate", "7"]) == 6
    err = capsys.readouterr().err
    assert "no stored version 7; its stored versions: 1, 2" in err and "--activate 2" in err
    assert main(["versions", "other", "--activate", "1"]) == 6
    assert "stored models: lab" in capsys.readouterr().err
    assert main(["versions", "lab", "--shipped"]) == 0 and store.active("lab") is None


def test_listing_an_unknown_model_is_an_error_and_a_shipped_one_without_versions_is_not(isolated_registry,  # noqa: F811
                                                                                        capsys):
    save_tiny_base("tiny-cells")
    assert main(["versions", "tiny-cells"]) == 0  # shipped, nothing stored yet
    assert "no stored model versions" in capsys.readouterr().out
    assert main(["versions", "nosuch"]) == 6
    err = capsys.readouterr().err
    assert "No model named 'nosuch'" in err and "tiny-cells" in err


def test_a_version_with_an_unreadable_card_is_listed_with_a_warning(isolated_registry, capsys):  # noqa: F811
    save_tiny_base("tiny-cells")
    from cellviewer.core.netsegment import find_models

    stem = find_models()["tiny-cells"][0].with_suffix("")
    store = ModelStore()
    store.add(stem, "lab", parent="tiny-cells", data_hashes=[], metrics={}, activate=True)
    store.add(stem, "lab", parent="lab@1", data_hashes=[], metrics={}, activate=True)
    (store.root / "lab" / "v2.json").write_text("{")
    assert main(["versions"]) == 0
    out, err = capsys.readouterr()
    assert "● lab v2" in out and "card unreadable" in out and "v2.json" in out  # never left out
    assert "warning:" in err and "cellviewer versions lab --activate 1" in err
    (store.root / "lab" / "store.json").write_text("{")
    assert main(["versions", "lab", "--rollback"]) == 6
    assert "store.json" in capsys.readouterr().err
    assert main(["versions", "lab", "--activate", "1"]) == 0  # rewrites the unreadable store.json
    assert store.active("lab").version == 1
