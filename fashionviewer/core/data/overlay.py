"""Instance overlays composited with numpy: shared by the viewer's canvas and the PNG exports.

Each instance's mask is decoded once into an ``InstanceRaster`` (the mask and its outline cropped
to the mask's bounding box), so re-filtering by score or class and redrawing only paints crops;
nothing is decoded again. Colours are stable per class id (``class_color``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

# 20 well-separated colours (Tableau-20 order, saturated first), indexed by class id so the same
# class is the same colour in every image, in the legend and in exported palettes.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
)


def class_color(label: int) -> tuple[int, int, int]:
    """Stable RGB colour of category id ``label`` (1-based; 0 is background: black)."""
    if label <= 0:
        return (0, 0, 0)
    return PALETTE[(label - 1) % len(PALETTE)]


def palette_bytes(max_label: int = 255) -> list[int]:
    """A flat 256-entry RGB palette (for "P"-mode class-index PNGs): entry k is ``class_color(k)``."""
    flat: list[int] = []
    for k in range(256):
        flat.extend(class_color(k) if k <= max_label else (0, 0, 0))
    return flat


@dataclass
class InstanceRaster:
    """One instance's decoded mask and outline, cropped to the mask's bounding box."""

    x0: int
    y0: int
    mask: np.ndarray  # bool h×w
    outline: np.ndarray  # bool h×w, the mask's 1-px inner border
    _edge: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def edge_pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the outline in image coordinates: outlines are sparse, so paint them by index."""
        if self._edge is None:
            # cv2.findNonZero: the same pixels in the same (row-major) order as np.nonzero, ~7x faster
            points = (
                cv2.findNonZero(np.ascontiguousarray(self.outline, np.uint8))
                if self.outline.size
                else None
            )
            points = (
                np.zeros((0, 2), np.intp)
                if points is None
                else points.reshape(-1, 2).astype(np.intp)
            )
            self._edge = (points[:, 1] + self.y0, points[:, 0] + self.x0)
        return self._edge

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    def full_mask(self, height: int, width: int) -> np.ndarray:
        """The mask pasted into a full uint8 0/1 image."""
        full = np.zeros((height, width), np.uint8)
        h, w = self.mask.shape
        full[self.y0 : self.y0 + h, self.x0 : self.x0 + w] = self.mask
        return full

    def contains(self, x: int, y: int) -> bool:
        h, w = self.mask.shape
        return (
            0 <= y - self.y0 < h
            and 0 <= x - self.x0 < w
            and bool(self.mask[y - self.y0, x - self.x0])
        )


def rasterize_mask(mask: np.ndarray) -> InstanceRaster:
    """Crop a full-size 0/1 mask to its bounding box and compute its outline."""
    mask = np.asarray(mask).astype(bool, copy=False)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        empty = np.zeros((0, 0), bool)
        return InstanceRaster(0, 0, empty, empty)
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return _raster_of_crop(np.ascontiguousarray(mask[y0:y1, x0:x1]), x0, y0)


def _raster_of_crop(crop: np.ndarray, x0: int, y0: int) -> InstanceRaster:
    # Pad so pixels on the crop's border count as edge pixels.
    # bool and uint8 0/1 share their bytes: views, not casts (casting a 48-megapixel crop holds
    # the GIL long enough to stall the GUI thread).
    padded = np.pad(crop.astype(bool, copy=False), 1)
    eroded = cv2.erode(padded.view(np.uint8), np.ones((3, 3), np.uint8))[1:-1, 1:-1].view(bool)
    return InstanceRaster(x0, y0, crop, crop & ~eroded)


