"""A folder's annotations as data: instances per image, one COCO instances file, exports that read back.

The project file (``FOLDER/annotations.fashionviewer.json`` by default) is a COCO instances JSON:

* ``categories``: the dataset's own ids (iMaterialist ClassIds 0-45, a COCO file's ids, 1..K for a
  plain class list), never renumbered;
* ``images``: ``id``, ``file_name`` (relative to the folder, posix), ``width``, ``height``, and ``done``
  (the user marked the image finished);
* ``annotations``: ``id``, ``image_id``, ``category_id``, ``segmentation`` (compressed RLE at the image's
  full size), ``area``, ``bbox`` (xywh; the given box, else the mask's), ``iscrowd``, and the extra keys
  ``source`` (``predicted`` / ``edited`` / ``drawn`` / ``imported``: from another tool's file), ``box`` (xyxy,
  only when a box was given) and ``origin`` (``{"model", "score"}`` when the instance came from a prediction);
* ``info``: ``format`` (:data:`FORMAT`) and ``provenance`` (who wrote it, when, which models' predictions
  were accepted, the taxonomy when the categories are iMaterialist's).

Lossless: what the project does not use in a file it reads comes back out on save: unknown top-level keys
(``licenses``, ...), the ``info`` keys, unknown image and annotation keys (``attributes``, ...), ``iscrowd``
1, and each annotation's own ``segmentation``/``area``/``bbox`` (a polygon stays a polygon) while its mask is
unchanged. ``AnnotationSet.written_by`` is the file's ``info.format``: another program's file is kept as
``NAME.bak`` by the editor's first save.

COCO tools read the file as it is (the extra keys are ignored). :func:`load_annotations` skips a bad
record and reports one line naming it; a file that is not a COCO instances object at all (a labelme JSON,
a results list) is a :class:`DataError`, and the editor then opens it read-only. Other formats and the
exports live in :mod:`fashionviewer.core.data.formats`.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np

from fashionviewer.core.base.atomic import atomic_write_text
from fashionviewer.core.base.errors import DataError, FashionViewerError
from fashionviewer.core.base.jsonio import read_json
from fashionviewer.core.data.masks import (
    decode_mask,
    mask_area,
    mask_bbox,
    segmentation_to_rle,
)
from fashionviewer.core.data.taxonomy import IMATERIALIST, imaterialist_names

__all__ = [
    "DEFAULT_FILE_NAME",
    "FORMAT",
    "SOURCES",
    "Annotation",
    "ImageAnnotations",
    "AnnotationSet",
    "categories_for",
    "load_annotations",
    "save_annotations",
    "CLASS_LABELS_FILE",
]

DEFAULT_FILE_NAME = "annotations.fashionviewer.json"
FORMAT = "fashionviewer.annotations/1"
# imported: from another tool's file, unchanged
SOURCES = ("predicted", "edited", "drawn", "imported")
CLASS_LABELS_FILE = "labels.json"  # beside the class PNGs: value -> category


@dataclass
class Annotation:
    """One annotated instance. ``rle`` is COCO compressed RLE at the image's full size; ``box`` is xyxy
    (None: the mask's own box); ``origin`` is ``{"model": str, "score": float}`` for a prediction."""

    id: int
    category_id: int
    rle: dict
    source: str
    box: tuple[float, float, float, float] | None = None
    origin: dict | None = None
    iscrowd: int = 0
    # keys the project does not use (attributes, ...), written back
    extra: dict = field(default_factory=dict)
    # the file's own segmentation/area/bbox, written back while the mask is unchanged
    loaded: dict | None = None

    def mask(self) -> np.ndarray:
        """bool H×W mask, decoded now."""
        return decode_mask(self.rle).astype(bool)

    @property
    def area(self) -> int:
        return mask_area(self.rle)

    def bbox_xyxy(self) -> tuple[float, float, float, float]:
        """The given box, else the mask's tight box."""
        if self.box is not None:
            return self.box
        x, y, w, h = mask_bbox(self.rle)
        return (x, y, x + w, y + h)


@dataclass
class ImageAnnotations:
    """The annotations of one image. ``image_id`` is kept stable across saves (0: not assigned yet)."""

    file_name: str
    width: int
    height: int
    annotations: list[Annotation] = field(default_factory=list)
    done: bool = False
    image_id: int = 0
    # other image keys (license, coco_url, ...), written back
    extra: dict = field(default_factory=dict)

    def find(self, annotation_id: int) -> Annotation:
        for ann in self.annotations:
            if ann.id == annotation_id:
                return ann
        raise FashionViewerError(f"{self.file_name}: no annotation {annotation_id}")


def categories_for(classes: Sequence[str]) -> list[dict[str, Any]]:
    """Categories for a class list: iMaterialist's ClassIds (0-45) when ``classes`` is that taxonomy (or a
    subset of it, in order), else 1..K as COCO numbers them."""
    names = [str(c) for c in classes]
    taxonomy = imaterialist_names()
    if names and all(n in taxonomy for n in names):
        return [{"id": taxonomy.index(n), "name": n} for n in names]
    return [{"id": k, "name": n} for k, n in enumerate(names, start=1)]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def default_provenance() -> dict[str, Any]:
    from fashionviewer import __version__

    return {"created_by": f"FashionViewer {__version__}", "created": _now(), "models": []}


@dataclass
class AnnotationSet:
    """Every image's annotations plus the categories (the dataset's own ids) and the provenance."""

    categories: list[dict] = field(default_factory=list)
    images: dict[str, ImageAnnotations] = field(default_factory=dict)
    provenance: dict = field(default_factory=default_provenance)
    # the file's own ``info`` keys besides format/provenance
    info: dict = field(default_factory=dict)
    # other top-level keys (licenses, ...), written back in order
    extra: dict = field(default_factory=dict)
    # the file's info.format; anything else means another program wrote it
    written_by: str | None = FORMAT

    # ----- categories
    def category_id(self, name: str) -> int:
        for cat in self.categories:
            if cat["name"] == name:
                return int(cat["id"])
        known = ", ".join(str(c["name"]) for c in self.categories[:12]) or "none"
        raise FashionViewerError(
            f"class {name!r} is not one of the annotation file's categories ({known}"
            f"{' ...' if len(self.categories) > 12 else ''})"
        )

    def category_name(self, category_id: int) -> str:
        for cat in self.categories:
            if int(cat["id"]) == int(category_id):
                return str(cat["name"])
        raise FashionViewerError(
            f"category id {category_id} is not in the annotation file's categories"
        )

    def ensure_category(self, name: str) -> int:
        """The id of class ``name``, adding it with the next free id when missing."""
        for cat in self.categories:
            if cat["name"] == name:
                return int(cat["id"])
        new_id = max((int(c["id"]) for c in self.categories), default=0) + 1
        self.categories.append({"id": new_id, "name": str(name)})
        return new_id

    @property
    def taxonomy(self) -> str | None:
        """``"imaterialist"`` when every category is an iMaterialist ClassId with its own name."""
        names = imaterialist_names()
        if self.categories and all(
            0 <= int(c["id"]) < len(names) and names[int(c["id"])] == c["name"]
            for c in self.categories
        ):
            return IMATERIALIST
        return None

    # ----- images and ids
    def image(
        self, file_name: str, width: int | None = None, height: int | None = None
    ) -> ImageAnnotations:
        """The record of ``file_name``, created (given its size) when missing."""
        rec = self.images.get(file_name)
        if rec is None:
            if width is None or height is None:
                raise FashionViewerError(
                    f"{file_name}: not annotated yet (its size is needed to start)"
                )
            rec = ImageAnnotations(file_name, int(width), int(height))
            self.images[file_name] = rec
        elif (
            width is not None
            and height is not None
            and (int(width), int(height)) != (rec.width, rec.height)
        ):
            raise FashionViewerError(
                f"{file_name}: image is {width}x{height} but its annotations say "
                f"{rec.width}x{rec.height}"
            )
        return rec

    def next_annotation_id(self) -> int:
        return 1 + max((a.id for rec in self.images.values() for a in rec.annotations), default=0)

    def _assign_image_ids(self) -> None:
        used = {rec.image_id for rec in self.images.values() if rec.image_id > 0}
        next_id = max(used, default=0) + 1
        for name in sorted(self.images):
            rec = self.images[name]
            if rec.image_id <= 0:
                rec.image_id = next_id
                next_id += 1

    def copy(self) -> "AnnotationSet":
        return copy.deepcopy(self)

    # ----- COCO
    def to_coco(self) -> dict[str, Any]:
        """The project file's content (see the module docstring)."""
        self._assign_image_ids()
        images, annotations = [], []
        for name in sorted(self.images, key=lambda n: self.images[n].image_id):
            rec = self.images[name]
            images.append(
                {
                    **rec.extra,
                    "id": rec.image_id,
                    "file_name": rec.file_name,
                    "width": rec.width,
                    "height": rec.height,
                    "done": bool(rec.done),
                }
            )
            for ann in rec.annotations:
                annotations.append(_annotation_record(ann, rec.image_id))
        provenance = dict(self.provenance)
        if self.taxonomy:
            provenance["taxonomy"] = self.taxonomy
        info = {
            "description": "FashionViewer annotations",
            **self.info,
            "format": FORMAT,
            "provenance": provenance,
        }
        categories = [dict(c) for c in sorted(self.categories, key=lambda c: int(c["id"]))]
        return {
            **self.extra,
            "info": info,
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }


def _annotation_record(ann: Annotation, image_id: int) -> dict[str, Any]:
    """One annotation as written: its unknown keys first, the file's own segmentation/area/bbox while the
    mask is the one that was read, else the compressed RLE and the mask's area."""
    loaded = (
        ann.loaded
        if ann.loaded is not None and ann.loaded.get("counts") == ann.rle["counts"]
        else None
    )
    record: dict[str, Any] = {
        **ann.extra,
        "id": ann.id,
        "image_id": image_id,
        "category_id": ann.category_id,
    }
    if loaded is not None:
        record.update({k: loaded[k] for k in ("segmentation", "area", "bbox") if k in loaded})
    else:
        x0, y0, x1, y1 = ann.bbox_xyxy()
        record["segmentation"] = {"size": list(ann.rle["size"]), "counts": ann.rle["counts"]}
        record["area"] = float(mask_area(ann.rle))
        record["bbox"] = [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]
    record["iscrowd"] = int(ann.iscrowd)
    # a foreign source value stays as it was
    if not (ann.source == "imported" and "source" in ann.extra):
        record["source"] = ann.source
    if ann.box is not None:
        record["box"] = [round(float(v), 2) for v in ann.box]
    if ann.origin is not None:
        record["origin"] = dict(ann.origin)
    return record


# --------------------------------------------------------------------------- reading


def _where_record(kind: str, index: int, record: Any) -> str:
    rid = record.get("id") if isinstance(record, dict) else None
    return f"{kind} {index}" + (f" (id {rid})" if rid is not None else "")


def _as_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise DataError(f"'{key}' must be an integer, got {value!r}")
    return int(value)


def _parse_box(value: Any) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise DataError(f"'box' must be [x0, y0, x1, y1], got {value!r}")
    try:
        x0, y0, x1, y1 = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DataError(f"'box' must hold numbers, got {value!r}") from None
    return (x0, y0, x1, y1)


def _parse_origin(value: Any) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DataError(f"'origin' must be an object, got {type(value).__name__}")
    return dict(value)


def parse_annotations(data: Any, source: str) -> tuple[AnnotationSet, list[str]]:
    """An :class:`AnnotationSet` from the file's JSON; bad records are skipped, each named in one line."""
    _check_instances_file(data, source)
    problems: list[str] = []
    categories: list[dict] = []
    for i, cat in enumerate(data.get("categories", [])):
        try:
            categories.append(_parse_category(cat, {c["id"] for c in categories}))
        except DataError as exc:
            problems.append(f"{source}: {_where_record('category', i, cat)}: {exc}; skipped")
    seen_cats = {c["id"] for c in categories}
    images: dict[str, ImageAnnotations] = {}
    by_id: dict[int, ImageAnnotations] = {}
    for i, img in enumerate(data.get("images", [])):
        try:
            rec = _parse_image(img, by_id, images)
        except DataError as exc:
            problems.append(
                f"{source}: {_where_record('image', i, img)}: {exc}; skipped with its annotations"
            )
            continue
        images[rec.file_name] = by_id[rec.image_id] = rec
    seen_anns: set[int] = set()
    for i, ann in enumerate(data.get("annotations", [])):
        try:
            rec, annotation = _parse_annotation(ann, by_id, seen_cats, seen_anns)
        except DataError as exc:
            problems.append(f"{source}: {_where_record('annotation', i, ann)}: {exc}; skipped")
            continue
        seen_anns.add(annotation.id)
        rec.annotations.append(annotation)

    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    provenance = (
        info.get("provenance") if isinstance(info.get("provenance"), dict) else default_provenance()
    )
    own_info = {k: v for k, v in info.items() if k not in ("format", "provenance")}
    extra = {
        k: v for k, v in data.items() if k not in ("info", "images", "annotations", "categories")
    }
    written_by = info.get("format") if isinstance(info.get("format"), str) else None
    return AnnotationSet(
        categories, images, dict(provenance), own_info, extra, written_by
    ), problems


def _check_instances_file(data: Any, source: str) -> None:
    """A one-line DataError unless ``data`` is a COCO instances object (saying what it looks like instead)."""
    if not isinstance(data, dict):
        kind = "a COCO results list" if isinstance(data, list) else type(data).__name__
        raise DataError(f"{source}: not a COCO instances file ({kind}); it is left as it is")
    if "images" not in data and "annotations" not in data:
        kind = (
            "a labelme JSON"
            if "shapes" in data
            else "a JSON object without 'images' or 'annotations'"
        )
        raise DataError(
            f"{source}: not a COCO instances file ({kind}); it is left as it is "
            "(fashionviewer annotations import converts other formats)"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key, []), list):
            raise DataError(f"{source}: '{key}' must be a list")


