"""Helpers shared by the Qt tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import numpy as np

from fashionviewer.core.viewer_models import ModelChoice


def scene(seed: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """A light background with a few dark garment-like blobs (enough for a detector to find something)."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = np.full((h, w, 3), 235, np.uint8)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        img[y0:y0 + int(rng.integers(30, 60)), x0:x0 + int(rng.integers(30, 60))] = rng.integers(20, 120, 3)
    return img


def load_and_wait(qtbot, win, choice: ModelChoice, timeout_ms: int = 60_000) -> None:
    """Load ``choice`` and wait until the current image is predicted."""
    win.load_model(choice)
    qtbot.waitUntil(lambda: win.prediction.models is not None, timeout=timeout_ms)
    qtbot.waitUntil(lambda: win.session.prediction() is not None, timeout=timeout_ms)
