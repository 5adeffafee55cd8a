"""The "Annotations" layer: the current image's annotations as an RGBA image item and captioned boxes.

Masks are rasterized once per annotation (``core.data.overlay`` crops, keyed by the RLE's counts, so an
edit re-decodes only the instance it changed). During a brush stroke only the stroke's square is
re-painted (:meth:`AnnotationLayer.paint_region`), never the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pyqtgraph as pg

from fashionviewer.core.data.overlay import (
    InstanceRaster,
    PredictionRasters,
    class_color,
    composite,
)
from fashionviewer.qt.canvas import BoxesItem, BoxSpec, ImageCanvas

OPACITY = 0.55


@dataclass
class _Shown:
    """What ``core.data.overlay`` needs of an instance: colour label, paint order (score), mask, box."""

    label: int
    score: float
    rle: dict
    box: tuple[float, float, float, float]
    class_name: str

    def mask(self) -> np.ndarray:
        from fashionviewer.core.data.masks import decode_mask

        return decode_mask(self.rle).astype(bool)


class AnnotationLayer:
    """Draws a list of annotations on the canvas (its own image item above the predictions, its own boxes)."""

    def __init__(self, canvas: ImageCanvas, colour_label: Callable[[str, int], int]) -> None:
        self.canvas = canvas
        # (class name, category id) -> the colour index predictions use
        self.colour_label = colour_label
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setZValue(2.5)  # above the prediction overlay, below all boxes
        self.boxes = BoxesItem()
        self.boxes.setZValue(3.5)
        canvas.view.addItem(self.item)
        canvas.view.addItem(self.boxes)
        # annotation id -> (rle counts, raster)
        self._rasters: dict[int, tuple[str, InstanceRaster]] = {}
        self.rgba: np.ndarray | None = None
        self.ids: list[int] = []
        self.shown: list[_Shown] = []
        self.highlight: int | None = None

    def clear(self) -> None:
        self.item.clear()
        self.boxes.set_specs([], 1, 1)
        self.rgba, self.ids, self.shown = None, [], []

    def forget(self) -> None:
        """Drop cached rasters (another image or folder)."""
        self._rasters.clear()

    def render(
        self,
        annotations: Sequence[Any],
        names: Callable[[int], str],
        height: int,
        width: int,
        highlight: int | None = None,
        captions: bool = True,
    ) -> None:
        """Draw ``annotations`` (``core.data.annotations.Annotation``); ``highlight``: the selected id."""
        self.ids = [a.id for a in annotations]
        self.shown = []
        for order, ann in enumerate(annotations):
            name = names(ann.category_id)
            self.shown.append(
                _Shown(
                    self.colour_label(name, ann.category_id),
                    float(order),
                    ann.rle,
                    ann.bbox_xyxy(),
                    name,
                )
            )
        self.highlight = highlight
        rasters = PredictionRasters(self.shown, height, width)
        for k, ann in enumerate(annotations):  # reuse crops of unchanged masks
            counts = str(ann.rle.get("counts"))
            cached = self._rasters.get(ann.id)
            if cached is None or cached[0] != counts:
                cached = self._rasters[ann.id] = (counts, rasters[k])
            rasters._rasters[k] = cached[1]
        self.rasters = rasters
        index = self.ids.index(highlight) if highlight in self.ids else None
        self.rgba = composite(
            rasters, list(range(len(self.shown))), OPACITY, True, True, highlight=index
        )
        # uint8 RGBA without levels is shown as it is (a QImage over the array); levels of (0, 255) made
        # pyqtgraph rescale every pixel on the GUI thread at each render, brush strokes included.
        self.item.setImage(self.rgba, levels=None)
        specs = [
            BoxSpec(
                s.box,
                class_color(s.label),
                f"✎ {s.class_name}" if captions else "",
                selected=ann_id == highlight,
                show_box=ann_id == highlight,
            )
            for ann_id, s in zip(self.ids, self.shown, strict=False)
        ]
        self.boxes.set_specs(specs, width, height)

    def annotation_at(self, x: int, y: int) -> int | None:
        """The id of the top-most annotation covering (x, y)."""
        if not self.shown:
            return None
        index = self.rasters.instance_at(x, y, list(range(len(self.shown))))
        return self.ids[index] if index is not None else None

    def paint_region(
        self,
        annotation_id: int | None,
        mask: np.ndarray,
        x0: int,
        y0: int,
        x1: int,
        y1: int,
        colour: tuple[int, int, int],
    ) -> None:
        """Re-paint the square [x0:x1, y0:y1] with ``mask`` (full size) standing in for ``annotation_id``'s
        mask (None: a new instance on top): the brush's live preview."""
        if self.rgba is None:
            return
        alpha = int(round(255 * OPACITY))
        region = self.rgba[y0:y1, x0:x1]
        region[...] = 0
        for ann_id, shown in zip(self.ids, self.shown, strict=False):
            if ann_id == annotation_id:
                self._paint(region, mask[y0:y1, x0:x1], colour, alpha)
            else:
                raster = self.rasters[self.ids.index(ann_id)]
                self._paint(region, _crop(raster, x0, y0, x1, y1), class_color(shown.label), alpha)
        if annotation_id is None:
            self._paint(region, mask[y0:y1, x0:x1], colour, alpha)
        self.item.updateImage()

    @staticmethod
    def _paint(
        region: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], alpha: int
    ) -> None:
        if mask.any():
            region[mask] = (*colour, alpha)


def _crop(raster: InstanceRaster, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """``raster``'s mask over the image square [x0:x1, y0:y1] (False outside the raster's crop)."""
    out = np.zeros((y1 - y0, x1 - x0), bool)
    h, w = raster.mask.shape
    ax0, ay0 = max(x0, raster.x0), max(y0, raster.y0)
    ax1, ay1 = min(x1, raster.x0 + w), min(y1, raster.y0 + h)
    if ax0 < ax1 and ay0 < ay1:
        out[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0] = raster.mask[
            ay0 - raster.y0 : ay1 - raster.y0, ax0 - raster.x0 : ax1 - raster.x0
        ]
    return out


__all__ = ["AnnotationLayer"]
