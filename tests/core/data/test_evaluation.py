"""COCO AP via pycocotools: ground truth scored as predictions is perfect, damage lowers it,
bad inputs give one-line errors naming the record."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fashionviewer.__main__ import main as dispatch
from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.datasets import build_dataset
from fashionviewer.core.data.datasets.fmnist_scenes import generate_scenes
from fashionviewer.core.data.evaluation import evaluate_coco, load_ground_truth
from fashionviewer.core.data.masks import decode_mask, encode_mask, kaggle_rle_encode
from fashionviewer.core.data.prediction_files import save_coco_results
from fashionviewer.core.data.predictions import ImagePrediction, Instance
from fashionviewer.evaluate import main as evaluate_main

H, W = 40, 60


def rect(y1, y2, x1, x2, h=H, w=W):
    mask = np.zeros((h, w), np.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def write_gt(path: Path) -> dict:
    """Three images, classes with non-contiguous ids 3 ("coat") and 8 ("bag")."""
    anns = []
    shapes = [
        (1, 3, rect(2, 20, 3, 30)),
        (1, 8, rect(25, 38, 35, 58)),
        (2, 3, rect(5, 35, 10, 50)),
        (3, 8, rect(0, 10, 0, 10)),
        (3, 8, rect(15, 30, 20, 45)),
    ]
    for i, (image_id, cat, mask) in enumerate(shapes):
        anns.append(
            {
                "id": 100 + i,
                "image_id": image_id,
                "category_id": cat,
                "iscrowd": 0,
                "segmentation": encode_mask(mask),
            }
        )
    anns[0]["segmentation"] = [[3, 2, 29.5, 2, 29.5, 19.5, 3, 19.5]]  # polygons are accepted too
    data = {
        "images": [{"id": i, "file_name": f"p{i}.jpg", "width": W, "height": H} for i in (1, 2, 3)],
        "categories": [{"id": 8, "name": "bag"}, {"id": 3, "name": "coat"}],
        "annotations": anns,
    }
    path.write_text(json.dumps(data))
    return data


def gt_as_results(gt: dict, score: float = 1.0) -> list[dict]:
    return [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": score,
            "segmentation": a["segmentation"],
        }
        for a in gt["annotations"]
    ]


@pytest.fixture
def gt(tmp_path) -> dict:
    write_gt(tmp_path / "gt.json")
    return load_ground_truth(tmp_path / "gt.json")


def test_ground_truth_keeps_the_files_own_category_ids(gt):
    assert gt["categories"] == [{"id": 3, "name": "coat"}, {"id": 8, "name": "bag"}]
    assert sorted(a["category_id"] for a in gt["annotations"]) == [3, 3, 8, 8, 8]


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_ground_truth_as_predictions_is_perfect(gt, iou_type):
    before = copy.deepcopy(gt)
    metrics = evaluate_coco(gt, gt_as_results(gt), iou_type)
    assert gt == before  # pycocotools mutates what it is given; the caller's dict must not change
    for key in ("AP", "AP50", "AP75"):
        assert metrics[key] == pytest.approx(1.0)
    assert metrics["per_class"] == {"coat": pytest.approx(1.0), "bag": pytest.approx(1.0)}
    assert metrics["images"] == 3 and metrics["instances"] == 5 and metrics["results"] == 5


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_damaged_predictions_score_lower(gt, iou_type):
    results = gt_as_results(gt)
    shifted = []
    for rec in results:
        mask = np.roll(decode_mask(rec["segmentation"]), 8, axis=1)
        x, y, w, h = rec["bbox"]
        shifted.append({**rec, "segmentation": encode_mask(mask), "bbox": [x + 8, y, w, h]})
    assert evaluate_coco(gt, shifted, iou_type)["AP"] < 0.9
    only_coat = [r for r in results if r["category_id"] == 3]
    metrics = evaluate_coco(gt, only_coat, iou_type)
    assert metrics["per_class"]["bag"] == 0.0 and metrics["per_class"]["coat"] == pytest.approx(1.0)
    assert metrics["AP"] == pytest.approx(0.5)
    assert evaluate_coco(gt, [], iou_type)["AP"] == 0.0


def test_results_match_ground_truth_by_file_name(gt, tmp_path):
    preds = []
    for img in gt["images"]:
        instances = []
        for ann in (a for a in gt["annotations"] if a["image_id"] == img["id"]):
            x, y, w, h = ann["bbox"]
            instances.append(
                Instance((x, y, x + w, y + h), ann["category_id"], "", 0.9, ann["segmentation"])
            )
        # image ids deliberately unset and folders added: matching goes by base name
        preds.append(ImagePrediction(f"some/folder/{img['file_name']}", W, H, instances))
    path = save_coco_results(tmp_path / "results.json", reversed(preds))
    results = json.loads(path.read_text())
    assert evaluate_coco(gt, results, "segm")["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"category_id": 99}, "record 2: category_id 99 is not a ground-truth category"),
        ({"image_id": 42}, "record 2: image_id 42 is not in the ground truth"),
        ({"file_name": "zzz.jpg"}, "record 2: file_name 'zzz.jpg' is not in the ground truth"),
        (
            {"segmentation": encode_mask(np.zeros((5, 5), np.uint8))},
            "record 2: mask size [5, 5] differs",
        ),
    ],
)
def test_bad_results_name_the_record(gt, change, fragment):
    results = gt_as_results(gt)
    results[2].update(change)
    with pytest.raises(DataError) as info:
        evaluate_coco(gt, results, "segm")
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_unknown_images_can_be_ignored_and_segm_needs_masks(gt):
    results = gt_as_results(gt) + [
        {
            "image_id": 1,
            "file_name": "other.jpg",
            "category_id": 1,
            "score": 0.5,
            "bbox": [0, 0, 5, 5],
        }
    ]
    metrics = evaluate_coco(gt, results, "bbox", ignore_unknown_images=True)
    assert metrics["ignored_results"] == 1 and metrics["AP"] == pytest.approx(1.0)
    box_only = [{k: v for k, v in r.items() if k != "segmentation"} for r in gt_as_results(gt)]
    with pytest.raises(DataError, match="record 0: no 'segmentation'"):
        evaluate_coco(gt, box_only, "segm")
    assert evaluate_coco(gt, box_only, "bbox")["AP"] == pytest.approx(1.0)


def test_ground_truth_from_imaterialist_csv(tmp_path):
    rows = [
        ["a.jpg", kaggle_rle_encode(rect(2, 20, 3, 30)), H, W, "0_12"],
        ["a.jpg", kaggle_rle_encode(rect(25, 38, 35, 58)), H, W, "31"],
        ["b.jpg", kaggle_rle_encode(rect(5, 35, 10, 50)), H, W, "0"],
    ]
    with open(tmp_path / "train.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ImageId", "EncodedPixels", "Height", "Width", "ClassId"])
        writer.writerows(rows)
    gt = load_ground_truth(tmp_path / "train.csv")  # no photos needed
    assert [img["file_name"] for img in gt["images"]] == ["a.jpg", "b.jpg"]
    # the file's own ClassIds
    assert sorted(a["category_id"] for a in gt["annotations"]) == [0, 0, 31]
    assert evaluate_coco(gt, gt_as_results(gt), "segm")["AP"] == pytest.approx(1.0)
    assert len(load_ground_truth(tmp_path, split="val")["images"]) == 1


def test_cli_writes_table_and_json(tmp_path, capsys):
    write_gt(tmp_path / "gt.json")
    gt = load_ground_truth(tmp_path / "gt.json")
    (tmp_path / "results.json").write_text(json.dumps(gt_as_results(gt)))
    code = evaluate_main(
        [
            "--gt",
            str(tmp_path / "gt.json"),
            "--pred",
            str(tmp_path / "results.json"),
            "--iou",
            "bbox",
            "--json",
            str(tmp_path / "m" / "metrics.json"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "AP50" in out and "coat" in out and "1.000" in out
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["AP"] == pytest.approx(1.0) and metrics["iou_type"] == "bbox"


def test_cli_user_error_is_one_line(tmp_path, capsys):
    write_gt(tmp_path / "gt.json")
    (tmp_path / "results.json").write_text(
        '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]'
    )
    code = dispatch(
        ["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "results.json")]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "record 0: missing 'score'" in err and err.count("\n") == 1


def test_perfect_model_on_generated_scenes(tmp_path):
    """The whole chain: scenes -> dataset targets -> torchvision-style outputs -> results file -> CLI."""
    try:
        generate_scenes(tmp_path / "scenes", n_train=0, n_val=6, seed=1)
    except DataError as exc:
        pytest.skip(f"real Fashion-MNIST not available ({exc})")
    ds = build_dataset("fmnist-scenes", tmp_path / "scenes", "val")
    preds = []
    for index in range(len(ds)):
        _, target = ds[index]
        n = len(target["labels"])
        output = {
            "boxes": target["boxes"],
            "labels": target["labels"],
            "scores": torch.ones(n),
            "masks": target["masks"][:, None].float(),
        }
        info = ds.image_info(index)
        preds.append(ImagePrediction.from_torchvision(output, ds.class_names, info["file_name"]))
    save_coco_results(tmp_path / "results.json", preds)
    code = evaluate_main(
        [
            "--gt",
            str(tmp_path / "scenes"),
            "--split",
            "val",
            "--pred",
            str(tmp_path / "results.json"),
            "--json",
            str(tmp_path / "metrics.json"),
        ]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["AP"] == pytest.approx(1.0) and metrics["images"] == 6


def _kaggle_csv(path: Path, rows: list[list]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ImageId", "EncodedPixels", "Height", "Width", "ClassId"])
        writer.writerows(rows)
    return path


def _coco_gt(path: Path, change) -> Path:
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}],
        "categories": [{"id": 1, "name": "coat"}],
        "annotations": [
            {
                "id": 5,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "segmentation": encode_mask(rect(2, 20, 3, 30)),
            }
        ],
    }
    change(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "make_gt, fragment",
    [
        (
            lambda d: _kaggle_csv(
                d / "train.csv",
                [["a.jpg", "1 3", H, W, "1"], ["a.jpg", f"{H * W - 10} 30", H, W, "1"]],
            ),
            f"train.csv: row 3: EncodedPixels: run 1 ({H * W - 10} 30) runs past the last pixel",
        ),
        (
            lambda d: _kaggle_csv(d / "train.csv", [["a.jpg", "1 3", H, W, "99"]]),
            "train.csv: row 2: ClassId: category 99 out of range 0-45",
        ),
        (
            lambda d: _kaggle_csv(d / "train.csv", [["a.jpg", "1 3", H]]),
            "train.csv: row 2: Width: missing value",
        ),
        (
            lambda d: _kaggle_csv(d / "train.csv", [["a.jpg", "1 3", "tall", W, "1"]]),
            "train.csv: row 2: Height: 'tall' is not an integer",
        ),
        (
            lambda d: _coco_gt(d / "gt.json", lambda g: g.pop("annotations")),
            "gt.json: missing 'annotations'",
        ),
        (
            lambda d: _coco_gt(d / "gt.json", lambda g: g["images"][0].pop("width")),
            "gt.json: image 0 (id 1): missing 'width'",
        ),
        (
            lambda d: _coco_gt(d / "gt.json", lambda g: g["annotations"][0].update(category_id=7)),
            "gt.json: annotation 0 (id 5): unknown category_id 7",
        ),
        (
            lambda d: (d / "gt.json").write_text('{"images": [') and d / "gt.json",
            "gt.json: not valid JSON",
        ),
    ],
)
def test_cli_bad_ground_truth_is_one_error_line(tmp_path, capsys, make_gt, fragment):
    """Malformed annotations through ``fashionviewer evaluate``: exit 2, one line naming file, row/record
    and field, no traceback."""
    gt_path = make_gt(tmp_path)
    (tmp_path / "results.json").write_text(
        json.dumps(
            [
                {
                    "image_id": 1,
                    "file_name": "a.jpg",
                    "category_id": 1,
                    "bbox": [0, 0, 5, 5],
                    "score": 0.5,
                }
            ]
        )
    )
    code = dispatch(
        [
            "evaluate",
            "--gt",
            str(gt_path),
            "--pred",
            str(tmp_path / "results.json"),
            "--iou",
            "bbox",
        ]
    )
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert fragment in captured.err, captured.err


def test_classes_a_fine_tune_added_are_left_out_against_its_taxonomy(tmp_path, capsys):
    """Results of a fine-tuned model whose card keeps the iMaterialist taxonomy and names its added classes:
    scored on a ground truth in that taxonomy, the added classes' results are left out and counted (they
    cannot be listed there); without that record the names outside the taxonomy are refused."""
    data = write_gt(tmp_path / "gt.json")
    data["categories"] = [{"id": 8, "name": "bag, wallet"}, {"id": 3, "name": "coat"}]
    (tmp_path / "gt.json").write_text(json.dumps(data))
    gt = load_ground_truth(tmp_path / "gt.json")
    names = {c["id"]: c["name"] for c in gt["categories"]}
    results = [{**r, "class_name": names[r["category_id"]]} for r in gt_as_results(gt)]
    added = [{**r, "category_id": 50, "class_name": "Trouser", "score": 0.99} for r in results]
    run = tmp_path / "run"
    run.mkdir()
    (run / "predictions.json").write_text(json.dumps(results + added))
    record = {"taxonomy": "imaterialist", "classes_beyond_taxonomy": ["Trouser"]}
    (run / "run.json").write_text(json.dumps(record))
    args = ["--gt", str(tmp_path / "gt.json"), "--pred", str(run / "predictions.json")]
    assert evaluate_main([*args, "--json", str(tmp_path / "m.json")]) == 0
    assert "5 predictions of 1 classes the ground truth does not list ignored: Trouser" in (
        capsys.readouterr().out
    )
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["AP"] == pytest.approx(1.0) and metrics["ignored_unlisted_classes"] == 5
    (run / "run.json").write_text(json.dumps({"taxonomy": "imaterialist"}))
    assert dispatch(["evaluate", *args]) == 2
    assert "Trouser" in capsys.readouterr().err
