"""iMaterialist-Fashion 2019 ``train.csv``: ImageId (the file name), EncodedPixels (1-indexed, column-major
run-length pairs), Height, Width, ClassId (0-45, attributes after ``_``). Export only (the dataset reader,
:mod:`fashionviewer.core.data.datasets.imaterialist`, reads it for training and evaluation); import reads
it into the project with attributes kept as ``attributes``."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Generator
from pathlib import Path

from fashionviewer.core.base.atomic import atomic_write_text
from fashionviewer.core.base.errors import DataError, FashionViewerError
from fashionviewer.core.base.steps import drain
from fashionviewer.core.data.annotations import Annotation, AnnotationSet, ImageAnnotations
from fashionviewer.core.data.masks import coco_to_kaggle_rle
from fashionviewer.core.data.taxonomy import IMATERIALIST, imaterialist_names

NAME = "imaterialist"
FILE_NAME = "train.csv"


def detect(path: Path) -> bool:
    path = path / FILE_NAME if path.is_dir() else path
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline()
    return "EncodedPixels" in header and "ImageId" in header


def write_csv(aset: AnnotationSet, path: str | os.PathLike[str]) -> Path:
    """The CSV (needs the categories to be iMaterialist's); an empty mask has no row in this format."""
    return drain(_csv_steps(aset, path))


def _csv_steps(aset: AnnotationSet, path: str | os.PathLike[str]) -> Generator[str, None, Path]:
    if aset.taxonomy != IMATERIALIST:
        raise FashionViewerError(
            "iMaterialist export: the annotation file's categories are not the iMaterialist "
            "taxonomy (ids 0-45 with its names)"
        )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["ImageId", "EncodedPixels", "Height", "Width", "ClassId"])
    for name in sorted(aset.images):
        yield name  # progress, and a cancel point
        rec = aset.images[name]
        for ann in rec.annotations:
            encoded = coco_to_kaggle_rle(ann.rle)
            if encoded:
                attributes = ann.extra.get("attributes")
                class_id = str(ann.category_id)
                if (
                    isinstance(attributes, list)
                    and attributes
                    and all(isinstance(a, int) for a in attributes)
                ):
                    class_id += "_" + "_".join(str(a) for a in attributes)
                writer.writerow([rec.file_name, encoded, rec.height, rec.width, class_id])
    return atomic_write_text(path, buf.getvalue())


def read(path: str | os.PathLike[str]) -> tuple[AnnotationSet, list[str]]:
    from fashionviewer.core.data.datasets.imaterialist import read_imaterialist_csv

    path = Path(path)
    path = path / FILE_NAME if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    names = imaterialist_names()
    aset = AnnotationSet(categories=[{"id": i, "name": n} for i, n in enumerate(names)])
    next_id = 1
    for image_id, rows in read_imaterialist_csv(path, num_categories=len(names)).items():
        rec = ImageAnnotations(image_id, rows[0].width, rows[0].height)
        for row in rows:
            if (row.height, row.width) != (rec.height, rec.width):
                raise DataError(
                    f"{path.name}: row {row.row}: {image_id} is {row.width}x{row.height} here but "
                    f"{rec.width}x{rec.height} in an earlier row"
                )
            extra = {"attributes": list(row.attributes)} if row.attributes else {}
            rec.annotations.append(
                Annotation(next_id, row.category, row.rle, "imported", extra=extra)
            )
            next_id += 1
        aset.images[image_id] = rec
    return aset, []


def write_steps(
    aset: AnnotationSet, out_dir: Path, folder: Path, category_ids: str = "dataset"
) -> Generator[str, None, list[Path]]:
    return [(yield from _csv_steps(aset, out_dir / FILE_NAME))]
