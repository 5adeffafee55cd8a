"""A photo folder's own annotations (the viewer's project file) as training data.

``AnnotationsDataset(root, split)``: ``root`` is the photo folder; the annotations are
``root/annotations.fashionviewer.json`` unless ``ann_file`` names another file (see
:mod:`fashionviewer.core.data.annotations`). Only images with at least one annotation, or marked done (a
finished image with nothing on it teaches the model what is not a garment), are used; a record the file
loader skips is listed in ``skipped_rows``, as is an image whose photo is missing.

Labels: the file's categories sorted by id are labels 1..K; ``class_names[k-1]`` is the name and
``category_ids[k-1]`` the file's own id of label k. With the iMaterialist taxonomy (ids 0-45, all 46 listed,
as the viewer writes them for a model in that taxonomy) label k is ClassId k-1, the bundled models' labels.

Split: the used images, sorted by file name, go through a seeded permutation (``seed``, default 0);
``round(val_fraction * n)`` of them (default 10%, at least one when there are two or more, none when
``val_fraction`` is 0) form ``val``, the rest ``train``; ``all`` is everything, as in the iMaterialist loader.
image_id is the file's own image id.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.annotation_file import load_annotations
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME
from fashionviewer.core.data.datasets.base import DetectionDataset, ImageEntry, seeded_split

log = logging.getLogger(__name__)


class AnnotationsDataset(DetectionDataset):
    """The viewer's annotations of a photo folder as torchvision detection samples (see the module docstring)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        ann_file: str | os.PathLike[str] | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        max_size: int | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(split, max_size=max_size, limit=limit)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: photo folder not found")
        self.ann_file = Path(ann_file) if ann_file is not None else self.root / DEFAULT_FILE_NAME
        if not self.ann_file.is_file():
            raise DataError(
                f"{self.ann_file}: no annotation file (annotate some photos in the viewer first)"
            )
        aset, problems = load_annotations(self.ann_file)
        self.skipped_rows = list(problems)
        categories = sorted(aset.categories, key=lambda c: int(c["id"]))
        if not categories:
            raise DataError(f"{self.ann_file}: no categories")
        self.class_names = [str(c["name"]) for c in categories]
        self.category_ids = [int(c["id"]) for c in categories]
        label_of = {cid: k for k, cid in enumerate(self.category_ids, start=1)}

        used = sorted(name for name, rec in aset.images.items() if rec.annotations or rec.done)
        n_val = round(val_fraction * len(used))
        if val_fraction > 0 and len(used) >= 2:
            n_val = min(max(1, n_val), len(used) - 1)
        chosen = seeded_split(used, split, n_val, seed, self.ann_file.name)
        entries: list[ImageEntry] = []
        self._anns: list[list[dict[str, Any]]] = []
        for position in chosen:
            rec = aset.images[used[position]]
            photo = self.root / rec.file_name
            if not photo.is_file():
                self.skipped_rows.append(f"{rec.file_name}: photo not found in {self.root}")
                continue
            entries.append(ImageEntry(rec.image_id, rec.file_name, photo, rec.width, rec.height))
            self._anns.append(
                [
                    {"label": label_of[a.category_id], "segmentation": a.rle, "iscrowd": 0}
                    for a in rec.annotations
                ]
            )
        if self.skipped_rows:
            log.warning(
                "%s: skipped %d record(s), e.g. %s",
                self.ann_file.name,
                len(self.skipped_rows),
                self.skipped_rows[0],
            )
        if chosen and not entries:
            raise DataError(
                f"{self.ann_file}: none of the {len(chosen)} annotated images of split '{split}' has "
                f"its photo in {self.root}"
            )
        self._set_images(entries)
        self._anns = self._anns[: len(self.images)]

    def _annotations(self, index: int) -> list[dict[str, Any]]:
        return self._anns[index]
