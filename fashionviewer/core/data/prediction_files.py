"""Predictions as files: COCO results JSON and the iMaterialist (Kaggle) submission CSV.

COCO results written by :func:`save_coco_results` are a plain JSON list in the
standard COCO results format (``image_id, category_id, bbox [x, y, w, h], score,
segmentation {size, counts}``) plus two extra keys that COCO tools ignore:
``file_name`` (so evaluation can match images by name, see
:mod:`fashionviewer.core.data.evaluation`) and ``class_name``. ``category_id`` is the
instance's label (1..K, the model's label space) unless ``category_ids`` maps labels to
the dataset's own ids (:func:`~fashionviewer.core.data.predictions.category_id_of`).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from fashionviewer.core.base.atomic import atomic_write_json, atomic_write_text
from fashionviewer.core.base.errors import DataError
from fashionviewer.core.base.jsonio import read_json
from fashionviewer.core.data.masks import kaggle_rle_encode, mask_bbox
from fashionviewer.core.data.predictions import (
    ImagePrediction,
    Instance,
    category_id_of,
    label_of_category,
)

log = logging.getLogger(__name__)

__all__ = [
    "from_coco_results",
    "save_coco_results",
    "load_coco_results",
    "validate_coco_results",
    "write_kaggle_submission",
]


# --------------------------------------------------------------------------- COCO results

_RESULT_KEYS = ("image_id", "category_id", "score")


def validate_coco_results(results: Any, source: str = "results") -> list[dict]:
    """Check COCO results records; DataError names the record index and field."""
    if not isinstance(results, list):
        raise DataError(
            f"{source}: expected a JSON list of COCO results, got {type(results).__name__}"
        )
    for i, rec in enumerate(results):
        _check_result_record(rec, f"{source}: record {i}")
    return results


def _check_result_record(rec: Any, where: str) -> None:
    """One COCO results record: the required keys, their types, and a bbox or an RLE segmentation."""
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected an object, got {type(rec).__name__}")
    for key in _RESULT_KEYS:
        if key not in rec:
            raise DataError(f"{where}: missing '{key}'")
    if "bbox" not in rec and "segmentation" not in rec:
        raise DataError(f"{where}: missing 'bbox' and 'segmentation' (needs at least one)")
    for key in ("image_id", "category_id"):
        if isinstance(rec[key], bool) or not isinstance(rec[key], int):
            raise DataError(f"{where}: '{key}' must be an integer, got {rec[key]!r}")
    if isinstance(rec["score"], bool) or not isinstance(rec["score"], (int, float)):
        raise DataError(f"{where}: 'score' must be a number, got {rec['score']!r}")
    if "bbox" in rec:
        _check_result_bbox(rec["bbox"], where)
    if "segmentation" in rec:
        _check_result_segmentation(rec["segmentation"], where)


def _check_result_bbox(bbox: Any, where: str) -> None:
    if not (
        isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)
    ):
        raise DataError(f"{where}: 'bbox' must be [x, y, w, h], got {bbox!r}")


def _check_result_segmentation(seg: Any, where: str) -> None:
    if not isinstance(seg, dict):
        raise DataError(f"{where}: 'segmentation' must be an RLE object")
    for key in ("size", "counts"):
        if key not in seg:
            raise DataError(f"{where}: segmentation: missing '{key}'")


def from_coco_results(
    results: Sequence[Mapping[str, Any]],
    class_names: Sequence[str] | None = None,
    source: str = "results",
    category_ids: Sequence[int] | None = None,
) -> list[ImagePrediction]:
    """Group COCO results records into ImagePredictions (by ``file_name`` when present, else
    ``image_id``), in first-appearance order. Image sizes come from the segmentation sizes
    (0 when a record has only a box). With ``category_ids`` (the model's, see
    :func:`category_id_of`) each record's ``category_id`` is turned back into the model's label."""
    validate_coco_results(list(results), source)
    grouped: dict[Any, ImagePrediction] = {}
    for rec in results:
        key = rec.get("file_name") or rec["image_id"]
        pred = grouped.get(key)
        if pred is None:
            pred = grouped[key] = ImagePrediction(
                file_name=str(rec.get("file_name", rec["image_id"])),
                width=0,
                height=0,
                image_id=int(rec["image_id"]),
            )
        rle = None
        if "segmentation" in rec:
            rle = {
                "size": [int(v) for v in rec["segmentation"]["size"]],
                "counts": rec["segmentation"]["counts"],
            }
            pred.height, pred.width = rle["size"]
        if "bbox" in rec:
            x, y, w, h = (float(v) for v in rec["bbox"])
        else:
            x, y, w, h = mask_bbox(rle)  # type: ignore[arg-type]
        label = label_of_category(int(rec["category_id"]), category_ids, source)
        name = rec.get("class_name")
        if name is None:
            name = (
                class_names[label - 1]
                if class_names and 1 <= label <= len(class_names)
                else str(label)
            )
        pred.instances.append(
            Instance((x, y, x + w, y + h), label, str(name), float(rec["score"]), rle)
        )
    return list(grouped.values())


def _assign_image_ids(predictions: Sequence[ImagePrediction]) -> list[int]:
    """The predictions' own ids when all are set and distinct, else 1..N in order."""
    ids = [p.image_id for p in predictions]
    if all(ids) and len(set(ids)) == len(ids):
        return ids
    return list(range(1, len(predictions) + 1))


