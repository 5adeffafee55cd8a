"""The per-image step every caller shares: cache first, the predictor's output cached as it came, the
CNN's output in each instance's own field (never cached), one-line errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fashionviewer.core.inference.predictor import Predictor
from fashionviewer.core.models.classifier import load_classifier, preprocess_crop
from fashionviewer.core.runs.cache import PredictionCache, bind_cache
from fashionviewer.core.runs.step import PerImageStep
from tests.core.inference.test_inference import CLASS_NAMES, _calibrated_light_model


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(
        _calibrated_light_model(),
        CLASS_NAMES,
        score_floor=0.05,
        model_name="light",
        card={"weights_sha256": "light-weights"},
    )


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(3)
    img = (rng.random((120, 150, 3)) * 80).astype(np.uint8)
    img[20:90, 30:110] = (220, 60, 40)
    Image.fromarray(img).save(tmp_path / "photo.png")
    return tmp_path / "photo.png"


def test_cache_then_classify_then_cache_hit(predictor, photo, tmp_path):
    calls: list[int] = []
    original = predictor.predict
    predictor.predict = lambda *a, **k: calls.append(1) or original(*a, **k)  # type: ignore[method-assign]
    classifier = load_classifier("fvnet")
    try:
        with PredictionCache(tmp_path / "c.sqlite3") as cache:
            bound = bind_cache(cache, predictor)
            step = PerImageStep(
                predictor, bound, classifier, preprocess_crop, "fvnet", rasters=True
            )
            first = step(photo, "photo.png", 7)
            assert first.error is None and not first.cached and calls == [1]
            # the pixels are dropped after
            assert first.prediction.instances and first.image is None
            assert all(inst.classifier["model"] == "fvnet" for inst in first.prediction.instances)
            assert len(first.image_scores) == 10 and len(first.rasters) == len(
                first.prediction.instances
            )
            stored = cache.get(first.digest, bound.key)
            # never cached
            assert stored is not None and all(inst.classifier is None for inst in stored.instances)

            again = step(photo, "renamed.png", 9)
            assert again.cached and calls == [1]  # the detector did not run
            assert (again.prediction.file_name, again.prediction.image_id) == ("renamed.png", 9)
            assert [i.score for i in again.prediction.instances] == [
                round(i.score, 5) for i in first.prediction.instances
            ]
            assert (
                again.prediction.instances[0].classifier == first.prediction.instances[0].classifier
            )
            plain = PerImageStep(predictor, bound)(photo)  # no CNN: a hit is not even decoded
            assert (
                plain.cached
                and plain.image is None
                and plain.prediction.instances[0].classifier is None
            )
    finally:
        del predictor.predict


def test_unreadable_file_is_one_line_naming_it(predictor, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a JPEG")
    result = PerImageStep(predictor)(broken)
    assert result.prediction is None and str(broken) in result.error and "\n" not in result.error
    missing = PerImageStep(predictor)(tmp_path / "gone.png")
    assert missing.prediction is None and "gone.png" in missing.error and missing.stat is None
