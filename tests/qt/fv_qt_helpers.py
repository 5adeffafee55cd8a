"""Helpers shared by the Qt tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import numpy as np

from fashionviewer.core.viewer.model_choice import ModelChoice


def scene(seed: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """A light background with a few dark garment-like blobs (enough for a detector to find something)."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = np.full((h, w, 3), 235, np.uint8)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        img[y0 : y0 + int(rng.integers(30, 60)), x0 : x0 + int(rng.integers(30, 60))] = (
            rng.integers(20, 120, 3)
        )
    return img


def load_and_wait(qtbot, win, choice: ModelChoice, timeout_ms: int = 60_000) -> None:
    """Load ``choice`` and wait until the current image is predicted."""
    win.load_model(choice)
    qtbot.waitUntil(lambda: win.prediction.models is not None, timeout=timeout_ms)
    qtbot.waitUntil(lambda: win.session.prediction() is not None, timeout=timeout_ms)


class BlobPredictor:
    """A deterministic stand-in detector for UI tests: every dark blob is an instance with a real mask.

    (Random-weights Mask R-CNNs often predict empty masks, which cannot be clicked or exported.)
    """

    model_name = "blobs"
    card = {"weights_sha256": "0" * 64}
    family = "blobs"  # the rest of InstancePredictor (core.inference.protocol)
    capabilities: frozenset = frozenset()
    weights_path = None
    score_floor = 0.05
    tta = None
    random_weights = False
    taxonomy = None

    def __init__(self, per_blob: int = 1) -> None:
        import torch

        from fashionviewer.core.data.fmnist import CLASSES

        self.class_names = list(CLASSES)
        self.category_ids = list(range(1, len(CLASSES) + 1))
        self.device = torch.device("cpu")
        self.per_blob = per_blob

    def settings(self) -> dict:
        return {
            "predictor": "BlobPredictor",
            "per_blob": self.per_blob,
            "class_names": self.class_names,
        }

    def describe(self) -> str:
        return self.model_name

    def weights_sha256(self) -> str:
        return self.card["weights_sha256"]

    def rescoring(self) -> None:
        return None

    def predict_batch(self, images, file_names=None, image_ids=None):
        names, ids = file_names or [""] * len(images), image_ids or [0] * len(images)
        return [
            self.predict(image, name, image_id)
            for image, name, image_id in zip(images, names, ids, strict=False)
        ]

    def predict_tensors(self, images, file_names=None, image_ids=None):
        return self.predict_batch(
            [image.permute(1, 2, 0).numpy() for image in images], file_names, image_ids
        )

    def predict(self, image: np.ndarray, file_name: str = "", image_id: int = 0):
        import cv2

        from fashionviewer.core.data.masks import encode_mask
        from fashionviewer.core.data.predictions import ImagePrediction, Instance

        h, w = image.shape[:2]
        n, labels = cv2.connectedComponents((image.mean(axis=2) < 160).astype(np.uint8))
        instances = []
        for k in range(1, n):
            mask = (labels == k).astype(np.uint8)
            ys, xs = np.nonzero(mask)
            for copy in range(self.per_blob):
                label = (k + copy - 1) % 10 + 1
                score = max(0.06, round(0.95 - 0.2 * (k - 1) - 0.001 * copy, 4))
                instances.append(
                    Instance(
                        (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1),
                        label,
                        self.class_names[label - 1],
                        score,
                        encode_mask(mask),
                    )
                )
        instances.sort(key=lambda i: -i.score)
        return ImagePrediction(file_name, w, h, instances, model=self.model_name, image_id=image_id)


def test_classifier():
    """The bundled Fashion-MNIST CNN when installed, else an untrained cnn3 (its outputs are only shown)."""
    from fashionviewer.core.base.errors import FashionViewerError
    from fashionviewer.core.models.classifier import Classifier, load_classifier

    for name in ("fvnet", "cnn3"):
        try:
            return load_classifier(name)
        except FashionViewerError:
            pass
    from fashionviewer.core.models import cnn

    return Classifier(cnn.build_classifier("cnn3"), {"name": "cnn3-untrained"})


def install_blob_models(win, predictor: BlobPredictor | None = None, classifier=None) -> None:
    """Put the stand-in detector (and a CNN) into the window as if loaded from the model bar."""
    from fashionviewer.core.viewer.model_choice import LoadedModels

    predictor = predictor or BlobPredictor()
    models = LoadedModels(
        ModelChoice("blobs", "cpu"),
        predictor,
        "blobs",
        "blobs (test detector)",
        False,
        classifier if classifier is not None else test_classifier(),
    )
    win.prediction._loaded(models)
