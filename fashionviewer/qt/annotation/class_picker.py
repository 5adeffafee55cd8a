"""The class picker (L): type to search the class list, Enter takes the highlighted class, or the typed
name as a new class when none matches."""

from __future__ import annotations

from typing import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QDialog, QLabel, QLineEdit, QListWidget, QVBoxLayout, QWidget


def matching(classes: Sequence[str], text: str) -> list[str]:
    """Classes containing ``text`` (any case), those starting with it first."""
    needle = text.strip().lower()
    if not needle:
        return list(classes)
    hits = [c for c in classes if needle in c.lower()]
    return sorted(hits, key=lambda c: (not c.lower().startswith(needle), classes.index(c)))


class ClassPicker(QDialog):
    def __init__(
        self, classes: Sequence[str], current: str = "", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Class")
        self.classes = list(classes)
        self.search = QLineEdit(
            placeholderText="Type to search; Enter picks (a new name adds a class)"
        )
        self.list = QListWidget()
        self.hint = QLabel(wordWrap=True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.hint)
        self.search.textChanged.connect(self._filter)
        self.search.returnPressed.connect(self._take)
        self.list.itemActivated.connect(lambda _item: self._take())
        self.search.installEventFilter(self)
        self._filter("")
        if current in self.classes:
            self.list.setCurrentRow(self.classes.index(current))
        self.resize(320, 420)

    def _filter(self, text: str) -> None:
        self.list.clear()
        hits = matching(self.classes, text)
        self.list.addItems(hits)
        if hits:
            self.list.setCurrentRow(0)
        self.hint.setText(
            "" if hits or not text.strip() else f"Enter adds the new class “{text.strip()}”."
        )

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API: ↑/↓ move in the list while typing
        if (
            isinstance(event, QKeyEvent)
            and event.type() == QKeyEvent.Type.KeyPress
            and event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down)
        ):
            step = -1 if event.key() == Qt.Key.Key_Up else 1
            self.list.setCurrentRow(
                max(0, min(self.list.count() - 1, self.list.currentRow() + step))
            )
            return True
        return False

    def chosen(self) -> str:
        item = self.list.currentItem()
        return item.text() if item is not None else self.search.text().strip()

    def _take(self) -> None:
        if self.chosen():
            self.accept()


def pick_class(
    classes: Sequence[str], current: str = "", parent: QWidget | None = None
) -> str | None:
    """Ask for a class; None when cancelled."""
    dialog = ClassPicker(classes, current, parent)
    return dialog.chosen() if dialog.exec() else None
