"""The annotation tools as plain data (no Qt): the ``Tool`` list, refinement clicks, brush strokes and their
rasterisation (``stamp_segment``). ``annotation_state.AnnotationState`` holds them and applies them through its base
``annotation_drawing.InstanceDrawing``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Sequence

import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
Square = tuple[int, int, int, int]  # x0, y0, x1, y1: the pixels [y0:y1, x0:x1]
TOGGLE_KEY = "Ctrl+A"
MIN_RADIUS = 1.0


class Tool(str, Enum):
    """The drawing tools in menu and toolbar order: value, menu text, shortcuts, toolbar text.

    This is the one list of tools: a new tool is one entry here plus its mouse handler in
    ``qt/annotation/tools.py`` and its edit in ``qt/annotation/drawing.py``."""

    SELECT = ("select", "Select / Pan Tool", ("Escape",), "Select")
    BOX = ("box", "Box Tool (then click + / right-click −)", ("B",), "Box")
    CLICK = ("click", "Click Tool (click an object; then click + / right-click −)", ("C",), "Click")
    POLYGON = ("polygon", "Polygon Tool", ("P",), "Polygon")
    BRUSH = ("brush", "Brush", ("R",), "Brush")
    ERASER = ("eraser", "Eraser", ("E",), "Eraser")

    def __new__(cls, value: str, text: str, keys: tuple[str, ...], label: str) -> Tool:
        member = str.__new__(cls, value)
        member._value_ = value
        member.text, member.keys, member.label = text, keys, label
        return member

    @property
    def paints(self) -> bool:
        """A brush-like tool: strokes into a working mask, shows the brush circle."""
        return self in (Tool.BRUSH, Tool.ERASER)


@dataclass(frozen=True)
class Click:
    x: float
    y: float
    positive: bool  # left click: part of the instance; right click: not


@dataclass
class Refinement:
    """The instance being refined by clicks: its annotation id (None while its first box is segmented), its box
    (None: clicks only, the click tool) and every click so far."""

    target: int | None
    box: Box | None
    clicks: list[Click] = field(default_factory=list)

    def points(self, positive: bool) -> list[tuple[float, float]]:
        return [(c.x, c.y) for c in self.clicks if c.positive == positive]


@dataclass
class Stroke:
    """A brush or eraser stroke being painted into a working mask (committed as one edit when it ends)."""

    mask: np.ndarray  # uint8, the whole image: the target's mask with the stroke so far
    target: int | None  # the annotation painted; None: a new instance
    erase: bool
    class_name: str
    last: tuple[float, float]
    changed: bool = False


def stamp_segment(
    mask: np.ndarray,
    start: tuple[float, float],
    end: tuple[float, float],
    radius: float,
    value: int | bool,
) -> Square | None:
    """Set every pixel within ``radius`` of the segment ``start``-``end`` to ``value`` (a round-capped line; one
    disc when start == end). Pixel (row y, column x) has its centre at (x, y). Only the segment's bounding square
    is computed; returns it, or None when it lies outside the mask."""
    h, w = mask.shape
    (ax, ay), (bx, by) = (float(start[0]), float(start[1])), (float(end[0]), float(end[1]))
    r = max(float(radius), 0.5)
    x0, x1 = max(0, int(np.floor(min(ax, bx) - r))), min(w, int(np.ceil(max(ax, bx) + r)) + 1)
    y0, y1 = max(0, int(np.floor(min(ay, by) - r))), min(h, int(np.ceil(max(ay, by) + r)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    ys, xs = np.ogrid[y0:y1, x0:x1]
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / length2, 0.0, 1.0) if length2 > 0 else 0.0
    inside = (xs - (ax + t * dx)) ** 2 + (ys - (ay + t * dy)) ** 2 <= r * r
    mask[y0:y1, x0:x1][inside] = value
    return x0, y0, x1, y1


def shortcut_rows(commands: Sequence[tuple[str, Sequence[str]]] = ()) -> list[tuple[str, str]]:
    """(what, keys) for the shortcut help: the mode's toggle, every tool, then ``commands`` (text, keys)."""
    rows = [("Annotation mode", TOGGLE_KEY)] + [(t.text, " / ".join(t.keys)) for t in Tool]
    return rows + [(text, " / ".join(keys)) for text, keys in commands]


__all__ = [
    "Box",
    "Click",
    "Refinement",
    "Square",
    "Stroke",
    "TOGGLE_KEY",
    "Tool",
    "shortcut_rows",
    "stamp_segment",
]
