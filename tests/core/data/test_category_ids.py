"""Results speak the dataset's own category ids: `fashionviewer evaluate` agrees with pycocotools run
directly on the original files, whatever the ids are (0-based as Fashionpedia's, 1..K, or with gaps as
COCO's), and a model trained on such a dataset predicts, exports and evaluates in those ids."""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.masks import decode_mask, encode_mask
from fashionviewer.core.data.prediction_files import from_coco_results, write_kaggle_submission
from fashionviewer.core.data.predictions import (
    ImagePrediction,
    Instance,
    category_id_of,
    label_of_category,
)
from fashionviewer.evaluate import main as evaluate_main
from tests.fixtures.scenes import scene_dataset

H, W = 48, 64
ID_SCHEMES = {"zero-based": [0, 1, 2], "one-based": [1, 2, 3], "with-gaps": [1, 27, 90]}
STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _rect(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def _write_gt(path: Path, ids: list[int]) -> dict:
    rng = random.Random(0)
    images, annotations = [], []
    for image_id in range(1, 7):
        images.append({"id": image_id, "file_name": f"img{image_id}.png", "width": W, "height": H})
        for k in range(3):
            y0, x0 = rng.randrange(0, H - 16), rng.randrange(0, W - 16)
            mask = _rect(y0, y0 + rng.randrange(8, 16), x0, x0 + rng.randrange(8, 16))
            rle = encode_mask(mask)
            ys, xs = np.nonzero(mask)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": ids[(image_id + k) % 3],
                    "segmentation": rle,
                    "area": float(mask.sum()),
                    "iscrowd": 0,
                    "bbox": [
                        float(xs.min()),
                        float(ys.min()),
                        float(xs.max() - xs.min() + 1),
                        float(ys.max() - ys.min() + 1),
                    ],
                }
            )
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": cid, "name": name}
            for cid, name in zip(ids, ("top", "pants", "bag"), strict=False)
        ],
    }
    path.write_text(json.dumps(data))
    return data


def _damaged_results(gt: dict, seed: int = 1) -> list[dict]:
    """GT as results with mixed damage: jittered scores, shifted masks, a dropped and a duplicated record."""
    rng = random.Random(seed)
    results = []
    for ann in gt["annotations"][1:]:
        mask = decode_mask(ann["segmentation"])
        if rng.random() < 0.4:
            mask = np.roll(mask, rng.choice([-3, 3]), axis=1)
        x, y, w, h = ann["bbox"]
        results.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "score": rng.random(),
                "segmentation": encode_mask(mask),
                "bbox": [x + rng.choice([-2, 0, 2]), y, w, h],
            }
        )
    results.append({**results[0], "score": 0.01})
    return results


