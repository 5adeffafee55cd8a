"""The paper's two models together: a Fashion-MNIST CNN re-scores the Mask R-CNN's instances.

Each instance's score becomes ``detector score x p ** power``, ``p`` the classifier's
probability of the instance's class (a product of experts): a confident detection the classifier
disagrees with drops in the ranking, so per-class AP rises when the classifier
separates look-alike classes (shirt / T-shirt / pullover / coat) better than the
detector's own box head. The classifier sees each instance exactly as the viewer
shows it to the CNN (:func:`fashionviewer.core.models.classifier.cnn_input`), and its
probabilities are kept in the instance's ``classifier`` field.

A checkpoint's model card names its re-scorer::

    "rescorer": {"classifier": "fvnet_scenes", "weights_sha256": "...", "hflip": true, "power": 0.5}

(``hflip``: the probabilities of each crop and of its mirror image are averaged;
``power`` defaults to 1; ``"partial": true``: the classifier knows only some of the model's classes, a
fine-tune's folder classes, and the others keep their scores)

and :func:`~fashionviewer.core.inference.families.load_predictor` loads it (the classifier is
looked up next to the checkpoint, then among the bundled models).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.base.paths import sha256_file
from fashionviewer.core.data.overlay import rasterize_instance
from fashionviewer.core.data.predictions import ImagePrediction
from fashionviewer.core.models.classifier import (
    cnn_input,
    load_classifier,
    preprocess_crop,
    resolve_classifier_path,
)


class Rescorer:
    """Multiplies instance scores by a classifier's probability of their class (matched by name) ** power."""

    def __init__(
        self,
        classifier: Any,
        preprocess: Callable[..., np.ndarray],
        detector_classes: Sequence[str],
        name: str = "",
        weights_sha256: str = "",
        hflip: bool = False,
        power: float = 1.0,
        partial: bool = False,
    ) -> None:
        classes = list(classifier.classes)
        unknown = [c for c in detector_classes if c not in classes]
        if partial:  # it re-scores the classes it knows; the detector's others keep their scores
            detector_classes = [c for c in detector_classes if c in classes]
            unknown = [] if detector_classes else unknown
        if unknown:
            raise WeightsError(
                f"re-scoring classifier {name or '?'} does not know the detector's classes "
                f"{', '.join(unknown)} (it knows {', '.join(classes)})"
            )
        self.classifier, self.preprocess, self.name = classifier, preprocess, name
        self.classes = classes
        self.columns = {c: classes.index(c) for c in detector_classes}
        self.weights_sha256 = weights_sha256
        self.hflip = hflip  # average the probabilities of each crop and its mirror image
        self.power = power  # score x p ** power
        options = (
            ("+hflip" if hflip else "")
            + (f"+power{power:g}" if power != 1.0 else "")
            + ("+partial" if partial else "")
        )
        self.key = (weights_sha256 or name) + options  # what the prediction cache keys on

    def record(self) -> dict[str, Any]:
        """What re-scores a prediction, as ``run.json`` records it (a predictor's ``rescoring()``)."""
        return {
            "classifier": self.name,
            "weights_sha256": self.weights_sha256,
            "hflip": self.hflip,
            "power": self.power,
        }

    def apply(self, prediction: ImagePrediction, image: np.ndarray) -> ImagePrediction:
        """Re-score ``prediction`` (of RGB uint8 ``image``) in place and re-sort it; returns it."""
        known = [inst for inst in prediction.instances if inst.class_name in self.columns]
        if not known:
            return prediction
        h, w = prediction.height, prediction.width
        # an instance offered under several classes has one mask: it is classified once
        first: dict[Any, int] = {}
        crops = []
        for inst in known:
            key = _mask_key(inst)
            if key not in first:
                first[key] = len(crops)
                crops.append(cnn_input(image, rasterize_instance(inst, h, w), self.preprocess))
        inputs = np.stack(crops)
        probs = np.asarray(self.classifier.predict(inputs), np.float64)
        if self.hflip:
            mirrored = np.ascontiguousarray(inputs[..., ::-1])
            probs = (probs + np.asarray(self.classifier.predict(mirrored), np.float64)) / 2
        for inst in known:
            p = probs[first[_mask_key(inst)]]
            inst.detector_score = inst.score
            inst.score = inst.score * float(p[self.columns[inst.class_name]]) ** self.power
            inst.classifier = {
                "model": self.name,
                "classes": self.classes,
                "probs": [round(float(v), 5) for v in p],
            }
        prediction.instances.sort(key=lambda inst: inst.score, reverse=True)
        return prediction


def _mask_key(instance: Any) -> Any:
    """The same for instances with one mask (an item offered under several classes)."""
    return instance.rle["counts"] if instance.rle is not None else id(instance)


def load_rescorer(card: dict[str, Any], checkpoint: Path) -> Rescorer:
    """The re-scorer a model card names (see the module docstring)."""
    spec = card["rescorer"]
    name = str(spec.get("classifier", "")) if isinstance(spec, dict) else ""
    if not name:
        raise WeightsError(f"{checkpoint.with_suffix('.json')}: 'rescorer' must name a classifier")
    beside = checkpoint.parent / f"{name}.pt"
    weights, _ = resolve_classifier_path(beside if beside.is_file() else name)
    sha = sha256_file(weights)
    if spec.get("weights_sha256") and spec["weights_sha256"] != sha:
        raise WeightsError(
            f"{weights}: not the re-scoring classifier {checkpoint.name} was measured with "
            "(SHA-256 differs)"
        )
    classifier = load_classifier(weights)
    return Rescorer(
        classifier,
        preprocess_crop,
        card["class_names"],
        name=name,
        weights_sha256=sha,
        hflip=bool(spec.get("hflip", False)),
        power=_power(spec, checkpoint),
        partial=bool(spec.get("partial", False)),
    )


def _power(spec: dict[str, Any], checkpoint: Path) -> float:
    try:
        power = float(spec.get("power", 1.0))
    except (TypeError, ValueError):
        power = -1.0
    if not power > 0:
        raise WeightsError(
            f"{checkpoint.with_suffix('.json')}: the re-scorer's 'power' must be a number > 0"
        )
    return power
