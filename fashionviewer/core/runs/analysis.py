"""One image through both models, as the viewer needs it (no Qt; runs in a worker thread).

``analyse_image`` = decode -> Mask R-CNN (``Predictor.predict`` at its low score floor, so the
viewer's threshold slider only filters) -> the Fashion-MNIST CNN on every instance's masked crop
and on the whole picture -> masks decoded once into rasters for fast redraws.

With a persistent cache (:class:`~fashionviewer.core.runs.cache.BoundCache`) the Mask R-CNN output is
looked up by the file's content first and stored after predicting, so a folder predicted before (by
the viewer or by ``fashionviewer predict``) shows its overlays without running the detector.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generator

import numpy as np

from fashionviewer.core.runs.cache import BoundCache, bind_cache, open_cache
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.imageio import load_image
from fashionviewer.core.data.overlay import PredictionRasters
from fashionviewer.core.models.classifier import cnn_input

log = logging.getLogger(__name__)


@dataclass
class Analysis:
    path: Path
    model: str
    prediction: Any | None = None
    rasters: PredictionRasters | None = None
    image_scores: list[float] | None = None  # the CNN's probabilities for the whole picture
    error: str | None = None  # one-line reason when the image could not be read or predicted
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def classify(prediction: Any, image: np.ndarray, rasters: PredictionRasters, classifier: Any,
             preprocess: Callable[..., np.ndarray], name: str = "") -> list[float]:
    """Fill every instance's ``classifier`` field; return the whole picture's probabilities."""
    inputs = [cnn_input(image, rasters[i], preprocess) for i in range(len(rasters))]
    inputs.append(cnn_input(image, None, preprocess))
    probs = np.asarray(classifier.predict(np.stack(inputs)), np.float64)
    classes = list(classifier.classes)
    for inst, p in zip(prediction.instances, probs[:-1]):
        inst.classifier = {"model": name, "classes": classes, "probs": [round(float(v), 5) for v in p]}
    return [float(v) for v in probs[-1]]


def analyse_image(path: Path, predictor: Any, model: str, classifier: Any | None = None,
                  preprocess: Callable[..., np.ndarray] | None = None, classifier_name: str = "",
                  cache: BoundCache | None = None) -> Analysis:
    import time

    start = time.perf_counter()
    result = Analysis(Path(path), model)
    try:
        digest, prediction = cache.lookup(path, Path(path).name) if cache is not None else (None, None)
        result.extra["cached"] = prediction is not None
        # The CNN needs the pixels; a cached detection without a CNN does not.
        image = load_image(path) if prediction is None or classifier is not None else None
        if prediction is None:
            prediction = predictor.predict(image, file_name=Path(path).name)
            if cache is not None:
                cache.store(digest, prediction)  # before the CNN fills its fields: those are not cached
        rasters = PredictionRasters(prediction.instances, prediction.height, prediction.width).decode_all()
        if classifier is not None and preprocess is not None:
            result.image_scores = classify(prediction, image, rasters, classifier, preprocess, classifier_name)
        result.prediction, result.rasters = prediction, rasters
    except FashionViewerError as exc:
        result.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad image must not stop the folder
        result.error = f"{Path(path).name}: prediction failed ({type(exc).__name__}: {exc})"
    result.seconds = time.perf_counter() - start
    return result


def analyse_queue(take: Callable[[], Path | None], predictor: Any, model: str, classifier: Any | None = None,
                  preprocess: Callable[..., np.ndarray] | None = None, classifier_name: str = "",
                  cache_path: str | os.PathLike[str] | None = None) -> Generator[Analysis, None, int]:
    """Analyse images handed out by ``take`` (a ``WorkQueue.take``) until it returns None.

    ``cache_path``: the persistent prediction cache to consult and fill (None: none). It is opened
    here, in the worker thread, because checking a large cache file takes a moment.
    """
    cache = open_cache_for(predictor, cache_path)
    done = 0
    while (path := take()) is not None:
        yield analyse_image(path, predictor, model, classifier, preprocess, classifier_name, cache)
        done += 1
    return done


def open_cache_for(predictor: Any, cache_path: str | os.PathLike[str] | None) -> BoundCache | None:
    """The persistent cache bound to ``predictor``, or None (no path, or it cannot be opened: the
    viewer then simply predicts, and says why in the log)."""
    if cache_path is None:
        return None
    try:
        return bind_cache(open_cache(cache_path), predictor)
    except FashionViewerError as exc:
        log.warning("%s; predicting without the cache", exc)
        return None
