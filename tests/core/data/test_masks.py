"""COCO RLE helpers against pycocotools, and the iMaterialist codec against hand-computed strings."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.masks import (
    coco_to_kaggle_rle,
    decode_mask,
    decode_masks,
    encode_mask,
    encode_masks,
    kaggle_rle_decode,
    kaggle_rle_encode,
    kaggle_rle_to_coco,
    mask_area,
    mask_bbox,
    polygons_to_rle,
    segmentation_to_rle,
    uncompressed_to_rle,
)

# Column-major, 1-indexed: column 0 holds pixels 1-3, column 1 pixels 4-6, ...
HAND_MASK = np.array([[0, 1, 0, 0], [1, 1, 0, 1], [0, 0, 0, 1]], dtype=np.uint8)
HAND_STRING = "2 1 4 2 11 2"


def random_masks(seed: int, count: int = 40):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        h, w = (int(v) for v in rng.integers(1, 25, size=2))
        yield (rng.random((h, w)) < rng.random()).astype(np.uint8)


def test_kaggle_hand_example():
    assert kaggle_rle_encode(HAND_MASK) == HAND_STRING
    np.testing.assert_array_equal(kaggle_rle_decode(HAND_STRING, 3, 4), HAND_MASK)


def test_kaggle_full_and_last_pixel():
    assert kaggle_rle_encode(np.ones((2, 2), np.uint8)) == "1 4"
    last = np.zeros((3, 2), np.uint8)
    last[2, 1] = 1  # bottom-right pixel is number 6
    assert kaggle_rle_encode(last) == "6 1"
    np.testing.assert_array_equal(kaggle_rle_decode("6 1", 3, 2), last)


def test_kaggle_empty():
    assert kaggle_rle_encode(np.zeros((4, 5), np.uint8)) == ""
    assert kaggle_rle_decode("", 4, 5).sum() == 0
    assert mask_area(kaggle_rle_to_coco("", 4, 5)) == 0


def test_kaggle_touching_runs_merge_to_canonical_rle():
    np.testing.assert_array_equal(
        kaggle_rle_decode("1 2 3 2", 3, 4), kaggle_rle_decode("1 4", 3, 4)
    )
    assert kaggle_rle_to_coco("1 2 3 2", 3, 4) == kaggle_rle_to_coco("1 4", 3, 4)


@pytest.mark.parametrize("seed", [0, 1])
def test_kaggle_round_trip_against_pycocotools(seed):
    for mask in random_masks(seed):
        h, w = mask.shape
        encoded = kaggle_rle_encode(mask)
        np.testing.assert_array_equal(kaggle_rle_decode(encoded, h, w), mask)
        coco = kaggle_rle_to_coco(encoded, h, w)
        as_bytes = {"size": coco["size"], "counts": coco["counts"].encode()}
        np.testing.assert_array_equal(mask_utils.decode(as_bytes), mask)
        reference = mask_utils.encode(np.asfortranarray(mask))
        assert coco["counts"] == reference["counts"].decode()
        assert coco_to_kaggle_rle(coco) == encoded


@pytest.mark.parametrize(
    "encoded, fragment",
    [
        ("1 2 3", "odd number of values (3)"),
        ("1 x", "'x' is not a non-negative integer"),
        ("1.5 2", "'1.5' is not a non-negative integer"),
        ("-1 2", "not a non-negative integer"),
        ("10 5", "runs past the last pixel 12"),
        ("5 2 1 1", "overlaps or precedes run 1"),
        ("1 3 2 2", "overlaps or precedes run 1"),
        ("0 1", "1-indexed"),
        ("1 0", "length 0"),
    ],
)
def test_kaggle_malformed(encoded, fragment):
    with pytest.raises(DataError) as info:
        kaggle_rle_decode(encoded, 3, 4)
    assert fragment in str(info.value)
    with pytest.raises(DataError):
        kaggle_rle_to_coco(encoded, 3, 4)


def test_encode_decode_against_pycocotools():
    for mask in random_masks(2):
        rle = encode_mask(mask)
        assert isinstance(rle["counts"], str)
        assert rle["size"] == list(mask.shape)
        reference = mask_utils.encode(np.asfortranarray(mask))
        assert rle["counts"] == reference["counts"].decode()
        np.testing.assert_array_equal(decode_mask(rle), mask)
        assert mask_area(rle) == int(mask.sum())
        if mask.any():
            ys, xs = np.nonzero(mask)
            assert mask_bbox(rle) == [
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1,
            ]


def test_encode_masks_batch_matches_single():
    rng = np.random.default_rng(3)
    masks = (rng.random((5, 7, 9)) < 0.4).astype(np.uint8)
    assert encode_masks(masks) == [encode_mask(m) for m in masks]
    np.testing.assert_array_equal(decode_masks(encode_masks(masks), 7, 9), masks)
    assert decode_masks([], 7, 9).shape == (0, 7, 9)


def test_polygons_to_rle_matches_pycocotools():
    polys = [[1, 1, 8, 1, 8, 6, 1, 6], [10, 2, 14, 2, 12, 9]]
    expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, 12, 16)))
    np.testing.assert_array_equal(decode_mask(polygons_to_rle(polys, 12, 16)), expected)
    # a 2-point "polygon" is dropped rather than read as a box
    np.testing.assert_array_equal(
        decode_mask(polygons_to_rle(polys + [[0, 0, 5, 5]], 12, 16)), expected
    )


def test_uncompressed_rle():
    mask = HAND_MASK
    uncompressed = {"size": [3, 4], "counts": [1, 1, 1, 2, 5, 2]}
    assert uncompressed_to_rle(uncompressed) == encode_mask(mask)
    np.testing.assert_array_equal(decode_mask(uncompressed), mask)
    with pytest.raises(DataError, match="sum to 11"):
        uncompressed_to_rle({"size": [3, 4], "counts": [1, 1, 1, 2, 4, 2]})


def test_segmentation_to_rle_checks_size():
    rle = encode_mask(HAND_MASK)
    assert segmentation_to_rle(rle, 3, 4) == rle
    with pytest.raises(DataError, match="does not match the image size"):
        segmentation_to_rle(rle, 4, 3)
    with pytest.raises(DataError, match="polygon list or an RLE"):
        segmentation_to_rle("nope", 3, 4)
