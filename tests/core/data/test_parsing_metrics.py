"""Per-pixel parsing metrics (hand-computed), and scoring results across taxonomies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.masks import encode_mask
from fashionviewer.core.data.parsing_metrics import (
    align_results,
    parsing_metrics,
    scores_from_confusion,
)


def _mask(rows: slice, cols: slice, shape=(4, 5)) -> dict:
    mask = np.zeros(shape, np.uint8)
    mask[rows, cols] = 1
    return encode_mask(mask)


def test_parsing_metrics_match_a_hand_computed_example() -> None:
    # 4x5 image = 20 pixels. Ground truth: class A the top two rows (10 px), class B the bottom-left 2x2 (4 px),
    # background 6 px.
    gt = {
        "images": [{"id": 1, "width": 5, "height": 4}],
        "categories": [{"id": 10, "name": "A"}, {"id": 11, "name": "B"}, {"id": 12, "name": "C"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 10,
                "segmentation": _mask(slice(0, 2), slice(0, 5)),
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 11,
                "segmentation": _mask(slice(2, 4), slice(0, 2)),
            },
        ],
    }
    # Prediction: A on the top row only (5 px), B on the bottom two rows, columns 0-2 (6 px), but a better
    # scoring C covers row 3 columns 1-2 (2 px); a 0.1 instance below min_score is not painted.
    results = [
        {
            "image_id": 1,
            "category_id": 10,
            "score": 0.9,
            "segmentation": _mask(slice(0, 1), slice(0, 5)),
        },
        {
            "image_id": 1,
            "category_id": 11,
            "score": 0.6,
            "segmentation": _mask(slice(2, 4), slice(0, 3)),
        },
        {
            "image_id": 1,
            "category_id": 12,
            "score": 0.8,
            "segmentation": _mask(slice(3, 4), slice(1, 3)),
        },
        {
            "image_id": 1,
            "category_id": 12,
            "score": 0.1,
            "segmentation": _mask(slice(0, 4), slice(0, 5)),
        },
    ]
    metrics = parsing_metrics(gt, results, min_score=0.3)
    # Predicted map: row0 A A A A A | row1 bg x5 | row2 B B B bg bg | row3 B C C bg bg
    # correct: A 5, B 3 (row2 col0-1, row3 col0), background 4 (row2 col3-4, row3 col3-4) -> 12 / 20
    assert metrics["pixel_accuracy"] == pytest.approx(12 / 20)
    # IoU A = 5 / 10; B: tp 3, predicted B 4, true B 4 -> 3 / 5; C has no ground truth: not averaged
    assert metrics["per_class_iou"] == pytest.approx({"A": 0.5, "B": 0.6})
    assert metrics["miou"] == pytest.approx(0.55)
    assert metrics["garment_pixel_accuracy"] == pytest.approx(8 / 14)
    assert metrics["ccp_paper_pixel_accuracy"] == 0.8823


def test_scores_from_confusion() -> None:
    matrix = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    scores = scores_from_confusion(matrix, ["x", "y"])
    assert scores["pixel_accuracy"] == pytest.approx(8 / 11)
    assert scores["per_class_iou"] == {"x": pytest.approx(3 / 6)}


def test_align_results_uses_class_names_whatever_the_ids() -> None:
    gt = {"categories": [{"id": 7, "name": "pants"}, {"id": 24, "name": "shoe"}]}
    results = [
        {"image_id": 1, "category_id": 23, "class_name": "shoe", "score": 1.0},
        {"image_id": 1, "category_id": 99, "score": 1.0},
    ]
    assert [r["category_id"] for r in align_results(gt, results)] == [24, 99]
    foreign = [{"image_id": 1, "category_id": 3, "class_name": "heels", "score": 1.0}]
    with pytest.raises(DataError, match="record 0: class 'heels' is not a ground-truth category"):
        align_results(gt, foreign)
    assert align_results(gt, foreign, strict=False) == foreign


@pytest.mark.needs_ccp
def test_evaluate_maps_a_ccp_ground_truth_into_the_results_taxonomy(
    ccp_root, tmp_path, capsys
) -> None:
    """GT scored as predictions: AP 1.0 and perfect parsing; one deliberately wrong class lowers both."""
    from fashionviewer.core.data.datasets.ccp import CCPDataset
    from fashionviewer.evaluate import main

    gt = CCPDataset(ccp_root, "val", taxonomy="imaterialist").coco_ground_truth()
    names = {c["id"]: c["name"] for c in gt["categories"]}
    files = {img["id"]: img["file_name"] for img in gt["images"]}
    # as `fashionviewer predict` writes them: ClassId ids (label - 1), file names and class names
    results = [
        {
            "image_id": a["image_id"],
            "file_name": files[a["image_id"]],
            "category_id": a["category_id"] - 1,
            "class_name": names[a["category_id"]],
            "segmentation": a["segmentation"],
            "bbox": a["bbox"],
            "score": 1.0,
        }
        for a in gt["annotations"]
    ]
    run = tmp_path / "run"
    run.mkdir()
    (run / "predictions.json").write_text(json.dumps(results))
    # the provenance predict records
    (run / "run.json").write_text(json.dumps({"taxonomy": "imaterialist"}))

    def scores(*extra: str) -> dict:
        out = tmp_path / "metrics.json"
        assert (
            main(
                [
                    "--gt",
                    str(ccp_root),
                    "--split",
                    "val",
                    "--pred",
                    str(run / "predictions.json"),
                    "--json",
                    str(out),
                    *extra,
                ]
            )
            == 0
        )
        return json.loads(out.read_text())

    segm = scores()
    assert segm["AP"] == pytest.approx(1.0) and segm["taxonomy"] == "imaterialist"
    assert segm["per_class"]["shoe"] == pytest.approx(1.0)
    assert scores("--iou", "bbox")["AP"] == pytest.approx(1.0)
    parsing = scores("--iou", "parsing")
    assert parsing["pixel_accuracy"] == pytest.approx(1.0) and parsing["miou"] == pytest.approx(1.0)
    assert "CCP paper: 88.23 %" in capsys.readouterr().out

    wrong = next(i for i, r in enumerate(results) if r["class_name"] == "pants")
    results[wrong] = {**results[wrong], "class_name": "skirt", "category_id": 8}
    (run / "predictions.json").write_text(json.dumps(results))
    assert scores()["per_class"]["pants"] < 1.0
    assert scores("--iou", "parsing")["pixel_accuracy"] < 1.0

    # without the provenance the flag says it; results in a taxonomy the ground truth lacks are refused
    (run / "run.json").unlink()
    assert scores("--taxonomy", "imaterialist")["AP"] < 1.0
    from fashionviewer.cli import run_command

    assert (
        run_command(
            main,
            [
                "--gt",
                str(ccp_root),
                "--split",
                "val",
                "--pred",
                str(run / "predictions.json"),
                "--taxonomy",
                "ccp",
            ],
        )
        == 2
    )
    assert "is not a ground-truth category" in capsys.readouterr().err
