"""The COCO, CVAT and VOC exports read by Datumaro (what CVAT uses), mask for mask, on real CCP photos.
Datumaro is not a dependency: the test runs where it is installed (``pip install datumaro``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashionviewer.core.data.annotation_file import load_annotations
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME
from fashionviewer.core.data.formats import export_annotations
from tests.core.data.test_annotation_formats import masks_by_class, project  # noqa: F401 (fixture)

dm = pytest.importorskip("datumaro")


@pytest.mark.parametrize(
    "fmt,dm_format", [("coco", "coco_instances"), ("cvat", "cvat"), ("voc", "voc_segmentation")]
)
def test_datumaro_reads_the_masks(project, tmp_path, fmt, dm_format):  # noqa: F811
    expected = masks_by_class(load_annotations(project / DEFAULT_FILE_NAME)[0])
    export_annotations(project, tmp_path / fmt, fmt)
    dataset = dm.Dataset.import_from(str(tmp_path / fmt), dm_format)
    labels = dataset.categories()[dm.AnnotationType.label]
    found: dict[tuple[str, str], np.ndarray] = {}
    for item in dataset:
        for ann in item.annotations:
            if not isinstance(ann, dm.components.annotation.Mask):
                continue  # Datumaro adds a box per COCO instance
            key = (Path(item.id).name + ".jpg", labels[ann.label].name)
            found[key] = found.get(key, False) | ann.image.astype(bool)
    assert sorted(found) == sorted(expected)
    for key, mask in expected.items():
        assert (found[key] == mask).all(), key


def test_one_based_ids_keep_category_zero_labelled_in_datumaro(project, tmp_path):  # noqa: F811
    from fashionviewer.core.data.annotation_file import save_annotations

    aset = load_annotations(project / DEFAULT_FILE_NAME)[0]
    # ids from 0, as iMaterialist's
    aset.categories = [{**c, "id": c["id"] - 1} for c in aset.categories]
    for rec in aset.images.values():
        for ann in rec.annotations:
            ann.category_id -= 1
    save_annotations(project / DEFAULT_FILE_NAME, aset)
    unlabelled = {}
    for mode in ("dataset", "1-based"):
        export_annotations(project, tmp_path / mode, "coco", category_ids=mode)
        dataset = dm.Dataset.import_from(str(tmp_path / mode), "coco_instances")
        masks = [
            a
            for item in dataset
            for a in item.annotations
            if isinstance(a, dm.components.annotation.Mask)
        ]
        unlabelled[mode] = sum(a.label is None for a in masks)
    assert unlabelled == {"dataset": 1, "1-based": 0}  # Datumaro reads id 0 as "no class"