def scaled_rasters(rasters: "PredictionRasters", height: int, width: int) -> "PredictionRasters":
    """The same instances' masks resampled (nearest pixel) onto a height×width picture of the same
    photo, e.g. the viewer's display level of a huge photo: compositing then costs display pixels,
    not the photo's. Indices stay the same; only each mask's crop is resampled."""
    out = PredictionRasters(rasters.instances, height, width)
    sy, sx = height / max(rasters.height, 1), width / max(rasters.width, 1)
    for i in range(len(rasters)):
        r = rasters[i]
        crop_h, crop_w = r.mask.shape
        if crop_h == 0 or crop_w == 0:
            out._rasters[i] = r
            continue
        y0, x0 = min(int(r.y0 * sy), height - 1), min(int(r.x0 * sx), width - 1)
        y1 = min(max(math.ceil((r.y0 + crop_h) * sy), y0 + 1), height)
        x1 = min(max(math.ceil((r.x0 + crop_w) * sx), x0 + 1), width)
        small = cv2.resize(
            r.mask.view(np.uint8), (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST
        )
        out._rasters[i] = _raster_of_crop(small.astype(bool), x0, y0)
    return out


def rle_counts(rle: dict) -> np.ndarray:
    """The run lengths of a COCO RLE (compressed string or plain list), as pycocotools' rleFrString reads
    them: vectorised, so even a 48-megapixel mask's runs never hold the GIL for long."""
    counts = rle["counts"]
    if isinstance(counts, list):
        return np.asarray(counts, np.int64)
    chars = np.frombuffer(
        counts.encode("ascii") if isinstance(counts, str) else bytes(counts), np.uint8
    )
    chars = chars.astype(np.int64) - 48
    if chars.size == 0:
        return np.zeros(0, np.int64)
    ends = np.flatnonzero((chars & 0x20) == 0)  # the last character of each number
    starts = np.concatenate(([0], ends[:-1] + 1))
    shift = 5 * (np.arange(chars.size) - np.repeat(starts, ends - starts + 1))
    values = np.add.reduceat((chars & 0x1F) << shift, starts)
    negative = (chars[ends] & 0x10) != 0
    values[negative] -= np.int64(1) << (shift[ends][negative] + 5)  # sign extension
    # from the third count on, each is stored as a difference
    values[1::2] = np.cumsum(values[1::2])
    values[2::2] = np.cumsum(values[2::2])
    return values


def raster_from_rle(rle: dict) -> InstanceRaster:
    """The raster of a COCO RLE built straight from its runs, only over the mask's bounding box: the same
    pixels as ``rasterize_mask(decode_mask(rle))`` without a full-size mask (pycocotools' decode of a
    48-megapixel mask holds the GIL long enough to stall the GUI thread while a worker decodes;
    measured by ``benchmarks/viewer_responsiveness.py --case parts``)."""
    height, width = (int(v) for v in rle["size"])
    ends = np.cumsum(rle_counts(rle))
    starts = np.concatenate(([0], ends[:-1]))
    on = (np.arange(ends.size) % 2 == 1) & (ends > starts)  # runs alternate: background first
    first, last = starts[on], ends[on] - 1  # column-major pixel indices: x * height + y
    if first.size == 0 or height == 0:
        empty = np.zeros((0, 0), bool)
        return InstanceRaster(0, 0, empty, empty)
    col_a, row_a, col_b, row_b = first // height, first % height, last // height, last % height
    spans = col_b > col_a
    x0, x1 = int(col_a.min()), int(col_b.max()) + 1
    y0 = 0 if spans.any() else int(row_a.min())
    y1 = height if spans.any() else int(row_b.max()) + 1
    crop = np.zeros((y1 - y0, x1 - x0), bool)
    # A run is a piece of its first column, whole columns, then a piece of its last one.
    for ca, ra, cb, rb in zip(
        (col_a - x0).tolist(),
        (row_a - y0).tolist(),
        (col_b - x0).tolist(),
        (row_b - y0).tolist(),
        strict=False,
    ):
        if ca == cb:
            crop[ra : rb + 1, ca] = True
            continue
        crop[ra:, ca] = True
        crop[:, ca + 1 : cb] = True
        crop[: rb + 1, cb] = True
    if spans.any():  # a run crossing columns made the crop full height: cut it to the mask's rows
        rows = np.flatnonzero(crop.any(axis=1))
        crop, y0 = crop[rows[0] : rows[-1] + 1], y0 + int(rows[0])
    cols = np.flatnonzero(crop.any(axis=0))
    crop, x0 = crop[:, cols[0] : cols[-1] + 1], x0 + int(cols[0])
    return _raster_of_crop(np.ascontiguousarray(crop), x0, y0)


def rasterize_instance(instance: Any, height: int, width: int) -> InstanceRaster:
    """Decode ``instance``'s RLE once; an instance without a mask is drawn as its box."""
    if getattr(instance, "rle", None) is not None:
        return raster_from_rle(instance.rle)
    x0, y0, x1, y1 = (int(round(v)) for v in instance.box)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(width, max(x1, x0 + 1)), min(height, max(y1, y0 + 1))
    full = np.zeros((height, width), bool)
    full[y0:y1, x0:x1] = True
    return rasterize_mask(full)


class PredictionRasters:
    """Lazily decoded rasters of one prediction's instances (index = position in ``instances``)."""

    def __init__(self, instances: Sequence[Any], height: int, width: int) -> None:
        self.instances = list(instances)
        self.height, self.width = height, width
        self._rasters: list[InstanceRaster | None] = [None] * len(self.instances)

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, index: int) -> InstanceRaster:
        raster = self._rasters[index]
        if raster is None:
            raster = self._rasters[index] = rasterize_instance(
                self.instances[index], self.height, self.width
            )
        return raster

    def decode_all(self) -> "PredictionRasters":
        """Decode every mask and its outline's pixels now (in a worker: the GUI thread only paints them)."""
        for i in range(len(self)):
            _ = self[i].edge_pixels  # the property computes and keeps them
        return self

    def paint_order(self, indices: Sequence[int]) -> list[int]:
        """Lowest score first, so the most confident instance is painted on top."""
        return sorted(indices, key=lambda i: float(self.instances[i].score))

    def index_map(self, indices: Sequence[int], dtype: Any = np.int32) -> np.ndarray:
        """H×W map: 0 background, ``k + 1`` where instance ``indices[k]`` is on top."""
        order = self.paint_order(indices)
        top = _paint_map(self, order, (self.height, self.width), np.int64)
        rank = {idx: k for k, idx in enumerate(indices, start=1)}
        return np.array([0] + [rank[i] for i in order], np.int64)[top].astype(dtype)

    def instance_at(self, x: int, y: int, indices: Sequence[int]) -> int | None:
        """The top-most of ``indices`` whose mask covers pixel (x, y)."""
        for idx in reversed(self.paint_order(indices)):
            if self[idx].contains(x, y):
                return idx
        return None


