"""Input checks of interactive segmentation (``interactive.segment``): an RGB image, a box, clicks; bad input
raises :class:`InteractiveInputError`, one line that says which value and why."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fashionviewer.core.base.errors import FashionViewerError


class InteractiveInputError(FashionViewerError, ValueError):
    """A box, click or image that interactive segmentation cannot use (one line, says which and why)."""


def check_image(image_rgb: np.ndarray) -> np.ndarray:
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InteractiveInputError(
            f"segment expects an H×W×3 uint8 RGB image, got {image.dtype} {image.shape}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InteractiveInputError(
            f"segment got an empty image ({image.shape[1]}×{image.shape[0]})"
        )
    return image


def check_points(
    points: Sequence[tuple[float, float]], kind: str, height: int, width: int
) -> list[tuple[float, float]]:
    out = []
    for point in points:
        try:
            x, y = (float(v) for v in point)
        except (TypeError, ValueError):
            raise InteractiveInputError(f"{kind} click {point!r} is not an (x, y) pair") from None
        if not (np.isfinite(x) and np.isfinite(y)):
            raise InteractiveInputError(f"{kind} click ({x}, {y}) is not a finite point")
        if not (-0.5 <= x < width + 0.5 and -0.5 <= y < height + 0.5):
            raise InteractiveInputError(
                f"{kind} click ({x:g}, {y:g}) lies outside the {width}×{height} image"
            )
        out.append((min(max(x, 0.0), width - 0.5), min(max(y, 0.0), height - 0.5)))
    return out


def check_box(box: Sequence[float], height: int, width: int) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise InteractiveInputError(f"box {box!r} is not (x0, y0, x1, y1)") from None
    if not all(np.isfinite(v) for v in (x0, y0, x1, y1)):
        raise InteractiveInputError(f"box ({x0}, {y0}, {x1}, {y1}) has a non-finite corner")
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        raise InteractiveInputError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has zero area")
    cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
    if cx1 <= cx0 or cy1 <= cy0:
        raise InteractiveInputError(
            f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) lies outside the {width}×{height} image"
        )
    return cx0, cy0, cx1, cy1


def honour_clicks(
    mask: np.ndarray,
    positive: Sequence[tuple[float, float]],
    negative: Sequence[tuple[float, float]],
    radius: int,
) -> np.ndarray:
    """``mask`` with each click's disc (``radius`` photo pixels, at the click rounded to the nearest pixel)
    what the click says: foreground for a positive, background for a negative, so a click is never left
    contradicted by the result. Negatives are painted last: a click on a click is a removal."""
    import cv2

    height, width = mask.shape
    painted = mask.astype(np.uint8)
    for value, points in ((1, positive), (0, negative)):
        for x, y in points:
            cv2.circle(painted, (int(round(x)), int(round(y))), max(0, int(radius)), value, -1)
    # then each click's own pixel, over any other click's disc (and clipped: a click on the last half
    # pixel rounds past the edge)
    for value, points in ((1, positive), (0, negative)):
        for x, y in points:
            row = int(np.clip(round(y), 0, height - 1))
            col = int(np.clip(round(x), 0, width - 1))
            painted[row, col] = value
    return painted.astype(bool)
