"""Ground truth for the open folder (no Qt): found beside the images, read per image, matched to predictions.

Found automatically (``find_ground_truth``): a COCO instances JSON beside the images, an iMaterialist
``train.csv`` (in the folder or its parent), or the Clothing Co-Parsing layout (the folder or its
parent holds ``annotations/pixel-level/`` and ``label_list.mat``). Matching (``match_image``) pairs
predictions with annotations greedily by mask IoU, best score first; classes must correspond: the
same name, or the same Fashion-MNIST class (``core.data.classmap``) when the label spaces differ.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Sequence

import numpy as np

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.classmap import fmnist_classes_for
from fashionviewer.core.data.masks import encode_mask, mask_bbox, segmentation_to_rle
from fashionviewer.core.data.taxonomy import CCP_TO_IMATERIALIST

log = logging.getLogger(__name__)


@dataclass
class GTInstance:
    label: int
    class_name: str
    rle: dict
    box: tuple[float, float, float, float]  # xyxy
    score: float = 1.0  # so annotations paint like predictions (core.data.overlay)

    def mask(self) -> np.ndarray:
        from fashionviewer.core.data.masks import decode_mask

        return decode_mask(self.rle)


@dataclass
class Match:
    # (prediction idx, gt idx, IoU)
    pairs: list[tuple[int, int, float]] = field(default_factory=list)
    false_positives: list[int] = field(default_factory=list)  # prediction indices
    missed: list[int] = field(default_factory=list)  # gt indices
    ap: float | None = None  # mask AP of the image (same label space only)
    ap_note: str = ""


class GroundTruth:
    """Annotations of a folder's images, looked up by file name and read lazily per image."""

    def __init__(self, kind: str, source: Path, class_names: Sequence[str]) -> None:
        self.kind, self.source, self.class_names = kind, source, list(class_names)
        self._cache: dict[str, list[GTInstance] | None] = {}

    def describe(self) -> str:
        return f"{self.kind} annotations ({self.source})"

    def for_image(self, path: Path) -> list[GTInstance] | None:
        """The image's annotations; None when the image is not annotated."""
        key = str(path)
        if key not in self._cache:
            self._cache[key] = self._read(Path(path))
        return self._cache[key]

    def _read(self, path: Path) -> list[GTInstance] | None:
        raise NotImplementedError


class CocoGroundTruth(GroundTruth):
    """A COCO instances dict in label space (COCO JSON, or an iMaterialist CSV converted by core.data.datasets)."""

    def __init__(self, kind: str, source: Path, gt: dict[str, Any]) -> None:
        names = {int(c["id"]): str(c.get("name", c["id"])) for c in gt["categories"]}
        super().__init__(kind, source, [names[k] for k in sorted(names)])
        self._names = names
        self._images: dict[str, dict[str, Any]] = {}
        for img in gt["images"]:
            name = str(img.get("file_name", ""))
            self._images.setdefault(PurePath(name).name, img)
        self._anns: dict[Any, list[dict[str, Any]]] = {}
        for ann in gt["annotations"]:
            self._anns.setdefault(ann["image_id"], []).append(ann)

    def _read(self, path: Path) -> list[GTInstance] | None:
        img = self._images.get(path.name)
        if img is None:
            return None
        h, w = int(img["height"]), int(img["width"])
        out = []
        for ann in self._anns.get(img["id"], []):
            if ann.get("iscrowd") or "segmentation" not in ann:
                continue
            rle = segmentation_to_rle(ann["segmentation"], h, w)
            x, y, bw, bh = mask_bbox(rle)
            label = int(ann["category_id"])
            out.append(
                GTInstance(label, self._names.get(label, str(label)), rle, (x, y, x + bw, y + bh))
            )
        return out


