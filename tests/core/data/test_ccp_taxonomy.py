"""CCP in the iMaterialist taxonomy (real photos), the tag-only photos, and their bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.datasets.ccp import CCPDataset, read_groundtruth, read_label_list
from fashionviewer.core.data.datasets.ccp_tagged import CCPTagged, ccp_tagged_dir
from fashionviewer.core.data.taxonomy import ccp_value_lut, imaterialist_names


@pytest.mark.needs_ccp
def test_ccp_loader_yields_the_imaterialist_taxonomy(ccp_root) -> None:
    ccp = CCPDataset(ccp_root, "val", limit=4)
    imat = CCPDataset(ccp_root, "val", limit=4, taxonomy="imaterialist")
    assert imat.class_names == imaterialist_names() and len(ccp.class_names) == 56
    lut = ccp_value_lut(read_label_list(ccp_root / "label_list.mat"))
    for index in range(len(imat)):
        image, target = imat[index]
        labels = target["labels"].numpy()
        assert len(set(labels.tolist())) == len(labels) and labels.min() >= 1 and labels.max() <= 46
        entry = imat.images[index]
        truth = lut[
            read_groundtruth(
                ccp_root / "annotations" / "pixel-level" / f"{Path(entry.file_name).stem}.mat"
            )
        ]
        # each instance is exactly the pixels of its category, whichever CCP labels they came from
        for label, mask in zip(labels, target["masks"].numpy(), strict=False):
            assert np.array_equal(mask.astype(bool), truth == label)
        assert set(labels.tolist()) == set(np.unique(truth[truth > 0]).tolist())
    # several CCP labels merge into one category, so never more instances than in CCP's own taxonomy
    assert len(imat.coco_ground_truth()["annotations"]) <= len(
        ccp.coco_ground_truth()["annotations"]
    )


def test_ccp_loader_refuses_an_unknown_taxonomy(tmp_path) -> None:
    with pytest.raises(DataError, match="taxonomy 'deepfashion': choose one of ccp, imaterialist"):
        CCPDataset(tmp_path, "val", taxonomy="deepfashion")


TAGGED = ccp_tagged_dir()


@pytest.mark.needs_ccp
@pytest.mark.skipif(
    TAGGED is None, reason="Clothing Co-Parsing tagged photos not in ../shared/data/ccp-tagged"
)
def test_tagged_photos_give_their_tags_in_both_taxonomies() -> None:
    tagged = CCPTagged(TAGGED, limit=5)
    assert len(tagged) == 5 and tagged.photos[0].name == "1005.jpg"
    tags = tagged.tags(0)
    assert "null" in tags and len(tags) >= 3
    ids = tagged.class_ids(0)
    assert ids and all(0 <= i < 46 for i in ids)


def _tagged_copy(tmp_path: Path, ccp_root: Path) -> Path:
    root = tmp_path / "tagged"
    (root / "photos").mkdir(parents=True)
    (root / "annotations" / "image-level").mkdir(parents=True)
    shutil.copy(ccp_root / "label_list.mat", root / "label_list.mat")
    shutil.copy(ccp_root / "photos" / "0001.jpg", root / "photos" / "2001.jpg")
    shutil.copy(ccp_root / "photos" / "0002.jpg", root / "photos" / "2002.jpg")
    scipy.io.savemat(
        root / "annotations" / "image-level" / "2001.mat",
        {"tags": np.array([[0, 2, 77]], np.uint8)},
    )
    return root


@pytest.mark.needs_ccp
def test_tagged_bad_inputs_are_one_clear_line(tmp_path, ccp_root) -> None:
    tagged = CCPTagged(_tagged_copy(tmp_path, ccp_root))
    with pytest.raises(DataError) as out_of_range:
        tagged.tags(0)
    assert str(out_of_range.value) == (
        f"{tagged.tag_dir / '2001.mat'}: tag 77 is outside the label list 0-58"
    )
    with pytest.raises(DataError) as missing:
        tagged.class_ids(1)
    assert str(missing.value) == f"{tagged.tag_dir / '2002.mat'}: no tag file for photo 2002.jpg"
    assert "\n" not in str(out_of_range.value) + str(missing.value)
