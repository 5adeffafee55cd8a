"""Loading a model moves what is alive into the permanent generation (full collections skip it), and
what the viewer creates afterwards is still collected."""

from __future__ import annotations

import gc
import weakref

import pytest

from fashionviewer.core.models.domain import DEMO_MODEL
from fashionviewer.core.viewer.model_choice import ModelChoice, demo_available


class _Node:
    pass


@pytest.mark.skipif(not demo_available(), reason="the bundled demo model is not installed")
def test_a_loaded_model_is_frozen_and_later_garbage_is_still_collected(qtbot, window) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    window.load_model(ModelChoice(DEMO_MODEL, "cpu", tta=False))
    qtbot.waitUntil(lambda: window.prediction.models is not None, timeout=60_000)
    frozen = gc.get_freeze_count()
    parameters = list(window.prediction.models.predictor.model.parameters())
    assert frozen > 10_000 and len(parameters) > 10  # torch, Qt and the network: all exempt now

    cycle = _Node()
    cycle.self = cycle  # only the cycle collector can free it
    alive = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert alive() is None
    gc.unfreeze()
