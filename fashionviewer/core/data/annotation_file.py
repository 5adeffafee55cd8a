"""The project file: a folder's :class:`~fashionviewer.core.data.annotations.AnnotationSet` as one COCO
instances JSON (``FOLDER/annotations.fashionviewer.json`` by default), read and written.

The file holds:

* ``categories``: the dataset's own ids (iMaterialist ClassIds 0-45, a COCO file's ids, 1..K for a
  plain class list), never renumbered;
* ``images``: ``id``, ``file_name`` (relative to the folder, posix), ``width``, ``height``, and ``done``
  (the user marked the image finished);
* ``annotations``: ``id``, ``image_id``, ``category_id``, ``segmentation`` (compressed RLE at the image's
  full size), ``area``, ``bbox`` (xywh; the given box, else the mask's), ``iscrowd``, and the extra keys
  ``source`` (``predicted`` / ``edited`` / ``drawn`` / ``imported``: from another tool's file), ``box`` (xyxy,
  only when a box was given) and ``origin`` (``{"model", "score"}`` when the instance came from a prediction);
* ``info``: ``format`` (:data:`~fashionviewer.core.data.annotations.FORMAT`) and ``provenance`` (who wrote
  it, when, which models' predictions were accepted, the taxonomy when the categories are iMaterialist's).

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

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from fashionviewer.core.base.atomic import atomic_write_text
from fashionviewer.core.base.errors import DataError
from fashionviewer.core.base.jsonio import read_json
from fashionviewer.core.data.annotations import (
    FORMAT,
    SOURCES,
    Annotation,
    AnnotationSet,
    ImageAnnotations,
    default_provenance,
)
from fashionviewer.core.data.masks import decode_mask, mask_area, segmentation_to_rle

__all__ = ["load_annotations", "parse_annotations", "save_annotations", "to_coco"]

# --------------------------------------------------------------------------- writing


def to_coco(aset: AnnotationSet) -> dict[str, Any]:
    """The project file's content (see the module docstring); image ids still missing are assigned."""
    aset.assign_image_ids()
    images, annotations = [], []
    for name in sorted(aset.images, key=lambda n: aset.images[n].image_id):
        rec = aset.images[name]
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
    provenance = dict(aset.provenance)
    if aset.taxonomy:
        provenance["taxonomy"] = aset.taxonomy
    info = {
        "description": "FashionViewer annotations",
        **aset.info,
        "format": FORMAT,
        "provenance": provenance,
    }
    categories = [dict(c) for c in sorted(aset.categories, key=lambda c: int(c["id"]))]
    return {
        **aset.extra,
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
    annotation_set.mark_modified()
    data = to_coco(annotation_set)
    # One record per line keeps the file diff-able and fast to write (no indentation of the RLE strings).
    parts = [f"{_dumps(key)}: {_dumps(value)}" for key, value in annotation_set.extra.items()]
    parts += [f'"info": {_dumps(data["info"])}', f'"categories": {_dumps(data["categories"])}']
    parts += [
        f'"{key}": [\n' + ",\n".join(_dumps(r) for r in data[key]) + "\n]"
        for key in ("images", "annotations")
    ]
    atomic_write_text(path, "{\n" + ",\n".join(parts) + "\n}\n")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
