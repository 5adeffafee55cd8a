"""Drawing new instances and editing masks: box (+ click refinement, segmented in a worker thread),
brush / eraser (a working mask, crop-only live preview, one undo step per stroke) and polygon.

``Drawing`` receives what ``tools.CanvasTools`` reports and forwards it to ``core.viewer.annotation_state``
(the refinement clicks, the stroke's rasterisation and the edits live there); it only runs the segmentation
off the GUI thread and paints the stroke's preview."""

from __future__ import annotations

from typing import Any, Callable, Generator

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel

from fashionviewer.core.data.masks import polygon_mask
from fashionviewer.core.data.overlay import class_color
from fashionviewer.core.inference.interactive import METHOD_LEARNED, InteractiveSession, segment
from fashionviewer.core.inference.interactive_model import bundled_model_problem
from fashionviewer.core.viewer.annotation_state import AnnotationState
from fashionviewer.core.viewer.annotation_tools import Box
from fashionviewer.qt.annotation.host import AnnotationHost
from fashionviewer.qt.annotation.layer import AnnotationLayer
from fashionviewer.qt.annotation.tools import CanvasTools
from fashionviewer.qt.workers import start_worker


def _segment_job(
    image: np.ndarray,
    box: Box | None,
    positive: list,
    negative: list,
    predictor: Any,
    session: InteractiveSession,
) -> Generator[None, None, np.ndarray]:
    yield None  # a cancel point
    return segment(
        image, box=box, positive=positive, negative=negative, predictor=predictor, session=session
    )


def _method_line(method: str | None) -> str:
    """The status bar's word on what made the mask."""
    if method == METHOD_LEARNED:
        return "Mask by the learned interactive model."
    problem = bundled_model_problem()
    return "Mask by GrabCut (fallback" + (f": {problem}" if problem else "") + ")."


class Drawing(QObject):
    segmented = Signal(int)  # a box / click segmentation was applied to this annotation id

    def __init__(
        self,
        state: AnnotationState,
        tools: CanvasTools,
        layer: AnnotationLayer,
        host: AnnotationHost,
        status: QLabel,
        current_class: Callable[[], str],
        redraw: Callable[[], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.state, self.tools, self.layer, self.host = state, tools, layer, host
        self.status, self.current_class, self.redraw = status, current_class, redraw
        self.segmenting = False
        self._pending: tuple[Box | None, int | None] | None = None
        self._colour: tuple[int, int, int] = (255, 255, 255)  # the stroke's preview colour
        tools.box_drawn.connect(self.box_drawn)
        tools.point_clicked.connect(self.point_clicked)
        tools.object_clicked.connect(self.object_clicked)
        tools.stroke_started.connect(self.stroke_start)
        tools.stroke_moved.connect(self.stroke_move)
        tools.stroke_ended.connect(self.stroke_end)
        tools.polygon_closed.connect(self.polygon_closed)

    def reset(self) -> None:
        """Another image or folder: a segmentation still running is not applied to it, none is queued."""
        self._pending = None

    def run_segment(self, box: Box | None, target: int | None) -> None:
        """Segment in a worker thread; a request made meanwhile runs when it finishes (with every click so far)."""
        image = self.host.images.current_image()
        if image is None:
            return
        if self.segmenting:
            self._pending = (box, target)
            return
        refine = self.state.refine
        positive, negative = (
            (refine.points(True), refine.points(False)) if refine is not None else ([], [])
        )
        file_name = self.state.file_name()
        self.segmenting, self._pending = True, None
        self.status.setText("  segmenting…  ")
        start_worker(
            _segment_job,
            image,
            box,
            positive,
            negative,
            self.host.predictor(),
            self.state.interactive,
            on_return=lambda mask: self._finished(file_name, box, target, mask),
            on_error=lambda exc: self._finished(file_name, box, target, None, exc),
        )

    def _finished(
        self,
        file_name: str,
        box: Box | None,
        target: int | None,
        mask: np.ndarray | None,
        error: Exception | None = None,
    ) -> None:
        self.segmenting = False
        if error is not None:
            self.state.fail(f"Segmentation failed: {error}")
        elif mask is not None:
            self.state.notify(_method_line(self.state.interactive.method), 4000)
            applied = self.state.apply_segment(file_name, box, target, mask, self.current_class())
            if applied is not None:
                self.redraw()
                self.segmented.emit(applied)
        pending, self._pending = self._pending, None
        refine = self.state.refine
        if pending is not None and file_name == self.state.file_name() and refine is not None:
            self.run_segment(refine.box, refine.target)  # the clicks made meanwhile

    def box_drawn(self, x0: float, y0: float, x1: float, y1: float) -> None:
        if self.segmenting:
            self.state.notify("Still segmenting the last box; draw again in a moment.", 4000)
            return
        refine = self.state.begin_box((x0, y0, x1, y1))
        self.run_segment(refine.box, None)

    def point_clicked(self, x: float, y: float, positive: bool) -> None:
        """Box tool: left click adds (right click removes) a region of the instance being drawn, or of the
        selected annotation (its box is then the annotation's)."""
        refine = self.state.add_click(x, y, positive, box_pending=self.segmenting)
        if refine is not None:
            self.run_segment(refine.box, refine.target)

    def object_clicked(self, x: float, y: float, positive: bool) -> None:
        """Click tool: a left click on an object gives its mask; further clicks refine it (right: remove)."""
        refine = self.state.click_object(x, y, positive, pending=self.segmenting)
        if refine is not None:
            self.run_segment(refine.box, refine.target)

    def stroke_start(self, x: float, y: float) -> None:
        stroke = self.state.begin_stroke(x, y, self.current_class())
        if stroke is not None:
            self._colour = class_color(self.state.colour_label(stroke.class_name, 0))
            self.stroke_move(x, y)

    def stroke_move(self, x: float, y: float) -> None:
        stroke = self.state.stroke
        square = self.state.extend_stroke(x, y)
        if stroke is not None and square is not None:  # only the stroke's square is painted again
            x0, y0, x1, y1 = square
            self.layer.paint_region(stroke.target, stroke.mask, x0, y0, x1, y1, self._colour)

    def stroke_end(self) -> None:
        had = self.state.stroke is not None
        self.state.end_stroke()
        if had:
            self.redraw()

    def polygon_closed(self, points: list[tuple[float, float]]) -> None:
        size = self.state.image_size()
        if size is not None:
            self.state.add_drawn(
                polygon_mask(points, size[1], size[0]).astype(bool), self.current_class()
            )
