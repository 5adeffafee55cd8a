"""Image browser: a filter box and a lazily decoded thumbnail list (model/view, placeholder icons).

Opening a folder only lists files; a thumbnail is decoded (in one background worker, newest
request first) when the view asks for its icon, i.e. when it scrolls into sight.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Generator

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QLabel, QLineEdit, QListView, QVBoxLayout, QWidget

from fashionviewer.core.data.imageio import ImageReadError
from fashionviewer.core.viewer.session import ViewerSession
from fashionviewer.core.viewer.thumbnails import load_thumbnail
from fashionviewer.qt.workers import GeneratorWorker, start_worker

THUMB = 96


def _placeholder(text: str = "", colour: QColor | None = None) -> QIcon:
    pix = QPixmap(THUMB, THUMB)
    pix.fill(colour if colour is not None else QColor(70, 70, 76))
    if text:
        painter = QPainter(pix)
        painter.setPen(QColor(230, 230, 230))
        painter.drawText(pix.rect(), Qt.AlignmentFlag.AlignCenter, text)
        painter.end()
    return QIcon(pix)


def to_qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()  # copy: own the pixels


class _Requests:
    """Thread-safe LIFO of paths whose thumbnails are wanted (the most recently shown first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stack: list[Path] = []

    def push(self, path: Path) -> None:
        with self._lock:
            if path in self._stack:
                self._stack.remove(path)
            self._stack.append(path)
            del self._stack[:-400]  # older requests scrolled away long ago

    def pop(self) -> Path | None:
        with self._lock:
            return self._stack.pop() if self._stack else None

    def clear(self) -> None:
        with self._lock:
            self._stack.clear()


def _decode(requests: _Requests) -> Generator[tuple[Path, Any], None, None]:
    while (path := requests.pop()) is not None:
        try:
            yield path, to_qimage(load_thumbnail(path, THUMB))
        except ImageReadError as exc:
            yield path, exc


class ThumbnailModel(QAbstractListModel):
    def __init__(self, session: ViewerSession) -> None:
        super().__init__()
        self.session = session
        self._icons: dict[Path, QIcon] = {}
        self._requested: set[Path] = set()
        self._requests = _Requests()
        self._worker: GeneratorWorker | None = None
        self._loading = _placeholder()
        self._broken = _placeholder("not an image", QColor(122, 46, 46))
        self._row: dict[Path, int] = {}
        self._folder: Path | None = None
        # a prefix per image: annotated ✎ / done ✓ (annotation mode)
        self.marks: Callable[[Path], str] | None = None
        session.events.images_changed.connect(self._reset)
        session.events.image_error.connect(lambda p, m: self._mark_broken(p))

    def _reset(self) -> None:
        self.beginResetModel()
        if self.session.folder != self._folder:  # a new folder: forget the old thumbnails
            self._folder = self.session.folder
            self._icons.clear()
            self._requested.clear()
            self._requests.clear()
        self._row = {p: i for i, p in enumerate(self.session.images)}
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex | None = None) -> int:  # noqa: N802
        return 0 if parent is not None and parent.isValid() else len(self.session.images)

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid() or index.row() >= len(self.session.images):
            return None
        path = self.session.images[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return (self.marks(path) if self.marks is not None else "") + path.name
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.session.errors.get(str(path), self.session.display_name(path))
        if role == Qt.ItemDataRole.DecorationRole:
            icon = self._icons.get(path)
            if icon is None:
                self._request(path)
                return self._loading
            return icon
        if role == Qt.ItemDataRole.UserRole:
            return path
        return None

    def _request(self, path: Path) -> None:
        if path in self._requested:
            return
        self._requested.add(path)
        self._requests.push(path)
        if self._worker is None:
            self._worker = start_worker(
                _decode, self._requests, on_yield=self._on_thumb, on_finish=self._on_done
            )

    def _on_done(self) -> None:
        self._worker = None
        pending = self._requests.pop()
        if pending is not None:  # a request raced the worker's exit
            self._requested.discard(pending)
            self._request(pending)

    def _on_thumb(self, result: tuple[Path, Any]) -> None:
        path, value = result
        self._icons[path] = (
            QIcon(QPixmap.fromImage(value)) if isinstance(value, QImage) else self._broken
        )
        self._changed(path)

    def _mark_broken(self, path: Path) -> None:
        self._icons[path] = self._broken
        self._changed(path)

    def _changed(self, path: Path) -> None:
        row = self._row.get(path)
        if row is not None:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])

    def refresh_marks(self, path: Path | None = None) -> None:
        """Show new marks: of ``path``, or of every image."""
        row = self._row.get(path, -1) if path is not None else -1
        first, last = (row, row) if row >= 0 else (0, self.rowCount() - 1)
        if path is None and last >= 0 or row >= 0:
            self.dataChanged.emit(
                self.index(first), self.index(last), [Qt.ItemDataRole.DisplayRole]
            )

    def row_of(self, path: Path | None) -> int:
        return self._row.get(path, -1) if path is not None else -1

    def stop(self) -> None:
        self._requests.clear()
        if self._worker is not None:
            self._worker.cancel()


class BrowserPanel(QWidget):
    def __init__(self, session: ViewerSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.filter_edit = QLineEdit(placeholderText="Filter file names…", clearButtonEnabled=True)
        self.count_label = QLabel()
        self.model = ThumbnailModel(session)
        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setIconSize(QSize(THUMB, THUMB))
        self.view.setGridSize(QSize(THUMB + 16, THUMB + 24))
        # layout of 10,000 items without asking each for its size
        self.view.setUniformItemSizes(True)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.view.setModel(self.model)
        self.view.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # ←/→ belong to the window's navigation
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.count_label)
        # Debounce typing: filtering 10,000 names per key press is wasted work.
        self._filter_timer = QTimer(self, singleShot=True, interval=150)
        self._filter_timer.timeout.connect(lambda: session.set_filter(self.filter_edit.text()))
        self.filter_edit.textChanged.connect(lambda _t: self._filter_timer.start())
        self.view.clicked.connect(lambda idx: session.go(idx.row()))
        session.events.images_changed.connect(self._update_count)
        session.events.current_changed.connect(self._follow)
        session.events.prediction_added.connect(lambda *a: self._update_count())

    def _update_count(self) -> None:
        s = self.session
        shown, total = len(s.images), len(s.all_images)
        text = f"{shown} of {total} images" if shown != total else f"{total} images"
        bad = len(s.errors)
        self.count_label.setText(text + (f", {bad} unreadable" if bad else ""))

    def _follow(self, path: Path | None) -> None:
        row = self.model.row_of(path)
        if row >= 0:
            idx = self.model.index(row)
            self.view.setCurrentIndex(idx)
            self.view.scrollTo(idx)
