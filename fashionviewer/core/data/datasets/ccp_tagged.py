"""Clothing Co-Parsing's tag-only photos (``ccp-tagged/``): a photo and the CCP labels present in it.

Layout::

    ROOT/photos/NNNN.jpg
    ROOT/annotations/image-level/NNNN.mat   ``tags``: uint8 1×T, indices into label_list
    ROOT/label_list.mat                     the same 59 names as ``ccp/``

Used for weak (image-level) supervision of the parsing model: :meth:`CCPTagged.tags` gives the
label names of one photo, :meth:`CCPTagged.class_ids` its iMaterialist ClassIds. Every problem
with a file (no tag file for a photo, a tag outside the label list) is a one-line DataError
naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.base.paths import shared_data_dir
from fashionviewer.core.data.datasets.ccp import _loadmat, read_label_list
from fashionviewer.core.data.taxonomy import ccp_class_id


def ccp_tagged_dir() -> Path | None:
    """``../shared/data/ccp-tagged`` when present."""
    shared = shared_data_dir()
    if shared is not None and (shared / "ccp-tagged" / "photos").is_dir():
        return shared / "ccp-tagged"
    return None


class CCPTagged:
    """The tag-only CCP photos, sorted by number; ``photos[i]`` has ``tags(i)``."""

    def __init__(
        self, root: str | os.PathLike[str] | None = None, *, limit: int | None = None
    ) -> None:
        if root is None:
            root = ccp_tagged_dir()
            if root is None:
                raise DataError(
                    "Clothing Co-Parsing tagged photos not found (expected ../shared/data/ccp-tagged)"
                )
        self.root = Path(root)
        self.photo_dir = self.root / "photos"
        self.tag_dir = self.root / "annotations" / "image-level"
        for folder in (self.photo_dir, self.tag_dir):
            if not folder.is_dir():
                raise DataError(
                    f"{folder}: not found (expected the Clothing Co-Parsing ccp-tagged layout)"
                )
        self.label_list = read_label_list(self.root / "label_list.mat")
        self.photos = sorted(self.photo_dir.glob("*.jpg"))[:limit]
        if not self.photos:
            raise DataError(f"{self.photo_dir}: no .jpg photos")

    def __len__(self) -> int:
        return len(self.photos)

    def tag_path(self, index: int) -> Path:
        return self.tag_dir / (self.photos[index].stem + ".mat")

    def tags(self, index: int) -> list[str]:
        """The CCP label names tagged on photo ``index``."""
        path = self.tag_path(index)
        if not path.is_file():
            raise DataError(f"{path}: no tag file for photo {self.photos[index].name}")
        data = _loadmat(path)
        if "tags" not in data:
            raise DataError(f"{path}: no 'tags' variable")
        values = np.asarray(data["tags"]).reshape(-1)
        if values.size and not np.issubdtype(values.dtype, np.integer):
            raise DataError(f"{path}: 'tags' holds {values.dtype} values, expected label indices")
        bad = [int(v) for v in values if not 0 <= int(v) < len(self.label_list)]
        if bad:
            raise DataError(
                f"{path}: tag {bad[0]} is outside the label list 0-{len(self.label_list) - 1}"
            )
        return [self.label_list[int(v)] for v in values]

    def class_ids(self, index: int) -> list[int]:
        """The iMaterialist ClassIds of photo ``index``'s tags (dropped labels left out)."""
        ids = {ccp_class_id(name) for name in self.tags(index)}
        return sorted(i for i in ids if i is not None)
