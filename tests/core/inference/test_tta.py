"""Test-time augmentation: views merged into one prediction (core.tta) and the Predictor running them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.data.masks import decode_mask
from fashionviewer.core.inference.families import load_predictor
from fashionviewer.core.inference.predictor import Predictor
from fashionviewer.core.inference.tta import TestTimeAugmentation, maskness, merge_views, unflip
from fashionviewer.core.models.registry import save_checkpoint
from fashionviewer.core.runs.cache import predictor_key

from .test_inference import CLASS_NAMES, _calibrated_light_model


@pytest.fixture(scope="module")
def model():
    return _calibrated_light_model()


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(3)
    img = (rng.random((150, 190, 3)) * 80).astype(np.uint8)
    img[30:110, 30:100] = (220, 120, 40)  # off-centre, so that mirroring moves it
    img[60:140, 130:180] = (40, 200, 90)
    return img


def _view(boxes, labels, scores, mask_value=0.9):
    n = len(scores)
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32),
        "labels": torch.tensor(labels),
        "scores": torch.tensor(scores),
        "masks": torch.full((n, 1, 28, 28), mask_value),
    }


def test_maskness_is_the_mean_foreground_probability():
    masks = torch.zeros(3, 1, 4, 4)
    masks[0] = 0.9
    masks[1, 0, :2] = 0.8  # half the mask at 0.8, half at 0.1: only the foreground counts
    masks[1, 0, 2:] = 0.1
    torch.testing.assert_close(maskness(masks), torch.tensor([0.9, 0.8, 0.0]))


def test_unflip_mirrors_boxes_and_masks_back():
    masks = torch.rand(1, 1, 28, 28)
    found = {"boxes": torch.tensor([[10.0, 5.0, 40.0, 25.0]]), "masks": masks}
    back = unflip(found, width=100)
    torch.testing.assert_close(back["boxes"], torch.tensor([[60.0, 5.0, 90.0, 25.0]]))
    torch.testing.assert_close(back["masks"], masks.flip(-1))
    torch.testing.assert_close(unflip(back, 100)["boxes"], found["boxes"])


def test_one_view_merges_into_itself(model, image):
    """A single view with no mask weighting is exactly the plain prediction (same masks, pasted in a window)."""
    plain = Predictor(model, CLASS_NAMES).predict(image)
    found = Predictor(model, CLASS_NAMES)._detect(
        model, torch.device("cpu"), [torch.from_numpy(image).permute(2, 0, 1)]
    )[0]
    merged = merge_views([found], 150, 190, TestTimeAugmentation())
    assert len(plain.instances) > 3 and len(merged["scores"]) == len(plain.instances)
    np.testing.assert_allclose(
        merged["scores"], [inst.score for inst in plain.instances], rtol=1e-6
    )
    np.testing.assert_allclose(merged["boxes"], [inst.box for inst in plain.instances], atol=1e-4)
    assert merged["labels"] == [inst.label for inst in plain.instances]
    assert [decode_mask(r).sum() for r in merged["rles"]] == [
        decode_mask(i.rle).sum() for i in plain.instances
    ]


def test_views_of_one_object_are_averaged_and_a_missing_view_counts_as_zero():
    first = _view(
        [[10, 10, 50, 60], [100, 20, 140, 90], [10, 10, 50, 60]], [1, 2, 3], [0.8, 0.6, 0.3]
    )
    second = _view([[12, 10, 52, 62]], [1], [0.4])
    merged = merge_views([first, second], 120, 160, TestTimeAugmentation())
    assert merged["labels"] == [1, 2, 3]  # class 3 shares class 1's box but is another object
    np.testing.assert_allclose(merged["scores"], [0.6, 0.3, 0.15], rtol=1e-6)
    np.testing.assert_allclose(
        merged["boxes"][0],
        [(0.8 * 10 + 0.4 * 12) / 1.2, 10, (0.8 * 50 + 0.4 * 52) / 1.2, (0.8 * 60 + 0.4 * 62) / 1.2],
        rtol=1e-5,
    )
    union = decode_mask(merged["rles"][0]).astype(bool)
    assert union[12:58, 14:48].all() and not union[:, 60:].any()


def test_mask_quality_power_floor_and_cap():
    view = _view(
        [[10, 10, 50, 60], [100, 20, 140, 90], [60, 60, 90, 100]],
        [1, 2, 1],
        [0.8, 0.6, 0.05],
        mask_value=0.8,
    )
    merged = merge_views(
        [view], 120, 160, TestTimeAugmentation(mask_quality_power=2), score_floor=0.1
    )
    # 0.032 < floor
    np.testing.assert_allclose(merged["scores"], [0.8 * 0.64, 0.6 * 0.64], rtol=1e-5)
    capped = merge_views([view], 120, 160, TestTimeAugmentation(), max_detections=1)
    assert capped["labels"] == [1] and len(capped["rles"]) == 1


def test_mirrored_photo_gives_the_mirrored_prediction(model, image):
    """With mirrored views the view set of a photo and of its mirror image is the same, so the results mirror."""
    tta = TestTimeAugmentation(sizes=(112, 128), hflip=True, mask_quality_power=2)
    predictor = Predictor(model, CLASS_NAMES, tta=tta)
    sizes_before = (model.transform.min_size, model.transform.max_size)
    result = predictor.predict(image)
    mirrored = predictor.predict(np.ascontiguousarray(image[:, ::-1]))
    # views never touch the model
    assert (model.transform.min_size, model.transform.max_size) == sizes_before
    assert len(result.instances) > 3 and len(mirrored.instances) == len(result.instances)
    for inst in result.instances:
        x0, y0, x1, y1 = inst.box
        twin = min(
            mirrored.instances, key=lambda m: abs(m.score - inst.score) + abs(m.box[0] - (190 - x1))
        )
        assert twin.label == inst.label and twin.score == pytest.approx(inst.score, rel=1e-3)
        np.testing.assert_allclose(twin.box, [190 - x1, y0, 190 - x0, y1], atol=0.05)
        # Masks are pasted at whole pixels, so a mirrored box rounds differently: compare where the mask lies.
        mask, twin_mask = decode_mask(inst.rle).astype(bool), decode_mask(twin.rle).astype(bool)
        if mask.sum() > 100:
            assert int(twin_mask.sum()) == pytest.approx(int(mask.sum()), rel=0.2)
            assert np.nonzero(twin_mask)[1].mean() == pytest.approx(
                189 - np.nonzero(mask)[1].mean(), abs=2
            )


@pytest.mark.parametrize("shape", [(3, 3000), (3000, 3)])
def test_every_view_of_a_strip_keeps_a_pixel_per_side(model, shape):
    """At 112 px a 3000x3 strip's short side would floor to 0 in torchvision's resize; each view keeps >= 1."""
    rng = np.random.default_rng(7)
    strip = (rng.random((*shape, 3)) * 80).astype(np.uint8)
    strip[..., 1] = 200
    tta = TestTimeAugmentation(sizes=(112, 128), hflip=True, mask_quality_power=2)
    prediction = Predictor(model, CLASS_NAMES, score_floor=0.0, tta=tta).predict(strip)
    assert (prediction.height, prediction.width) == shape and prediction.instances
    assert {decode_mask(inst.rle).shape for inst in prediction.instances} == {shape}


def test_card_asks_for_views_and_the_cache_keeps_them_apart(tmp_path, model):
    card = {
        "class_names": CLASS_NAMES,
        "weights": "trained",
        "test_time_augmentation": {"sizes": [112, 128], "hflip": True, "mask_quality_power": 2},
    }
    save_checkpoint(model, tmp_path / "light.pt", card)
    augmented, plain = (
        load_predictor(tmp_path / "light.pt"),
        load_predictor(tmp_path / "light.pt", tta=False),
    )
    assert augmented.tta == TestTimeAugmentation((112, 128), True, 2.0) and plain.tta is None
    assert predictor_key(augmented) != predictor_key(plain)
    assert augmented.tta.views(128) == [(112, False), (112, True), (128, False), (128, True)]

    card["test_time_augmentation"] = {"sizes": "large"}
    save_checkpoint(model, tmp_path / "bad.pt", card)
    with pytest.raises(WeightsError, match="bad.json: 'test_time_augmentation' is malformed"):
        load_predictor(tmp_path / "bad.pt")
    card["test_time_augmentation"] = {"sizes": [8]}
    save_checkpoint(model, tmp_path / "bad.pt", card)
    with pytest.raises(WeightsError, match="needs sizes >= 32"):
        load_predictor(tmp_path / "bad.pt")


def test_views_without_detections_merge_into_nothing():
    empty = _view(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0, np.float32))
    assert merge_views([empty, empty], 120, 160, TestTimeAugmentation(mask_quality_power=2)) == {
        "boxes": [],
        "labels": [],
        "scores": [],
        "rles": [],
    }
