"""Drawing new instances and editing masks: box (+ click refinement, segmented in a worker thread),
brush / eraser (a working mask, crop-only live preview, one undo step per stroke) and polygon.

``Drawing`` receives what ``tools.CanvasTools`` reports and turns it into ``AnnotationEditor`` edits on
the annotation mode's current image."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal

from fashionviewer.core.data.masks import polygon_mask
from fashionviewer.core.data.overlay import class_color
from fashionviewer.core.inference.interactive import InteractiveSession, segment
from fashionviewer.qt.workers import start_worker

if TYPE_CHECKING:
    from fashionviewer.qt.annotation.mode import AnnotationMode


def _segment_job(image: np.ndarray, box: tuple[float, float, float, float], positive: list, negative: list,
                 predictor: Any, session: InteractiveSession) -> Generator[None, None, np.ndarray]:
    yield None  # a cancel point
    return segment(image, box=box, positive=positive, negative=negative, predictor=predictor, session=session)


class Drawing(QObject):
    segmented = Signal(int)  # a box / click segmentation was applied to this annotation id

    def __init__(self, mode: AnnotationMode) -> None:
        super().__init__(mode)
        self.mode = mode
        self.refine: dict[str, Any] | None = None  # the instance being refined by clicks: id, box, points
        self.segmenting = False
        self._pending: tuple[tuple, int | None] | None = None
        self.session = InteractiveSession()  # the image's features and the last result, reused between clicks
        self._stroke: dict[str, Any] | None = None
        t = mode.tools
        t.box_drawn.connect(self.box_drawn)
        t.point_clicked.connect(self.point_clicked)
        t.stroke_started.connect(self.stroke_start)
        t.stroke_moved.connect(self.stroke_move)
        t.stroke_ended.connect(self.stroke_end)
        t.polygon_closed.connect(self.polygon_closed)

    def reset(self) -> None:
        """Another image or folder: nothing is being drawn."""
        self.refine, self._stroke, self._pending = None, None, None
        self.session = InteractiveSession()

    def predictor(self) -> Any:
        """The loaded detector: its mask head gives the box's mask (segment falls back to GrabCut without one)."""
        models = self.mode.window.prediction.models
        return models.predictor if models is not None else None

    def run_segment(self, box: tuple[float, float, float, float], target: int | None) -> None:
        """Segment in a worker thread; a request made meanwhile runs when it finishes (with every click so far)."""
        image = self.mode.window.presenter.current_image()
        if image is None:
            return
        if self.segmenting:
            self._pending = (box, target)
            return
        refine = self.refine or {}
        file_name = self.mode.file_name()
        self.segmenting, self._pending = True, None
        self.mode.status.setText("  segmenting…  ")
        start_worker(_segment_job, image, box, list(refine.get("positive", [])), list(refine.get("negative", [])),
                     self.predictor(), self.session,
                     on_return=lambda mask: self._finished(file_name, box, target, mask),
                     on_error=lambda exc: self._finished(file_name, box, target, None, exc))

    def _finished(self, file_name: str, box: tuple, target: int | None, mask: np.ndarray | None,
                  error: Exception | None = None) -> None:
        self.segmenting = False
        if error is not None:
            self.mode.show_error(f"Segmentation failed: {error}")
        elif mask is not None:
            self.apply_segment(file_name, box, target, mask)
        pending, self._pending = self._pending, None
        if pending is not None and file_name == self.mode.file_name() and self.refine is not None:
            self.run_segment(self.refine["box"], self.refine["id"])  # the clicks made meanwhile

    def apply_segment(self, file_name: str, box: tuple, target: int | None, mask: np.ndarray) -> None:
        if file_name != self.mode.file_name() or self.mode.editor is None:
            return  # the user moved on
        if not mask.any():
            self.mode.window.statusBar().showMessage("The box gave an empty mask; draw it again.", 5000)
            return
        if target is None:
            target = self.mode.add_drawn(mask, {"box": [round(float(v), 1) for v in box]})
            clicks = self.refine or {}
            self.refine = {"id": target, "box": box, "positive": list(clicks.get("positive", [])),
                           "negative": list(clicks.get("negative", []))}
        else:
            self.mode.editor.set_mask(file_name, target, mask)
        self.mode.redraw()
        self.segmented.emit(target if target is not None else -1)

    def box_drawn(self, x0: float, y0: float, x1: float, y1: float) -> None:
        if self.segmenting:
            self.mode.window.statusBar().showMessage("Still segmenting the last box; draw again in a moment.", 4000)
            return
        self.refine = {"id": None, "box": (x0, y0, x1, y1), "positive": [], "negative": []}
        self.run_segment((x0, y0, x1, y1), None)

    def point_clicked(self, x: float, y: float, positive: bool) -> None:
        """Box tool: left click adds (right click removes) a region of the instance being drawn, or of the
        selected annotation (its box is then the annotation's)."""
        key = "positive" if positive else "negative"
        if self.refine is not None and self.refine.get("id") is None and self.segmenting:
            self.refine[key].append((x, y))  # the box is still being segmented: its result takes the click
            self._pending = (self.refine["box"], None)
            return
        if self.refine is None or self.refine.get("id") != self.mode.selected:
            if self.mode.selected is None or self.mode.editor is None:
                return
            x0, y0, x1, y1 = self.mode.editor.annotation(self.mode.file_name(), self.mode.selected).bbox_xyxy()
            self.refine = {"id": self.mode.selected, "box": (x0, y0, x1, y1), "positive": [], "negative": []}
            self.session = InteractiveSession()  # another box: nothing cached applies
        self.refine[key].append((x, y))
        self.run_segment(self.refine["box"], self.refine["id"])

    def stroke_start(self, x: float, y: float) -> None:
        size = self.mode.image_size()
        if size is None or self.mode._ensure_editor() is None:
            return
        erase = self.mode.tools.tool == "eraser"
        if erase and self.mode.selected is None:
            self.mode.window.statusBar().showMessage("Select the annotation to erase from first.", 5000)
            return
        if self.mode.selected is not None:
            ann = self.mode.editor.annotation(self.mode.file_name(), self.mode.selected)
            mask = np.ascontiguousarray(ann.mask(), dtype=np.uint8)  # cv2 draws into C-ordered arrays only
            name = self.mode.editor.aset.category_name(ann.category_id)
        else:
            mask, name = np.zeros((size[1], size[0]), np.uint8), self.mode.current_class()
        colour = class_color(self.mode.colour_label(name, 0))
        self._stroke = {"mask": mask, "target": self.mode.selected, "erase": erase, "last": (x, y), "colour": colour,
                        "changed": False}
        self.stroke_move(x, y)

    def stroke_move(self, x: float, y: float) -> None:
        stroke = self._stroke
        if stroke is None:
            return
        mask, (lx, ly), r = stroke["mask"], stroke["last"], int(round(self.mode.tools.radius))
        cv2.line(mask, (int(round(lx)), int(round(ly))), (int(round(x)), int(round(y))), 0 if stroke["erase"] else 1,
                 thickness=2 * r + 1, lineType=cv2.LINE_8)
        cv2.circle(mask, (int(round(x)), int(round(y))), r, 0 if stroke["erase"] else 1, thickness=-1)
        stroke["last"], stroke["changed"] = (x, y), True
        h, w = mask.shape
        x0, x1 = max(0, int(min(lx, x)) - r - 1), min(w, int(max(lx, x)) + r + 2)
        y0, y1 = max(0, int(min(ly, y)) - r - 1), min(h, int(max(ly, y)) + r + 2)
        if x0 < x1 and y0 < y1:  # only the stroke's square is painted again
            self.mode.layer.paint_region(stroke["target"], mask, x0, y0, x1, y1, stroke["colour"])

    def stroke_end(self) -> None:
        stroke, self._stroke = self._stroke, None
        if stroke is None or not stroke["changed"] or self.mode.editor is None:
            return
        if stroke["target"] is None:
            self.mode.add_drawn(stroke["mask"].astype(bool))
        elif stroke["mask"].any():
            self.mode.editor.set_mask(self.mode.file_name(), stroke["target"], stroke["mask"].astype(bool))
        else:
            self.mode.editor.delete(self.mode.file_name(), stroke["target"])  # erased away entirely
        self.mode.redraw()

    def polygon_closed(self, points: list[tuple[float, float]]) -> None:
        size = self.mode.image_size()
        if size is not None:
            self.mode.add_drawn(polygon_mask(points, size[1], size[0]).astype(bool))
