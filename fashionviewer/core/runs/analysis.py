"""The viewer's background analysis (no Qt; runs in a worker thread): the images a ``WorkQueue``
hands out, each through the per-image step (:mod:`fashionviewer.core.runs.step`) with the
Fashion-MNIST CNN and mask rasters for fast redraws.

The detector runs at its low score floor, so the viewer's threshold slider only filters. With the
persistent cache its output is looked up by the file's content first and stored after predicting,
so a folder predicted before (by the viewer or by ``fashionviewer predict``) shows its overlays
without running the detector. A damaged cache record is named in the log and predicted again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generator

import numpy as np

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.overlay import PredictionRasters
from fashionviewer.core.inference.protocol import InstancePredictor
from fashionviewer.core.runs.cache import BoundCache, bind_cache, open_cache
from fashionviewer.core.runs.step import ImageResult, PerImageStep

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


def _analysis(result: ImageResult, model: str) -> Analysis:
    return Analysis(
        result.path,
        model,
        result.prediction,
        result.rasters,
        result.image_scores,
        result.error,
        result.seconds,
        {"cached": result.cached},
    )


def analyse_queue(
    take: Callable[[], Path | None],
    predictor: InstancePredictor,
    model: str,
    classifier: Any | None = None,
    preprocess: Callable[..., np.ndarray] | None = None,
    classifier_name: str = "",
    cache_path: str | os.PathLike[str] | None = None,
) -> Generator[Analysis, None, int]:
    """Analyse images handed out by ``take`` (a ``WorkQueue.take``) until it returns None.

    ``cache_path``: the persistent prediction cache to consult and fill (None: none). It is opened
    here, in the worker thread, because checking a large cache file takes a moment.
    """
    step = PerImageStep(
        predictor,
        open_cache_for(predictor, cache_path),
        classifier,
        preprocess,
        classifier_name,
        rasters=True,
    )
    done = 0
    while (path := take()) is not None:
        yield _analysis(step(path), model)
        done += 1
    return done


def open_cache_for(
    predictor: InstancePredictor, cache_path: str | os.PathLike[str] | None
) -> BoundCache | None:
    """The persistent cache bound to ``predictor``, or None (no path, or it cannot be opened: the
    viewer then simply predicts, and says why in the log)."""
    if cache_path is None:
        return None
    try:
        return bind_cache(open_cache(cache_path), predictor)
    except FashionViewerError as exc:
        log.warning("%s; predicting without the cache", exc)
        return None
