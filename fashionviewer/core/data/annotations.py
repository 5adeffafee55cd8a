"""A folder's annotations as data: instances per image, one COCO instances file, exports that read back.

The project file (``FOLDER/annotations.fashionviewer.json`` by default) is a COCO instances JSON:

* ``categories``: the dataset's own ids (iMaterialist ClassIds 0-45, a COCO file's ids, 1..K for a
  plain class list), never renumbered;
* ``images``: ``id``, ``file_name`` (relative to the folder, posix), ``width``, ``height``, and ``done``
  (the user marked the image finished);
* ``annotations``: ``id``, ``image_id``, ``category_id``, ``segmentation`` (compressed RLE at the image's
  full size), ``area``, ``bbox`` (xywh; the given box, else the mask's), ``iscrowd`` 0, and the extra keys
  ``source`` (``predicted`` / ``edited`` / ``drawn``), ``box`` (xyxy, only when a box was given) and
  ``origin`` (``{"model", "score"}`` when the instance came from a prediction);
* ``info``: ``format`` (:data:`FORMAT`) and ``provenance`` (who wrote it, when, which models' predictions
  were accepted, the taxonomy when the categories are iMaterialist's).

COCO tools read the file as it is (the extra keys are ignored). :func:`load_annotations` skips a bad
record and reports one line naming it; a file that is not a COCO instances object at all is a
:class:`DataError`. Exports: :func:`export_coco`, :func:`export_imaterialist_csv` (``train.csv``: 1-indexed
column-major RLE, ClassId 0-45) and :func:`export_class_pngs` (one palette PNG per image, value k = the k-th
category, 0 = background, with ``labels.json`` naming each value); each reads back through the project's
loaders (:mod:`fashionviewer.core.data.datasets.coco`, :mod:`~fashionviewer.core.data.datasets.imaterialist`,
:func:`read_class_png`).
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np
from PIL import Image

from fashionviewer.core.base.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, ensure_writable_dir
from fashionviewer.core.base.errors import DataError, FashionViewerError
from fashionviewer.core.base.jsonio import read_json
from fashionviewer.core.data.masks import (
    coco_to_kaggle_rle,
    decode_mask,
    decode_masks,
    mask_area,
    mask_bbox,
    segmentation_to_rle,
)
from fashionviewer.core.data.overlay import palette_bytes
from fashionviewer.core.data.taxonomy import IMATERIALIST, imaterialist_names

__all__ = [
    "DEFAULT_FILE_NAME", "FORMAT", "SOURCES", "Annotation", "ImageAnnotations", "AnnotationSet",
    "categories_for", "load_annotations", "save_annotations", "export_coco", "export_imaterialist_csv",
    "export_class_pngs", "read_class_png", "CLASS_LABELS_FILE",
]

DEFAULT_FILE_NAME = "annotations.fashionviewer.json"
FORMAT = "fashionviewer.annotations/1"
SOURCES = ("predicted", "edited", "drawn")
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

    # ----- categories
    def category_id(self, name: str) -> int:
        for cat in self.categories:
            if cat["name"] == name:
                return int(cat["id"])
        known = ", ".join(str(c["name"]) for c in self.categories[:12]) or "none"
        raise FashionViewerError(f"class {name!r} is not one of the annotation file's categories ({known}"
                                 f"{' ...' if len(self.categories) > 12 else ''})")

    def category_name(self, category_id: int) -> str:
        for cat in self.categories:
            if int(cat["id"]) == int(category_id):
                return str(cat["name"])
        raise FashionViewerError(f"category id {category_id} is not in the annotation file's categories")

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
        if self.categories and all(0 <= int(c["id"]) < len(names) and names[int(c["id"])] == c["name"]
                                   for c in self.categories):
            return IMATERIALIST
        return None

    # ----- images and ids
    def image(self, file_name: str, width: int | None = None, height: int | None = None) -> ImageAnnotations:
        """The record of ``file_name``, created (given its size) when missing."""
        rec = self.images.get(file_name)
        if rec is None:
            if width is None or height is None:
                raise FashionViewerError(f"{file_name}: not annotated yet (its size is needed to start)")
            rec = ImageAnnotations(file_name, int(width), int(height))
            self.images[file_name] = rec
        elif width is not None and height is not None and (int(width), int(height)) != (rec.width, rec.height):
            raise FashionViewerError(f"{file_name}: image is {width}x{height} but its annotations say "
                                     f"{rec.width}x{rec.height}")
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
            images.append({"id": rec.image_id, "file_name": rec.file_name, "width": rec.width,
                           "height": rec.height, "done": bool(rec.done)})
            for ann in rec.annotations:
                x0, y0, x1, y1 = ann.bbox_xyxy()
                record: dict[str, Any] = {
                    "id": ann.id, "image_id": rec.image_id, "category_id": ann.category_id,
                    "segmentation": {"size": list(ann.rle["size"]), "counts": ann.rle["counts"]},
                    "area": float(mask_area(ann.rle)),
                    "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                    "iscrowd": 0, "source": ann.source,
                }
                if ann.box is not None:
                    record["box"] = [round(float(v), 2) for v in ann.box]
                if ann.origin is not None:
                    record["origin"] = dict(ann.origin)
                annotations.append(record)
        provenance = dict(self.provenance)
        if self.taxonomy:
            provenance["taxonomy"] = self.taxonomy
        info = {"description": "FashionViewer annotations", "format": FORMAT, "provenance": provenance}
        categories = [dict(c) for c in sorted(self.categories, key=lambda c: int(c["id"]))]
        return {"info": info, "images": images, "annotations": annotations, "categories": categories}


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
    if not isinstance(data, dict):
        raise DataError(f"{source}: expected a COCO instances object, got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key, []), list):
            raise DataError(f"{source}: '{key}' must be a list")
    problems: list[str] = []
    categories: list[dict] = []
    seen_cats: set[int] = set()
    for i, cat in enumerate(data.get("categories", [])):
        where = f"{source}: {_where_record('category', i, cat)}"
        try:
            if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
                raise DataError("needs 'id' and 'name'")
            cid = _as_int(cat["id"], "id")
            if cid in seen_cats:
                raise DataError(f"duplicate category id {cid}")
        except DataError as exc:
            problems.append(f"{where}: {exc}; skipped")
            continue
        seen_cats.add(cid)
        categories.append({**cat, "id": cid, "name": str(cat["name"])})

    images: dict[str, ImageAnnotations] = {}
    by_id: dict[int, ImageAnnotations] = {}
    for i, img in enumerate(data.get("images", [])):
        where = f"{source}: {_where_record('image', i, img)}"
        try:
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
        except DataError as exc:
            problems.append(f"{where}: {exc}; skipped with its annotations")
            continue
        rec = ImageAnnotations(name, width, height, done=bool(img.get("done", False)), image_id=iid)
        images[name] = rec
        by_id[iid] = rec

    seen_anns: set[int] = set()
    for i, ann in enumerate(data.get("annotations", [])):
        where = f"{source}: {_where_record('annotation', i, ann)}"
        try:
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
            source_kind = str(ann.get("source", "drawn"))
            if source_kind not in SOURCES:
                raise DataError(f"source {source_kind!r} is not one of {', '.join(SOURCES)}")
            box, origin = _parse_box(ann.get("box")), _parse_origin(ann.get("origin"))
        except DataError as exc:
            problems.append(f"{where}: {exc}; skipped")
            continue
        seen_anns.add(aid)
        rec.annotations.append(Annotation(aid, cid, rle, source_kind, box, origin))

    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    provenance = info.get("provenance") if isinstance(info.get("provenance"), dict) else default_provenance()
    return AnnotationSet(categories, images, dict(provenance)), problems


def load_annotations(path: str | os.PathLike[str]) -> tuple[AnnotationSet, list[str]]:
    """Read a project file: (the set, one line per bad record that was skipped)."""
    path = Path(path)
    return parse_annotations(read_json(path), path.name)


def save_annotations(path: str | os.PathLike[str], annotation_set: AnnotationSet) -> None:
    """Write the project file atomically (temp file + rename: a crash leaves the old or the new file)."""
    annotation_set.provenance["modified"] = _now()
    data = annotation_set.to_coco()
    # One record per line keeps the file diff-able and fast to write (no indentation of the RLE strings).
    parts = [f'"info": {_dumps(data["info"])}', f'"categories": {_dumps(data["categories"])}']
    parts += [f'"{key}": [\n' + ",\n".join(_dumps(r) for r in data[key]) + "\n]" for key in ("images", "annotations")]
    atomic_write_text(path, "{\n" + ",\n".join(parts) + "\n}\n")


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------- exports


def export_coco(aset: AnnotationSet, path: str | os.PathLike[str]) -> Path:
    """A standard COCO instances file (the dataset's own category ids; only the standard keys plus ``info``)."""
    data = aset.to_coco()
    keep = ("id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd")
    data["annotations"] = [{k: a[k] for k in keep} for a in data["annotations"]]
    data["images"] = [{k: img[k] for k in ("id", "file_name", "width", "height")} for img in data["images"]]
    data["info"] = {**data["info"], "description": "FashionViewer annotations (COCO export)"}
    return atomic_write_json(path, data, indent=None)


def export_imaterialist_csv(aset: AnnotationSet, path: str | os.PathLike[str]) -> Path:
    """iMaterialist-Fashion 2019 ``train.csv``: ImageId (the file name), EncodedPixels (1-indexed,
    column-major), Height, Width, ClassId (0-45). Needs the categories to be iMaterialist's."""
    if aset.taxonomy != IMATERIALIST:
        raise FashionViewerError("iMaterialist export: the annotation file's categories are not the iMaterialist "
                                 "taxonomy (ids 0-45 with its names)")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["ImageId", "EncodedPixels", "Height", "Width", "ClassId"])
    for name in sorted(aset.images):
        rec = aset.images[name]
        for ann in rec.annotations:
            encoded = coco_to_kaggle_rle(ann.rle)
            if encoded:  # an empty mask has no row in this format
                writer.writerow([rec.file_name, encoded, rec.height, rec.width, ann.category_id])
    return atomic_write_text(path, buf.getvalue())


