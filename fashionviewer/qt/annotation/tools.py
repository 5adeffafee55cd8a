"""Drawing tools on the canvas: box, click refinement, brush / eraser, polygon (``core.viewer.annotation_tools.Tool``).

``CanvasTools`` filters the canvas's mouse events while a drawing tool is active (the select tool leaves
them to the canvas: drag pans, a click selects; the wheel always zooms) and reports what was drawn in
image coordinates through signals. It also draws the transient shapes: the rubber-band box, the polygon
being drawn and the brush's circle, and while a box or clicks are being segmented (``show_pending``) their
outline and markers with a busy cursor.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsPathItem, QGraphicsRectItem

from fashionviewer.core.viewer.annotation_tools import Tool
from fashionviewer.qt.canvas import ImageCanvas

CLOSE_DISTANCE_PX = 8  # screen pixels: a polygon click this near its first vertex closes it
MARKER_PX = 5  # screen pixels: the radius of a pending click's marker


def _pen(colour: QColor, dashed: bool = False) -> QPen:
    pen = QPen(colour, 2)
    pen.setCosmetic(True)  # constant width at any zoom
    if dashed:
        pen.setStyle(Qt.PenStyle.DashLine)
    return pen


class CanvasTools(QObject):
    box_drawn = Signal(float, float, float, float)  # x0, y0, x1, y1
    # x, y, positive (left) / negative (right): box tool refinement
    point_clicked = Signal(float, float, bool)
    # click tool: x, y, positive (left) / negative (right)
    object_clicked = Signal(float, float, bool)
    stroke_started = Signal(float, float)  # brush / eraser
    stroke_moved = Signal(float, float)
    stroke_ended = Signal()
    polygon_closed = Signal(object)  # list of (x, y)

    def __init__(self, canvas: ImageCanvas) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self.tool = Tool.SELECT
        self.radius = 8.0
        self.polygon: list[tuple[float, float]] = []
        self._press: QPointF | None = None
        self._stroking = False
        self.rubber = QGraphicsRectItem()
        self.rubber.setPen(_pen(QColor(255, 255, 255), dashed=True))
        self.path_item = QGraphicsPathItem()
        self.path_item.setPen(_pen(QColor(255, 220, 0)))
        self.cursor = QGraphicsEllipseItem()
        self.cursor.setPen(_pen(QColor(255, 255, 255)))
        # the box and clicks being segmented (show_pending): yellow outline, green / red click markers
        self.pending_box = QGraphicsRectItem()
        self.pending_box.setPen(_pen(QColor(255, 220, 0), dashed=True))
        self.pending_clicks = QGraphicsPathItem()
        self.pending_clicks.setPen(_pen(QColor(255, 255, 255)))
        self.pending_clicks.setBrush(QColor(60, 200, 90))
        self.pending_removals = QGraphicsPathItem()
        self.pending_removals.setPen(_pen(QColor(255, 255, 255)))
        self.pending_removals.setBrush(QColor(230, 60, 60))
        self.pending = False
        items = (
            self.rubber,
            self.path_item,
            self.cursor,
            self.pending_box,
            self.pending_clicks,
            self.pending_removals,
        )
        for z, item in enumerate(items):
            item.setZValue(10 + z)
            item.hide()
            canvas.view.addItem(item)
        # The mouse handler of each drawing tool (a new tool: one entry); Select leaves events to the canvas.
        self.handlers = {
            Tool.BOX: self._box,
            Tool.BRUSH: self._brush,
            Tool.ERASER: self._brush,
            Tool.POLYGON: self._polygon,
            Tool.CLICK: self._click,
        }
        canvas.viewport().installEventFilter(self)
        canvas.viewport().setMouseTracking(True)

    # ----- state ------------------------------------------------------------------------------
    def set_tool(self, tool: Tool | str) -> None:
        tool = Tool(tool)  # ValueError for an unknown tool
        self.cancel()
        self.tool = tool
        self.cursor.setVisible(tool.paints)
        self._set_cursor()

    def _set_cursor(self) -> None:
        if self.pending:  # still segmenting: the tool keeps working, the cursor says so
            cursor = Qt.CursorShape.BusyCursor
        elif self.tool is Tool.SELECT:
            cursor = Qt.CursorShape.ArrowCursor
        else:
            cursor = Qt.CursorShape.CrossCursor
        self.canvas.viewport().setCursor(cursor)

    def show_pending(
        self,
        box: tuple[float, float, float, float] | None,
        clicks: list[tuple[float, float, bool]],
    ) -> None:
        """A box and clicks (x, y, positive) being segmented: their outline and markers, a busy cursor."""
        self.pending = True
        if box is not None:
            x0, y0, x1, y1 = box
            self.pending_box.setRect(QRectF(QPointF(x0, y0), QPointF(x1, y1)).normalized())
        self.pending_box.setVisible(box is not None)
        px, _ = self.canvas.view.viewPixelSize()  # image pixels per screen pixel
        r = MARKER_PX * max(px, 1e-6)
        for item, positive in ((self.pending_clicks, True), (self.pending_removals, False)):
            path = QPainterPath()
            for x, y, sign in clicks:
                if sign == positive:
                    path.addEllipse(QPointF(x, y), r, r)
            item.setPath(path)
            item.setVisible(not path.isEmpty())
        self._set_cursor()

    def clear_pending(self) -> None:
        """Nothing being segmented any more: the markers go, the tool's cursor comes back."""
        self.pending = False
        for item in (self.pending_box, self.pending_clicks, self.pending_removals):
            item.hide()
        self._set_cursor()

    def set_radius(self, radius: float) -> None:
        self.radius = max(1.0, float(radius))

    def cancel(self) -> bool:
        """Drop a box or polygon being drawn; True when there was one."""
        had = self._press is not None or bool(self.polygon)
        self._press, self.polygon = None, []
        self.rubber.hide()
        self.path_item.hide()
        return had

    def close_polygon(self) -> bool:
        """Finish the polygon being drawn (Enter); False when it has fewer than 3 vertices."""
        if len(self.polygon) < 3:
            return False
        points, self.polygon = list(self.polygon), []
        self.path_item.hide()
        self.polygon_closed.emit(points)
        return True

    def undo_vertex(self) -> bool:
        if not self.polygon:
            return False
        self.polygon.pop()
        self._draw_polygon(None)
        return True

    # ----- events -----------------------------------------------------------------------------
    def _image_point(self, event: QMouseEvent) -> QPointF:
        return self.canvas.view.mapSceneToView(self.canvas.mapToScene(event.position().toPoint()))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        kind = event.type()
        if kind not in (
            QEvent.Type.MouseButtonPress,
            QEvent.Type.MouseMove,
            QEvent.Type.MouseButtonRelease,
            QEvent.Type.MouseButtonDblClick,
        ):
            return False
        point = self._image_point(event)  # type: ignore[arg-type]
        if kind == QEvent.Type.MouseMove and self.tool.paints:
            r = self.radius
            self.cursor.setRect(QRectF(point.x() - r, point.y() - r, 2 * r, 2 * r))
        if self.tool not in self.handlers or self.canvas.image_shape is None:
            return False
        button = event.button()  # type: ignore[attr-defined]
        if button == Qt.MouseButton.MiddleButton:
            return False  # the middle button still pans
        return self.handlers[self.tool](kind, point, event)  # type: ignore[arg-type]

    def _box(self, kind: QEvent.Type, point: QPointF, event: QMouseEvent) -> bool:
        if kind == QEvent.Type.MouseButtonPress:
            self._press = point
            self._press_button = event.button()
            return True
        if (
            kind == QEvent.Type.MouseMove
            and self._press is not None
            and self._press_button == Qt.MouseButton.LeftButton
        ):
            self.rubber.setRect(QRectF(self._press, point).normalized())
            self.rubber.show()
            return True
        if kind == QEvent.Type.MouseButtonRelease and self._press is not None:
            start, self._press = self._press, None
            self.rubber.hide()
            rect = QRectF(start, point).normalized()
            if (
                self._press_button == Qt.MouseButton.LeftButton
                and rect.width() >= 3
                and rect.height() >= 3
            ):
                self.box_drawn.emit(rect.left(), rect.top(), rect.right(), rect.bottom())
            else:  # a click: refine the instance being drawn
                self.point_clicked.emit(
                    point.x(), point.y(), self._press_button == Qt.MouseButton.LeftButton
                )
            return True
        return kind != QEvent.Type.MouseMove

    def _click(self, kind: QEvent.Type, point: QPointF, event: QMouseEvent) -> bool:
        if kind == QEvent.Type.MouseButtonPress and event.button() in (
            Qt.MouseButton.LeftButton,
            Qt.MouseButton.RightButton,
        ):
            self.object_clicked.emit(
                point.x(), point.y(), event.button() == Qt.MouseButton.LeftButton
            )
            return True
        return kind != QEvent.Type.MouseMove

    def _brush(self, kind: QEvent.Type, point: QPointF, event: QMouseEvent) -> bool:
        if kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
            self._stroking = True
            self.stroke_started.emit(point.x(), point.y())
            return True
        if kind == QEvent.Type.MouseMove and self._stroking:
            self.stroke_moved.emit(point.x(), point.y())
            return True
        if kind == QEvent.Type.MouseButtonRelease and self._stroking:
            self._stroking = False
            self.stroke_ended.emit()
            return True
        return kind != QEvent.Type.MouseMove

    def _polygon(self, kind: QEvent.Type, point: QPointF, event: QMouseEvent) -> bool:
        if kind == QEvent.Type.MouseButtonDblClick:
            self.close_polygon()
            return True
        if kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
            if len(self.polygon) >= 3 and self._near_first(point):
                self.close_polygon()
            else:
                self.polygon.append((point.x(), point.y()))
                self._draw_polygon(point)
            return True
        if kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.RightButton:
            self.undo_vertex()
            return True
        if kind == QEvent.Type.MouseMove and self.polygon:
            self._draw_polygon(point)
            return True
        return kind != QEvent.Type.MouseMove

    def _near_first(self, point: QPointF) -> bool:
        px, _ = self.canvas.view.viewPixelSize()  # image pixels per screen pixel
        x, y = self.polygon[0]
        return ((point.x() - x) ** 2 + (point.y() - y) ** 2) ** 0.5 <= CLOSE_DISTANCE_PX * max(
            px, 1e-6
        )

    def _draw_polygon(self, hover: QPointF | None) -> None:
        if not self.polygon:
            self.path_item.hide()
            return
        path = QPainterPath(QPointF(*self.polygon[0]))
        for x, y in self.polygon[1:]:
            path.lineTo(x, y)
        if hover is not None:
            path.lineTo(hover)
        self.path_item.setPath(path)
        self.path_item.show()
