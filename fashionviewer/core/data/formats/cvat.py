"""CVAT for images 1.1 XML: ``<annotations><version>1.1</version><meta>`` (the task's labels) then one
``<image id name width height>`` per image holding ``<mask label rle left top width height>`` (the mask's
box, row-major run lengths starting with background), ``<polygon points="x,y;x,y;...">`` or ``<box xtl ytl
xbr ybr>`` shapes. Written as masks (exact); polygons and boxes are read too. ``<attribute name=...>``
children are kept as the instance's ``attributes``.
"""

from __future__ import annotations

import datetime as dt
import os
import xml.etree.ElementTree as ET
from collections.abc import Generator
from pathlib import Path

import numpy as np

from fashionviewer.core.base.atomic import atomic_write_bytes
from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.annotations import (
    Annotation,
    AnnotationSet,
    ImageAnnotations,
    categories_for,
)
from fashionviewer.core.data.formats.common import polygons_rle
from fashionviewer.core.data.formats.yolo import link_or_copy
from fashionviewer.core.data.masks import encode_mask, mask_bbox, polygons_to_rle

NAME = "cvat"
FILE_NAME = "annotations.xml"


def detect(path: Path) -> bool:
    path = path / FILE_NAME if path.is_dir() else path
    if path.suffix.lower() != ".xml" or not path.is_file():
        return False
    with open(path, "rb") as fh:
        head = fh.read(4096).decode("utf-8", errors="replace")
    return "<annotations" in head


def _rle(mask: np.ndarray) -> tuple[str, int, int, int, int]:
    x, y, w, h = (int(v) for v in mask_bbox(encode_mask(mask)))
    crop = mask[y : y + h, x : x + w].ravel().astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], crop, [1 - crop[-1]]])))
    counts = np.diff(np.concatenate([[0], changes]))
    return ", ".join(str(int(c)) for c in counts), x, y, w, h


def write_steps(
    aset: AnnotationSet, out_dir: Path, folder: Path, category_ids: str = "dataset"
) -> Generator[str, None, list[Path]]:
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(meta, "name").text = folder.name
    ET.SubElement(meta, "size").text = str(len(aset.images))
    ET.SubElement(meta, "created").text = dt.datetime.now(dt.timezone.utc).isoformat(
        timespec="seconds"
    )
    labels = ET.SubElement(meta, "labels")
    for cat in sorted(aset.categories, key=lambda c: int(c["id"])):
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = str(cat["name"])
        ET.SubElement(label, "type").text = "mask"
        ET.SubElement(label, "attributes")
    for index, name in enumerate(sorted(aset.images)):
        yield name  # progress, and a cancel point
        rec = aset.images[name]
        image = ET.SubElement(
            root, "image", id=str(index), name=name, width=str(rec.width), height=str(rec.height)
        )
        for ann in rec.annotations:
            mask = ann.mask()
            if not mask.any():
                continue
            counts, x, y, w, h = _rle(mask)
            shape = ET.SubElement(
                image,
                "mask",
                label=aset.category_name(ann.category_id),
                source="manual",
                occluded="0",
                rle=counts,
                left=str(x),
                top=str(y),
                width=str(w),
                height=str(h),
                z_order="0",
            )
            for key, value in (
                (ann.extra.get("attributes") or {}).items()
                if isinstance(ann.extra.get("attributes"), dict)
                else ()
            ):
                ET.SubElement(shape, "attribute", name=str(key)).text = str(value)
    written = []
    # images/ beside the XML: CVAT's dataset layout, as Datumaro reads it
    for name in sorted(aset.images):
        link_or_copy(folder / name, out_dir / "images" / name)
        written.append(out_dir / "images" / name)
    ET.indent(root)
    data = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"
    return written + [atomic_write_bytes(out_dir / FILE_NAME, data)]


def read(path: str | os.PathLike[str]) -> tuple[AnnotationSet, list[str]]:
    path = Path(path)
    path = path / FILE_NAME if path.is_dir() else path
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DataError(f"{path}: broken XML ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if root.tag != "annotations":
        raise DataError(
            f"{path}: not CVAT for images XML (root <{root.tag}>, expected <annotations>)"
        )
    names = [el.text or "" for el in root.iterfind("./meta//labels/label/name")]
    for image in root.iter("image"):
        names += [
            str(s.get("label")) for s in image if s.get("label") and s.get("label") not in names
        ]
    aset = AnnotationSet(categories=categories_for(names))
    problems: list[str] = []
    next_id = 1
    for image in root.iter("image"):
        name = image.get("name") or ""
        try:
            width, height = int(image.get("width", "")), int(image.get("height", ""))
        except ValueError:
            raise DataError(f"{path}: image {name!r}: width and height must be integers") from None
        rec = ImageAnnotations(name, width, height)
        for shape in image:
            where = f"{path}: image {name}: <{shape.tag}> {len(rec.annotations) + 1}"
            rle = _shape_rle(shape, height, width, where)
            if rle is None:
                problems.append(f"{where}: a {shape.tag} holds no region; skipped")
                continue
            attributes = {a.get("name"): a.text for a in shape.iter("attribute") if a.get("name")}
            extra = {"attributes": attributes} if attributes else {}
            rec.annotations.append(
                Annotation(
                    next_id, aset.category_id(str(shape.get("label"))), rle, "imported", extra=extra
                )
            )
            next_id += 1
        if name in aset.images:
            raise DataError(f"{path}: image {name} is listed twice")
        aset.images[name] = rec
    return aset, problems


def _shape_rle(shape: ET.Element, height: int, width: int, where: str) -> dict | None:
    try:
        if shape.tag == "polygon":
            points = [
                float(v)
                for pair in (shape.get("points") or "").split(";")
                if pair
                for v in pair.split(",")
            ]
            return polygons_rle([points], height, width, where)
        if shape.tag == "box":
            x0, y0, x1, y1 = (float(shape.get(k, "")) for k in ("xtl", "ytl", "xbr", "ybr"))
            return polygons_to_rle([[x0, y0, x1, y0, x1, y1, x0, y1]], height, width)
        if shape.tag == "mask":
            counts = [int(v) for v in (shape.get("rle") or "").split(",") if v.strip()]
            x, y, w, h = (int(float(shape.get(k, ""))) for k in ("left", "top", "width", "height"))
            if sum(counts) != w * h or any(c < 0 for c in counts):
                raise DataError(f"{where}: rle counts sum to {sum(counts)}, the box is {w}x{h}")
            if x < 0 or y < 0 or x + w > width or y + h > height:
                raise DataError(
                    f"{where}: mask box {x},{y} {w}x{h} lies outside the {width}x{height} image"
                )
            values = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool).reshape(h, w)
            mask = np.zeros((height, width), bool)
            mask[y : y + h, x : x + w] = values
            return encode_mask(mask)
    except ValueError:
        raise DataError(f"{where}: malformed numbers") from None
    return None