class CCPGroundTruth(GroundTruth):
    """Clothing Co-Parsing: one instance per garment class present (the labels are per class)."""

    def __init__(self, root: Path) -> None:
        from fashionviewer.core.data.datasets.ccp import BODY_CLASSES, read_label_list

        names = read_label_list(root / "label_list.mat")
        excluded = {"null", *BODY_CLASSES}
        self._value_to_label = {
            v: i for i, v in enumerate((v for v, n in enumerate(names) if n not in excluded), 1)
        }
        super().__init__("Clothing Co-Parsing", root, [n for n in names if n not in excluded])
        self._value_names = names
        self.root = root

    def _read(self, path: Path) -> list[GTInstance] | None:
        from fashionviewer.core.data.datasets.ccp import read_groundtruth

        mat = self.root / "annotations" / "pixel-level" / f"{path.stem}.mat"
        if not mat.is_file():
            return None
        gt = read_groundtruth(mat)
        out = []
        for value in np.unique(gt):
            label = self._value_to_label.get(int(value))
            if label is None:
                continue
            rle = encode_mask((gt == value).astype(np.uint8))
            x, y, bw, bh = mask_bbox(rle)
            out.append(
                GTInstance(label, self._value_names[int(value)], rle, (x, y, x + bw, y + bh))
            )
        return out


def _is_coco_instances(path: Path) -> bool:
    from fashionviewer.core.data.formats import detect_format

    # our own exports; absurd sizes
    if path.name.endswith(".coco.json") or path.stat().st_size > 500_000_000:
        return False
    try:
        if detect_format(path) != "coco":
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, dict)
        and all(isinstance(data.get(k), list) for k in ("images", "annotations", "categories"))
        and data["annotations"]
        and isinstance(data["annotations"][0], dict)
        and "segmentation" in data["annotations"][0]
    )


def find_ground_truth(folder: Path) -> GroundTruth | None:
    """The annotations that go with ``folder``'s images, or None. Unreadable files are logged, not fatal."""
    from fashionviewer.core.data.formats import CCP, OTHER_TOOLS, detect_format, read_ground_truth

    folder = Path(folder)
    for base in (folder, folder.parent):
        try:
            fmt = detect_format(base)  # the one format detection (core.data.formats)
            if fmt == CCP and (base / "label_list.mat").is_file():
                return CCPGroundTruth(base)
            if fmt == "imaterialist":
                from fashionviewer.core.data.datasets.imaterialist import IMaterialistDataset

                dataset = IMaterialistDataset(base, "all", require_images=False)
                return CocoGroundTruth(
                    "iMaterialist", base / "train.csv", dataset.coco_ground_truth()
                )
            # labelme JSON beside the images, a YOLO/VOC/CVAT export
            if fmt in OTHER_TOOLS and base == folder:
                return CocoGroundTruth(fmt, base, read_ground_truth(base, fmt))
        except FashionViewerError as exc:
            log.warning("ground truth in %s not usable: %s", base, exc)
    candidates = sorted(folder.glob("*.json")) + sorted((folder / "annotations").glob("*.json"))
    for candidate in candidates:
        if _is_coco_instances(candidate):
            try:
                from fashionviewer.core.data.datasets.coco import read_coco_ground_truth

                return CocoGroundTruth("COCO", candidate, read_coco_ground_truth(candidate))
            except FashionViewerError as exc:
                log.warning("ground truth %s not usable: %s", candidate, exc)
    return None


def _compatible(pred_name: str, gt_name: str) -> bool:
    if pred_name.strip().lower() == gt_name.strip().lower():
        return True
    # a CCP label and its iMaterialist category (the real-photo model's taxonomy) name the same garment
    if (
        CCP_TO_IMATERIALIST.get(gt_name) == pred_name
        or CCP_TO_IMATERIALIST.get(pred_name) == gt_name
    ):
        return True
    a, b = set(fmnist_classes_for(pred_name)), set(fmnist_classes_for(gt_name))
    return bool(a & b)


