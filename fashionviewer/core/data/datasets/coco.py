"""COCO instances JSON (Fashionpedia, the generated Fashion-MNIST scenes, or any other).

Segmentations may be polygons, uncompressed RLE (``iscrowd`` files) or compressed
RLE; all become compressed RLE when the file is read, so problems show up at
once. Category ids, whatever they are (Fashionpedia's start at 0), map to
contiguous labels 1..K in increasing id order; ``class_names`` keeps their names
and ``category_ids[k-1]`` the original id of label k. Ground truth produced here
(``coco_ground_truth`` / :func:`read_coco_ground_truth`) keeps the file's own category
ids, as COCO results are read; a model trained here records ``category_ids`` in its card.

Layout for ``CocoDataset(root, split)`` when ``root`` is a folder:
``root/annotations/instances_{split}.json`` (or the one ``annotations/*{split}*.json``)
with images in ``root/{split}/``, ``root/images/{split}/``, ``root/images/`` or ``root/``
(the first folder holding the first image). ``root`` may also be the JSON file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.base.jsonio import read_json
from fashionviewer.core.data.datasets.base import DetectionDataset, ImageEntry
from fashionviewer.core.data.masks import mask_area, mask_bbox, segmentation_to_rle

log = logging.getLogger(__name__)


@dataclass
class CocoIndex:
    """A validated COCO instances file, segmentations as compressed RLE, labels 1..K."""

    source: str
    class_names: list[str]
    category_ids: list[int]
    images: list[dict[str, Any]]
    anns_by_image: dict[int, list[dict[str, Any]]]
    skipped: list[str] = field(default_factory=list)

    def ground_truth(self, image_ids: set[int] | None = None) -> dict[str, Any]:
        """COCO dict with the file's own category ids, RLE segmentations."""
        images = [img for img in self.images if image_ids is None or img["id"] in image_ids]
        annotations = []
        for img in images:
            for ann in self.anns_by_image.get(img["id"], []):
                annotations.append(
                    {
                        "id": ann["id"],
                        "image_id": img["id"],
                        "category_id": self.category_ids[ann["label"] - 1],
                        "segmentation": ann["segmentation"],
                        "area": ann["area"],
                        "bbox": ann["bbox"],
                        "iscrowd": ann["iscrowd"],
                    }
                )
        categories = [
            {"id": cid, "name": n}
            for cid, n in zip(self.category_ids, self.class_names, strict=False)
        ]
        return {"images": images, "annotations": annotations, "categories": categories}


