"""A Fashion-MNIST CNN re-scores Mask R-CNN instances (the paper's two models together)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fashionviewer.core.base.errors import DataError, WeightsError
from fashionviewer.core.base.paths import MODELS_DIR, sha256_file
from fashionviewer.core.data.fmnist import CLASSES
from fashionviewer.core.data.masks import encode_mask
from fashionviewer.core.data.overlay import rasterize_mask
from fashionviewer.core.data.predictions import ImagePrediction, Instance
from fashionviewer.core.inference.families import load_predictor
from fashionviewer.core.inference.rescoring import Rescorer, load_rescorer
from fashionviewer.core.models.classifier import cnn_input, load_classifier, preprocess_crop
from fashionviewer.core.runs.cache import predictor_key


@pytest.fixture(scope="module")
def scene():
    from fashionviewer.core.data.datasets.fmnist_scenes import render_scene
    from fashionviewer.core.data.fmnist import load_fashion_mnist

    try:
        data = load_fashion_mnist()
    except DataError as exc:
        pytest.skip(f"real Fashion-MNIST not installed ({exc})")
    rng = np.random.default_rng(5)
    while True:
        rendered = render_scene(rng, data.test_images, data.test_labels)
        if len(rendered.labels) >= 3:
            return rendered


def _prediction(scene) -> ImagePrediction:
    h, w = scene.image.shape[:2]
    instances = []
    for k, (mask, label) in enumerate(zip(scene.masks, scene.labels, strict=False)):
        ys, xs = np.nonzero(mask)
        box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        instances.append(
            Instance(box, int(label), CLASSES[label - 1], 0.9 - 0.1 * k, encode_mask(mask))
        )
    return ImagePrediction("scene.png", w, h, instances)


def test_scores_become_detector_score_times_class_probability(scene):
    classifier = load_classifier("cnn3")
    prediction = _prediction(scene)
    expected = {}
    for inst, mask in zip(prediction.instances, scene.masks, strict=False):
        p = classifier.predict(cnn_input(scene.image, rasterize_mask(mask), preprocess_crop))[0]
        expected[id(inst)] = (inst.score, inst.score * float(p[inst.label - 1]))
    Rescorer(classifier, preprocess_crop, list(CLASSES), name="cnn3").apply(prediction, scene.image)
    for inst in prediction.instances:
        assert inst.detector_score == expected[id(inst)][0]
        assert inst.score == pytest.approx(expected[id(inst)][1], rel=1e-5)
        assert inst.classifier["model"] == "cnn3" and len(inst.classifier["probs"]) == 10
    scores = [inst.score for inst in prediction.instances]
    assert scores == sorted(scores, reverse=True)


def test_detector_classes_the_classifier_lacks_are_refused():
    with pytest.raises(WeightsError, match="does not know the detector's classes Hat"):
        Rescorer(load_classifier("cnn3"), preprocess_crop, ["Shirt", "Hat"], name="cnn3")


def test_card_names_the_rescorer_and_its_weights(tmp_path):
    card = {"class_names": list(CLASSES), "rescorer": {"classifier": "cnn3"}}
    rescorer = load_rescorer(card, tmp_path / "detector.pt")
    assert rescorer.name == "cnn3" and rescorer.key == sha256_file(MODELS_DIR / "cnn3.pt")
    # a classifier beside the checkpoint wins
    shutil.copy(MODELS_DIR / "fvnet.pt", tmp_path / "cnn3.pt")
    shutil.copy(MODELS_DIR / "fvnet.json", tmp_path / "cnn3.json")
    assert load_rescorer(card, tmp_path / "detector.pt").key == sha256_file(tmp_path / "cnn3.pt")
    card["rescorer"]["weights_sha256"] = sha256_file(MODELS_DIR / "cnn3.pt")
    with pytest.raises(WeightsError, match="SHA-256 differs"):
        load_rescorer(card, tmp_path / "detector.pt")
    with pytest.raises(WeightsError, match="must name a classifier"):
        load_rescorer({"class_names": list(CLASSES), "rescorer": {}}, tmp_path / "detector.pt")


def test_bundled_demo_is_rescored_unless_asked_not_to():
    card = json.loads((MODELS_DIR / "maskrcnn_demo.json").read_text())
    if "rescorer" not in card:
        pytest.skip("the bundled demo model names no re-scorer")
    fused, plain = load_predictor("demo"), load_predictor("demo", rescore=False)
    assert fused.rescorer is not None and plain.rescorer is None
    assert predictor_key(fused) != predictor_key(plain)  # cached results never mix


def test_mirrored_crops_and_power(scene):
    """hflip averages the probabilities of each crop and its mirror image; power bends them."""
    classifier = load_classifier("cnn3")
    prediction = _prediction(scene)
    expected = {}
    for inst, mask in zip(prediction.instances, scene.masks, strict=False):
        crop = cnn_input(scene.image, rasterize_mask(mask), preprocess_crop)
        p = (
            classifier.predict(crop)[0]
            + classifier.predict(np.ascontiguousarray(crop[..., ::-1]))[0]
        ) / 2
        expected[id(inst)] = inst.score * float(p[inst.label - 1]) ** 0.5
    rescorer = Rescorer(
        classifier, preprocess_crop, list(CLASSES), name="cnn3", hflip=True, power=0.5
    )
    rescorer.apply(prediction, scene.image)
    for inst in prediction.instances:
        assert inst.score == pytest.approx(expected[id(inst)], rel=1e-5)
    assert rescorer.key == "cnn3+hflip+power0.5"  # cached results of other settings never mix


def test_rescorer_power_must_be_positive(tmp_path):
    card = {"class_names": list(CLASSES), "rescorer": {"classifier": "cnn3", "power": "high"}}
    with pytest.raises(WeightsError, match="'power' must be a number > 0"):
        load_rescorer(card, tmp_path / "detector.pt")
    card["rescorer"]["power"] = 0.5
    assert load_rescorer(card, tmp_path / "detector.pt").power == 0.5
