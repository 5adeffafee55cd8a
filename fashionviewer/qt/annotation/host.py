"""What annotation mode needs from the application around it, passed in by whoever builds it (the window).

Annotation mode never sees the window: only these narrow collaborators. The mode's own widgets (its toolbar,
the bad-record line for the status bar) are placed by the caller."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np
from PySide6.QtCore import SignalInstance

if TYPE_CHECKING:
    from fashionviewer.core.viewer.model_choice import LoadedModels
    from fashionviewer.core.viewer.training import TrainingRequest


class ImageSource(Protocol):
    """The decoded current image (None while it loads) and a signal when a new one is shown (``CanvasPresenter``)."""

    image_loaded: SignalInstance

    def current_image(self) -> np.ndarray | None: ...


class Canvas(Protocol):
    """The canvas to draw on (``.canvas``, an ``ImageCanvas``) and its notice line (``CanvasWidget``)."""

    canvas: Any

    def show_notice(self, text: str | None, warning: bool = True) -> None: ...


class Marks(Protocol):
    """The image browser's per-image prefix (✓ / ✎) and its refresh (``BrowserModel``)."""

    marks: Callable[[Path], str] | None

    def refresh_marks(self, path: Path | None = None) -> None: ...


class TrainingRuns(Protocol):
    """The training panel: when a run finishes, what it was, its checkpoint, and the button loading it."""

    finished: SignalInstance  # (status)
    request: TrainingRequest | None
    progress: Any  # core.viewer.training.TrainingProgress: .checkpoint
    load_button: Any  # a QPushButton


@dataclass(frozen=True)
class AnnotationHost:
    canvas: Canvas
    images: ImageSource
    # the loaded detector (box prompts, classes, the checkpoint to tune)
    models: Callable[[], LoadedModels | None]
    models_loaded: SignalInstance  # (LoadedModels)
    show_status: Callable[[str, int], None]  # a line in the status bar for that many milliseconds
    browser: Marks
    training: TrainingRuns

    def predictor(self) -> Any | None:
        """The loaded detector: its mask head gives a box's mask (``segment`` falls back to GrabCut without one)."""
        models = self.models()
        return models.predictor if models is not None else None

    def image_size(self) -> tuple[int, int] | None:
        """The current image's (width, height)."""
        image = self.images.current_image()
        return (image.shape[1], image.shape[0]) if image is not None else None
