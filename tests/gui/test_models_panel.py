"""Model versions panel: what Roll back says when nothing of the name is left, and damaged versions shown."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from tests.tinymodels import isolated_registry, save_tiny_model  # noqa: E402,F401

BOX_CLASSES = ["background", "rbc", "wbc", "platelet"]


@pytest.fixture
def said(monkeypatch):
    from cellviewer.gui import notifications

    lines = []
    monkeypatch.setattr(notifications, "status", lambda text, *a, **k: lines.append(("status", text)))
    monkeypatch.setattr(notifications, "warn", lambda text, *a, **k: lines.append(("warn", text)))
    return lines


@pytest.fixture
def store(isolated_registry):  # noqa: F811
    from cellviewer.core.modelstore import ModelStore
    from cellviewer.core.netsegment import model_dirs

    save_tiny_model("tiny-src", "do-unet", {"base": 4, "depth": 2, "edge": True}, BOX_CLASSES)
    s = ModelStore()
    s.add(model_dirs()[-1] / "tiny-src", "mylab", parent="tiny-src", data_hashes=[], metrics={}, activate=True)
    return s


def test_rolling_back_a_model_nothing_ships_says_it_cannot_be_used(qtbot, store, said):
    from cellviewer.gui.panels.models import ModelsPanel

    p = ModelsPanel(store)
    qtbot.addWidget(p)
    assert p.rollback("mylab")
    assert said[-1][0] == "warn" and "none is shipped" in said[-1][1] and "shipped model is used" not in said[-1][1]


def test_a_version_with_an_unreadable_card_is_marked(qtbot, store, said):
    from cellviewer.gui.panels.models import ModelsPanel

    (store.root / "mylab" / "v1.json").write_text("{")
    p = ModelsPanel(store)
    qtbot.addWidget(p)
    top = p.tree.topLevelItem(0)
    assert "card unreadable" in top.child(0).text(0) and top.text(1) == "⚠ cannot be used"
    assert "v1.json" in top.toolTip(0)
