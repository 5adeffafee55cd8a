"""Instance / ImagePrediction: filtering, JSON and COCO-results round trips, torchvision and Kaggle conversion."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import fashionviewer.core.data.predictions as predictions_module
from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.masks import encode_mask, kaggle_rle_decode, kaggle_rle_encode
from fashionviewer.core.data.prediction_files import (
    from_coco_results,
    load_coco_results,
    save_coco_results,
    write_kaggle_submission,
)
from fashionviewer.core.data.predictions import ImagePrediction, Instance

H, W = 20, 30


def box_mask(x1, y1, x2, y2):
    mask = np.zeros((H, W), np.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def make_prediction(file_name="photos/a.jpg", image_id=0) -> ImagePrediction:
    instances = [
        Instance((2, 3, 10, 9), 1, "shirt, blouse", 0.9, encode_mask(box_mask(2, 3, 10, 9))),
        Instance((5, 5, 25, 18), 7, "shorts", 0.4, encode_mask(box_mask(5, 5, 25, 18))),
        Instance((0, 0, 4, 4), 7, "shorts", 0.05, None),
    ]
    return ImagePrediction(file_name, W, H, instances, model="test-model", image_id=image_id)


def test_filter_by_score_and_class_never_decodes(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("filter decoded a mask")

    monkeypatch.setattr(predictions_module, "decode_mask", boom)
    pred = make_prediction()
    assert [i.label for i in pred.filter(0.3)] == [1, 7]
    assert [i.score for i in pred.filter(classes={"shorts"})] == [0.4, 0.05]
    assert [i.score for i in pred.filter(0.1, classes=[7])] == [0.4]
    assert pred.filter(0.95) == []


def test_instance_mask_and_area():
    inst = make_prediction().instances[0]
    np.testing.assert_array_equal(inst.mask(), box_mask(2, 3, 10, 9))
    assert inst.area == 8 * 6
    box_only = make_prediction().instances[2]
    assert not box_only.has_mask and box_only.area == 16
    with pytest.raises(ValueError, match="no mask"):
        box_only.mask()


def test_to_dict_from_dict_json_round_trip():
    pred = make_prediction(image_id=4)
    pred.instances[0].classifier = {"model": "cnn3", "classes": ["a", "b"], "probs": [0.25, 0.75]}
    pred.instances[0].detector_score = 0.95  # re-scored: 0.9 = 0.95 x a classifier probability
    back = ImagePrediction.from_dict(json.loads(json.dumps(pred.to_dict())))
    assert (
        back == pred
        and back.instances[0].detector_score == 0.95
        and back.instances[1].detector_score is None
    )
    with pytest.raises(DataError, match="instance 1: missing 'score'"):
        data = pred.to_dict()
        del data["instances"][1]["score"]
        ImagePrediction.from_dict(data)


def test_to_coco_results_fields():
    pred = make_prediction(image_id=3)
    results = pred.to_coco_results()
    assert len(results) == 3
    first = results[0]
    assert first["image_id"] == 3 and first["category_id"] == 1 and first["score"] == 0.9
    assert first["bbox"] == [2, 3, 8, 6]  # xywh
    assert first["segmentation"] == pred.instances[0].rle and isinstance(
        first["segmentation"]["counts"], str
    )
    assert "segmentation" not in results[2]
    assert {r["image_id"] for r in pred.to_coco_results(image_id=11)} == {11}


def test_save_load_coco_results_round_trip(tmp_path):
    preds = [make_prediction("a.jpg"), make_prediction("b.jpg")]
    path = save_coco_results(tmp_path / "out" / "results.json", preds)
    records = load_coco_results(path)
    assert len(records) == 6
    assert [r["image_id"] for r in records] == [1, 1, 1, 2, 2, 2]  # ids unset -> positions
    back = from_coco_results(records)
    assert [p.file_name for p in back] == ["a.jpg", "b.jpg"]
    assert (back[0].width, back[0].height) == (W, H)
    for got, want in zip(back[0].instances, preds[0].instances, strict=False):
        assert got.label == want.label and got.class_name == want.class_name
        assert got.box == pytest.approx(want.box)
        assert got.rle == want.rle


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('[{"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1]}]', "record 0: missing 'score'"),
        (
            '[{"image_id": 1, "category_id": 2, "score": 0.5, "bbox": [0, 0, 1, 1]}, {"category_id": 1}]',
            "record 1: missing 'image_id'",
        ),
        (
            '[{"image_id": 1, "category_id": 2, "score": 0.5}]',
            "record 0: missing 'bbox' and 'segmentation'",
        ),
        (
            '[{"image_id": 1, "category_id": 2, "score": 0.5, "segmentation": {"size": [2, 2]}}]',
            "record 0: segmentation: missing 'counts'",
        ),
        (
            '[{"image_id": "x", "category_id": 2, "score": 0.5, "bbox": [0, 0, 1, 1]}]',
            "'image_id' must be an integer",
        ),
        ('{"image_id": 1}', "expected a JSON list"),
        ('[{"image_id": 1,', "not valid JSON (line 1"),
    ],
)
def test_load_coco_results_errors(tmp_path, content, fragment):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        load_coco_results(path)
    assert fragment in str(info.value)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_load_coco_results_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_coco_results(tmp_path / "nope.json")


def test_from_torchvision():
    probs = torch.zeros(3, 1, H, W)
    probs[0, 0, 2:6, 3:9] = 0.8
    probs[0, 0, 6, 3:9] = 0.4  # below the 0.5 mask threshold
    probs[1, 0, 10:15, 10:20] = 0.9
    probs[2, 0, 0:3, 0:3] = 0.9
    output = {
        "boxes": torch.tensor(
            [[3.0, 2.0, 9.0, 6.0], [10.0, 10.0, 20.0, 15.0], [0.0, 0.0, 3.0, 3.0]]
        ),
        "labels": torch.tensor([2, 1, 5]),
        "scores": torch.tensor([0.6, 0.95, 0.1]),
        "masks": probs,
    }
    pred = ImagePrediction.from_torchvision(output, ["dress", "coat"], "x.jpg", score_floor=0.2)
    assert (pred.width, pred.height, pred.file_name) == (W, H, "x.jpg")
    assert [i.label for i in pred.instances] == [1, 2]  # sorted by score, the 0.1 one dropped
    assert [i.class_name for i in pred.instances] == ["dress", "coat"]
    assert pred.instances[0].score == pytest.approx(0.95)
    np.testing.assert_array_equal(pred.instances[1].mask(), box_mask(3, 2, 9, 6))
    assert pred.instances[1].box == pytest.approx((3.0, 2.0, 9.0, 6.0))
    unknown = ImagePrediction.from_torchvision(output, ["dress"], "x.jpg", score_floor=0.0)
    assert "5" in [i.class_name for i in unknown.instances]


def test_from_torchvision_empty():
    output = {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "scores": torch.zeros(0),
        "masks": torch.zeros(0, 1, H, W),
    }
    pred = ImagePrediction.from_torchvision(output, ["a"], "e.jpg")
    assert pred.instances == [] and (pred.width, pred.height) == (W, H)


def test_write_kaggle_submission(tmp_path):
    path = write_kaggle_submission(tmp_path / "submission.csv", [make_prediction("dir/abc.jpg")])
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2  # the box-only instance has no mask to encode
    assert rows[0]["ImageId"] == "abc.jpg"
    assert [r["ClassId"] for r in rows] == ["0", "6"]  # label - 1
    assert rows[0]["EncodedPixels"] == kaggle_rle_encode(box_mask(2, 3, 10, 9))
    np.testing.assert_array_equal(
        kaggle_rle_decode(rows[1]["EncodedPixels"], H, W), box_mask(5, 5, 25, 18)
    )


def test_write_kaggle_submission_remove_overlaps(tmp_path):
    path = write_kaggle_submission(tmp_path / "s.csv", [make_prediction()], remove_overlaps=True)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    first = kaggle_rle_decode(rows[0]["EncodedPixels"], H, W)
    second = kaggle_rle_decode(rows[1]["EncodedPixels"], H, W)
    assert not (first & second).any()
    np.testing.assert_array_equal(first | second, box_mask(2, 3, 10, 9) | box_mask(5, 5, 25, 18))