def _pycocotools(gt_path: Path, results_path: Path, iou_type: str) -> dict[str, float]:
    """COCOeval straight on the two files, as its own documentation runs it."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        records = json.loads(results_path.read_text())
        if iou_type == "bbox":
            records = [{k: v for k, v in r.items() if k != "segmentation"} for r in records]
        else:
            records = [{k: v for k, v in r.items() if k != "bbox"} for r in records]
        coco_dt = coco_gt.loadRes(records)
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(STAT_KEYS, (float(v) for v in evaluator.stats), strict=False))


def _ours(gt_path: Path, results_path: Path, iou_type: str, tmp_path: Path) -> dict:
    out = tmp_path / f"metrics-{iou_type}.json"
    assert (
        evaluate_main(
            [
                "--gt",
                str(gt_path),
                "--pred",
                str(results_path),
                "--iou",
                iou_type,
                "--json",
                str(out),
            ]
        )
        == 0
    )
    return json.loads(out.read_text())


@pytest.mark.parametrize("scheme", sorted(ID_SCHEMES))
@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_evaluate_equals_pycocotools_on_the_original_files(scheme, iou_type, tmp_path):
    gt = _write_gt(tmp_path / "gt.json", ID_SCHEMES[scheme])
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(_damaged_results(gt)))
    expected = _pycocotools(tmp_path / "gt.json", results_path, iou_type)
    ours = _ours(tmp_path / "gt.json", results_path, iou_type, tmp_path)
    # damaged: neither perfect nor empty, so agreement means something
    assert 0.2 < expected["AP"] < 0.95
    for key in STAT_KEYS:
        assert ours[key] == pytest.approx(expected[key], abs=1e-9), key


@pytest.mark.parametrize("scheme", sorted(ID_SCHEMES))
def test_perfect_results_score_one_and_shifted_ids_score_lower(scheme, tmp_path):
    ids = ID_SCHEMES[scheme]
    gt = _write_gt(tmp_path / "gt.json", ids)
    perfect = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "score": 1.0,
            "segmentation": a["segmentation"],
            "bbox": a["bbox"],
        }
        for a in gt["annotations"]
    ]
    (tmp_path / "perfect.json").write_text(json.dumps(perfect))
    assert _ours(tmp_path / "gt.json", tmp_path / "perfect.json", "segm", tmp_path)[
        "AP"
    ] == pytest.approx(1.0)

    # every id moved to the next category's: the old off-by-one bug, as a user's file would show it
    following = {cid: ids[(i + 1) % len(ids)] for i, cid in enumerate(ids)}
    shifted = [{**r, "category_id": following[r["category_id"]]} for r in perfect]
    (tmp_path / "shifted.json").write_text(json.dumps(shifted))
    assert _ours(tmp_path / "gt.json", tmp_path / "shifted.json", "segm", tmp_path)["AP"] < 0.5


def test_label_to_category_id_round_trip_and_errors():
    ids = [0, 5, 9]
    assert [category_id_of(label, ids) for label in (1, 2, 3)] == ids
    assert [label_of_category(cid, ids) for cid in ids] == [1, 2, 3]
    assert category_id_of(4, None) == 4 and label_of_category(4, None) == 4
    with pytest.raises(DataError, match="label 4 has no category id"):
        category_id_of(4, ids)
    with pytest.raises(DataError, match="category_id 7 is not one of the model's category ids"):
        label_of_category(7, ids)

    mask = _rect(2, 10, 3, 12)
    prediction = ImagePrediction(
        "a.png", W, H, [Instance((3, 2, 12, 10), 2, "bag", 0.9, encode_mask(mask))]
    )
    records = prediction.to_coco_results(image_id=1, category_ids=ids)
    assert records[0]["category_id"] == 5
    back = from_coco_results(records, category_ids=ids)[0].instances[0]
    assert back.label == 2 and back.class_name == "bag"


def test_kaggle_csv_writes_the_models_class_ids(tmp_path):
    mask = _rect(2, 10, 3, 12)
    prediction = ImagePrediction(
        "a.png", W, H, [Instance((3, 2, 12, 10), 1, "shirt, blouse", 0.9, encode_mask(mask))]
    )
    path = write_kaggle_submission(tmp_path / "sub.csv", [prediction], category_ids=list(range(46)))
    assert path.read_text().splitlines()[1].endswith(",0")  # label 1 is iMaterialist ClassId 0


@pytest.mark.slow
def test_a_model_trained_on_zero_based_ids_predicts_exports_and_evaluates_in_them(tmp_path):
    """Train 2 steps on a COCO dataset whose ids start at 0, predict its val images with `fashionviewer
    predict`, and score predictions.json both ways: the CLI and pycocotools agree, in the file's ids."""
    from fashionviewer.core.models.registry import read_card
    from fashionviewer.predict import main as predict_main
    from trainers import maskrcnn

    root = scene_dataset(tmp_path / "scenes", n_train=4, n_val=3, image_size=96)
    for split in ("train", "val"):  # re-number the categories 0..9, as Fashionpedia numbers its own
        path = root / "annotations" / f"instances_{split}.json"
        data = json.loads(path.read_text())
        for cat in data["categories"]:
            cat["id"] -= 1
        for ann in data["annotations"]:
            ann["category_id"] -= 1
        path.write_text(json.dumps(data))

    out = tmp_path / "run"
    maskrcnn.main(
        maskrcnn.get_args_parser().parse_args(
            [
                "--dataset",
                "coco",
                "--data-path",
                str(root),
                "--model",
                "maskrcnn_mobilenet_v3_light",
                "--weights",
                "none",
                "--image-size",
                "96",
                "--batch-size",
                "2",
                "--steps-per-epoch",
                "2",
                "--epochs",
                "1",
                "--warmup-steps",
                "1",
                "--bn-recalibration-steps",
                "1",
                "--workers",
                "0",
                "--device",
                "cpu",
                "--threads",
                "1",
                "--out",
                str(out),
            ]
        )
    )
    card = read_card(out / "model.pt")
    assert card["category_ids"] == list(range(10))

    predicted = tmp_path / "predicted"
    assert (
        predict_main(
            [
                str(root / "val"),
                "--out",
                str(predicted),
                "--model",
                str(out / "model.pt"),
                "--min-score",
                "0",
                "--no-cache",
                "--export",
                "coco",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    records = json.loads((predicted / "predictions.json").read_text())
    assert records and {r["category_id"] for r in records} <= set(range(10))
    run = json.loads((predicted / "run.json").read_text())
    assert [c["id"] for c in run["categories"]] == list(range(10))

    gt_path = root / "annotations" / "instances_val.json"
    ours = _ours(gt_path, predicted / "predictions.json", "segm", tmp_path)
    # pycocotools matches by image id: give each record the GT's id for its file name
    by_name = {img["file_name"]: img["id"] for img in json.loads(gt_path.read_text())["images"]}
    direct = [{**r, "image_id": by_name[Path(r["file_name"]).name]} for r in records]
    (tmp_path / "direct.json").write_text(json.dumps(direct))
    expected = _pycocotools(gt_path, tmp_path / "direct.json", "segm")
    for key in STAT_KEYS:
        assert ours[key] == pytest.approx(expected[key], abs=1e-9), key
