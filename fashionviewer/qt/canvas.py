"""The image canvas: the photo, RGBA overlay layers, boxes and captions; zoom, pan, click-to-select.

Pixels are prepared elsewhere (``core.data.overlay``); this widget only displays arrays and reports
clicks in image coordinates. Boxes and captions for all instances are painted by one item, with
captions drawn in screen pixels so they stay readable at any zoom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem, QLabel, QVBoxLayout, QWidget


@dataclass
class BoxSpec:
    box: tuple[float, float, float, float]
    color: tuple[int, int, int]
    text: str = ""
    selected: bool = False
    dashed: bool = False
    show_box: bool = True  # False: caption only (boxes layer off, labels/scores on)


class BoxesItem(QGraphicsItem):
    """All boxes and captions of an image in one item (one paint call, cheap for hundreds)."""

    def __init__(self) -> None:
        super().__init__()
        self._specs: list[BoxSpec] = []
        self._bounds = QRectF()
        self._font = QFont()
        self._font.setPointSizeF(8.5)

    def set_specs(self, specs: list[BoxSpec], width: int, height: int) -> None:
        self.prepareGeometryChange()
        self._specs = specs
        self._bounds = QRectF(-0.05 * width, -0.05 * height, 1.1 * width, 1.1 * height)
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self._bounds

    def paint(self, painter: QPainter, option: object, widget: object = None) -> None:
        if not self._specs:
            return
        transform = painter.transform()
        painter.save()
        painter.resetTransform()  # draw in device pixels: constant line widths and font size
        painter.setFont(self._font)
        metrics = QFontMetrics(self._font)
        for spec in self._specs:
            x0, y0, x1, y1 = spec.box
            rect = transform.mapRect(QRectF(QPointF(x0, y0), QPointF(x1, y1)))
            colour = QColor(*spec.color)
            pen = QPen(
                QColor(255, 255, 255) if spec.selected else colour, 3 if spec.selected else 1.5
            )
            if spec.dashed:
                pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            if spec.show_box:
                painter.drawRect(rect)
            if spec.text:
                w, h = metrics.horizontalAdvance(spec.text) + 6, metrics.height() + 2
                label = QRectF(rect.left(), rect.top(), w, h)
                painter.fillRect(
                    label, colour.darker(130) if not spec.selected else QColor(20, 20, 20)
                )
                painter.setPen(QColor(255, 255, 255))
                painter.drawText(label, Qt.AlignmentFlag.AlignCenter, spec.text)
        painter.restore()


class ImageCanvas(pg.GraphicsView):
    """Zoomable view: wheel zooms around the cursor, drag pans, a click emits ``clicked(x, y)``."""

    clicked = Signal(int, int)  # image pixel coordinates

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background=pg.mkColor(40, 40, 44))
        self.view = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.setCentralItem(self.view)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.gt_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.boxes_item = BoxesItem()
        for z, item in enumerate(
            (self.image_item, self.gt_item, self.overlay_item, self.boxes_item)
        ):
            item.setZValue(z)
            self.view.addItem(item)
        self.image_shape: tuple[int, int] | None = None
        self.scene().sigMouseClicked.connect(self._on_click)

    def set_image(self, rgb: np.ndarray | None, full_size: tuple[int, int] | None = None) -> None:
        """Show a new picture (or nothing) and fit it; overlays are cleared.

        ``full_size`` (height, width): the photo's size when ``rgb`` is a smaller display level of
        it; the picture is stretched over that size, so that the view, clicks, boxes and
        full-resolution layers all speak the photo's own pixels."""
        self.set_overlay(None)
        self.set_ground_truth(None)
        self.set_boxes([])
        if rgb is None:
            self.image_item.clear()
            self.image_shape = None
            return
        shape = tuple(full_size) if full_size is not None else tuple(rgb.shape[:2])
        new_shape = shape != self.image_shape
        self.image_shape = shape  # type: ignore[assignment]
        self._set_layer(self.image_item, rgb)
        if new_shape:
            self.fit()

    def set_overlay(self, rgba: np.ndarray | None) -> None:
        """An RGBA layer at the photo's size or at the shown level's (it is stretched over the photo)."""
        self._set_layer(self.overlay_item, rgba)

    def set_ground_truth(self, rgba: np.ndarray | None) -> None:
        self._set_layer(self.gt_item, rgba)

    def _set_layer(self, item: pg.ImageItem, pixels: np.ndarray | None) -> None:
        if pixels is None:
            item.clear()
            return
        # uint8 without levels is shown as it is (a QImage over the array, no copy); levels of (0, 255) would
        # make pyqtgraph rescale every pixel on each render, on the GUI thread (benchmarks/viewer_responsiveness.py).
        item.setImage(pixels, levels=None if pixels.dtype == np.uint8 else (0, 255))
        h, w = self.image_shape or pixels.shape[:2]
        item.setRect(QRectF(0, 0, w, h))  # any layer's resolution covers the photo's own pixels

    def set_boxes(self, specs: list[BoxSpec]) -> None:
        h, w = self.image_shape or (1, 1)
        self.boxes_item.set_specs(specs, w, h)

    # ----- zoom ------------------------------------------------------------------------------
    def fit(self) -> None:
        if self.image_shape is not None:
            h, w = self.image_shape
            self.view.setRange(QRectF(0, 0, w, h), padding=0.02)

    def actual_size(self) -> None:
        """1:1 — one image pixel per screen pixel, centred where the view is."""
        px, _ = self.view.viewPixelSize()
        if px > 0:
            self.view.scaleBy((1.0 / px, 1.0 / px))

    def zoom(self, factor: float) -> None:
        self.view.scaleBy((1.0 / factor, 1.0 / factor))

    def _on_click(self, event: object) -> None:
        if self.image_shape is None or event.button() != Qt.MouseButton.LeftButton:  # type: ignore[attr-defined]
            return
        point = self.view.mapSceneToView(event.scenePos())  # type: ignore[attr-defined]
        x, y = int(np.floor(point.x())), int(np.floor(point.y()))
        h, w = self.image_shape
        if 0 <= x < w and 0 <= y < h:
            self.clicked.emit(x, y)


class CanvasWidget(QWidget):
    """The canvas with an inline notice line above it (e.g. "this file is not a readable image")."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("QLabel { background: #7a2e2e; color: white; padding: 6px; }")
        self.notice.hide()
        self.canvas = ImageCanvas(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.notice)
        layout.addWidget(self.canvas, 1)

    def show_notice(self, text: str | None, warning: bool = True) -> None:
        if not text:
            self.notice.hide()
            return
        colour = "#7a2e2e" if warning else "#2e4f7a"
        self.notice.setStyleSheet(f"QLabel {{ background: {colour}; color: white; padding: 6px; }}")
        self.notice.setText(text)
        self.notice.show()
