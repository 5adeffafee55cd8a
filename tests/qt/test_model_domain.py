"""The viewer's model selector defaults to the real-photo model for photos and to the demo model for the
embedded demo; a synthetic-scenes model on photos shows a visible notice."""

from __future__ import annotations

import pytest

from fashionviewer.core.base.paths import DEMO_DIR
from fashionviewer.core.models.domain import DEMO_MODEL, PHOTO_MODEL
from fashionviewer.core.viewer.model_choice import (
    ModelChoice,
    demo_available,
    photo_model_available,
)


@pytest.mark.skipif(
    not (photo_model_available() and demo_available()), reason="needs both bundled models"
)
def test_the_selector_defaults_by_folder(qtbot, window, image_folder) -> None:
    assert window.model_bar.model.itemData(0) == PHOTO_MODEL
    window.open_folder(image_folder)
    assert window.model_bar.current_choice().source == PHOTO_MODEL
    window.open_folder(DEMO_DIR)  # nothing loaded yet: the demo folder gets the demo model
    assert window.model_bar.current_choice().source == DEMO_MODEL


@pytest.mark.skipif(not demo_available(), reason="the bundled demo model is not installed")
def test_a_synthetic_model_on_photos_shows_a_notice(qtbot, window, image_folder) -> None:
    window.open_folder(image_folder)
    window.load_model(ModelChoice(DEMO_MODEL, "cpu", tta=False))
    qtbot.waitUntil(lambda: window.prediction.models is not None, timeout=60_000)
    notice = window.domain_notice
    assert notice.isVisible() and "synthetic Fashion-MNIST scenes, not photos" in notice.text()
    window.open_folder(DEMO_DIR)  # the same model on its own scenes: no notice
    assert not notice.isVisible()
    window.open_folder(image_folder)
    assert notice.isVisible()
