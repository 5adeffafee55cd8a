"""encode_mask on large masks runs in numpy (pycocotools holds the GIL for the whole encode) and gives
pycocotools' string exactly: checked against pycocotools itself on shapes that stress the encoding."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
from pycocotools import mask as mask_utils

import fashionviewer.core.data.masks as masks
from fashionviewer.core.data.masks import decode_mask, encode_mask


def pycocotools_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask != 0, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def stress_masks() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    rows, cols = np.ogrid[:1200, :900]
    ellipse = ((rows - 600) / 500) ** 2 + ((cols - 450) / 300) ** 2 < 1
    cases = [
        np.zeros((1, 1), np.uint8),
        np.ones((1, 1), np.uint8),
        np.zeros((3, 5), bool),
        np.ones((3, 5), bool),
        np.eye(11, dtype=np.uint8) * 7,  # nonzero is inside, whatever the value
        rng.random((37, 29)) < 0.5,  # many short runs
        rng.random((200, 300)) < 0.002,  # long background runs, counts in many 5-bit groups
        rng.random((200, 300)) > 0.002,  # starts inside: a zero-length first run
        ellipse,
        ~ellipse,
        rng.random((1200, 900)) < 0.5,
    ]
    one_pixel = np.zeros((1500, 1000), bool)
    one_pixel[-1, -1] = True  # one run of 1.5 million pixels before it
    cases.append(one_pixel)
    return cases


def test_large_path_gives_pycocotools_strings(monkeypatch) -> None:
    monkeypatch.setattr(masks, "LARGE_MASK_PIXELS", 1)  # every mask through the numpy path
    for index, mask in enumerate(stress_masks()):
        assert encode_mask(mask) == pycocotools_rle(mask), f"case {index} {mask.shape}"
        assert np.array_equal(decode_mask(encode_mask(mask)), (mask != 0).astype(np.uint8))


def test_both_sides_of_the_threshold_agree() -> None:
    side = int(np.ceil(np.sqrt(masks.LARGE_MASK_PIXELS)))
    rng = np.random.default_rng(3)
    for shape in ((side - 1, side - 1), (side, side), (side + 5, side - 3)):
        mask = cv2.resize((rng.random((40, 30)) < 0.4).astype(np.uint8), shape[::-1])
        assert encode_mask(mask) == pycocotools_rle(mask), shape


def test_pycocotools_is_not_called_for_a_large_mask(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("pycocotools encode holds the GIL throughout")

    mask = np.zeros((2000, 1500), np.uint8)
    mask[300:1700, 200:1300] = 1
    want = pycocotools_rle(mask)
    monkeypatch.setattr(masks.mask_utils, "encode", refuse)
    assert encode_mask(mask) == want


def test_real_garment_masks_at_photo_and_48_megapixel_size(ccp_root: Path) -> None:
    for stem in ("0001", "0150", "0420"):
        path = ccp_root / "annotations" / "pixel-level" / f"{stem}.mat"
        labels = scipy.io.loadmat(path)["groundtruth"]
        for value in np.unique(labels)[1:4]:
            garment = (labels == value).astype(np.uint8)
            assert encode_mask(garment) == pycocotools_rle(garment), (stem, value)
        large = cv2.resize(garment, (6000, 8000), interpolation=cv2.INTER_NEAREST)
        assert large.size >= masks.LARGE_MASK_PIXELS
        assert encode_mask(large) == pycocotools_rle(large), stem


def test_not_two_dimensional_is_refused() -> None:
    with pytest.raises(ValueError, match="H×W mask"):
        encode_mask(np.zeros((2, 1000, 1000), np.uint8))
