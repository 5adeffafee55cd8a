"""Shared machinery of the detection datasets: target building, downscaling, COCO ground truth.

A dataset subclass lists its images (:class:`ImageEntry`) and, per image, its
annotations as dicts ``{"label": 1..K, "segmentation": H×W array or COCO RLE,
"iscrowd": 0|1, ...extra per-instance fields}``; this base turns them into
torchvision detection targets and into a COCO ground-truth dict.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.imageio import load_image
from fashionviewer.core.data.masks import decode_masks, encode_masks, mask_area, mask_bbox

_CORE_KEYS = {"label", "segmentation", "iscrowd"}
_CV2_MAX_CHANNELS = 4  # cv2.resize with INTER_AREA takes at most 4 channels per call


@dataclass(frozen=True)
class ImageEntry:
    """One image of a dataset. ``width``/``height`` are the file's (EXIF-applied) size;
    ``file_name`` is what the COCO ground truth calls it; ``path`` may be None when only
    annotations are available (ground truth without photos)."""

    image_id: int
    file_name: str
    path: Path | None
    width: int
    height: int


def scaled_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """(width, height) after shrinking so the longer side is at most ``max_size`` (never enlarges)."""
    if not max_size or max(width, height) <= max_size:
        return width, height
    scale = max_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def resize_masks(masks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize N×H×W 0/1 masks by area averaging then a 50% threshold (keeps thin parts
    better than nearest-neighbour)."""
    n = masks.shape[0]
    if n == 0:
        return np.zeros((0, height, width), dtype=np.uint8)
    if masks.shape[2] == width and masks.shape[1] == height:
        return masks
    out = np.empty((n, height, width), dtype=np.uint8)
    for start in range(0, n, _CV2_MAX_CHANNELS):
        chunk = masks[start : start + _CV2_MAX_CHANNELS].transpose(1, 2, 0) * np.uint8(255)
        resized = cv2.resize(
            np.ascontiguousarray(chunk), (width, height), interpolation=cv2.INTER_AREA
        )
        resized = resized.reshape(height, width, -1)
        out[start : start + chunk.shape[2]] = resized.transpose(2, 0, 1) >= 128
    return out


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """float32 N×4 xyxy tight boxes (x2/y2 exclusive, so a 1-pixel mask has width 1)."""
    n = masks.shape[0]
    boxes = np.zeros((n, 4), dtype=np.float32)
    if n == 0:
        return boxes
    rows = masks.any(axis=2)  # N×H
    cols = masks.any(axis=1)  # N×W
    h, w = masks.shape[1:]
    boxes[:, 0] = cols.argmax(axis=1)
    boxes[:, 1] = rows.argmax(axis=1)
    boxes[:, 2] = w - cols[:, ::-1].argmax(axis=1)
    boxes[:, 3] = h - rows[:, ::-1].argmax(axis=1)
    return boxes


