"""The project's fashion taxonomy (iMaterialist 2019) and CCP's 59 labels mapped into it."""

from __future__ import annotations

import numpy as np
import pytest

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.taxonomy import (
    CCP_DROPPED,
    CCP_TO_IMATERIALIST,
    ccp_class_id,
    ccp_value_lut,
    imaterialist_names,
)

# CCP's label_list.mat, in order (value k = CCP_LABELS[k]); the test checks it against the real file when present.
CCP_LABELS = (
    "null accessories bag belt blazer blouse bodysuit boots bra bracelet cape cardigan clogs coat dress earrings "
    "flats glasses gloves hair hat heels hoodie intimate jacket jeans jumper leggings loafers necklace panties pants "
    "pumps purse ring romper sandals scarf shirt shoes shorts skin skirt sneakers socks stockings suit sunglasses "
    "sweater sweatshirt swimwear t-shirt tie tights top vest wallet watch wedges"
).split()


def test_imaterialist_taxonomy_is_the_46_categories_in_classid_order() -> None:
    names = imaterialist_names()
    assert len(names) == 46
    assert (
        names[0] == "shirt, blouse"
        and names[6] == "pants"
        and names[23] == "shoe"
        and names[45] == "tassel"
    )


def test_every_ccp_label_is_mapped_or_dropped_with_a_reason() -> None:
    assert len(CCP_LABELS) == 59
    assert set(CCP_TO_IMATERIALIST) == set(CCP_LABELS)
    names = set(imaterialist_names())
    for label, target in CCP_TO_IMATERIALIST.items():
        if target is None:
            assert CCP_DROPPED.get(label), f"{label} is dropped without a reason"
        else:
            assert target in names, f"{label} -> {target!r} is not an iMaterialist category"
            assert label not in CCP_DROPPED
    assert set(CCP_DROPPED) == {
        label for label, target in CCP_TO_IMATERIALIST.items() if target is None
    }


def test_the_issues_examples() -> None:
    for label in ("jeans", "pants", "leggings"):
        assert CCP_TO_IMATERIALIST[label] == "pants"
    assert CCP_TO_IMATERIALIST["t-shirt"] == "top, t-shirt, sweatshirt"
    for label in (
        "heels",
        "sneakers",
        "boots",
        "flats",
        "pumps",
        "loafers",
        "sandals",
        "wedges",
        "clogs",
        "shoes",
    ):
        assert CCP_TO_IMATERIALIST[label] == "shoe"
    for label in ("purse", "wallet", "bag"):
        assert CCP_TO_IMATERIALIST[label] == "bag, wallet"
    assert CCP_TO_IMATERIALIST["skirt"] == "skirt"
    assert ccp_class_id("skirt") == 8 and ccp_class_id("null") is None


def test_value_lookup_maps_pixels_to_labels_and_body() -> None:
    lut = ccp_value_lut(CCP_LABELS)
    # pants: ClassId 6, label 7
    assert lut[CCP_LABELS.index("jeans")] == lut[CCP_LABELS.index("leggings")] == 7
    assert lut[CCP_LABELS.index("skin")] == 0 and lut[CCP_LABELS.index("null")] == 0
    body = ccp_value_lut(CCP_LABELS, body=True)
    assert body[CCP_LABELS.index("skin")] == 47 and body[CCP_LABELS.index("hair")] == 48
    assert np.array_equal(body[:59][body[:59] <= 46], lut[:59][body[:59] <= 46])
    with pytest.raises(DataError, match="'kilt' \\(value 1\\) is not in the iMaterialist mapping"):
        ccp_value_lut(["null", "kilt"])


@pytest.mark.needs_ccp
def test_the_real_label_list_is_the_one_mapped(ccp_root) -> None:
    from fashionviewer.core.data.datasets.ccp import read_label_list

    assert tuple(read_label_list(ccp_root / "label_list.mat")) == tuple(CCP_LABELS)


def test_viewer_ground_truth_matches_a_ccp_label_with_its_category() -> None:
    from fashionviewer.core.data.groundtruth import _compatible

    assert (
        _compatible("shoe", "heels")
        and _compatible("bag, wallet", "purse")
        and _compatible("pants", "jeans")
    )
    assert not _compatible("pants", "skirt") and not _compatible("shoe", "bag")