def composite(
    rasters: PredictionRasters,
    indices: Sequence[int],
    opacity: float = 0.5,
    masks: bool = True,
    outlines: bool = True,
    highlight: int | None = None,
) -> np.ndarray:
    """An RGBA uint8 H×W×4 layer with the masks of ``indices`` (class colours) and their outlines.

    Each instance's crop is painted into a one-channel map of "which instance is on top here"
    (``np.copyto`` with a mask: no index arrays), then one table look-up turns the map into colours;
    that is several times faster than painting four channels per instance.
    """
    h, w = rasters.height, rasters.width
    order = rasters.paint_order(indices)
    alpha = int(round(255 * min(max(opacity, 0.0), 1.0)))
    colours = np.array([class_color(rasters.instances[i].label) for i in order], np.uint8).reshape(
        -1, 3
    )
    dtype = np.uint8 if len(order) < 255 else np.uint16
    rgba = np.zeros((h, w, 4), np.uint8)
    if masks and alpha > 0 and order:
        top = _paint_map(rasters, order, (h, w), dtype)
        lut = np.zeros((len(order) + 1, 4), np.uint8)
        lut[1:, :3], lut[1:, 3] = colours, alpha
        # Gather 4 bytes per pixel as one uint32: one take instead of a 4-channel fancy index.
        rgba = np.take(lut.view(np.uint32).ravel(), top).view(np.uint8).reshape(h, w, 4)
    flat = rgba.reshape(-1, 4)
    for idx in order if outlines else [i for i in order if i == highlight]:
        ys, xs = rasters[idx].edge_pixels
        colour = (255, 255, 255) if idx == highlight else class_color(rasters.instances[idx].label)
        flat[ys * w + xs] = (*colour, 255)
    return rgba


def _paint_map(
    rasters: PredictionRasters, order: Sequence[int], shape: tuple[int, int], dtype: Any
) -> np.ndarray:
    """H×W map: k where the k-th (1-based) of ``order`` is the last painted mask, 0 elsewhere."""
    out = np.zeros(shape, dtype)
    for k, idx in enumerate(order, start=1):
        r = rasters[idx]
        crop_h, crop_w = r.mask.shape
        np.copyto(
            out[r.y0 : r.y0 + crop_h, r.x0 : r.x0 + crop_w], k, where=r.mask, casting="unsafe"
        )
    return out


def blend(image: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """Alpha-blend an RGBA layer onto an RGB uint8 image."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    out = image.astype(np.float32) * (1.0 - alpha) + rgba[..., :3].astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def draw_boxes_and_labels(
    image: np.ndarray,
    instances: Sequence[Any],
    indices: Sequence[int],
    labels: bool = True,
    scores: bool = True,
) -> np.ndarray:
    """Boxes and "class score" captions burnt into an RGB image (for the exported overlay PNG)."""
    out = np.ascontiguousarray(image.copy())
    scale = max(0.4, min(out.shape[:2]) / 900)
    thickness = max(1, int(round(scale * 2)))
    for idx in indices:
        inst = instances[idx]
        colour = class_color(inst.label)
        x0, y0, x1, y1 = (int(round(v)) for v in inst.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thickness)
        text = caption(inst, labels, scores)
        if text:
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            ty = max(th + base, y0)
            cv2.rectangle(out, (x0, ty - th - base), (x0 + tw + 2, ty), colour, -1)
            cv2.putText(
                out,
                text,
                (x0 + 1, ty - base),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
    return out


def caption(instance: Any, labels: bool = True, scores: bool = True) -> str:
    """The text shown beside an instance: class name and/or score."""
    parts = []
    if labels:
        parts.append(str(instance.class_name))
    if scores:
        parts.append(f"{float(instance.score):.2f}")
    return " ".join(parts)