def save_coco_results(
    path: str | os.PathLike[str],
    predictions: Iterable[ImagePrediction],
    category_ids: Sequence[int] | None = None,
) -> Path:
    """Write all instances as one COCO results JSON list, atomically.

    ``image_id`` is each prediction's own id when all are nonzero and distinct, else
    its 1-based position; records also carry ``file_name`` for matching by name.
    ``category_ids``: see :meth:`ImagePrediction.to_coco_results`.
    """
    predictions = list(predictions)
    records: list[dict] = []
    for pred, img_id in zip(predictions, _assign_image_ids(predictions), strict=False):
        records.extend(pred.to_coco_results(image_id=img_id, category_ids=category_ids))
    return atomic_write_json(path, records, indent=None)


def load_coco_results(path: str | os.PathLike[str]) -> list[dict]:
    """Read and validate a COCO results JSON list (DataError names the record and field)."""
    data = read_json(path)
    return validate_coco_results(data, str(path))


# --------------------------------------------------------------------------- Kaggle


def write_kaggle_submission(
    path: str | os.PathLike[str],
    predictions: Iterable[ImagePrediction],
    min_score: float = 0.0,
    remove_overlaps: bool = False,
    category_ids: Sequence[int] | None = None,
) -> Path:
    """Write an iMaterialist (FGVC6) submission CSV: ``ImageId,EncodedPixels,ClassId``.

    ImageId is the file name without folders; ClassId is the label's category id,
    ``category_ids[label - 1]`` (an iMaterialist model's card holds 0..45), else ``label - 1``;
    EncodedPixels uses the column-major, 1-indexed convention of
    :func:`~fashionviewer.core.data.masks.kaggle_rle_encode`. Images without instances
    get no row. With ``remove_overlaps`` a pixel goes to the highest-scoring instance
    only (instances left empty are dropped). Box-only instances are skipped with a
    warning.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["ImageId", "EncodedPixels", "ClassId"])
    for pred in predictions:
        image_id = Path(pred.file_name).name
        taken: np.ndarray | None = None
        for inst in sorted(pred.filter(min_score), key=lambda x: -x.score):
            if inst.rle is None:
                log.warning(
                    "%s: skipping a box-only '%s' instance (no mask to encode)",
                    pred.file_name,
                    inst.class_name,
                )
                continue
            if inst.label < 1:
                raise DataError(
                    f"{pred.file_name}: instance label {inst.label} has no ClassId (labels start at 1)"
                )
            mask = inst.mask()
            if remove_overlaps:
                if taken is None:
                    taken = np.zeros(mask.shape, dtype=bool)
                mask = mask.astype(bool) & ~taken
                taken |= mask
            encoded = kaggle_rle_encode(mask)
            if encoded:
                class_id = (
                    inst.label - 1
                    if category_ids is None
                    else category_id_of(inst.label, category_ids)
                )
                writer.writerow([image_id, encoded, str(class_id)])
    return atomic_write_text(path, out.getvalue())