def _need(obj: Any, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected an object, got {type(obj).__name__}")
    for key in keys:
        if key not in obj:
            raise DataError(f"{where}: missing '{key}'")


def _int(value: Any, where: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise DataError(f"{where}: '{key}' must be an integer, got {value!r}")
    return int(value)


def parse_coco(data: Any, source: str) -> CocoIndex:
    """Validate a COCO instances dict; DataError names the file, the record and the field."""
    _need(data, ("images", "annotations", "categories"), source)
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise DataError(f"{source}: '{key}' must be a list")
    cats = _parse_categories(data["categories"], source)
    category_ids = sorted(cats)
    images, sizes = _parse_images(data["images"], source)
    anns_by_image, skipped = _parse_annotations(data["annotations"], source, sizes, category_ids)
    if skipped:
        log.warning(
            "%s: skipped %d annotation(s) with empty masks, e.g. %s",
            source,
            len(skipped),
            skipped[0],
        )
    return CocoIndex(
        source, [cats[c] for c in category_ids], category_ids, images, anns_by_image, skipped
    )


def _record_where(source: str, kind: str, i: int, record: Any) -> str:
    """``source: kind i (id N)`` for error messages; the id only when the record has one."""
    return f"{source}: {kind} {i}" + (
        f" (id {record['id']})" if isinstance(record, dict) and "id" in record else ""
    )


def _parse_categories(categories: list[Any], source: str) -> dict[int, str]:
    """Category id -> name; ids must be distinct integers and there must be at least one."""
    cats: dict[int, str] = {}
    for i, cat in enumerate(categories):
        where = f"{source}: category {i}"
        _need(cat, ("id", "name"), where)
        cid = _int(cat["id"], where, "id")
        if cid in cats:
            raise DataError(f"{where}: duplicate category id {cid}")
        cats[cid] = str(cat["name"])
    if not cats:
        raise DataError(f"{source}: no categories")
    return cats


def _parse_images(
    records: list[Any], source: str
) -> tuple[list[dict[str, Any]], dict[int, tuple[int, int]]]:
    """The image records (id, file_name, width, height) and each image id's (height, width)."""
    images: list[dict[str, Any]] = []
    sizes: dict[int, tuple[int, int]] = {}
    for i, img in enumerate(records):
        where = _record_where(source, "image", i, img)
        _need(img, ("id", "file_name", "width", "height"), where)
        iid = _int(img["id"], where, "id")
        width, height = _int(img["width"], where, "width"), _int(img["height"], where, "height")
        if width <= 0 or height <= 0:
            raise DataError(f"{where}: size {width}x{height} must be positive")
        if iid in sizes:
            raise DataError(f"{where}: duplicate image id {iid}")
        sizes[iid] = (height, width)
        images.append(
            {"id": iid, "file_name": str(img["file_name"]), "width": width, "height": height}
        )
    return images, sizes


def _parse_annotations(
    records: list[Any],
    source: str,
    sizes: dict[int, tuple[int, int]],
    category_ids: list[int],
) -> tuple[dict[int, list[dict[str, Any]]], list[str]]:
    """Each image's annotations (labels 1..K in ``category_ids`` order, RLE masks), and a note
    for each annotation skipped because its mask is empty."""
    anns_by_image: dict[int, list[dict[str, Any]]] = {iid: [] for iid in sizes}
    label_of = {cid: k for k, cid in enumerate(category_ids, start=1)}
    skipped: list[str] = []
    seen_ids: set[int] = set()
    for i, ann in enumerate(records):
        where = _record_where(source, "annotation", i, ann)
        _need(ann, ("id", "image_id", "category_id", "segmentation"), where)
        aid = _int(ann["id"], where, "id")
        if aid in seen_ids:
            raise DataError(f"{where}: duplicate annotation id {aid}")
        seen_ids.add(aid)
        iid = _int(ann["image_id"], where, "image_id")
        cid = _int(ann["category_id"], where, "category_id")
        if iid not in sizes:
            raise DataError(f"{where}: unknown image_id {iid}")
        if cid not in label_of:
            raise DataError(
                f"{where}: unknown category_id {cid} (categories: {_id_range(category_ids)})"
            )
        rle = _segmentation_rle(ann["segmentation"], sizes[iid], where)
        area = mask_area(rle)
        if area == 0:
            skipped.append(f"annotation {i} (id {aid}): empty mask")
            continue
        iscrowd = _int(ann.get("iscrowd", 0), where, "iscrowd")
        anns_by_image[iid].append(
            {
                "id": aid,
                "label": label_of[cid],
                "segmentation": rle,
                "iscrowd": 1 if iscrowd else 0,
                "area": float(area),
                "bbox": mask_bbox(rle),
            }
        )
    return anns_by_image, skipped


def _segmentation_rle(segmentation: Any, size: tuple[int, int], where: str) -> dict[str, Any]:
    """Any COCO segmentation as compressed RLE for an image of ``size`` (height, width)."""
    height, width = size
    try:
        return segmentation_to_rle(segmentation, height, width)
    except DataError as exc:
        raise DataError(f"{where}: segmentation: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: segmentation: malformed ({exc})") from None


def _id_range(ids: list[int]) -> str:
    if ids == list(range(ids[0], ids[0] + len(ids))):
        return f"{ids[0]}-{ids[-1]}"
    return ", ".join(map(str, ids[:20])) + (" ..." if len(ids) > 20 else "")


def read_coco_ground_truth(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A COCO instances file as ground truth in label space (see the module docstring)."""
    path = Path(path)
    return parse_coco(read_json(path), path.name).ground_truth()


def find_annotation_file(root: Path, split: str) -> Path:
    """``root/annotations/instances_{split}.json``, else the single ``annotations/*{split}*.json``."""
    ann_dir = root / "annotations"
    exact = ann_dir / f"instances_{split}.json"
    if exact.is_file():
        return exact
    matches = sorted(ann_dir.glob(f"*{split}*.json")) if ann_dir.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DataError(
            f"{root}: no annotation file for split '{split}' (expected {exact.relative_to(root)})"
        )
    raise DataError(
        f"{ann_dir}: several files match split '{split}' ({', '.join(m.name for m in matches)}); "
        "pass ann_file"
    )


class CocoDataset(DetectionDataset):
    """A COCO instances file as torchvision detection samples (see the module docstring)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        ann_file: str | os.PathLike[str] | None = None,
        image_dir: str | os.PathLike[str] | None = None,
        include_crowd: bool = False,
        skip_empty: bool = False,
        max_size: int | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(split, max_size=max_size, limit=limit, include_crowd=include_crowd)
        root = Path(root)
        if ann_file is not None:
            ann_path = Path(ann_file)
        elif root.is_file():
            ann_path = root
        elif root.is_dir():
            ann_path = find_annotation_file(root, split)
        else:
            raise DataError(f"{root}: not found")
        self.ann_file = ann_path
        self.index = parse_coco(read_json(ann_path), ann_path.name)
        self.class_names = self.index.class_names
        self.category_ids = self.index.category_ids
        self.skipped_rows = list(self.index.skipped)
        images = self.index.images
        if skip_empty:
            images = [img for img in images if self.index.anns_by_image[img["id"]]]
        base = root if root.is_dir() else ann_path.parent.parent
        self.image_dir = self._find_image_dir(image_dir, base, ann_path, split, images)
        self._set_images(
            [
                ImageEntry(
                    img["id"],
                    img["file_name"],
                    self.image_dir / img["file_name"],
                    img["width"],
                    img["height"],
                )
                for img in images
            ]
        )

    @staticmethod
    def _find_image_dir(
        image_dir: str | os.PathLike[str] | None,
        base: Path,
        ann_path: Path,
        split: str,
        images: list[dict[str, Any]],
    ) -> Path:
        if image_dir is not None:
            folder = Path(image_dir)
            if not folder.is_dir():
                raise DataError(f"{folder}: image folder not found")
            return folder
        candidates = [base / split, base / "images" / split, base / "images", base, ann_path.parent]
        if not images:
            return next((c for c in candidates if c.is_dir()), base)
        probe = images[0]["file_name"]
        for candidate in candidates:
            if (candidate / probe).is_file():
                return candidate
        raise DataError(
            f"{ann_path.name}: image {probe} not found in {', '.join(str(c) for c in candidates[:4])}; "
            "pass image_dir"
        )

    def _annotations(self, index: int) -> list[dict[str, Any]]:
        anns = self.index.anns_by_image[self.images[index].image_id]
        return [
            {"label": a["label"], "segmentation": a["segmentation"], "iscrowd": a["iscrowd"]}
            for a in anns
        ]

    def coco_ground_truth(self) -> dict[str, Any]:
        if self.max_size:  # the base class rescales masks to what __getitem__ yields
            return super().coco_ground_truth()
        return self.index.ground_truth({entry.image_id for entry in self.images})
