"""iMaterialist-Fashion 2019 (Kaggle FGVC6) instance segmentation.

Layout (the Kaggle download)::

    ROOT/train.csv                 ImageId, EncodedPixels, Height, Width, ClassId
    ROOT/label_descriptions.json   categories (0-45) and attributes (optional here)
    ROOT/train/ or ROOT/images/    the photos (ImageId, or ImageId + .jpg/.jpeg/.png)

``ClassId`` is ``cat`` or ``cat_attr_attr...`` (the FGVC7 variant with an
``AttributesIds`` column is read too). Category c (0-45) becomes label c + 1;
the category names come from ``resources/labels/imaterialist2019_categories.json``.
``EncodedPixels`` is decoded with :func:`fashionviewer.core.data.masks.kaggle_rle_to_coco`.

Row numbers in messages are the CSV line numbers (the header is row 1).
Malformed rows raise DataError naming the row and field. Rows whose
Height/Width disagree with the image (or with an earlier row of the same image,
when there are no photos) are skipped: logged and listed in ``skipped_rows``.

Split: every ImageId in the CSV, sorted, gets image_id = position + 1; a seeded
permutation (``seed``, default 0) puts ``round(val_fraction * n)`` images
(default 10%, at least one when there are two or more) in ``val``, the rest in
``train``; ``all`` is everything. The split depends only on the CSV and the seed.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.base.paths import LABELS_DIR
from fashionviewer.core.data.datasets.base import (
    DetectionDataset,
    ImageEntry,
    first_existing_dir,
    seeded_split,
)
from fashionviewer.core.data.imageio import read_image_size
from fashionviewer.core.data.masks import kaggle_rle_to_coco

log = logging.getLogger(__name__)

CATEGORIES_FILE = LABELS_DIR / "imaterialist2019_categories.json"
REQUIRED_COLUMNS = ("ImageId", "EncodedPixels", "Height", "Width", "ClassId")
_IMAGE_EXTS = (".jpg", ".jpeg", ".png")


def load_category_names(path: str | os.PathLike[str] = CATEGORIES_FILE) -> list[str]:
    """The 46 category names, index = category id (label - 1)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        cats = sorted(data["categories"], key=lambda c: int(c["id"]))
        names = [str(c["name"]) for c in cats]
        ids = [int(c["id"]) for c in cats]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: cannot read the category list ({exc})") from exc
    if ids != list(range(len(ids))):
        raise DataError(f"{path}: category ids must be 0..{len(ids) - 1}")
    return names


@dataclass
class _Row:
    row: int
    height: int
    width: int
    category: int
    attributes: list[int]
    rle: dict


def _int_field(value: str | None, source: str, row: int, field: str) -> int:
    if value is None or value.strip() == "":
        raise DataError(f"{source}: row {row}: {field}: missing value")
    try:
        return int(value.strip())
    except ValueError:
        raise DataError(
            f"{source}: row {row}: {field}: {value.strip()[:30]!r} is not an integer"
        ) from None


def read_imaterialist_csv(
    csv_path: str | os.PathLike[str], num_categories: int = 46
) -> dict[str, list[_Row]]:
    """Parse and validate train.csv; rows grouped by ImageId in file order."""
    csv_path = Path(csv_path)
    source = csv_path.name
    try:
        fh = open(csv_path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{csv_path}: cannot open ({exc.strerror or exc})") from exc
    by_image: dict[str, list[_Row]] = {}
    with fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"{source}: missing column(s) {', '.join(missing)} "
                f"(header has: {', '.join(header) or 'nothing'})"
            )
        has_attr_col = "AttributesIds" in header
        try:
            for rec in reader:
                row = reader.line_num
                image_id = (rec.get("ImageId") or "").strip()
                if not image_id:
                    raise DataError(f"{source}: row {row}: ImageId: missing value")
                height = _int_field(rec.get("Height"), source, row, "Height")
                width = _int_field(rec.get("Width"), source, row, "Width")
                if height <= 0 or width <= 0:
                    raise DataError(
                        f"{source}: row {row}: Height/Width: {height}x{width} must be positive"
                    )
                class_id = (rec.get("ClassId") or "").strip()
                if not class_id:
                    raise DataError(f"{source}: row {row}: ClassId: missing value")
                parts = class_id.split("_")
                category = _int_field(parts[0], source, row, "ClassId")
                attributes = [_int_field(p, source, row, "ClassId attribute") for p in parts[1:]]
                if has_attr_col and (rec.get("AttributesIds") or "").strip():
                    attributes += [
                        _int_field(p, source, row, "AttributesIds")
                        for p in rec["AttributesIds"].split(",")
                    ]
                if not 0 <= category < num_categories:
                    raise DataError(
                        f"{source}: row {row}: ClassId: category {category} out of range 0-{num_categories - 1}"
                    )
                encoded = rec.get("EncodedPixels")
                if encoded is None or not encoded.strip():
                    raise DataError(f"{source}: row {row}: EncodedPixels: missing value")
                try:
                    rle = kaggle_rle_to_coco(encoded, height, width)
                except DataError as exc:
                    raise DataError(f"{source}: row {row}: EncodedPixels: {exc}") from None
                by_image.setdefault(image_id, []).append(
                    _Row(row, height, width, category, attributes, rle)
                )
        except csv.Error as exc:
            raise DataError(f"{source}: row {reader.line_num}: malformed CSV ({exc})") from exc
    return by_image