def _ious(pred_rles: list[dict], gt_rles: list[dict]) -> np.ndarray:
    from pycocotools import mask as mask_utils

    from fashionviewer.core.data.masks import _for_pycocotools

    if not pred_rles or not gt_rles:
        return np.zeros((len(pred_rles), len(gt_rles)))
    return np.asarray(
        mask_utils.iou(
            [_for_pycocotools(r) for r in pred_rles],
            [_for_pycocotools(r) for r in gt_rles],
            [0] * len(gt_rles),
        ),
        float,
    ).reshape(len(pred_rles), len(gt_rles))


def match_image(
    prediction: Any,
    indices: Sequence[int],
    gt: Sequence[GTInstance],
    iou_threshold: float = 0.5,
    model_classes: Sequence[str] | None = None,
    gt_classes: Sequence[str] | None = None,
) -> Match:
    """Match the shown predictions (``indices``) to ``gt``: true positives, false positives, missed.

    The image's mask AP is computed too when the model and the annotations share a label space.
    """
    preds = [prediction.instances[i] for i in indices if prediction.instances[i].rle is not None]
    pred_idx = [i for i in indices if prediction.instances[i].rle is not None]
    ious = _ious([p.rle for p in preds], [g.rle for g in gt])
    order = sorted(range(len(preds)), key=lambda k: -preds[k].score)
    taken: set[int] = set()
    result = Match()
    for k in order:
        best, best_iou = None, iou_threshold
        for j, g in enumerate(gt):
            if (
                j not in taken
                and ious[k, j] >= best_iou
                and _compatible(preds[k].class_name, g.class_name)
            ):
                best, best_iou = j, ious[k, j]
        if best is None:
            result.false_positives.append(pred_idx[k])
        else:
            taken.add(best)
            result.pairs.append((pred_idx[k], best, float(best_iou)))
    result.missed = [j for j in range(len(gt)) if j not in taken]
    result.ap, result.ap_note = _image_ap(prediction, indices, gt, model_classes, gt_classes)
    return result


def _image_ap(
    prediction: Any,
    indices: Sequence[int],
    gt: Sequence[GTInstance],
    model_classes: Sequence[str] | None,
    gt_classes: Sequence[str] | None,
) -> tuple[float | None, str]:
    if (
        model_classes is None
        or gt_classes is None
        or list(model_classes) != list(gt_classes)[: len(model_classes)]
    ):
        return (
            None,
            "AP needs the model and the annotations to share classes; matches use corresponding classes",
        )
    if not gt:
        return None, "no annotated instances in this image"
    from fashionviewer.core.data.evaluation import evaluate_coco

    h, w = int(prediction.height), int(prediction.width)
    gt_dict = {
        "images": [{"id": 1, "file_name": prediction.file_name, "width": w, "height": h}],
        "categories": [{"id": k, "name": n} for k, n in enumerate(gt_classes, 1)],
        # by name: the annotation file's own ids and the model's labels need not agree
        "annotations": [
            {
                "image_id": 1,
                "category_id": list(gt_classes).index(g.class_name) + 1,
                "segmentation": g.rle,
                "iscrowd": 0,
            }
            for g in gt
            if g.class_name in gt_classes
        ],
    }
    kept = [prediction.instances[i] for i in indices]
    results = [
        {
            "image_id": 1,
            "category_id": list(gt_classes).index(inst.class_name) + 1,
            "score": inst.score,
            "segmentation": inst.rle,
            "bbox": [
                inst.box[0],
                inst.box[1],
                inst.box[2] - inst.box[0],
                inst.box[3] - inst.box[1],
            ],
        }
        for inst in kept
        if inst.rle is not None and inst.class_name in gt_classes
    ]
    try:
        metrics = evaluate_coco(gt_dict, results, "segm")
    except FashionViewerError as exc:
        return None, str(exc)
    return float(metrics["AP"]), "mask AP@[.5:.95] of this image at the current threshold"
