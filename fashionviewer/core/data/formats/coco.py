"""COCO instances JSON: read (any COCO instances file, the project file's own reader) and write.

The written file keeps everything the project read and does not use (unknown annotation and image keys,
``iscrowd`` 1, ``licenses``, the ``info`` keys) and drops only the project's own editing keys (``source``,
``box``, ``origin``, ``done``), so pycocotools, FiftyOne, Datumaro and CVAT read it as a plain COCO file.
``category_ids="1-based"`` renumbers the categories 1..K for tools that reserve id 0 and records the
mapping in ``info["category_ids"]``.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

from fashionviewer.core.base.atomic import atomic_write_json
from fashionviewer.core.base.errors import DataError
from fashionviewer.core.base.jsonio import read_json
from fashionviewer.core.data.annotation_file import parse_annotations, to_coco
from fashionviewer.core.data.annotations import AnnotationSet
from fashionviewer.core.data.formats.common import check_category_ids, one_based

NAME = "coco"
FILE_NAME = "annotations/instances_default.json"  # in --out DIR: the layout CVAT and Datumaro read
_PROJECT_KEYS = ("source", "box", "origin")


def detect(path: Path) -> bool:
    if path.is_dir():
        return any(detect(p) for p in sorted(path.glob("*.json"))[:20]) or any(
            detect(p) for p in sorted((path / "annotations").glob("*.json"))[:20]
        )
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    head = _head(path)
    return head.lstrip().startswith("{") and ('"images"' in head or '"annotations"' in head)


def _head(path: Path, size: int = 1 << 16) -> str:
    with open(path, "rb") as fh:
        return fh.read(size).decode("utf-8", errors="replace")


def coco_file(path: Path) -> Path:
    """The COCO file of a path: itself, or the one COCO JSON in a folder (or its annotations/)."""
    if path.is_file():
        return path
    found = [
        p
        for p in sorted(path.glob("*.json")) + sorted((path / "annotations").glob("*.json"))
        if detect(p)
    ]
    if len(found) != 1:
        raise DataError(
            f"{path}: {'no' if not found else len(found)} COCO instances JSON files here"
            + (f" ({', '.join(p.name for p in found[:3])}); name one" if found else "")
        )
    return found[0]


def read(path: str | os.PathLike[str]) -> tuple[AnnotationSet, list[str]]:
    path = coco_file(Path(path))
    return parse_annotations(read_json(path), path.name)


def to_plain_coco(aset: AnnotationSet, category_ids: str = "dataset") -> dict[str, Any]:
    data = to_coco(aset)
    for ann in data["annotations"]:
        for key in _PROJECT_KEYS:
            if key in ann and not (
                key == "source" and ann[key] not in ("predicted", "edited", "drawn", "imported")
            ):
                del ann[key]
    for img in data["images"]:
        img.pop("done", None)
    data["info"] = {
        **data["info"],
        "description": data["info"].get("description") or "FashionViewer annotations",
    }
    if check_category_ids(category_ids) == "1-based":
        mapping = one_based(aset)
        for cat in data["categories"]:
            cat["id"] = mapping[int(cat["id"])]
        for ann in data["annotations"]:
            ann["category_id"] = mapping[int(ann["category_id"])]
        data["info"]["category_ids"] = {
            "numbering": "1-based",
            "dataset_ids": {str(new): old for old, new in mapping.items()},
        }
    return data


def write_coco(
    aset: AnnotationSet, path: str | os.PathLike[str], category_ids: str = "dataset"
) -> Path:
    """A standard COCO instances file (see the module docstring), written atomically."""
    return atomic_write_json(path, to_plain_coco(aset, category_ids), indent=None)


def write_steps(
    aset: AnnotationSet, out_dir: Path, folder: Path, category_ids: str = "dataset"
) -> Generator[str, None, list[Path]]:
    """``annotations/instances_default.json`` and the images under ``images/`` (hard links where possible):
    the COCO dataset layout CVAT exports and Datumaro imports."""
    from fashionviewer.core.data.formats.yolo import link_or_copy

    written = []
    for name in sorted(aset.images):
        yield name  # progress, and a cancel point
        link_or_copy(folder / name, out_dir / "images" / name)
        written.append(out_dir / "images" / name)
    return written + [write_coco(aset, out_dir / FILE_NAME, category_ids)]
