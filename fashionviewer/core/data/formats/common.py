"""What the format modules share: masks <-> polygons, finding the images a file names, category ids.

Polygons are traced on the mask upsampled 2x (nearest), each vertex at a half-pixel corner, so a polygon
rasterised by pycocotools gives the mask back exactly, holes aside (COCO, labelme and YOLO polygons cannot
hold holes; the mask formats keep them).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Sequence

import cv2
import numpy as np

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.annotations import AnnotationSet
from fashionviewer.core.data.imageio import list_images, read_image_size
from fashionviewer.core.data.masks import polygons_to_rle

CATEGORY_ID_MODES = ("dataset", "1-based")


def mask_to_polygons(mask: np.ndarray, min_points: int = 3) -> list[list[float]]:
    """Outer outlines of a binary mask as COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` (largest first)."""
    mask = np.ascontiguousarray(np.asarray(mask) != 0, dtype=np.uint8)
    if not mask.any():
        return []
    height, width = mask.shape
    up = cv2.resize(mask, (width * 2, height * 2), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contours = sorted(contours, key=lambda c: -cv2.contourArea(c))
    polygons = []
    for contour in contours:
        points = (contour.reshape(-1, 2).astype(np.float64) + 0.5) / 2.0
        if len(points) >= min_points:
            polygons.append([round(float(v), 2) for v in points.ravel()])
    return polygons


def polygon_points(coords: Sequence[float], where: str) -> list[float]:
    """Check a flat ``x1, y1, x2, y2, ...`` list: numbers, pairs, at least 3 points."""
    try:
        values = [float(v) for v in coords]
    except (TypeError, ValueError):
        raise DataError(f"{where}: polygon coordinates must be numbers") from None
    if len(values) % 2:
        raise DataError(f"{where}: polygon has an odd number of coordinates ({len(values)})")
    if len(values) < 6:
        raise DataError(f"{where}: polygon has {len(values) // 2} point(s); at least 3 are needed")
    if not np.all(np.isfinite(values)):
        raise DataError(f"{where}: polygon coordinates must be finite")
    return values


def polygons_rle(polygons: Sequence[Sequence[float]], height: int, width: int, where: str) -> dict:
    return polygons_to_rle([polygon_points(p, where) for p in polygons], height, width)


def one_based(aset: AnnotationSet) -> dict[int, int]:
    """Dataset id -> 1..K in increasing id order (for tools that reserve id 0)."""
    return {
        int(c["id"]): k
        for k, c in enumerate(sorted(aset.categories, key=lambda c: int(c["id"])), start=1)
    }


def check_category_ids(mode: str) -> str:
    if mode not in CATEGORY_ID_MODES:
        raise DataError(f"--category-ids {mode}: use one of {', '.join(CATEGORY_ID_MODES)}")
    return mode


def resolve_images(
    aset: AnnotationSet, folder: str | os.PathLike[str], source: str
) -> AnnotationSet:
    """File names made relative to ``folder``: the same relative path, else the one image there with that
    base name. A missing image, an ambiguous name or a size that differs is a one-line error naming it."""
    folder = Path(folder)
    by_base: dict[str, list[str]] = {}
    for path in list_images(folder):
        rel = path.relative_to(folder).as_posix()
        by_base.setdefault(PurePosixPath(rel).name, []).append(rel)
    out = aset.copy()
    out.images = {}
    for name, rec in aset.images.items():
        candidates = (
            [name] if (folder / name).is_file() else by_base.get(PurePosixPath(name).name, [])
        )
        if not candidates:
            raise DataError(f"{source}: image {name} is not in {folder}")
        if len(candidates) > 1:
            raise DataError(
                f"{source}: image {name} matches {len(candidates)} files in {folder} "
                f"({', '.join(candidates[:3])}); keep the sub-folders as in the file"
            )
        rel = candidates[0]
        width, height = read_image_size(folder / rel)
        if (width, height) != (rec.width, rec.height):
            raise DataError(
                f"{source}: image {name} is {width}x{height} in {folder} but {rec.width}x{rec.height} "
                "in the file"
            )
        if rel in out.images:
            raise DataError(
                f"{source}: images {name} and {out.images[rel].file_name} are both {rel}"
            )
        rec = rec.__class__(**{**rec.__dict__, "file_name": rel})
        out.images[rel] = rec
    return out


def image_size(folder: Path, name: str, source: str) -> tuple[int, int]:
    """(width, height) of an image a file names, read from its header; a one-line error when missing."""
    path = folder / name
    if not path.is_file():
        raise DataError(f"{source}: image {name} not found in {folder}")
    return read_image_size(path)
