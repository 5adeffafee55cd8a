"""A folder's annotations as data: the instances of each image (:class:`Annotation`,
:class:`ImageAnnotations`), the categories (the dataset's own ids) and the provenance (:class:`AnnotationSet`).

The project file that holds them (:data:`DEFAULT_FILE_NAME` in the folder, a COCO instances JSON) is read
and written by :mod:`fashionviewer.core.data.annotation_file`; other formats and the exports live in
:mod:`fashionviewer.core.data.formats`.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.masks import decode_mask, mask_area, mask_bbox
from fashionviewer.core.data.taxonomy import IMATERIALIST, imaterialist_names

__all__ = [
    "DEFAULT_FILE_NAME",
    "FORMAT",
    "SOURCES",
    "Annotation",
    "ImageAnnotations",
    "AnnotationSet",
    "categories_for",
    "default_provenance",
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

    def assign_image_ids(self) -> None:
        """Give every image without an id (0) the next free one, in file-name order."""
        used = {rec.image_id for rec in self.images.values() if rec.image_id > 0}
        next_id = max(used, default=0) + 1
        for name in sorted(self.images):
            rec = self.images[name]
            if rec.image_id <= 0:
                rec.image_id = next_id
                next_id += 1

    def mark_modified(self) -> None:
        """Record in the provenance that the set is being written now."""
        self.provenance["modified"] = _now()

    def copy(self) -> "AnnotationSet":
        return copy.deepcopy(self)
