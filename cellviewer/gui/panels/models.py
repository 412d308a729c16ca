"""Model versions in the user's model store: which one is active, make any version active (rollback).

Reads :class:`cellviewer.core.modelstore.ModelStore` (cards only, no weights). Each
version shows its parent, when it was made and its gate numbers (tooltip). "Make
active" activates the selected version; "Roll back" re-activates the version before
the active one. ``activated(name, version)`` tells the window to re-read the models.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout,
                               QWidget)

from cellviewer.core.errors import CellviewerError
from cellviewer.gui import notifications

ROLE = Qt.ItemDataRole.UserRole


def store_names(store) -> list[str]:
    """The model names that have versions in ``store``."""
    return sorted(n for n in store.names() if store.versions(n))


def parent_text(card: dict) -> str:
    """``blood-cells v1`` from a stored card's ``parent`` {model, version}."""
    p = card.get("parent")
    if isinstance(p, dict):
        return f"{p.get('model', '')} v{p['version']}" if p.get("version") else str(p.get("model", ""))
    return str(p or "")


def version_summary(v) -> str:
    """A tooltip: parent, when stored, the gate's verdict and table."""
    card = v.card if isinstance(v.card, dict) else {}
    bits = [f"fine-tuned from: {parent_text(card) or '?'}"]
    if card.get("stored_at"):
        bits.append(f"stored: {card['stored_at']}")
    gate = card.get("gate")
    if isinstance(gate, dict):
        bits.append("gate: " + ("passed" if gate.get("accepted") else "refused, accepted by hand")
                    + (f" — {gate.get('reason')}" if gate.get("reason") else ""))
        if gate.get("table"):
            bits.append(str(gate["table"]))
    if card.get("data_hashes"):
        bits.append(f"trained on {len(card['data_hashes'])} reviewed image(s)")
    bits.append(str(v.stem))
    return "\n".join(bits)


class ModelsPanel(QWidget):
    activated = Signal(str, str)  # name, version

    def __init__(self, store=None, parent=None):
        super().__init__(parent)
        self.store = store
        lay = QVBoxLayout(self)
        self.label = QLabel("Your fine-tuned models (● = active)")
        self.label.setWordWrap(True)
        lay.addWidget(self.label)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Model / version", "Created from"])
        self.tree.itemSelectionChanged.connect(self._sync)
        self.tree.itemDoubleClicked.connect(lambda _it, _c: self.activate_selected())
        lay.addWidget(self.tree, 1)
        row = QHBoxLayout()
        self.activate_button = QPushButton("Make active")
        self.rollback_button = QPushButton("Roll back")
        self.rollback_button.setToolTip("Make the version before the active one active again")
        self.refresh_button = QPushButton("Refresh")
        self.activate_button.clicked.connect(self.activate_selected)
        self.rollback_button.clicked.connect(lambda: self.rollback())
        self.refresh_button.clicked.connect(self.refresh)
        for b in (self.activate_button, self.rollback_button, self.refresh_button):
            row.addWidget(b)
        lay.addLayout(row)
        self.refresh()

    def set_store(self, store) -> None:
        self.store = store
        self.refresh()

    def refresh(self) -> None:
        self.tree.clear()
        if self.store is None:
            self._sync()
            return
        try:
            names = store_names(self.store)
            for name in names:
                top = QTreeWidgetItem([name, ""])
                top.setData(0, ROLE, (name, None))
                self.tree.addTopLevelItem(top)
                for v in self.store.versions(name):
                    card = v.card if isinstance(v.card, dict) else {}
                    child = QTreeWidgetItem([("● " if v.active else "    ") + f"version {v.version}"
                                             + (" ⚠ card unreadable" if v.problem else ""), parent_text(card)])
                    child.setData(0, ROLE, (name, str(v.version)))
                    child.setToolTip(0, f"card {v.problem}: {v.stem}.json" if v.problem else version_summary(v))
                    top.addChild(child)
                top.setExpanded(True)
                try:  # an unreadable store.json or active card: said here, not only when the model runs
                    self.store.active(name)
                except CellviewerError as e:
                    top.setText(1, "⚠ cannot be used")
                    top.setToolTip(0, f"{e.message}\n{e.hint or ''}")
                    top.setToolTip(1, top.toolTip(0))
        except CellviewerError as e:
            notifications.show_error(e, "Model store")
        self.tree.resizeColumnToContents(0)
        for i in range(self.tree.topLevelItemCount()):  # start on the active version of the first model
            top = self.tree.topLevelItem(i)
            active = [top.child(j) for j in range(top.childCount()) if top.child(j).text(0).startswith("●")]
            if active:
                self.tree.setCurrentItem(active[0])
                break
        self._sync()

    def selected(self) -> tuple[str, str | None] | None:
        items = self.tree.selectedItems()
        return items[0].data(0, ROLE) if items else None

    def select(self, name: str, version: str | None = None) -> bool:
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            if top.data(0, ROLE)[0] != name:
                continue
            if version is None:
                self.tree.setCurrentItem(top)
                return True
            for j in range(top.childCount()):
                if top.child(j).data(0, ROLE)[1] == str(version):
                    self.tree.setCurrentItem(top.child(j))
                    return True
        return False

    def _sync(self) -> None:
        sel = self.selected()
        self.activate_button.setEnabled(bool(sel and sel[1] is not None))
        self.rollback_button.setEnabled(bool(sel))

    def activate_selected(self) -> bool:
        sel = self.selected()
        if not sel or sel[1] is None:
            notifications.status("Select a version to make active.")
            return False
        return self.activate(*sel)

    def activate(self, name: str, version) -> bool:
        try:
            self.store.activate(name, int(version))
        except CellviewerError as e:
            notifications.show_error(e, "Make active")
            return False
        notifications.status(f"{name} version {version} is now active.", 8000)
        self.refresh()
        self.select(name, version)
        self.activated.emit(name, str(version))
        return True

    def rollback(self, name: str | None = None) -> bool:
        """Re-activate the version before the active one of ``name`` (default: the selected model)."""
        if name is None:
            sel = self.selected()
            name = sel[0] if sel else (store_names(self.store)[0] if self.store and store_names(self.store) else None)
        if name is None:
            notifications.status("No model in the store to roll back.")
            return False
        try:
            v = self.store.rollback(name)
        except CellviewerError as e:
            notifications.show_error(e, "Roll back")
            return False
        version = "" if v is None else str(v.version)
        if v is not None:
            notifications.status(f"Rolled back: {name} version {version} is active again.", 8000)
        elif _registered(name):
            notifications.status(f"Rolled back: no stored version of {name} is active; the shipped model is used.",
                                 8000)
        else:  # nothing of that name is left: the Segmentation panel falls back to the default model and says so
            notifications.warn(f"Rolled back: no version of {name} is active any more and none is shipped — "
                               f"{name} cannot be used until a version is made active again.")
        self.refresh()
        self.select(name, version or None)
        self.activated.emit(name, version)
        return True


def _registered(name: str) -> bool:
    """``name`` is still usable after the store changed: a segmenter, or a card of that name outside the
    store (e.g. the shipped rbc-morphology classifier)."""
    from cellviewer.core.modelfind import model_cards
    from cellviewer.core.segment import list_segmenters

    return name in list_segmenters() or any(str(card.get("name") or p.stem) == name for p, card in model_cards())