def _parse_category(cat: Any, seen: set[int]) -> dict:
    if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
        raise DataError("needs 'id' and 'name'")
    cid = _as_int(cat["id"], "id")
    if cid in seen:
        raise DataError(f"duplicate category id {cid}")
    return {**cat, "id": cid, "name": str(cat["name"])}


def _parse_image(
    img: Any, by_id: dict[int, ImageAnnotations], images: dict[str, ImageAnnotations]
) -> ImageAnnotations:
    if not isinstance(img, dict):
        raise DataError(f"expected an object, got {type(img).__name__}")
    for key in ("id", "file_name", "width", "height"):
        if key not in img:
            raise DataError(f"missing '{key}'")
    iid = _as_int(img["id"], "id")
    width, height = _as_int(img["width"], "width"), _as_int(img["height"], "height")
    if width <= 0 or height <= 0:
        raise DataError(f"size {width}x{height} must be positive")
    name = PurePosixPath(str(img["file_name"]).replace("\\", "/")).as_posix()
    if iid in by_id:
        raise DataError(f"duplicate image id {iid}")
    if name in images:
        raise DataError(f"{name} is listed twice")
    return ImageAnnotations(
        name,
        width,
        height,
        done=bool(img.get("done", False)),
        image_id=iid,
        extra={k: v for k, v in img.items() if k not in _IMAGE_KEYS},
    )


