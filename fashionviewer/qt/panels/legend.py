"""Legend: one row per class (stable colour swatch, count in this image), checkable to hide a class."""

from __future__ import annotations

from collections import Counter

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from fashionviewer.core.data.overlay import class_color
from fashionviewer.core.viewer.session import ViewerSession

REFRESH_MS = 100  # at most this late after a result, at most one refresh per interval


def swatch(label: int, size: int = 14) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(*class_color(label)))
    return QIcon(pix)


class LegendPanel(QWidget):
    def __init__(self, session: ViewerSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.list = QListWidget()
        self.list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list)
        self._items: dict[str, QListWidgetItem] = {}
        self.list.itemChanged.connect(self._item_changed)
        # A burst of results (a folder read from the cache) makes one refresh, not one per photo.
        self._pending = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._pending.timeout.connect(lambda: self.refresh())
        ev = session.events
        ev.prediction_added.connect(lambda *a: self._refresh_soon())
        for signal in (
            ev.classes_changed,
            ev.current_changed,
            ev.threshold_changed,
            ev.model_changed,
        ):
            signal.connect(lambda *a: self.refresh())

    def _refresh_soon(self) -> None:
        if not self._pending.isActive():  # the first result of a burst sets the time
            self._pending.start()

    def refresh(self) -> None:
        self._pending.stop()
        s = self.session
        prediction = s.prediction()
        totals = Counter(i.class_name for i in prediction.instances) if prediction else Counter()
        shown = (
            Counter(i.class_name for i in prediction.filter(min_score=s.threshold))
            if prediction
            else Counter()
        )
        self.list.blockSignals(True)
        for name, label in s.known_classes.items():
            item = self._items.get(name)
            if item is None:
                item = QListWidgetItem(swatch(label), name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                self._items[name] = item
                self.list.addItem(item)
            item.setCheckState(
                Qt.CheckState.Unchecked if name in s.hidden_classes else Qt.CheckState.Checked
            )
            count = f"  ({shown[name]}/{totals[name]})" if totals[name] else ""
            item.setText(f"{name}{count}")
        for name in [n for n in self._items if n not in s.known_classes]:
            self.list.takeItem(self.list.row(self._items.pop(name)))
        self.list.blockSignals(False)

    def _item_changed(self, item: QListWidgetItem) -> None:
        name = next((n for n, it in self._items.items() if it is item), None)
        if name is not None:
            self.session.set_class_visible(name, item.checkState() == Qt.CheckState.Checked)

    def set_checked(self, name: str, visible: bool) -> None:
        """For tests and menus: the same as clicking the class's check box."""
        if self._pending.isActive():
            self.refresh()
        self._items[name].setCheckState(
            Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked
        )
