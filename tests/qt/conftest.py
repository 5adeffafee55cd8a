"""Qt test fixtures: offscreen platform, a window with throw-away settings, a small image folder, and a
detector to predict with (the shipped demo model when installed, else a small random-weights model,
explicitly allowed and labelled as such)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for fv_qt_helpers

from pathlib import Path
from typing import Iterator

import pytest
from fv_qt_helpers import scene
from PIL import Image

from fashionviewer.core.models.domain import DEMO_MODEL
from fashionviewer.core.viewer.model_choice import ModelChoice, demo_available


@pytest.fixture(scope="package", autouse=True)
def _collection_back_to_normal_after_the_qt_tests() -> Iterator[None]:
    """Windows keep Python's cycle collection in the GUI thread (qt/gc_pauses.py); the tests after these
    have no event loop to run its timer, so automatic collection comes back when the Qt tests end."""
    yield
    import gc

    from fashionviewer.qt.gc_pauses import collect_anywhere

    gc.collect()
    collect_anywhere()


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i in range(6):
        Image.fromarray(scene(i)).save(folder / f"scene_{i:02d}.png")
    (folder / "scene_03b_broken.jpg").write_bytes(b"this is not a JPEG")
    return folder


@pytest.fixture(scope="session")
def model_choice(tmp_path_factory: pytest.TempPathFactory) -> ModelChoice:
    """The shipped demo model, else a random-weights light Mask R-CNN (allowed explicitly)."""
    if demo_available():
        return ModelChoice(DEMO_MODEL, "cpu", allow_random=False)
    from fashionviewer.core.data.fmnist import CLASSES
    from fashionviewer.core.models.registry import get_model, save_checkpoint

    path = tmp_path_factory.mktemp("models") / "random_light.pt"
    save_checkpoint(
        get_model("maskrcnn_mobilenet_v3_light", num_classes=11, weights=None),
        path,
        {"class_names": list(CLASSES)},
    )
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
