"""Fine-tuning a Fashion-MNIST CNN on the items of generated scenes (real Fashion-MNIST)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fashionviewer.core.base.paths import sha256_file
from fashionviewer.core.data.fmnist import CLASSES
from fashionviewer.core.data.imageio import load_image
from fashionviewer.core.data.masks import decode_mask
from fashionviewer.core.data.overlay import rasterize_mask
from fashionviewer.core.models.classifier import cnn_input, load_classifier, preprocess_crop
from tests.fixtures.scenes import scene_dataset
from trainers import scene_classifier


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return scene_dataset(tmp_path_factory.mktemp("scenes"), n_train=24, n_val=6)


def test_item_crops_are_the_viewers_cnn_inputs(scenes):
    x, y = scene_classifier.item_crops(scenes, "val", list(CLASSES))
    gt = json.loads((scenes / "annotations" / "instances_val.json").read_text())
    assert x.shape == (len(gt["annotations"]), 28, 28) and x.dtype == np.uint8
    first = gt["annotations"][0]
    image = load_image(
        scenes / "val" / next(i["file_name"] for i in gt["images"] if i["id"] == first["image_id"])
    )
    raster = rasterize_mask(decode_mask(first["segmentation"]))
    assert np.array_equal(x[0], cnn_input(image, raster, preprocess_crop))
    assert y[0] == first["category_id"] - 1  # scene ids are Fashion-MNIST class + 1


def test_fine_tune_writes_a_loadable_classifier_with_its_card(scenes, tmp_path):
    out = tmp_path / "out"
    assert (
        scene_classifier.cli(
            ["--data-path", str(scenes), "--epochs", "2", "--threads", "1", "--out", str(out)]
        )
        == 0
    )
    card = json.loads((out / "fvnet_scenes.json").read_text())
    assert card["architecture"] == "fvnet" and card["classes"] == list(CLASSES)
    assert [h["epoch"] for h in card["history"]] == [1, 2]
    assert 0.0 <= card["metrics"]["val_item_accuracy"] <= 1.0 and card["metrics"]["val_items"] > 0
    assert card["weights_sha256"] == sha256_file(out / "fvnet_scenes.pt")
    classifier = load_classifier(out / "fvnet_scenes.pt")
    x, _ = scene_classifier.item_crops(scenes, "val", list(CLASSES))
    probs = classifier.predict(x)
    assert probs.shape == (len(x), 10) and np.allclose(probs.sum(1), 1, atol=1e-4)
    before = load_classifier("fvnet").predict(x)
    assert not np.allclose(probs, before)  # it did train


def test_categories_the_classifier_does_not_know_are_one_line(scenes, tmp_path, capsys):
    bad = tmp_path / "bad"
    (bad / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        data = json.loads((scenes / "annotations" / f"instances_{split}.json").read_text())
        data["categories"][0]["name"] = "Hat"
        (bad / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
        (bad / split).symlink_to(scenes / split)
    assert (
        scene_classifier.cli(
            ["--data-path", str(bad), "--epochs", "1", "--out", str(tmp_path / "o")]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1].startswith("error: ")
        and "Hat" in err[-1]
        and "not classes of the classifier" in err[-1]
    )
    assert (
        scene_classifier.cli(["--data-path", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
        == 2
    )
