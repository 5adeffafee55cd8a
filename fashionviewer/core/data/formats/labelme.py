"""labelme / X-AnyLabeling JSON: one file per image (``shapes`` with ``label``, ``points``, ``shape_type``,
``group_id``; ``imagePath`` relative to the JSON, ``imageHeight``/``imageWidth``; labelme's JSON schema).

Written: one JSON per annotated image (sub-folders mirrored), each instance as polygons sharing a
``group_id`` when it has several parts, ``imageData`` null (the image stays where it is). Read: polygon,
rectangle, circle and mask (labelme 5.3+: a base64 PNG over the box ``points``) shapes; shapes with the same
label and ``group_id`` form one instance; points, lines and line strips carry no region and are named
once as skipped.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Generator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from fashionviewer.core.base.atomic import atomic_write_json
from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.annotations import (
    Annotation,
    AnnotationSet,
    ImageAnnotations,
    categories_for,
)
from fashionviewer.core.data.formats.common import mask_to_polygons, polygons_rle
from fashionviewer.core.data.masks import decode_mask, disc_mask, encode_mask, polygons_to_rle

NAME = "labelme"
VERSION = "5.4.1"
_REGION_SHAPES = ("polygon", "rectangle", "circle", "mask")


def detect(path: Path) -> bool:
    files = (
        [path]
        if path.is_file()
        else (sorted(path.glob("*.json")) + sorted(path.glob("*/*.json")))[:20]
    )
    for file in files:
        if file.suffix.lower() == ".json" and file.is_file():
            with open(file, "rb") as fh:
                head = fh.read(1 << 16).decode("utf-8", errors="replace")
            if '"shapes"' in head:
                return True
    return False


def write_steps(
    aset: AnnotationSet, out_dir: Path, folder: Path, category_ids: str = "dataset"
) -> Generator[str, None, list[Path]]:
    written = []
    for name in sorted(aset.images):
        yield name  # progress, and a cancel point
        rec = aset.images[name]
        if not rec.annotations:
            continue
        target = out_dir / PurePosixPath(name).with_suffix(".json")
        shapes = []
        for ann in rec.annotations:
            polygons = mask_to_polygons(ann.mask())
            for polygon in polygons:
                points = np.asarray(polygon).reshape(-1, 2).tolist()
                shapes.append(
                    {
                        "label": aset.category_name(ann.category_id),
                        "points": points,
                        "group_id": ann.id if len(polygons) > 1 else None,
                        "description": str(ann.extra.get("description", "")),
                        "shape_type": "polygon",
                        "flags": dict(ann.extra.get("flags") or {}),
                        "mask": None,
                    }
                )
        image_path = os.path.relpath(folder.resolve() / name, target.parent.resolve())
        doc = {
            "version": VERSION,
            "flags": {},
            "shapes": shapes,
            "imagePath": Path(image_path).as_posix(),
            "imageData": None,
            "imageHeight": rec.height,
            "imageWidth": rec.width,
        }
        written.append(atomic_write_json(target, doc))
    return written


def read(path: str | os.PathLike[str]) -> tuple[AnnotationSet, list[str]]:
    path = Path(path)
    root = path.parent if path.is_file() else path
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*.json"))
    problems: list[str] = []
    parsed: list[tuple[str, int, int, list[tuple[str, dict, dict]]]] = []
    names: list[str] = []
    for file in files:
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{file}: not a readable labelme JSON ({exc})") from None
        if not isinstance(doc, dict) or "shapes" not in doc:
            if path.is_file():
                raise DataError(f"{file}: not a labelme JSON (no 'shapes')")
            continue  # another JSON in the folder
        image_name, width, height, instances = _read_one(file, doc, root, problems)
        names += [label for label, _, _ in instances if label not in names]
        parsed.append((image_name, width, height, instances))
    if not parsed:
        raise DataError(f"{path}: no labelme JSON files")
    aset = AnnotationSet(categories=categories_for(names))
    next_id = 1
    for image_name, width, height, instances in parsed:
        if image_name in aset.images:
            raise DataError(f"{path}: two labelme files describe the image {image_name}")
        rec = ImageAnnotations(image_name, width, height)
        for label, rle, extra in instances:
            rec.annotations.append(
                Annotation(next_id, aset.category_id(label), rle, "imported", extra=extra)
            )
            next_id += 1
        aset.images[image_name] = rec
    return aset, problems


def _read_one(file: Path, doc: dict, root: Path, problems: list[str]) -> tuple[str, int, int, list]:
    try:
        height, width = int(doc["imageHeight"]), int(doc["imageWidth"])
        image_path = str(doc["imagePath"]).replace("\\", "/")
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{file}: needs imagePath, imageHeight and imageWidth ({exc})") from None
    if height <= 0 or width <= 0:
        raise DataError(f"{file}: image size {width}x{height} must be positive")
    image_file = (file.parent / image_path).resolve()
    try:
        image_name = image_file.relative_to(root.resolve()).as_posix()
    except ValueError:
        image_name = PurePosixPath(image_path).name
    groups: dict[tuple[str, Any], list[dict]] = {}
    order: list[tuple[str, Any]] = []
    skipped: dict[str, int] = {}
    for i, shape in enumerate(doc.get("shapes") or []):
        where = f"{file}: shape {i}"
        if not isinstance(shape, dict) or "label" not in shape or "points" not in shape:
            raise DataError(f"{where}: needs 'label' and 'points'")
        kind = shape.get("shape_type") or "polygon"
        if kind not in _REGION_SHAPES:
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        key = (
            str(shape["label"]),
            shape.get("group_id") if shape.get("group_id") is not None else ("shape", i),
        )
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append({**shape, "_where": where})
    for kind, count in skipped.items():
        problems.append(f"{file}: {count} {kind} shape(s) hold no region; skipped")
    instances = []
    for key in order:
        masks = [_shape_mask(s, height, width) for s in groups[key]]
        union = np.logical_or.reduce(masks)
        first = groups[key][0]
        extra = {k: first[k] for k in ("description", "flags", "attributes") if first.get(k)}
        instances.append((key[0], encode_mask(union), extra))
    return image_name, width, height, instances


def _shape_mask(shape: dict, height: int, width: int) -> np.ndarray:
    where, kind = shape["_where"], shape.get("shape_type") or "polygon"
    try:
        points = np.asarray(shape["points"], dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise DataError(f"{where}: points must be [[x, y], ...]") from None
    if kind == "polygon":
        return _decode(polygons_rle([points.ravel().tolist()], height, width, where))
    if len(points) < 2:
        raise DataError(f"{where}: a {kind} needs 2 points, got {len(points)}")
    (x0, y0), (x1, y1) = np.minimum(points[0], points[1]), np.maximum(points[0], points[1])
    if kind == "rectangle":
        return _decode(polygons_to_rle([[x0, y0, x1, y0, x1, y1, x0, y1]], height, width))
    if kind == "circle":
        radius = float(np.hypot(*(points[1] - points[0])))
        return disc_mask((float(points[0][0]), float(points[0][1])), radius, height, width).astype(
            bool
        )
    try:  # mask: a PNG over the box, top-left at the first point
        with Image.open(io.BytesIO(base64.b64decode(shape["mask"]))) as img:
            part = np.asarray(img) != 0
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise DataError(f"{where}: mask is not a base64 PNG ({exc})") from None
    part = part if part.ndim == 2 else part.any(axis=2)
    out = np.zeros((height, width), dtype=bool)
    top, left = int(round(y0)), int(round(x0))
    h, w = min(part.shape[0], height - top), min(part.shape[1], width - left)
    if top < 0 or left < 0 or h <= 0 or w <= 0:
        raise DataError(f"{where}: mask box lies outside the {width}x{height} image")
    out[top : top + h, left : left + w] = part[:h, :w]
    return out


def _decode(rle: dict) -> np.ndarray:
    return decode_mask(rle).astype(bool)
