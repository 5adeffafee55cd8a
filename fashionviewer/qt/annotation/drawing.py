"""Drawing new instances and editing masks: box and click tools (+ click refinement, segmented in a worker
thread), brush / eraser (a working mask, crop-only live preview, one undo step per stroke) and polygon.

``Drawing`` receives what ``tools.CanvasTools`` reports and forwards it to ``core.viewer.annotation_state``
(the refinement clicks, the stroke's rasterisation and the edits live there); it only runs the segmentation
off the GUI thread and paints previews. While a box or clicks are segmented, their outline and markers stay
on the canvas with a busy cursor; a coarse mask (``segment_steps``: the first crop before a zoom-in pass) is
painted as soon as it exists and replaced by the final one; clicks on the same instance made meanwhile make
the running result stale: it is dropped (the worker stops at its next step) and one run with every click
follows."""

from __future__ import annotations

from typing import Any, Callable, Generator

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel

from fashionviewer.core.data.masks import polygon_mask
from fashionviewer.core.data.overlay import class_color
from fashionviewer.core.inference.interactive import (
    METHOD_LEARNED,
    InteractiveSession,
    segment_steps,
)
from fashionviewer.core.inference.interactive_model import (
    bundled_model_path,
    bundled_model_problem,
    model_in_use_path,
)
from fashionviewer.core.viewer.annotation_state import AnnotationState
from fashionviewer.core.viewer.annotation_tools import Box
from fashionviewer.qt.annotation.host import AnnotationHost
from fashionviewer.qt.annotation.layer import AnnotationLayer
from fashionviewer.qt.annotation.tools import CanvasTools
from fashionviewer.qt.workers import GeneratorWorker, start_worker


def _segment_job(
    image: np.ndarray,
    box: Box | None,
    positive: list,
    negative: list,
    predictor: Any,
    session: InteractiveSession,
) -> Generator[np.ndarray | None, None, np.ndarray]:
    yield None  # a cancel point
    # each coarse mask is yielded (shown at once); the worker stops between steps when cancelled
    return (
        yield from segment_steps(
            image,
            box=box,
            positive=positive,
            negative=negative,
            predictor=predictor,
            session=session,
        )
    )


def _method_line(method: str | None) -> str:
    """The status bar's word on what made the mask."""
    if method == METHOD_LEARNED:
        path = model_in_use_path()
        trained = f" ({path})" if path != bundled_model_path() else ""
        return f"Mask by the learned interactive model{trained}."
    problem = bundled_model_problem()
    return "Mask by GrabCut (fallback" + (f": {problem}" if problem else "") + ")."


def _extent(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


class Drawing(QObject):
    segmented = Signal(int)  # a box / click segmentation was applied to this annotation id
    # a coarse mask was painted for this annotation id (None: a new instance)
    previewed = Signal(object)

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
        self._worker: GeneratorWorker | None = None  # the segmentation running
        self._pending: tuple[Box | None, int | None] | None = None
        self._stale = False  # the running segmentation's result is not wanted any more
        self._applied = False  # the running segmentation's final mask was applied (and drawn)
        self._job_refine: Any = None  # the Refinement the running segmentation serves
        self._colour: tuple[int, int, int] = (255, 255, 255)  # the stroke's preview colour
        tools.box_drawn.connect(self.box_drawn)
        tools.point_clicked.connect(self.point_clicked)
        tools.object_clicked.connect(self.object_clicked)
        tools.stroke_started.connect(self.stroke_start)
        tools.stroke_moved.connect(self.stroke_move)
        tools.stroke_ended.connect(self.stroke_end)
        tools.polygon_closed.connect(self.polygon_closed)

    @property
    def segmenting(self) -> bool:
        return self._worker is not None

    def reset(self) -> None:
        """Another image or folder: a segmentation still running is not applied to it, none is queued."""
        self._pending = None
        if self._worker is not None:
            self._stale = True
            self._worker.cancel()

    def _pending_marks(self, box: Box | None) -> None:
        refine = self.state.refine
        clicks = [(c.x, c.y, c.positive) for c in refine.clicks] if refine is not None else []
        self.tools.show_pending(box, clicks)

    def run_segment(self, box: Box | None, target: int | None) -> None:
        """Segment in a worker thread; a request made meanwhile runs when it finishes (with every click so far),
        and when it refines the same instance the running result is dropped as stale."""
        image = self.host.images.current_image()
        if image is None:
            return
        if self._worker is not None:
            self._pending = (box, target)
            if self.state.refine is self._job_refine:  # more clicks on the same instance
                self._stale = True
                self._worker.cancel()
            self._pending_marks(box)
            return
        refine = self.state.refine
        positive, negative = (
            (refine.points(True), refine.points(False)) if refine is not None else ([], [])
        )
        file_name = self.state.file_name()
        self._pending, self._stale, self._applied, self._job_refine = None, False, False, refine
        self.status.setText("  segmenting…  ")
        self._pending_marks(box)
        self._worker = start_worker(
            _segment_job,
            image,
            box,
            positive,
            negative,
            self.host.predictor(),
            self.state.interactive,
            on_yield=lambda mask: self._coarse(file_name, target, mask),
            on_return=lambda mask: self._finished(file_name, box, target, mask),
            on_error=lambda exc: self._finished(file_name, box, target, None, exc),
            on_finish=self._idle,
        )

    def _coarse(self, file_name: str, target: int | None, mask: np.ndarray | None) -> None:
        """Paint a coarse mask at once, standing in for ``target``'s (None: a new instance) until the final one."""
        if mask is None or self._stale or file_name != self.state.file_name():
            return
        square = _extent(mask)
        class_name = self.current_class()
        editor = self.state.editor
        if target is not None and editor is not None:
            ann = editor.annotation(file_name, target)
            class_name = editor.aset.category_name(ann.category_id)
            x0, y0, x1, y1 = (int(round(v)) for v in ann.bbox_xyxy())
            old = (max(0, x0), max(0, y0), x1 + 1, y1 + 1)
            square = (
                old
                if square is None
                else (*map(min, square[:2], old[:2]), *map(max, square[2:], old[2:]))
            )
        if square is None:
            return
        colour = class_color(self.state.colour_label(class_name, 0))
        self.layer.paint_region(target, mask, *square, colour)
        self.status.setText("  segmenting… (coarse mask shown)  ")
        self.previewed.emit(target)

    def _finished(
        self,
        file_name: str,
        box: Box | None,
        target: int | None,
        mask: np.ndarray | None,
        error: Exception | None = None,
    ) -> None:
        if self._stale:
            return  # superseded: clicks made meanwhile, or another image
        if error is not None:
            self.state.fail(f"Segmentation failed: {error}")
        elif mask is not None:
            self.state.notify(_method_line(self.state.interactive.method), 4000)
            applied = self.state.apply_segment(file_name, box, target, mask, self.current_class())
            if applied is not None:
                self._applied = True
                self.redraw()  # the final mask replaces any coarse one
                self.segmented.emit(applied)

    def _idle(self) -> None:
        """The worker is done (returned, failed or cancelled): run what was asked meanwhile, else settle.
        ``reset`` drops what was asked before another image, so what is pending is for the image shown."""
        self._worker = None
        pending, self._pending = self._pending, None
        refine = self.state.refine
        if pending is not None and refine is not None:
            self.run_segment(refine.box, refine.target)  # the clicks made meanwhile
            return
        self.tools.clear_pending()
        if not self._applied:  # a coarse preview no final mask replaced, the status line
            self.redraw()
        self._stale = False

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
