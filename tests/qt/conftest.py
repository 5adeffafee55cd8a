"""Qt test fixtures: offscreen platform, a window with throw-away settings, a small image folder, and a
detector to predict with (the shipped demo model when installed, else a small random-weights model,
explicitly allowed and labelled as such)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from fashionviewer.core.viewer_models import DEMO_MODEL, ModelChoice, demo_available


def _scene(seed: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """A light background with a few dark garment-like blobs (enough for a detector to find something)."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = np.full((h, w, 3), 235, np.uint8)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        img[y0:y0 + int(rng.integers(30, 60)), x0:x0 + int(rng.integers(30, 60))] = rng.integers(20, 120, 3)
    return img


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i in range(6):
        Image.fromarray(_scene(i)).save(folder / f"scene_{i:02d}.png")
    (folder / "scene_03b_broken.jpg").write_bytes(b"this is not a JPEG")
    return folder


@pytest.fixture(scope="session")
def model_choice(tmp_path_factory: pytest.TempPathFactory) -> ModelChoice:
    """The shipped demo model, else a random-weights light Mask R-CNN (allowed explicitly)."""
    if demo_available():
        return ModelChoice(DEMO_MODEL, "cpu", allow_random=False)
    from fashionviewer.core.fmnist import CLASSES
    from fashionviewer.core.models import get_model, save_checkpoint

    path = tmp_path_factory.mktemp("models") / "random_light.pt"
    save_checkpoint(get_model("maskrcnn_mobilenet_v3_light", num_classes=11, weights=None), path,
                    {"class_names": list(CLASSES)})
    return ModelChoice(str(path), "cpu", allow_random=True)


@pytest.fixture
def settings(tmp_path: Path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings) -> Iterator:
    from fashionviewer.qt.main_window import MainWindow

    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    yield win
    win.close()


def load_and_wait(qtbot, win, choice: ModelChoice, timeout_ms: int = 60_000) -> None:
    """Load ``choice`` and wait until the current image is predicted."""
    win.load_model(choice)
    qtbot.waitUntil(lambda: win.prediction.models is not None, timeout=timeout_ms)
    qtbot.waitUntil(lambda: win.session.prediction() is not None, timeout=timeout_ms)