class IMaterialistDataset(DetectionDataset):
    """iMaterialist-Fashion 2019 as torchvision detection samples (see the module docstring).

    ``root`` is the dataset folder or its train.csv. Targets carry ``attributes``: a list
    (one per instance) of attribute-id lists. ``check_sizes`` reads each photo's header
    to catch rows whose Height/Width disagree; ``require_images=False`` allows a CSV
    without photos (ground truth only).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        image_dir: str | os.PathLike[str] | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        check_sizes: bool = True,
        require_images: bool = True,
        max_size: int | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(split, max_size=max_size, limit=limit)
        root = Path(root)
        csv_path = root if root.is_file() else root / "train.csv"
        folder = csv_path.parent
        if not csv_path.is_file():
            raise DataError(f"{csv_path}: not found (expected the iMaterialist train.csv)")
        self.root = folder
        self.csv_path = csv_path
        self.class_names = load_category_names()
        # ClassId 0..45, label k is ClassId k-1
        self.category_ids = list(range(len(self.class_names)))
        self.attribute_names = self._read_label_descriptions(folder / "label_descriptions.json")
        by_image = read_imaterialist_csv(csv_path, len(self.class_names))
        if image_dir is not None:
            self.image_dir: Path | None = Path(image_dir)
            if not self.image_dir.is_dir():
                raise DataError(f"{self.image_dir}: image folder not found")
        else:
            self.image_dir = first_existing_dir([folder / "train", folder / "images"])
        if self.image_dir is None and require_images:
            raise DataError(
                f"{folder}: no image folder (expected train/ or images/ beside {csv_path.name})"
            )

        all_ids = sorted(by_image)
        n_val = round(val_fraction * len(all_ids))
        if val_fraction > 0 and len(all_ids) >= 2:
            n_val = min(max(1, n_val), len(all_ids) - 1)
        chosen = seeded_split(all_ids, split, n_val, seed, csv_path.name)

        entries: list[ImageEntry] = []
        self._rows: list[list[_Row]] = []
        for position in chosen:
            name = all_ids[position]
            rows = by_image[name]
            path = self._find_image(name)
            if path is None and self.image_dir is not None:
                self._skip(rows, f"image {name} not found in {self.image_dir}")
                continue
            if path is not None and check_sizes:
                width, height = read_image_size(path)
                what = f"image {path.name} (Height {height}, Width {width})"
            else:
                width, height = rows[0].width, rows[0].height
                what = f"row {rows[0].row} of the same image (Height {height}, Width {width})"
            good = [r for r in rows if (r.width, r.height) == (width, height)]
            for r in rows:
                if (r.width, r.height) != (width, height):
                    self._skip([r], f"Height {r.height}, Width {r.width} disagree with {what}")
            if not good:
                continue
            file_name = (
                path.name if path is not None else (name if Path(name).suffix else name + ".jpg")
            )
            entries.append(ImageEntry(position + 1, file_name, path, width, height))
            self._rows.append(good)
        if self.skipped_rows:
            log.warning(
                "%s: skipped %d row(s), e.g. %s",
                csv_path.name,
                len(self.skipped_rows),
                self.skipped_rows[0],
            )
        if chosen and not entries:
            raise DataError(
                f"{csv_path}: none of the {len(chosen)} images of split '{split}' is usable "
                f"(first problem: {self.skipped_rows[0] if self.skipped_rows else 'unknown'})"
            )
        self._set_images(entries)
        self._rows = self._rows[: len(self.images)]

    def _skip(self, rows: list[_Row], reason: str) -> None:
        for r in rows:
            message = f"row {r.row}: {reason}"
            self.skipped_rows.append(message)
            log.debug("%s: %s", self.csv_path.name, message)

    def _find_image(self, name: str) -> Path | None:
        if self.image_dir is None:
            return None
        candidates = [self.image_dir / name] if Path(name).suffix.lower() in _IMAGE_EXTS else []
        candidates += [self.image_dir / (name + ext) for ext in _IMAGE_EXTS]
        return next((p for p in candidates if p.is_file()), None)

    def _read_label_descriptions(self, path: Path) -> dict[int, str]:
        """Attribute names from label_descriptions.json; warn when its categories differ from ours."""
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            cats = {int(c["id"]): str(c["name"]) for c in data.get("categories", [])}
            attrs = {int(a["id"]): str(a["name"]) for a in data.get("attributes", [])}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{path}: malformed label descriptions ({exc})") from exc
        if cats and [cats.get(i) for i in range(len(self.class_names))] != self.class_names:
            log.warning(
                "%s: categories differ from the bundled iMaterialist 2019 list; using the bundled names",
                path,
            )
        return attrs

    def _annotations(self, index: int) -> list[dict[str, Any]]:
        return [
            {
                "label": r.category + 1,
                "segmentation": r.rle,
                "iscrowd": 0,
                "attributes": list(r.attributes),
            }
            for r in self._rows[index]
        ]
