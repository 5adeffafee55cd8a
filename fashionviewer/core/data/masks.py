"""Instance masks as run-length encodings.

Two encodings meet here:

* COCO RLE (pycocotools): ``{"size": [H, W], "counts": str}``, column-major, runs
  alternate background/foreground starting with background. "Compressed" RLE has
  ``counts`` as pycocotools' string; "uncompressed" RLE (COCO ``iscrowd`` files) has
  ``counts`` as a list of ints. Every function here returns compressed RLE with a
  ``str`` counts, so results are JSON-ready.
* The iMaterialist / Kaggle ``EncodedPixels`` string: space-separated ``start length``
  pairs, starts 1-indexed, pixels numbered column-major (top-to-bottom, then
  left-to-right). Malformed strings raise DataError with a message naming what is
  wrong; callers prefix the file, row and field.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from fashionviewer.core.base.errors import DataError

__all__ = [
    "encode_mask",
    "encode_masks",
    "decode_mask",
    "decode_masks",
    "mask_area",
    "mask_bbox",
    "polygons_to_rle",
    "uncompressed_to_rle",
    "segmentation_to_rle",
    "kaggle_rle_encode",
    "kaggle_rle_decode",
    "kaggle_rle_to_coco",
    "coco_to_kaggle_rle",
    "polygon_mask",
    "disc_mask",
]

_KAGGLE_RE = re.compile(r"\s*[0-9]+(?:\s+[0-9]+)*\s*")


def _jsonable(rle: dict) -> dict:
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": counts}


def _for_pycocotools(rle: dict) -> dict:
    """Compressed RLE with bytes counts (what pycocotools' C API wants)."""
    try:
        counts = rle["counts"]
        size = rle["size"]
    except (KeyError, TypeError) as exc:
        raise DataError(f"RLE needs 'size' and 'counts' (got {_describe(rle)})") from exc
    if isinstance(counts, list):
        return uncompressed_to_rle(rle, as_bytes=True)
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    if not isinstance(counts, bytes):
        raise DataError(
            f"RLE counts must be a string or a list of ints (got {type(counts).__name__})"
        )
    return {"size": [int(size[0]), int(size[1])], "counts": counts}


def _describe(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 60 else text[:57] + "..."


def encode_mask(mask: np.ndarray) -> dict:
    """COCO compressed RLE ``{"size": [H, W], "counts": str}`` of a 2-D mask (nonzero = inside)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode_mask expects an H×W mask, got shape {mask.shape}")
    if mask.size >= LARGE_MASK_PIXELS:
        return _encode_large(mask)
    return _jsonable(mask_utils.encode(np.asfortranarray(mask != 0, dtype=np.uint8)))


# From here on encode_mask runs in numpy: pycocotools holds the GIL for the whole encode (45 ms on a
# 48-megapixel mask, a stall for the viewer's GUI thread while a worker encodes predictions).
LARGE_MASK_PIXELS = 1_000_000


def _encode_large(mask: np.ndarray) -> dict:
    """pycocotools' compressed RLE of ``mask``, the same string, from numpy operations that let
    other threads run (only a few short steps per run of pixels hold the GIL)."""
    height, width = mask.shape
    inside = (mask != 0).view(np.uint8)
    # OpenCV's transpose: 7x faster than numpy's strided copy, and without the GIL
    column_major = cv2.transpose(np.ascontiguousarray(inside)).reshape(-1)
    starts = np.flatnonzero(column_major[1:] != column_major[:-1]) + 1
    bounds = np.concatenate(([0], starts, [column_major.size])).astype(np.int64)
    counts = np.diff(bounds)
    if column_major[0]:  # runs begin with background
        counts = np.concatenate(([0], counts))
    return {"size": [int(height), int(width)], "counts": _counts_string(counts)}


def _counts_string(counts: np.ndarray) -> str:
    """pycocotools' rleToString: from the fourth run on, each count less the one two runs before it;
    each number in 5-bit groups, least significant first, 0x20 set while more follow, plus 48."""
    values = counts.astype(np.int64)
    values[3:] -= counts[1:-2]  # pycocotools starts at i > 2, not i >= 2
    groups, emitted = [], []
    going = np.ones(values.size, dtype=bool)
    for _ in range(8):  # 40 bits: more than any count of a mask that fits in memory
        chunk = values & 0x1F
        values = values >> 5
        more = np.where(chunk & 0x10, values != -1, values != 0)
        groups.append((chunk | np.where(more, 0x20, 0)) + 48)
        emitted.append(going)
        going = going & more
    if going.any():
        raise ValueError("RLE count too large to encode")
    chars = np.stack(groups, axis=1)[np.stack(emitted, axis=1)]
    return chars.astype(np.uint8).tobytes().decode("ascii")


def encode_masks(masks: np.ndarray) -> list[dict]:
    """Encode N×H×W masks in one pycocotools call (faster than N encode_mask calls)."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"encode_masks expects N×H×W masks, got shape {masks.shape}")
    if masks.shape[0] == 0:
        return []
    # pycocotools wants H×W×N in Fortran order.
    stacked = np.asfortranarray((masks != 0).transpose(1, 2, 0), dtype=np.uint8)
    return [_jsonable(r) for r in mask_utils.encode(stacked)]


def decode_mask(rle: dict) -> np.ndarray:
    """H×W uint8 (0/1) mask from compressed or uncompressed COCO RLE."""
    return mask_utils.decode(_for_pycocotools(rle)).astype(np.uint8, copy=False)


def decode_masks(rles: Sequence[dict], height: int, width: int) -> np.ndarray:
    """N×H×W uint8 masks (an empty 0×H×W array when ``rles`` is empty)."""
    if not rles:
        return np.zeros((0, height, width), dtype=np.uint8)
    stacked = mask_utils.decode([_for_pycocotools(r) for r in rles])  # H×W×N
    return np.ascontiguousarray(stacked.transpose(2, 0, 1), dtype=np.uint8)


def mask_area(rle: dict) -> int:
    """Number of foreground pixels, computed on the RLE (no decode)."""
    return int(mask_utils.area(_for_pycocotools(rle)))


def mask_bbox(rle: dict) -> list[float]:
    """Tight box ``[x, y, w, h]`` of the foreground, computed on the RLE; zeros when empty."""
    return [float(v) for v in mask_utils.toBbox(_for_pycocotools(rle))]


def polygons_to_rle(polygons: Sequence[Sequence[float]], height: int, width: int) -> dict:
    """Merge COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` into one compressed RLE.

    Polygons with fewer than 3 points are dropped: pycocotools would read a
    4-number list as a box. An empty result is an all-zero mask.
    """
    valid = []
    for poly in polygons:
        coords = [float(v) for v in poly]
        if len(coords) >= 6 and len(coords) % 2 == 0:
            valid.append(coords)
    if not valid:
        return encode_mask(np.zeros((height, width), dtype=np.uint8))
    rles = mask_utils.frPyObjects(valid, int(height), int(width))
    return _jsonable(mask_utils.merge(rles))


def uncompressed_to_rle(rle: dict, as_bytes: bool = False) -> dict:
    """Compress an uncompressed COCO RLE (``counts`` a list of run lengths)."""
    height, width = (int(v) for v in rle["size"])
    counts = [int(c) for c in rle["counts"]]
    if any(c < 0 for c in counts):
        raise DataError("uncompressed RLE has negative counts")
    if sum(counts) != height * width:
        raise DataError(
            f"uncompressed RLE counts sum to {sum(counts)}, expected {height}*{width}={height * width}"
        )
    compressed = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return compressed if as_bytes else _jsonable(compressed)


def segmentation_to_rle(segmentation: Any, height: int, width: int) -> dict:
    """Compressed RLE from any COCO ``segmentation``: polygons, uncompressed or compressed RLE."""
    if isinstance(segmentation, list):
        if segmentation and not isinstance(segmentation[0], (list, tuple)):
            raise DataError("polygon segmentation must be a list of [x1, y1, x2, y2, ...] lists")
        return polygons_to_rle(segmentation, height, width)
    if isinstance(segmentation, dict):
        if "counts" not in segmentation or "size" not in segmentation:
            raise DataError("RLE segmentation needs 'size' and 'counts'")
        size = [int(v) for v in segmentation["size"]]
        if size != [int(height), int(width)]:
            raise DataError(f"RLE size {size} does not match the image size [{height}, {width}]")
        if isinstance(segmentation["counts"], list):
            return uncompressed_to_rle(segmentation)
        return _jsonable(_for_pycocotools(segmentation))
    raise DataError(
        f"segmentation must be a polygon list or an RLE dict (got {type(segmentation).__name__})"
    )


# --------------------------------------------------------------------------- Kaggle


def _parse_kaggle(encoded: str, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated 0-based run starts and (exclusive) ends, touching runs merged."""
    if height <= 0 or width <= 0:
        raise DataError(f"image size {height}x{width} must be positive")
    if not isinstance(encoded, str):
        raise DataError(f"expected a string of 'start length' pairs, got {type(encoded).__name__}")
    if not encoded.strip():
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if not _KAGGLE_RE.fullmatch(encoded):
        bad = next((t for t in encoded.split() if not t.isdigit()), encoded.strip()[:20])
        raise DataError(
            f"{bad!r} is not a non-negative integer; expected space-separated 'start length' pairs"
        )
    values = np.array(encoded.split(), dtype=np.int64)
    if values.size % 2:
        raise DataError(f"odd number of values ({values.size}); expected 'start length' pairs")
    starts = values[0::2] - 1
    lengths = values[1::2]
    total = height * width
    if (starts < 0).any():
        raise DataError("run start 0 found; starts are 1-indexed")
    if (lengths <= 0).any():
        i = int(np.flatnonzero(lengths <= 0)[0])
        raise DataError(f"run {i + 1} has length {int(lengths[i])}; lengths must be positive")
    ends = starts + lengths
    if (ends > total).any():
        i = int(np.flatnonzero(ends > total)[0])
        raise DataError(
            f"run {i + 1} ({int(starts[i]) + 1} {int(lengths[i])}) runs past the last pixel "
            f"{total} of a {height}x{width} image"
        )
    if starts.size > 1 and (starts[1:] < ends[:-1]).any():
        i = int(np.flatnonzero(starts[1:] < ends[:-1])[0]) + 1
        raise DataError(
            f"run {i + 1} (start {int(starts[i]) + 1}) overlaps or precedes run {i} "
            f"(pixels {int(starts[i - 1]) + 1}-{int(ends[i - 1])}); runs must be sorted and disjoint"
        )
    # Merge runs that touch (start == previous end) so the result is canonical.
    keep = np.ones(starts.size, dtype=bool)
    keep[1:] = starts[1:] > ends[:-1]
    group = np.cumsum(keep) - 1
    merged_starts = starts[keep]
    merged_ends = np.zeros(merged_starts.size, dtype=np.int64)
    np.maximum.at(merged_ends, group, ends)
    return merged_starts, merged_ends


def kaggle_rle_decode(encoded: str, height: int, width: int) -> np.ndarray:
    """H×W uint8 mask from an iMaterialist ``EncodedPixels`` string ("" is an empty mask)."""
    starts, ends = _parse_kaggle(encoded, int(height), int(width))
    flat = np.zeros(int(height) * int(width) + 1, dtype=np.int8)
    # +1 at each start, -1 at each end, then a running sum paints the runs.
    np.add.at(flat, starts, 1)
    np.add.at(flat, ends, -1)
    painted = np.cumsum(flat[:-1], dtype=np.int8).astype(np.uint8)
    return painted.reshape((int(height), int(width)), order="F")


def kaggle_rle_to_coco(encoded: str, height: int, width: int) -> dict:
    """Compressed COCO RLE straight from an ``EncodedPixels`` string, without decoding.

    Both encodings are column-major run lengths, so only the bookkeeping differs.
    """
    height, width = int(height), int(width)
    starts, ends = _parse_kaggle(encoded, height, width)
    if starts.size == 0:
        counts = [height * width]
    else:
        gaps = starts - np.concatenate([[0], ends[:-1]])
        runs = np.empty(2 * starts.size + 1, dtype=np.int64)
        runs[0:-1:2] = gaps
        runs[1::2] = ends - starts
        runs[-1] = height * width - ends[-1]
        counts = runs.tolist() if runs[-1] else runs[:-1].tolist()  # canonical: no trailing 0 run
    return _jsonable(
        mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    )


def kaggle_rle_encode(mask: np.ndarray) -> str:
    """iMaterialist ``EncodedPixels`` of an H×W mask (nonzero = inside); "" when empty."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"kaggle_rle_encode expects an H×W mask, got shape {mask.shape}")
    flat = (mask != 0).reshape(-1, order="F").astype(np.int8)
    padded = np.concatenate([[0], flat, [0]])
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = changes[0::2], changes[1::2]
    pairs = np.empty(2 * starts.size, dtype=np.int64)
    pairs[0::2] = starts + 1
    pairs[1::2] = ends - starts
    return " ".join(map(str, pairs.tolist()))


def coco_to_kaggle_rle(rle: dict) -> str:
    """iMaterialist ``EncodedPixels`` of a COCO RLE."""
    return kaggle_rle_encode(decode_mask(rle))


# --------------------------------------------------------------------------- drawing


def polygon_mask(points: Sequence[tuple[float, float]], height: int, width: int) -> np.ndarray:
    """bool H×W mask of a polygon given as (x, y) pixel coordinates (pixel centres at integers; sub-pixel
    vertices kept); fewer than 3 points give an empty mask, parts outside the image are clipped."""
    import cv2

    mask = np.zeros((int(height), int(width)), dtype=np.uint8)
    if len(points) >= 3:
        shift = 4  # cv2 takes fixed-point vertices: 4 fractional bits
        pts = np.round(np.asarray(points, dtype=np.float64) * (1 << shift)).astype(np.int32)
        cv2.fillPoly(mask, [pts.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=shift)
    return mask.astype(bool)


def disc_mask(center_xy: tuple[float, float], radius: float, height: int, width: int) -> np.ndarray:
    """bool H×W mask of the pixels whose centre lies within ``radius`` of ``center_xy`` (at least the pixel
    under the centre when it is inside the image)."""
    cx, cy = float(center_xy[0]), float(center_xy[1])
    r = max(float(radius), 0.5)
    ys, xs = np.ogrid[: int(height), : int(width)]
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
