"""Clothing Co-Parsing (Yang et al., CVPR 2014): per-pixel garment labels as instances.

Layout (the dataset's own)::

    ROOT/photos/NNNN.jpg
    ROOT/annotations/pixel-level/NNNN.mat   ``groundtruth``: uint8 H×W, value k = label_list[k]
    ROOT/label_list.mat                     ``label_list``: 1×59 cell of names, 0 = null

Only photos with a pixel-level annotation are used (800 of the 2,098). The labels
are per class, so each class present in an image becomes one instance (its mask
may have several parts). ``null`` is never an instance; ``skin`` and ``hair`` are
excluded unless ``include_body=True``. ``class_names`` are the remaining
label_list names in order, as labels 1..K (56 garment classes, 58 with the body); their category ids
(ground truth, results) are CCP's own label values (the label_list index).

``taxonomy="imaterialist"`` yields the photos in the project's fashion taxonomy instead
(:mod:`fashionviewer.core.data.taxonomy`): ``class_names`` are the 46 iMaterialist
categories (label k is ClassId k-1, the category id), each CCP label is mapped to its category (or dropped,
with the body), and the pixels of all CCP labels sharing a category form one instance.

Split: the annotated photos, sorted by number, go through a seeded permutation
(``seed``, default 0); the first ``val_size`` (default 100) form ``val``, the
other 700 ``train``; ``all`` is all 800. image_id is the photo number (0001 -> 1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.base.paths import ccp_dir
from fashionviewer.core.data.datasets.base import DetectionDataset, ImageEntry, seeded_split
from fashionviewer.core.data.imageio import read_image_size
from fashionviewer.core.data.taxonomy import (
    CCP,
    IMATERIALIST,
    TAXONOMIES,
    ccp_value_lut,
    imaterialist_names,
)

BODY_CLASSES = ("skin", "hair")
DEFAULT_VAL_SIZE = 100


def _loadmat(path: Path) -> dict[str, Any]:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except (OSError, ValueError, TypeError, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable MATLAB file ({exc})") from exc


def read_label_list(path: str | os.PathLike[str]) -> list[str]:
    """The 59 names of label_list.mat (index = pixel value)."""
    path = Path(path)
    data = _loadmat(path)
    if "label_list" not in data:
        raise DataError(f"{path}: no 'label_list' variable")
    try:
        return [
            str(np.asarray(cell).reshape(-1)[0])
            for cell in np.asarray(data["label_list"]).reshape(-1)
        ]
    except (IndexError, TypeError) as exc:
        raise DataError(f"{path}: 'label_list' is not a cell of names") from exc


def read_groundtruth(path: str | os.PathLike[str]) -> np.ndarray:
    """The ``groundtruth`` uint8 H×W label image of one annotation file."""
    path = Path(path)
    data = _loadmat(path)
    gt = data.get("groundtruth")
    if gt is None:
        raise DataError(f"{path}: no 'groundtruth' variable")
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise DataError(f"{path}: 'groundtruth' has shape {gt.shape}, expected H×W")
    return gt


class CCPDataset(DetectionDataset):
    """Clothing Co-Parsing as torchvision detection samples (see the module docstring).

    ``root`` defaults to ``fashionviewer.core.base.paths.ccp_dir()``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        *,
        include_body: bool = False,
        val_size: int = DEFAULT_VAL_SIZE,
        seed: int = 0,
        max_size: int | None = None,
        limit: int | None = None,
        taxonomy: str = CCP,
    ) -> None:
        super().__init__(split, max_size=max_size, limit=limit)
        if taxonomy not in TAXONOMIES:
            raise DataError(f"taxonomy {taxonomy!r}: choose one of {', '.join(TAXONOMIES)}")
        self.taxonomy = taxonomy
        if root is None:
            root = ccp_dir()
            if root is None:
                raise DataError(
                    "Clothing Co-Parsing data not found (expected ../shared/data/ccp; "
                    "set FASHIONVIEWER_SHARED_DATA or pass root)"
                )
        self.root = Path(root)
        photos, ann_dir = self.root / "photos", self.root / "annotations" / "pixel-level"
        for folder in (photos, ann_dir):
            if not folder.is_dir():
                raise DataError(f"{folder}: not found (expected the Clothing Co-Parsing layout)")
        names = read_label_list(self.root / "label_list.mat")
        self._num_values = len(names)
        excluded = {"null"} | (set() if include_body else set(BODY_CLASSES))
        # value k in groundtruth -> label (0 = not an instance)
        self._label_of_value = np.zeros(256, dtype=np.int64)
        self.class_names = []
        if taxonomy == IMATERIALIST:
            self.class_names = imaterialist_names()
            self.category_ids = list(range(len(self.class_names)))  # iMaterialist ClassIds
            self._label_of_value = ccp_value_lut(names)
        else:
            values = []
            for value, name in enumerate(names):
                if name not in excluded:
                    self.class_names.append(name)
                    values.append(value)
                    self._label_of_value[value] = len(self.class_names)
            self.category_ids = values  # CCP's own label values (label_list index)

        annotated = sorted(
            p for p in ann_dir.glob("*.mat") if (photos / (p.stem + ".jpg")).is_file()
        )
        if not annotated:
            raise DataError(f"{ann_dir}: no .mat annotation with a matching photo in {photos}")
        chosen = seeded_split(
            [p.stem for p in annotated], split, min(val_size, len(annotated)), seed, str(self.root)
        )
        entries = []
        self._ann_paths: list[Path] = []
        for i in chosen:
            mat = annotated[i]
            photo = photos / (mat.stem + ".jpg")
            width, height = read_image_size(photo)
            image_id = int(mat.stem) if mat.stem.isdigit() else i + 1
            entries.append(ImageEntry(image_id, photo.name, photo, width, height))
            self._ann_paths.append(mat)
        self._set_images(entries)
        self._ann_paths = self._ann_paths[: len(self.images)]

    def _annotations(self, index: int) -> list[dict[str, Any]]:
        entry, path = self.images[index], self._ann_paths[index]
        gt = read_groundtruth(path)
        if gt.shape != (entry.height, entry.width):
            raise DataError(
                f"{path}: groundtruth is {gt.shape[1]}x{gt.shape[0]} but {entry.file_name} is "
                f"{entry.width}x{entry.height}"
            )
        if gt.size and (int(gt.max()) >= self._num_values or int(gt.min()) < 0):
            raise DataError(
                f"{path}: groundtruth values {int(gt.min())}-{int(gt.max())} outside the "
                f"label list 0-{self._num_values - 1}"
            )
        labels = self._label_of_value[gt.astype(np.int64, copy=False)]
        present = np.unique(labels)
        return [
            {"label": int(k), "segmentation": labels == k, "iscrowd": 0} for k in present if k > 0
        ]
