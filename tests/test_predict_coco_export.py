"""``predict --export coco`` writes valid COCO instances (pycocotools' COCO, loadRes and COCOeval work on
it) and ``predict --gt`` keys results by a ground truth's image ids via file names, on real CCP photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionviewer.__main__ import main as dispatch
from fashionviewer.core.data.formats.classpng import read_class_png
from fashionviewer.core.data.masks import mask_area
from fashionviewer.core.models.registry import save_checkpoint
from tests.core.inference.test_inference import CLASS_NAMES, _calibrated_light_model

STEMS = ("0003", "0004", "0005")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "light.pt"
    save_checkpoint(
        _calibrated_light_model(0),
        path,
        {
            "class_names": CLASS_NAMES,
            "weights": "trained",
            "category_ids": list(range(len(CLASS_NAMES))),
        },
    )
    return path


@pytest.fixture
def photos(ccp_root, tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for stem in STEMS:  # a quarter size keeps the light model fast
        with Image.open(ccp_root / "photos" / f"{stem}.jpg") as img:
            img.reduce(4).save(folder / f"{stem}.jpg")
    return folder


def _predict(photos: Path, out: Path, model: Path, *extra: str) -> int:
    torch.set_num_threads(1)
    return dispatch(
        [
            "predict",
            str(photos),
            "--out",
            str(out),
            "--model",
            str(model),
            "--no-cache",
            "--min-score",
            "0.0",
            "--workers",
            "0",
            "--allow-random",
            *extra,
        ]
    )


def test_coco_export_is_valid_instances_with_every_category(photos, model, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    assert _predict(photos, tmp_path / "out", model, "--export", "coco,class") == 0
    path = tmp_path / "out" / "predictions.coco.json"
    doc = json.loads(path.read_text())
    # all, found or not
    assert [c["id"] for c in doc["categories"]] == list(range(len(CLASS_NAMES)))
    assert doc["annotations"] and all(a["iscrowd"] == 0 for a in doc["annotations"])
    assert all(a["area"] == mask_area(a["segmentation"]) for a in doc["annotations"])
    index = {
        e["file_name"]: e["image_id"]
        for e in json.loads((tmp_path / "out" / "images.json").read_text())
    }
    assert {im["file_name"]: im["id"] for im in doc["images"]} == index  # the run's ids
    gt = COCO(str(path))  # as a ground truth ...
    dt = gt.loadRes(doc["annotations"])  # ... and its annotations as results
    evaluator = COCOeval(gt, dt, "segm")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()  # KeyError 'iscrowd' before the export wrote it
    # AP50 of the results against themselves
    assert len(evaluator.stats) == 12 and evaluator.stats[1] > 0.5
    # class PNGs hold the COCO file's category ids; id 0 exists, so the background is 255
    labels = json.loads((tmp_path / "out" / "labels.json").read_text())
    assert labels["background"] == 255 and [v["id"] for v in labels["labels"]] == list(
        range(len(CLASS_NAMES))
    )
    values, lookup = read_class_png(tmp_path / "out" / f"{STEMS[0]}_classes.png")
    first = [a for a in doc["annotations"] if a["image_id"] == index[f"{STEMS[0]}.jpg"]]
    assert set(np.unique(values)) - {255} <= {a["category_id"] for a in first}


def test_gt_image_ids_by_file_name(photos, model, tmp_path, capsys):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    sizes = {f"{s}.jpg": Image.open(photos / f"{s}.jpg").size for s in STEMS}
    gt = {
        "images": [
            {"id": 900 - i, "file_name": f"ccp/photos/{name}", "width": w, "height": h}
            for i, (name, (w, h)) in enumerate(sorted(sizes.items()))
            if name != f"{STEMS[2]}.jpg"
        ],
        "annotations": [],
        "categories": [{"id": i, "name": n} for i, n in enumerate(CLASS_NAMES)],
    }
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    assert _predict(photos, tmp_path / "out", model, "--gt", str(gt_path), "--export", "coco") == 0
    err = capsys.readouterr().err
    assert f"1 image(s) not in {gt_path} (first: {STEMS[2]}.jpg) get ids from 901 on" in err
    index = {
        e["file_name"]: e["image_id"]
        for e in json.loads((tmp_path / "out" / "images.json").read_text())
    }
    assert index == {f"{STEMS[0]}.jpg": 900, f"{STEMS[1]}.jpg": 899, f"{STEMS[2]}.jpg": 901}
    results = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert {r["image_id"] for r in results} <= set(index.values())
    assert all(index[r["file_name"]] == r["image_id"] for r in results)
    coco = json.loads((tmp_path / "out" / "predictions.coco.json").read_text())
    assert {im["file_name"]: im["id"] for im in coco["images"]} == index
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["image_ids_from"] == str(gt_path.resolve())
    # plain pycocotools now matches results to the ground truth's images
    gt["annotations"] = [
        {**a, "id": k}
        for k, a in enumerate(
            (r for r in coco["annotations"] if r["image_id"] in (899, 900)), start=1
        )
    ]
    (tmp_path / "gt2.json").write_text(json.dumps(gt))
    ground = COCO(str(tmp_path / "gt2.json"))
    evaluator = COCOeval(
        ground, ground.loadRes([r for r in results if r["image_id"] in (899, 900)]), "segm"
    )
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    # matched to the right images: with positional ids nothing matches
    assert evaluator.stats[1] > 0.5
    # --image-ids-from a run's images.json gives the same ids; a bad file is one error line
    shutil.copy(tmp_path / "out" / "images.json", tmp_path / "index.json")
    assert (
        _predict(photos, tmp_path / "out2", model, "--image-ids-from", str(tmp_path / "index.json"))
        == 0
    )
    again = {
        e["file_name"]: e["image_id"]
        for e in json.loads((tmp_path / "out2" / "images.json").read_text())
    }
    assert again == index
    (tmp_path / "bad.json").write_text('{"info": {}}')
    capsys.readouterr()
    assert _predict(photos, tmp_path / "out3", model, "--gt", str(tmp_path / "bad.json")) == 2
    assert (
        capsys.readouterr().err.strip().startswith("error: ")
        and not (tmp_path / "out3" / "run.json").exists()
    )


def test_one_based_category_ids_for_tools_that_reserve_zero(photos, model, tmp_path):
    from pycocotools.coco import COCO

    assert (
        _predict(
            photos, tmp_path / "out", model, "--export", "coco,class", "--category-ids", "1-based"
        )
        == 0
    )
    doc = json.loads((tmp_path / "out" / "predictions.coco.json").read_text())
    assert [c["id"] for c in doc["categories"]] == list(range(1, len(CLASS_NAMES) + 1))
    assert [c["name"] for c in doc["categories"]] == list(CLASS_NAMES)
    assert doc["info"]["category_ids"] == {
        "numbering": "1-based",
        "dataset_ids": {str(k + 1): k for k in range(len(CLASS_NAMES))},
    }
    results = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert min(r["category_id"] for r in results) >= 0  # the results file keeps the dataset's ids
    assert [r["category_id"] + 1 for r in results] == [a["category_id"] for a in doc["annotations"]]
    labels = json.loads((tmp_path / "out" / "labels.json").read_text())
    assert labels["background"] == 0 and labels["labels"][0] == {
        "value": 1,
        "id": 1,
        "name": CLASS_NAMES[0],
    }
    COCO(str(tmp_path / "out" / "predictions.coco.json"))


def test_merged_shards_write_the_same_valid_coco(photos, model, tmp_path):
    from pycocotools.coco import COCO

    assert _predict(photos, tmp_path / "one", model, "--export", "coco") == 0
    for shard in ("0/2", "1/2"):
        assert _predict(photos, tmp_path / "two", model, "--export", "coco", "--shard", shard) == 0
    assert dispatch(["predict", "--merge", str(tmp_path / "two")]) == 0
    one, two = (
        json.loads((tmp_path / d / "predictions.coco.json").read_text()) for d in ("one", "two")
    )
    assert two["categories"] == one["categories"] and len(two["categories"]) == len(CLASS_NAMES)
    assert two["images"] == one["images"]
    strip = [
        {k: a[k] for k in ("image_id", "category_id", "iscrowd", "area")}
        for a in one["annotations"]
    ]
    assert [
        {k: a[k] for k in ("image_id", "category_id", "iscrowd", "area")}
        for a in two["annotations"]
    ] == strip
    COCO(str(tmp_path / "two" / "predictions.coco.json"))
