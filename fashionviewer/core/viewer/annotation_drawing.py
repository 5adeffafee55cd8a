"""Drawing one instance while annotating (no Qt): a box or clicks segmented and refined, a brush or eraser stroke.

``InstanceDrawing`` is the part of ``annotation_state.AnnotationState`` (which inherits it) that holds the instance
being refined by clicks (``refine``: a ``Refinement``), the image's ``InteractiveSession`` (its features and last
result, reused between clicks) and the stroke being painted (``stroke``: a ``Stroke``), and turns boxes, clicks and
strokes into edits of the folder's ``AnnotationEditor``. What it uses of the state is declared on the class.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from fashionviewer.core.inference.interactive import InteractiveSession
from fashionviewer.core.viewer.annotating import AnnotationEditor
from fashionviewer.core.viewer.annotation_tools import (
    Box,
    Click,
    Refinement,
    Square,
    Stroke,
    Tool,
    stamp_segment,
)


class InstanceDrawing:
    """Box and click refinement, brush and eraser strokes (see the module docstring)."""

    # what is being drawn
    refine: Refinement | None
    interactive: InteractiveSession
    stroke: Stroke | None
    # provided by AnnotationState
    editor: AnnotationEditor | None
    selected: int | None
    tool: Tool
    radius: float
    image_size: Callable[[], tuple[int, int] | None]
    file_name: Callable[[], str | None]
    ensure_editor: Callable[[], AnnotationEditor | None]
    notify: Callable[..., None]
    add_drawn: Callable[..., int | None]

    def reset_drawing(self) -> None:
        """Nothing being drawn; a new image or folder: nothing cached between clicks applies."""
        self.refine, self.stroke = None, None
        self.interactive = InteractiveSession()

    # ----- box and click refinement ------------------------------------------------------------
    def begin_box(self, box: Box) -> Refinement:
        """A box was drawn: a new instance to segment; clicks made before its result arrives refine it."""
        self.refine = Refinement(None, tuple(float(v) for v in box))  # type: ignore[arg-type]
        return self.refine

    def add_click(
        self, x: float, y: float, positive: bool, box_pending: bool = False
    ) -> Refinement | None:
        """Box tool click: refine the instance being drawn (``box_pending``: its box is still being segmented),
        else the selected annotation within its box. Returns what to segment again, None when nothing applies."""
        click, refine = Click(float(x), float(y), bool(positive)), self.refine
        if refine is not None and refine.target is None and box_pending:
            refine.clicks.append(click)  # the box's result takes the click
            return refine
        if refine is None or refine.target != self.selected:
            if self.selected is None or self.editor is None:
                return None
            box = self.editor.annotation(self.file_name(), self.selected).bbox_xyxy()
            refine = self.refine = Refinement(self.selected, tuple(float(v) for v in box))  # type: ignore[arg-type]
            self.interactive = InteractiveSession()  # another box: nothing cached applies
        refine.clicks.append(click)
        return refine

    def click_object(
        self, x: float, y: float, positive: bool, pending: bool = False
    ) -> Refinement | None:
        """Click tool: a left click starts a new instance from that click alone (the object under it); later
        clicks refine it (left adds, right removes) while they fall within its extent grown by a half (or
        while its first result is pending); a left click beyond that starts the next object. Returns what to
        segment, None when the click applies to nothing."""
        click, refine = Click(float(x), float(y), bool(positive)), self.refine
        if (
            refine is not None
            and refine.box is None
            and (pending or not positive or self._near(refine, x, y))
        ):
            refine.clicks.append(click)
            return refine
        if not positive:
            self.notify("Left-click an object first; right clicks then remove parts of it.", 4000)
            return None
        self.refine = Refinement(None, None, [click])
        self.interactive = InteractiveSession()  # another object: nothing cached applies
        return self.refine

    def _near(self, refine: Refinement, x: float, y: float) -> bool:
        if refine.target is None or self.editor is None:
            return True
        x0, y0, x1, y1 = self.editor.annotation(self.file_name(), refine.target).bbox_xyxy()
        grow = 0.5 * max(x1 - x0, y1 - y0)
        return x0 - grow <= x <= x1 + grow and y0 - grow <= y <= y1 + grow

    def apply_segment(
        self, file_name: str, box: Box | None, target: int | None, mask: np.ndarray, class_name: str
    ) -> int | None:
        """A segmentation result: a new instance (``target`` None, of ``class_name``) or ``target``'s new mask.
        Returns the annotation id, None when it no longer applies (another image) or the mask is empty."""
        if file_name != self.file_name() or self.editor is None:
            return None  # the user moved on
        if not mask.any():
            self.notify(
                "The box gave an empty mask; draw it again."
                if box is not None
                else "The click gave an empty mask; click inside the object."
            )
            return None
        if target is None:
            clicks = list(self.refine.clicks) if self.refine is not None else []
            origin = (
                {"box": [round(float(v), 1) for v in box]}
                if box is not None
                else {"clicks": [[round(c.x, 1), round(c.y, 1), c.positive] for c in clicks]}
            )
            target = self.add_drawn(mask, class_name, origin)
            self.refine = Refinement(target, box, clicks)
        else:
            self.editor.set_mask(file_name, target, mask)
        return target

    # ----- brush and eraser strokes ------------------------------------------------------------
    def begin_stroke(self, x: float, y: float, class_name: str) -> Stroke | None:
        """Brush: paint into the selected annotation (nothing selected: a new one of ``class_name``); eraser:
        erase from the selected one. Call ``extend_stroke`` for every point, the first included."""
        size = self.image_size()
        if size is None or self.ensure_editor() is None:
            return None
        erase = self.tool is Tool.ERASER
        if erase and self.selected is None:
            self.notify("Select the annotation to erase from first.")
            return None
        if self.selected is not None:
            ann = self.editor.annotation(self.file_name(), self.selected)  # type: ignore[union-attr]
            mask = np.array(ann.mask(), dtype=np.uint8)
            class_name = self.editor.aset.category_name(ann.category_id)  # type: ignore[union-attr]
        else:
            mask = np.zeros((size[1], size[0]), np.uint8)
        self.stroke = Stroke(mask, self.selected, erase, class_name, (float(x), float(y)))
        return self.stroke

    def extend_stroke(self, x: float, y: float) -> Square | None:
        """Paint from the stroke's last point to (x, y) with the brush radius; returns the square changed."""
        stroke = self.stroke
        if stroke is None:
            return None
        r = int(round(self.radius))
        lx, ly = stroke.last
        square = stamp_segment(
            stroke.mask, (round(lx), round(ly)), (round(x), round(y)), r, 0 if stroke.erase else 1
        )
        stroke.last, stroke.changed = (float(x), float(y)), True
        return square

    def end_stroke(self) -> None:
        """Commit the stroke as one edit (an annotation erased away entirely is deleted)."""
        stroke, self.stroke = self.stroke, None
        if stroke is None or not stroke.changed or self.editor is None:
            return
        if stroke.target is None:
            self.add_drawn(stroke.mask.astype(bool), stroke.class_name)
        elif stroke.mask.any():
            self.editor.set_mask(self.file_name(), stroke.target, stroke.mask.astype(bool))
        else:
            self.editor.delete(self.file_name(), stroke.target)


__all__ = ["InstanceDrawing"]
