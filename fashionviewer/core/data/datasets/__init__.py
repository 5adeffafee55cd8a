"""Instance-segmentation datasets yielding torchvision detection samples.

Every dataset yields ``(image, target)`` with ``image`` float32 3×H×W in [0, 1] and
``target = {boxes, labels (1..K), masks uint8 N×H×W, image_id, area, iscrowd}``,
and has ``class_names`` (index k-1 names label k), ``coco_ground_truth()`` and
``skipped_rows``. Build one with :func:`build_dataset`.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.datasets.annotations import AnnotationsDataset
from fashionviewer.core.data.datasets.base import DetectionDataset, ImageEntry, build_target
from fashionviewer.core.data.datasets.ccp import CCPDataset
from fashionviewer.core.data.datasets.coco import CocoDataset, read_coco_ground_truth
from fashionviewer.core.data.datasets.imaterialist import IMaterialistDataset


def _fmnist_scenes(*args: Any, **kwargs: Any) -> DetectionDataset:
    # Imported on use so `python -m fashionviewer.core.data.datasets.fmnist_scenes` runs the module only once.
    from fashionviewer.core.data.datasets.fmnist_scenes import FmnistScenesDataset

    return FmnistScenesDataset(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in ("FmnistScenesDataset", "generate_scenes"):
        from fashionviewer.core.data.datasets import fmnist_scenes

        return getattr(fmnist_scenes, name)
    raise AttributeError(name)


DATASETS: dict[str, Callable[..., DetectionDataset]] = {
    "imaterialist": IMaterialistDataset,
    "coco": CocoDataset,
    "ccp": CCPDataset,
    "fmnist-scenes": _fmnist_scenes,
    # a photo folder's own annotations (the viewer's project file)
    "annotations": AnnotationsDataset,
}

__all__ = [
    "DATASETS",
    "build_dataset",
    "DetectionDataset",
    "ImageEntry",
    "build_target",
    "IMaterialistDataset",
    "CocoDataset",
    "CCPDataset",
    "AnnotationsDataset",
    "FmnistScenesDataset",
    "generate_scenes",
    "read_coco_ground_truth",
]


def build_dataset(
    name: str, root: str | os.PathLike[str] | None, split: str = "train", **options: Any
) -> DetectionDataset:
    """The dataset ``name`` ("imaterialist", "coco", "ccp", "fmnist-scenes", "annotations") at ``root``.

    ``root`` may be None for "ccp" (the shared CCP folder). Common options:
    ``max_size`` (downscale longer side), ``limit`` (first N images); see each class.
    """
    factory = DATASETS.get(name)
    if factory is None:
        raise FashionViewerError(f"unknown dataset '{name}' (choose from: {', '.join(DATASETS)})")
    if root is None and name != "ccp":
        raise FashionViewerError(f"dataset '{name}' needs a root folder")
    try:
        return factory(root, split, **options)
    except TypeError as exc:  # an option the dataset does not take
        if "unexpected keyword" in str(exc):
            raise FashionViewerError(f"dataset '{name}': {exc}") from exc
        raise