def build_target(
    masks: np.ndarray,
    labels: Sequence[int],
    image_id: int,
    iscrowd: Sequence[int] | None = None,
    extra: dict[str, list] | None = None,
) -> dict[str, Any]:
    """torchvision detection target from N×H×W masks; empty masks are dropped (torchvision
    rejects zero-size boxes). ``extra`` per-instance lists are filtered alongside."""
    masks = np.asarray(masks, dtype=np.uint8)
    areas = masks.reshape(masks.shape[0], -1).sum(axis=1) if masks.shape[0] else np.zeros(0)
    keep = np.flatnonzero(areas > 0)
    masks = masks[keep]
    labels_arr = np.asarray(labels, dtype=np.int64).reshape(-1)[keep]
    crowd = (
        np.zeros(len(keep), dtype=np.int64)
        if iscrowd is None
        else np.asarray(iscrowd, dtype=np.int64)[keep]
    )
    target: dict[str, Any] = {
        "boxes": torch.from_numpy(boxes_from_masks(masks)),
        "labels": torch.from_numpy(labels_arr),
        "masks": torch.from_numpy(np.ascontiguousarray(masks)),
        "image_id": torch.tensor(int(image_id), dtype=torch.int64),
        "area": torch.from_numpy(areas[keep].astype(np.float32)),
        "iscrowd": torch.from_numpy(crowd),
    }
    for key, values in (extra or {}).items():
        target[key] = [values[i] for i in keep]
    return target


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 -> float32 3×H×W in [0, 1]."""
    # np.require copies only read-only or non-contiguous arrays (PIL's are read-only).
    return (
        torch.from_numpy(np.require(image, requirements=["C", "W"]))
        .permute(2, 0, 1)
        .float()
        .div_(255.0)
    )


def seeded_split(
    keys: Sequence[Any], split: str, val_size: int, seed: int, source: str
) -> list[int]:
    """Indices of ``keys`` in ``split`` ("train", "val" or "all"): a seeded permutation puts
    ``val_size`` keys in val, the rest in train; both come back in the original order."""
    if split == "all":
        return list(range(len(keys)))
    if split not in ("train", "val"):
        raise DataError(f"{source}: unknown split '{split}' (expected train, val or all)")
    order = np.random.default_rng(seed).permutation(len(keys))
    val = np.sort(order[:val_size])
    chosen = val if split == "val" else np.sort(order[val_size:])
    return chosen.tolist()


class DetectionDataset(Dataset):
    """Base of the instance-segmentation datasets (see the module docstring).

    Options shared by all: ``max_size`` shrinks image and masks so the longer side is at
    most that many pixels (CPU training); ``limit`` keeps only the first N images of the
    split; ``include_crowd`` keeps ``iscrowd`` instances in training targets (the COCO
    ground truth always keeps them, as ignore regions).
    """

    class_names: list[str]

    def __init__(
        self,
        split: str,
        max_size: int | None = None,
        limit: int | None = None,
        include_crowd: bool = False,
    ) -> None:
        self.split = split
        self.max_size = int(max_size) if max_size else None
        self.limit = limit
        self.include_crowd = include_crowd
        self.images: list[ImageEntry] = []
        self.skipped_rows: list[str] = []

    # -- for subclasses

    def _set_images(self, images: list[ImageEntry]) -> None:
        self.images = images[: self.limit] if self.limit is not None else images

    def _annotations(self, index: int) -> list[dict[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- Dataset protocol

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        entry = self.images[index]
        if entry.path is None:
            raise DataError(f"{entry.file_name}: no image file (dataset built without photos)")
        image = load_image(entry.path)
        height, width = image.shape[:2]
        if (width, height) != (entry.width, entry.height):
            raise DataError(
                f"{entry.path}: image is {width}x{height} but its annotations say {entry.width}x{entry.height}"
            )
        anns = self._annotations(index)
        if not self.include_crowd:
            anns = [a for a in anns if not a.get("iscrowd", 0)]
        masks = self._masks(anns, height, width)
        new_w, new_h = scaled_size(width, height, self.max_size)
        image = resize_image(image, new_w, new_h)
        masks = resize_masks(masks, new_w, new_h)
        extra_keys = sorted({k for a in anns for k in a} - _CORE_KEYS)
        extra = {k: [a.get(k) for a in anns] for k in extra_keys}
        target = build_target(
            masks,
            [a["label"] for a in anns],
            entry.image_id,
            [a.get("iscrowd", 0) for a in anns],
            extra,
        )
        return image_to_tensor(image), target

    @staticmethod
    def _masks(anns: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
        masks = np.zeros((len(anns), height, width), dtype=np.uint8)
        rle_at = [i for i, a in enumerate(anns) if isinstance(a["segmentation"], dict)]
        if rle_at:
            masks[rle_at] = decode_masks([anns[i]["segmentation"] for i in rle_at], height, width)
        for i, ann in enumerate(anns):
            if not isinstance(ann["segmentation"], dict):
                masks[i] = np.asarray(ann["segmentation"]) != 0
        return masks

    # -- evaluation

    def image_info(self, index: int) -> dict[str, Any]:
        """COCO ``images`` record of an image as this dataset yields it (after ``max_size``)."""
        entry = self.images[index]
        width, height = scaled_size(entry.width, entry.height, self.max_size)
        return {
            "id": entry.image_id,
            "file_name": entry.file_name,
            "width": width,
            "height": height,
        }

    @property
    def category_ids(self) -> list[int]:
        """The dataset's own category id of label k at index k-1 (COCO file ids, iMaterialist ClassIds 0..45,
        CCP label values); 1..K when the dataset has no ids of its own."""
        ids = getattr(self, "_category_ids", None)
        return list(ids) if ids is not None else list(range(1, len(self.class_names) + 1))

    @category_ids.setter
    def category_ids(self, ids: Sequence[int]) -> None:
        self._category_ids = [int(i) for i in ids]

    def categories(self) -> list[dict[str, Any]]:
        return [
            {"id": cid, "name": name}
            for cid, name in zip(self.category_ids, self.class_names, strict=False)
        ]

    def coco_ground_truth(self) -> dict[str, Any]:
        """COCO instances dict of this split with the dataset's own category ids (:attr:`category_ids`),
        at the size this dataset yields images (``max_size`` applied) so it scores the
        model's outputs on these very tensors. Segmentations are compressed RLE."""
        images, annotations = [], []
        category_ids = self.category_ids
        for index, entry in enumerate(self.images):
            info = self.image_info(index)
            images.append(info)
            anns = self._annotations(index)
            if not anns:
                continue
            scaled = (info["width"], info["height"]) != (entry.width, entry.height)
            if not scaled and all(isinstance(a["segmentation"], dict) for a in anns):
                rles = [a["segmentation"] for a in anns]  # already RLE at this size: no decode
            else:
                masks = self._masks(anns, entry.height, entry.width)
                rles = encode_masks(resize_masks(masks, info["width"], info["height"]))
            for ann, rle in zip(anns, rles, strict=False):
                area = mask_area(rle)
                if area == 0:
                    continue
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": entry.image_id,
                        "category_id": category_ids[int(ann["label"]) - 1],
                        "segmentation": {"size": list(rle["size"]), "counts": rle["counts"]},
                        "area": float(area),
                        "bbox": mask_bbox(rle),
                        "iscrowd": int(ann.get("iscrowd", 0)),
                    }
                )
        return {"images": images, "annotations": annotations, "categories": self.categories()}


def first_existing_dir(candidates: Sequence[str | os.PathLike[str]]) -> Path | None:
    for candidate in candidates:
        if Path(candidate).is_dir():
            return Path(candidate)
    return None