def class_values(aset: AnnotationSet) -> dict[int, int]:
    """Category id -> pixel value of the class PNGs (1..K in increasing id order; 0 is background)."""
    return {int(c["id"]): k for k, c in enumerate(sorted(aset.categories, key=lambda c: int(c["id"])), start=1)}


def class_map(aset: AnnotationSet, file_name: str) -> np.ndarray:
    """uint8/uint16 H×W pixel values of one image: larger instances painted first, so a small one on top of
    a large one stays visible (as the viewer paints them)."""
    rec = aset.images[file_name]
    values = class_values(aset)
    dtype = np.uint8 if len(values) <= 255 else np.uint16
    out = np.zeros((rec.height, rec.width), dtype=dtype)
    anns = sorted(rec.annotations, key=lambda a: -mask_area(a.rle))
    masks = decode_masks([a.rle for a in anns], rec.height, rec.width)
    for ann, mask in zip(anns, masks):
        out[mask != 0] = values[ann.category_id]
    return out


def export_class_pngs(aset: AnnotationSet, out_dir: str | os.PathLike[str]) -> list[Path]:
    """One per-pixel class PNG per annotated image (``STEM.png``, sub-folders mirrored; "P" mode with the
    viewer's palette), value k = the k-th category, 0 = background, as Clothing Co-Parsing stores its labels;
    ``labels.json`` lists ``{"value", "id", "name"}``. Returns the files written."""
    out = ensure_writable_dir(out_dir)
    values = class_values(aset)
    names = {int(c["id"]): str(c["name"]) for c in aset.categories}
    written = []
    for name in sorted(aset.images):
        rec = aset.images[name]
        if not rec.annotations and not rec.done:
            continue
        array = class_map(aset, name)
        img = Image.fromarray(array)
        if array.dtype == np.uint8:
            img.putpalette(palette_bytes())
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        target = out / PurePosixPath(name).with_suffix(".png")
        written.append(atomic_write_bytes(target, buf.getvalue()))
    labels = [{"value": v, "id": cid, "name": names[cid]} for cid, v in sorted(values.items(), key=lambda t: t[1])]
    written.append(atomic_write_json(out / CLASS_LABELS_FILE, {"background": 0, "labels": labels}))
    return written


def read_class_png(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[int, int]]:
    """(H×W pixel values, value -> category id) of one exported class PNG (``labels.json`` beside it,
    or in a parent folder when sub-folders were mirrored)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            array = np.array(img)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the class PNG ({exc})") from exc
    folder = path.parent
    while not (folder / CLASS_LABELS_FILE).is_file() and folder != folder.parent:
        folder = folder.parent
    labels_file = folder / CLASS_LABELS_FILE
    data = read_json(labels_file)
    try:
        lookup = {int(item["value"]): int(item["id"]) for item in data["labels"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{labels_file}: malformed label list ({exc})") from exc
    return array, lookup
