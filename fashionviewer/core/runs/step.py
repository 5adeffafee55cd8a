"""One image through the models, written once: ``fashionviewer predict``'s loop, the viewer's background
analysis and the viewer's export of images not analysed yet all run it.

stat -> cache look-up -> decode -> predict -> store -> classify (-> mask rasters for the viewer).

* The persistent cache (:class:`~fashionviewer.core.runs.cache.BoundCache`) is asked first by the
  file's content; a hit skips decoding unless the Fashion-MNIST CNN needs the pixels.
* What the predictor returned is stored as it is, before anything else writes into it; the CNN's
  output then goes into each instance's own ``classifier`` field (never cached: it belongs to
  another model, which the user may swap).
* A file that cannot be read or predicted gives a one-line ``error`` naming it, never an exception:
  one bad image must not stop a folder.

:meth:`PerImageStep.prepare` (stat, look-up, decode) is thread-safe and may run ahead on prefetch
threads (:mod:`fashionviewer.core.runs.pipeline`); :meth:`PerImageStep.finish` runs the models.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.imageio import ImageReadError, load_image
from fashionviewer.core.data.overlay import PredictionRasters
from fashionviewer.core.data.predictions import ImagePrediction
from fashionviewer.core.inference.protocol import InstancePredictor
from fashionviewer.core.models.classifier import cnn_input
from fashionviewer.core.runs.cache import BoundCache


@dataclass
class ImageResult:
    """What the step knows about one image; ``prediction`` is None exactly when ``error`` says why."""

    path: Path
    file_name: str
    image_id: int = 0
    stat: list[int] | None = None  # [size, mtime_ns]: whether a resumed run may reuse the result
    digest: str | None = None  # SHA-256 of the file's bytes (None: no cache, or unreadable)
    image: np.ndarray | None = None  # the decoded pixels, while needed
    prediction: ImagePrediction | None = None
    cached: bool = False  # the prediction came from the persistent cache
    rasters: PredictionRasters | None = None  # decoded masks (with ``rasters=True``)
    image_scores: list[float] | None = None  # the CNN's probabilities for the whole picture
    error: str | None = None
    seconds: float = 0.0


def classify(
    prediction: ImagePrediction,
    image: np.ndarray,
    rasters: PredictionRasters,
    classifier: Any,
    preprocess: Callable[..., np.ndarray],
    name: str = "",
) -> list[float]:
    """Fill every instance's ``classifier`` field; return the whole picture's probabilities."""
    inputs = [cnn_input(image, rasters[i], preprocess) for i in range(len(rasters))]
    inputs.append(cnn_input(image, None, preprocess))
    probs = np.asarray(classifier.predict(np.stack(inputs)), np.float64)
    classes = list(classifier.classes)
    for inst, p in zip(prediction.instances, probs[:-1], strict=True):
        inst.classifier = {
            "model": name,
            "classes": classes,
            "probs": [round(float(v), 5) for v in p],
        }
    return [float(v) for v in probs[-1]]


class PerImageStep:
    """The per-image step for one predictor, an optional cache and an optional Fashion-MNIST CNN.

    ``rasters``: decode the masks once for fast redraws (the viewer); ``keep_image``: leave the
    decoded pixels on the result (an export that draws overlays)."""

    def __init__(
        self,
        predictor: InstancePredictor,
        cache: BoundCache | None = None,
        classifier: Any | None = None,
        preprocess: Callable[..., np.ndarray] | None = None,
        classifier_name: str = "",
        rasters: bool = False,
        keep_image: bool = False,
    ) -> None:
        self.predictor = predictor
        self.cache = cache
        self.classifier = classifier if preprocess is not None else None
        self.preprocess = preprocess
        self.classifier_name = classifier_name
        self.rasters = rasters
        self.keep_image = keep_image

    def __call__(
        self, path: str | os.PathLike[str], file_name: str | None = None, image_id: int = 0
    ) -> ImageResult:
        return self.finish(self.prepare(path, file_name, image_id))

    def prepare(
        self, path: str | os.PathLike[str], file_name: str | None = None, image_id: int = 0
    ) -> ImageResult:
        """stat -> cache look-up -> decode (only when the models will need the pixels)."""
        start = time.perf_counter()
        path = Path(path)
        result = ImageResult(path, file_name if file_name is not None else path.name, image_id)
        try:
            stat = os.stat(path)
            result.stat = [stat.st_size, stat.st_mtime_ns]
        except OSError:
            pass  # the decoder says why, in its own words
        if self.cache is not None:
            result.digest, result.prediction = self.cache.lookup(path, result.file_name, image_id)
            result.cached = result.prediction is not None
        if result.prediction is None or self.classifier is not None or self.keep_image:
            try:
                result.image = load_image(path)
            except ImageReadError as exc:
                result.error, result.prediction = str(exc), None
            except Exception as exc:  # noqa: BLE001 - a decoder bug on one odd file must not stop the folder
                result.error = (
                    f"{path}: cannot decode image ({type(exc).__name__}: {first_line(exc)})"
                )
                result.prediction = None
        result.seconds = time.perf_counter() - start
        return result

    def finish(self, result: ImageResult) -> ImageResult:
        """predict -> store -> classify (-> rasters) for a prepared image; drops the pixels after."""
        start = time.perf_counter()
        try:
            if result.error is None:
                self._run_models(result)
        except FashionViewerError as exc:
            result.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one image the model chokes on must not stop the folder
            result.error = (
                f"{result.path}: prediction failed ({type(exc).__name__}: {first_line(exc)})"
            )
        if result.error is not None:
            result.prediction = result.rasters = result.image_scores = None
        if not self.keep_image:
            result.image = None  # the next image's pixels may arrive now
        result.seconds += time.perf_counter() - start
        return result

    def _run_models(self, result: ImageResult) -> None:
        if result.prediction is None:
            assert result.image is not None
            result.prediction = self.predictor.predict(
                result.image, file_name=result.file_name, image_id=result.image_id
            )
            if self.cache is not None:
                # as predicted, before the CNN writes in it
                self.cache.store(result.digest, result.prediction)
        prediction = result.prediction
        if self.rasters or self.classifier is not None:
            rasters = PredictionRasters(
                prediction.instances, prediction.height, prediction.width
            ).decode_all()
            if (
                self.classifier is not None
                and self.preprocess is not None
                and result.image is not None
            ):
                result.image_scores = classify(
                    prediction,
                    result.image,
                    rasters,
                    self.classifier,
                    self.preprocess,
                    self.classifier_name,
                )
            result.rasters = rasters if self.rasters else None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, at most 200 characters (for one-line reports)."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
