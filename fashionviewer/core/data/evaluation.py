"""COCO-style box and mask AP (pycocotools COCOeval) and ground truth from any supported layout.

Ground truth (:func:`load_ground_truth`) is a COCO instances dict in *label space*:
category id k is label k (1..K) of the matching dataset class, which is what the
models predict and what :meth:`ImagePrediction.to_coco_results` writes as
``category_id``.

How results find their image (:func:`match_results`): a result with a
``file_name`` (everything :func:`~fashionviewer.core.data.prediction_files.save_coco_results`
writes has one) is matched to the ground-truth image with the same file name,
else the same base name (folders dropped), else the same stem (extension dropped);
its ``image_id`` is then ignored. A result without ``file_name`` must carry the
ground truth's ``image_id``. Category ids absent from the ground truth are an error.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path, PurePath
from typing import Any, Sequence

import numpy as np

from fashionviewer.core.base.errors import DataError, FashionViewerError
from fashionviewer.core.data.masks import mask_area, mask_bbox, segmentation_to_rle
from fashionviewer.core.data.prediction_files import validate_coco_results

log = logging.getLogger(__name__)

IOU_TYPES = ("segm", "bbox")
SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
_STAT_KEYS = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)


# --------------------------------------------------------------------------- ground truth


def load_ground_truth(path: str | os.PathLike[str], split: str = "all") -> dict[str, Any]:
    """COCO ground truth (label space) from a COCO JSON file, a COCO folder
    (``annotations/instances_{split}.json``), an iMaterialist train.csv or its folder, or a
    Clothing Co-Parsing folder. ``split`` ("all", "train", "val") selects the dataset split
    for folder layouts; a COCO JSON file is used whole."""
    from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME
    from fashionviewer.core.data.datasets.ccp import CCPDataset
    from fashionviewer.core.data.datasets.coco import (
        find_annotation_file,
        parse_coco,
        read_coco_ground_truth,
    )
    from fashionviewer.core.data.datasets.imaterialist import IMaterialistDataset
    from fashionviewer.core.data.formats import CCP, OTHER_TOOLS, detect_format, read_ground_truth

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found")
    fmt = detect_format(path)  # the one format detection (core.data.formats)
    if fmt in OTHER_TOOLS:  # labelme, YOLO, VOC, CVAT: read as the project imports them
        return parse_coco(read_ground_truth(path, fmt), path.name).ground_truth()
    if path.is_file():
        if path.suffix.lower() == ".json":
            # its own one-line errors for a broken or foreign JSON
            return read_coco_ground_truth(path)
        if path.suffix.lower() == ".csv":
            return IMaterialistDataset(path, split, require_images=False).coco_ground_truth()
        raise DataError(f"{path}: not a COCO .json, an iMaterialist .csv or a CVAT .xml file")
    if fmt == "imaterialist" or (path / "train.csv").is_file():
        return IMaterialistDataset(path, split, require_images=False).coco_ground_truth()
    if fmt == CCP:
        return CCPDataset(path, split).coco_ground_truth()
    if (path / DEFAULT_FILE_NAME).is_file():  # an annotated folder
        return read_coco_ground_truth(path / DEFAULT_FILE_NAME)
    ann_dir = path / "annotations"
    if ann_dir.is_dir():
        files = sorted(ann_dir.glob("*.json"))
        if split == "all":
            if len(files) == 1:
                return read_coco_ground_truth(files[0])
            raise DataError(
                f"{ann_dir}: {len(files)} annotation files ({', '.join(f.name for f in files)}); "
                "choose one with a split (e.g. --split val) or pass the file"
            )
        return read_coco_ground_truth(find_annotation_file(path, split))
    raise DataError(
        f"{path}: not a COCO folder (annotations/*.json), an annotated folder, an iMaterialist folder "
        "(train.csv), a Clothing Co-Parsing folder (photos/, annotations/pixel-level/), or a labelme, "
        "YOLO, VOC or CVAT export"
    )


def _normalise_gt(gt: Any, iou_type: str) -> dict[str, Any]:
    """A validated copy (pycocotools mutates what it is given) with area, bbox and iscrowd filled in."""
    if not isinstance(gt, dict):
        raise DataError(f"ground truth: expected a COCO dict, got {type(gt).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            raise DataError(f"ground truth: missing or invalid '{key}' list")
    images = []
    sizes = {}
    for i, img in enumerate(gt["images"]):
        for key in ("id", "width", "height"):
            if key not in img:
                raise DataError(f"ground truth: image {i}: missing '{key}'")
        sizes[img["id"]] = (int(img["height"]), int(img["width"]))
        images.append(dict(img))
    categories = []
    for i, cat in enumerate(gt["categories"]):
        if "id" not in cat:
            raise DataError(f"ground truth: category {i}: missing 'id'")
        categories.append({"id": cat["id"], "name": str(cat.get("name", cat["id"]))})
    annotations = [
        _normalise_gt_annotation(i, ann, sizes, iou_type) for i, ann in enumerate(gt["annotations"])
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


def _normalise_gt_annotation(
    i: int, ann: dict[str, Any], sizes: dict[Any, tuple[int, int]], iou_type: str
) -> dict[str, Any]:
    """A copy of ground-truth annotation ``i`` with id i + 1, RLE segmentation, area and bbox."""
    for key in ("image_id", "category_id"):
        if key not in ann:
            raise DataError(f"ground truth: annotation {i}: missing '{key}'")
    if ann["image_id"] not in sizes:
        raise DataError(f"ground truth: annotation {i}: unknown image_id {ann['image_id']}")
    out = dict(ann)
    out["id"] = i + 1  # pycocotools needs unique nonzero ids
    out["iscrowd"] = int(ann.get("iscrowd", 0))
    if "segmentation" in ann:
        rle = segmentation_to_rle(ann["segmentation"], *sizes[ann["image_id"]])
        out["segmentation"] = rle
        out.setdefault("area", float(mask_area(rle)))
        out.setdefault("bbox", mask_bbox(rle))
    elif iou_type == "segm":
        raise DataError(
            f"ground truth: annotation {i}: missing 'segmentation' (needed for mask AP)"
        )
    elif "bbox" not in ann:
        raise DataError(f"ground truth: annotation {i}: missing 'bbox' and 'segmentation'")
    else:
        out.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
    return out


# --------------------------------------------------------------------------- results


def match_results(
    gt: dict[str, Any], results: Sequence[dict[str, Any]], ignore_unknown_images: bool = False
) -> tuple[list[dict[str, Any]], int]:
    """Copies of ``results`` with ``image_id`` set to the ground truth's (see the module
    docstring), and how many were dropped for images not in the ground truth (only with
    ``ignore_unknown_images``; otherwise those raise DataError)."""
    ids = {img["id"] for img in gt["images"]}
    exact: dict[str, list[int]] = {}
    base: dict[str, list[int]] = {}
    stem: dict[str, list[int]] = {}
    for img in gt["images"]:
        name = str(img.get("file_name", ""))
        if name:
            exact.setdefault(name, []).append(img["id"])
            base.setdefault(PurePath(name).name, []).append(img["id"])
            stem.setdefault(PurePath(name).stem, []).append(img["id"])
    category_ids = {cat["id"] for cat in gt["categories"]}
    matched, dropped = [], 0
    for i, rec in enumerate(results):
        name = rec.get("file_name")
        if name:
            name = str(name)
            found = (
                exact.get(name) or base.get(PurePath(name).name) or stem.get(PurePath(name).stem)
            )
            if found and len(found) > 1:
                raise DataError(
                    f"results: record {i}: file_name '{name}' matches {len(found)} ground-truth images"
                )
            image_id = found[0] if found else None
            what = f"file_name '{name}'"
        else:
            image_id = rec["image_id"] if rec["image_id"] in ids else None
            what = f"image_id {rec['image_id']}"
        if image_id is None:
            if ignore_unknown_images:
                dropped += 1
                continue
            raise DataError(f"results: record {i}: {what} is not in the ground truth")
        if rec["category_id"] not in category_ids:
            raise DataError(
                f"results: record {i}: category_id {rec['category_id']} is not a ground-truth category "
                f"(ids {min(category_ids)}-{max(category_ids)})"
            )
        out = {k: v for k, v in rec.items() if k not in ("file_name", "class_name")}
        out["image_id"] = image_id
        matched.append(out)
    return matched, dropped


def _prepare_results(
    results: list[dict[str, Any]], iou_type: str, gt: dict[str, Any]
) -> list[dict[str, Any]]:
    sizes = {img["id"]: [int(img["height"]), int(img["width"])] for img in gt["images"]}
    prepared = []
    for i, rec in enumerate(results):
        out = dict(rec)
        if (
            "segmentation" in rec
            and [int(v) for v in rec["segmentation"]["size"]] != sizes[rec["image_id"]]
        ):
            raise DataError(
                f"results: record {i}: mask size {list(rec['segmentation']['size'])} differs from its ground-truth "
                f"image {sizes[rec['image_id']]} (predictions must be in original-image pixels)"
            )
        if iou_type == "segm":
            if "segmentation" not in rec:
                raise DataError(
                    f"results: record {i}: no 'segmentation' (mask AP needs masks; try --iou bbox)"
                )
            # Without bbox pycocotools takes the detection's area from the mask (as for the
            # ground truth) instead of from the box.
            out.pop("bbox", None)
        elif "bbox" not in rec:
            out["bbox"] = mask_bbox(rec["segmentation"])
        if iou_type == "bbox":
            out.pop("segmentation", None)  # loadRes would otherwise take the segm branch
        prepared.append(out)
    return prepared


# --------------------------------------------------------------------------- evaluation


def evaluate_coco(
    gt: dict[str, Any],
    results: Sequence[dict[str, Any]],
    iou_type: str = "segm",
    *,
    ignore_unknown_images: bool = False,
) -> dict[str, Any]:
    """COCO AP of ``results`` (COCO results records) against ``gt`` (a COCO instances dict).

    Returns ``{AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, per_class: {name: AP},
    iou_type, images, instances, results, ignored_results}``. Values follow COCOeval:
    -1.0 where nothing can be measured (e.g. APs with no small objects, or a class
    without ground truth).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if iou_type not in IOU_TYPES:
        raise FashionViewerError(f"unknown IoU type '{iou_type}' (choose segm or bbox)")
    gt = _normalise_gt(gt, iou_type)
    if not gt["categories"]:
        raise DataError("ground truth: no categories")
    results = validate_coco_results(list(results), "results")
    matched, dropped = match_results(gt, results, ignore_unknown_images)
    prepared = _prepare_results(matched, iou_type, gt)

    quiet = io.StringIO()  # pycocotools prints progress; keep library output on the logger
    with contextlib.redirect_stdout(quiet):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if prepared:
            coco_dt = coco_gt.loadRes(prepared)
        else:
            coco_dt = COCO()
            coco_dt.dataset = {
                "images": gt["images"],
                "categories": gt["categories"],
                "annotations": [],
            }
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    log.debug("COCOeval output:\n%s", quiet.getvalue())

    metrics: dict[str, Any] = {
        key: float(v) for key, v in zip(_STAT_KEYS, evaluator.stats, strict=False)
    }
    precision = evaluator.eval["precision"]  # [IoU thresholds, recall, class, area range, max dets]
    names = {cat["id"]: cat["name"] for cat in gt["categories"]}
    duplicated = {n for n in names.values() if list(names.values()).count(n) > 1}
    per_class: dict[str, float] = {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        name = names[cat_id] if names[cat_id] not in duplicated else f"{names[cat_id]} ({cat_id})"
        per_class[name] = float(np.mean(values)) if values.size else -1.0
    metrics["per_class"] = per_class
    metrics.update(
        {
            "iou_type": iou_type,
            "images": len(gt["images"]),
            "instances": sum(1 for a in gt["annotations"] if not a["iscrowd"]),
            "results": len(prepared),
            "ignored_results": dropped,
        }
    )
    return metrics


def format_metrics(metrics: dict[str, Any]) -> str:
    """A readable table of :func:`evaluate_coco`'s output."""

    def fmt(value: float) -> str:
        return "  n/a" if value < 0 else f"{value:.3f}"

    lines = [
        f"{metrics.get('iou_type', '')} AP on {metrics.get('images', '?')} images, "
        f"{metrics.get('instances', '?')} ground-truth instances, {metrics.get('results', '?')} predictions",
        "  ".join(f"{k:>5}" for k in SUMMARY_KEYS),
        "  ".join(f"{fmt(metrics[k]):>5}" for k in SUMMARY_KEYS),
    ]
    per_class = metrics.get("per_class", {})
    if per_class:
        width = max(len(n) for n in per_class)
        lines.append("")
        lines.append(f"{'class':<{width}}  AP")
        lines += [f"{name:<{width}}  {fmt(ap)}" for name, ap in per_class.items()]
    return "\n".join(lines)