def _parse_annotation(
    ann: Any, by_id: dict[int, ImageAnnotations], seen_cats: set[int], seen_anns: set[int]
) -> tuple[ImageAnnotations, Annotation]:
    """The image an annotation record belongs to, and the record as an :class:`Annotation`."""
    if not isinstance(ann, dict):
        raise DataError(f"expected an object, got {type(ann).__name__}")
    for key in ("id", "image_id", "category_id", "segmentation"):
        if key not in ann:
            raise DataError(f"missing '{key}'")
    aid = _as_int(ann["id"], "id")
    if aid in seen_anns:
        raise DataError(f"duplicate annotation id {aid}")
    iid = _as_int(ann["image_id"], "image_id")
    rec = by_id.get(iid)
    if rec is None:
        raise DataError(f"unknown image_id {iid}")
    cid = _as_int(ann["category_id"], "category_id")
    if cid not in seen_cats:
        raise DataError(f"unknown category_id {cid}")
    try:
        rle = segmentation_to_rle(ann["segmentation"], rec.height, rec.width)
        decode_mask(rle)  # a corrupt counts string fails here, not in the viewer later
    except DataError as exc:
        raise DataError(f"segmentation: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise DataError(f"segmentation: malformed ({exc})") from None
    source_kind = ann.get("source", "imported")
    if source_kind not in SOURCES:  # another tool's own word for it: kept in ``extra``
        source_kind = "imported"
    box, origin = _parse_box(ann.get("box")), _parse_origin(ann.get("origin"))
    iscrowd = _as_int(ann.get("iscrowd", 0), "iscrowd")
    extra = {
        k: v
        for k, v in ann.items()
        if k not in _ANNOTATION_KEYS or (k == "source" and ann[k] not in SOURCES)
    }
    loaded = {k: ann[k] for k in ("segmentation", "area", "bbox") if k in ann}
    return rec, Annotation(
        aid,
        cid,
        rle,
        str(source_kind),
        box,
        origin,
        iscrowd,
        extra,
        {**loaded, "counts": rle["counts"]},
    )


_IMAGE_KEYS = ("id", "file_name", "width", "height", "done")
_ANNOTATION_KEYS = (
    "id",
    "image_id",
    "category_id",
    "segmentation",
    "area",
    "bbox",
    "iscrowd",
    "source",
    "box",
    "origin",
)


def load_annotations(path: str | os.PathLike[str]) -> tuple[AnnotationSet, list[str]]:
    """Read a project file: (the set, one line per bad record that was skipped)."""
    path = Path(path)
    return parse_annotations(read_json(path), path.name)


def save_annotations(path: str | os.PathLike[str], annotation_set: AnnotationSet) -> None:
    """Write the project file atomically (temp file + rename: a crash leaves the old or the new file)."""
    annotation_set.provenance["modified"] = _now()
    data = annotation_set.to_coco()
    # One record per line keeps the file diff-able and fast to write (no indentation of the RLE strings).
    parts = [f"{_dumps(key)}: {_dumps(value)}" for key, value in annotation_set.extra.items()]
    parts += [f'"info": {_dumps(data["info"])}', f'"categories": {_dumps(data["categories"])}']
    parts += [
        f'"{key}": [\n' + ",\n".join(_dumps(r) for r in data[key]) + "\n]"
        for key in ("images", "annotations")
    ]
    atomic_write_text(path, "{\n" + ",\n".join(parts) + "\n}\n")


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
