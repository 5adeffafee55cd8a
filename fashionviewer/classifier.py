"""Public API for the Fashion-MNIST classifiers; the implementation lives in the core
(:mod:`fashionviewer.core.models.classifier`)."""

from fashionviewer.core.models.classifier import (
    BUNDLED_CLASSIFIERS,
    Classifier,
    load_classifier,
    preprocess_crop,
    resolve_classifier_path,
)

__all__ = [
    "BUNDLED_CLASSIFIERS",
    "Classifier",
    "load_classifier",
    "preprocess_crop",
    "resolve_classifier_path",
]
