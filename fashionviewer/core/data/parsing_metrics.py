"""Scoring across taxonomies, and per-pixel parsing metrics (pixel accuracy, mean IoU).

Cross-taxonomy scoring: a model that predicts in the iMaterialist taxonomy is scored on a CCP
folder by mapping the CCP ground truth into that taxonomy
(``CCPDataset(..., taxonomy="imaterialist")``). :func:`align_results` then gives each result the
ground truth's category id of its ``class_name`` (every file ``fashionviewer predict`` writes
carries one), so the scores do not depend on how a results file numbers its categories
(labels 1..K or dataset ids such as iMaterialist's ClassId 0..45).

Parsing metrics (:func:`parsing_metrics`), as in the Clothing Co-Parsing paper (Yang et al.
2014, 88.23 % pixel accuracy): every pixel gets one class, the ground truth's from its
instance masks (background elsewhere), the prediction's from the highest-scoring instance at
or above ``min_score`` covering it (background elsewhere). Pixel accuracy is the share of all
pixels whose class is right; mean IoU averages, over the garment classes present in the
ground truth, intersection over union accumulated over all images. Background is not a garment
class, but its pixels count in the accuracy (as in the paper).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.masks import decode_mask, segmentation_to_rle

CCP_PAPER_PIXEL_ACCURACY = 0.8823  # Yang et al., CVPR 2014, Clothing Co-Parsing, pixel accuracy


def align_results(
    gt: dict[str, Any], results: Sequence[dict[str, Any]], strict: bool = True
) -> list[dict[str, Any]]:
    """Copies of ``results`` whose ``category_id`` is the ground-truth category of the same name.

    Results without a ``class_name`` keep their ``category_id``. A class name the ground truth
    lacks is a DataError naming the record (the results are in another taxonomy) when
    ``strict``; otherwise the results are returned unchanged (scored by their ids)."""
    by_name: dict[str, Any] = {}
    for cat in gt.get("categories", []):
        by_name.setdefault(str(cat.get("name", cat["id"])), cat["id"])
    aligned = []
    for i, rec in enumerate(results):
        name = rec.get("class_name")
        if name is None or not by_name:
            aligned.append(rec)
            continue
        if str(name) not in by_name:
            if not strict:
                return list(results)
            raise DataError(
                f"results: record {i}: class '{name}' is not a ground-truth category; the results are "
                "in another taxonomy (pass --taxonomy to map the ground truth into theirs)"
            )
        aligned.append({**rec, "category_id": by_name[str(name)]})
    return aligned


def _label_map(
    annotations: Sequence[dict[str, Any]],
    index: dict[Any, int],
    height: int,
    width: int,
    scored: bool,
    min_score: float,
) -> np.ndarray:
    """H×W int map of class indices (0 background); the highest score wins where instances overlap."""
    out = np.zeros((height, width), dtype=np.int32)
    items = [a for a in annotations if not scored or float(a.get("score", 0.0)) >= min_score]
    if scored:
        items.sort(key=lambda a: float(a.get("score", 0.0)))  # painted last = highest score wins
    for ann in items:
        if "segmentation" not in ann or ann.get("iscrowd", 0):
            continue
        mask = decode_mask(segmentation_to_rle(ann["segmentation"], height, width)).astype(bool)
        if mask.shape != (height, width):
            raise DataError(
                f"image {ann.get('image_id')}: a mask of size {mask.shape[1]}x{mask.shape[0]} on a "
                f"{width}x{height} image"
            )
        out[mask] = index[ann["category_id"]]
    return out


def parsing_confusion(
    gt: dict[str, Any], results: Sequence[dict[str, Any]], min_score: float = 0.0
) -> tuple[np.ndarray, list[str]]:
    """(K+1)×(K+1) pixel counts (rows ground truth, columns prediction; index 0 background) over the
    ground truth's images, and the class names of indices 1..K. ``results`` must carry the
    ground truth's ``image_id`` and category ids (see :func:`align_results` and
    ``evaluation.match_results``)."""
    categories = list(gt["categories"])
    index = {cat["id"]: i + 1 for i, cat in enumerate(categories)}
    size = len(categories) + 1
    by_image_gt: dict[Any, list[dict[str, Any]]] = {}
    for ann in gt["annotations"]:
        by_image_gt.setdefault(ann["image_id"], []).append(ann)
    by_image_dt: dict[Any, list[dict[str, Any]]] = {}
    for i, rec in enumerate(results):
        if rec["category_id"] not in index:
            raise DataError(
                f"results: record {i}: category_id {rec['category_id']} is not a ground-truth category"
            )
        by_image_dt.setdefault(rec["image_id"], []).append(rec)
    matrix = np.zeros((size, size), dtype=np.int64)
    for image in gt["images"]:
        height, width = int(image["height"]), int(image["width"])
        truth = _label_map(by_image_gt.get(image["id"], []), index, height, width, False, 0.0)
        pred = _label_map(by_image_dt.get(image["id"], []), index, height, width, True, min_score)
        matrix += np.bincount((truth.ravel() * size + pred.ravel()), minlength=size * size).reshape(
            size, size
        )
    return matrix, [str(cat.get("name", cat["id"])) for cat in categories]


def scores_from_confusion(matrix: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Pixel accuracy, mean IoU over the garment classes present in the ground truth, per-class IoU."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - tp
    present = matrix.sum(1) > 0
    per_class = {names[k - 1]: float(tp[k] / union[k]) for k in range(1, len(matrix)) if present[k]}
    total = matrix.sum()
    garment = matrix[1:].sum()
    return {
        "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
        "garment_pixel_accuracy": float(tp[1:].sum() / garment) if garment else 0.0,
        "miou": float(np.mean(list(per_class.values()))) if per_class else 0.0,
        "per_class_iou": per_class,
        "pixels": int(total),
    }


def parsing_metrics(
    gt: dict[str, Any], results: Sequence[dict[str, Any]], min_score: float = 0.0
) -> dict[str, Any]:
    """:func:`scores_from_confusion` of :func:`parsing_confusion`, plus the images and the CCP paper's figure."""
    matrix, names = parsing_confusion(gt, results, min_score)
    metrics = scores_from_confusion(matrix, names)
    metrics.update(
        iou_type="parsing",
        images=len(gt["images"]),
        results=len(results),
        min_score=min_score,
        ccp_paper_pixel_accuracy=CCP_PAPER_PIXEL_ACCURACY,
    )
    return metrics


def format_parsing_metrics(metrics: dict[str, Any]) -> str:
    """A readable table of :func:`parsing_metrics`'s output."""
    lines = [
        f"parsing on {metrics['images']} images ({metrics['pixels']:,} pixels), predictions scoring >= "
        f"{metrics['min_score']:g}",
        f"pixel accuracy {100 * metrics['pixel_accuracy']:.2f} %   (CCP paper: "
        f"{100 * metrics['ccp_paper_pixel_accuracy']:.2f} %)",
        f"garment pixel accuracy {100 * metrics['garment_pixel_accuracy']:.2f} %   "
        "(pixels whose ground truth is a garment)",
        f"mean IoU over {len(metrics['per_class_iou'])} garment classes {metrics['miou']:.3f}",
    ]
    per_class = metrics["per_class_iou"]
    if per_class:
        width = max(len(n) for n in per_class)
        lines += ["", f"{'class':<{width}}  IoU"]
        lines += [
            f"{name:<{width}}  {iou:.3f}"
            for name, iou in sorted(per_class.items(), key=lambda kv: -kv[1])
        ]
    return "\n".join(lines)
