"""The viewer's state as a plain-Python model (no Qt), napari-style.

``ViewerSession`` owns what the user is looking at: the folder and its images, the filename filter,
the current image, the confidence threshold, layer and per-class visibility, the selected instance
and the in-memory prediction cache keyed by (image, model). Every change is announced through a
``Signal`` (a list of plain callbacks); the Qt widgets only subscribe and call setters, so the same
state drives tests without a display.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from fashionviewer.core.data.imageio import list_images
from fashionviewer.core.data.overlay import PredictionRasters

LAYERS: tuple[str, ...] = (
    "masks",
    "outlines",
    "boxes",
    "labels",
    "scores",
    "ground_truth",
    "annotations",
)
DEFAULT_THRESHOLD = 0.5


class Signal:
    """A list of callbacks; ``emit`` calls them in connection order."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            callback(*args)


@dataclass
class SessionEvents:
    folder_changed: Signal = field(default_factory=Signal)  # ()
    images_changed: Signal = field(default_factory=Signal)  # () the filtered list changed
    current_changed: Signal = field(default_factory=Signal)  # (path | None)
    threshold_changed: Signal = field(default_factory=Signal)  # (float)
    opacity_changed: Signal = field(default_factory=Signal)  # (float)
    layers_changed: Signal = field(default_factory=Signal)  # (name, visible)
    # () per-class visibility or known classes
    classes_changed: Signal = field(default_factory=Signal)
    selection_changed: Signal = field(default_factory=Signal)  # (index | None)
    prediction_added: Signal = field(default_factory=Signal)  # (path, model)
    model_changed: Signal = field(default_factory=Signal)  # (model)
    image_error: Signal = field(default_factory=Signal)  # (path, message)
    # (path, frames) an animation's first frame is shown
    frames_known: Signal = field(default_factory=Signal)


class ViewerSession:
    def __init__(self, cache_rasters: int = 48) -> None:
        self.events = SessionEvents()
        self.folder: Path | None = None
        self.all_images: list[Path] = []
        self.images: list[Path] = []  # after the filename filter
        self.filter_text = ""
        self.current: Path | None = None
        self.threshold = DEFAULT_THRESHOLD
        self.opacity = 0.5
        self.layers: dict[str, bool] = {name: True for name in LAYERS}
        self.hidden_classes: set[str] = set()
        self.known_classes: dict[str, int] = {}  # class name -> category id, in first-seen order
        self.selected: int | None = None
        self.model_key = ""
        self._predictions: dict[tuple[str, str], Any] = {}
        # whole-picture CNN probabilities
        self._image_scores: dict[tuple[str, str], list[float]] = {}
        self.errors: dict[str, str] = {}  # unreadable images: path -> one-line reason
        # animations and multi-page files: path -> frame count (first shown)
        self.frames: dict[str, int] = {}
        self._rasters: OrderedDict[tuple[str, str], PredictionRasters] = OrderedDict()
        self._raster_limit = cache_rasters
        # workers add predictions from their threads via the GUI; keep dict ops safe
        self._lock = threading.Lock()

    # ----- folder and navigation -------------------------------------------------------------
    def open_folder(self, folder: str | os.PathLike[str], images: list[Path] | None = None) -> None:
        """List ``folder``'s images (files only, nothing decoded) and show the first."""
        self.folder = Path(folder)
        self.all_images = list_images(self.folder) if images is None else list(images)
        self.errors.clear()
        self.filter_text = ""
        self.images = list(self.all_images)
        self.events.folder_changed.emit()
        self.events.images_changed.emit()
        self.set_current(self.images[0] if self.images else None)

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        needle = self.filter_text.lower()
        base = self.folder or Path()
        self.images = (
            [p for p in self.all_images if needle in _relative(p, base).lower()]
            if needle
            else list(self.all_images)
        )
        self.events.images_changed.emit()
        if self.current not in self.images:
            self.set_current(self.images[0] if self.images else None)

    @property
    def index(self) -> int:
        try:
            return self.images.index(self.current) if self.current is not None else -1
        except ValueError:
            return -1

    def set_current(self, path: Path | None) -> None:
        if path == self.current:
            return
        self.current = path
        self.selected = None
        self.events.current_changed.emit(path)

    def go(self, index: int) -> None:
        if self.images:
            self.set_current(self.images[max(0, min(index, len(self.images) - 1))])

    def next(self) -> None:
        self.go(self.index + 1)

    def previous(self) -> None:
        self.go(max(self.index - 1, 0))

    def first(self) -> None:
        self.go(0)

    def last(self) -> None:
        self.go(len(self.images) - 1)

    def display_name(self, path: Path) -> str:
        return _relative(path, self.folder or path.parent)

    # ----- view settings ---------------------------------------------------------------------
    def set_threshold(self, value: float) -> None:
        value = min(max(float(value), 0.0), 1.0)
        if abs(value - self.threshold) > 1e-9:
            self.threshold = value
            self._drop_hidden_selection()
            self.events.threshold_changed.emit(value)

    def set_opacity(self, value: float) -> None:
        value = min(max(float(value), 0.0), 1.0)
        if abs(value - self.opacity) > 1e-9:
            self.opacity = value
            self.events.opacity_changed.emit(value)

    def set_layer(self, name: str, visible: bool) -> None:
        if name not in self.layers:
            raise KeyError(f"unknown layer {name!r}; layers are {', '.join(LAYERS)}")
        if self.layers[name] != bool(visible):
            self.layers[name] = bool(visible)
            self.events.layers_changed.emit(name, bool(visible))

    def toggle_layer(self, name: str) -> None:
        self.set_layer(name, not self.layers[name])

    def set_class_visible(self, class_name: str, visible: bool) -> None:
        before = class_name in self.hidden_classes
        (self.hidden_classes.discard if visible else self.hidden_classes.add)(class_name)
        if before != (class_name in self.hidden_classes):
            self._drop_hidden_selection()
            self.events.classes_changed.emit()

    def visible_classes(self) -> list[str] | None:
        """Class names to keep, or ``None`` when none is hidden (no class filter)."""
        if not self.hidden_classes:
            return None
        return [name for name in self.known_classes if name not in self.hidden_classes]

    # ----- predictions -----------------------------------------------------------------------
    def set_model_key(self, model_key: str) -> None:
        """Switch the model (its cache key: ``LoadedModels.key``) whose predictions are shown (others stay cached)."""
        model = model_key
        if model != self.model_key:
            self.model_key = model
            self.selected = None
            # The legend lists the classes this model has predicted here (not all 91 COCO ones).
            self.known_classes = {}
            for (_, m), prediction in list(self._predictions.items()):
                if m == model:
                    for inst in prediction.instances:
                        self.known_classes.setdefault(inst.class_name, int(inst.label))
            self.events.model_changed.emit(model)
            self.events.classes_changed.emit()

    def add_prediction(
        self,
        path: Path,
        prediction: Any,
        model: str | None = None,
        rasters: PredictionRasters | None = None,
        image_scores: list[float] | None = None,
    ) -> None:
        model = self.model_key if model is None else model
        key = (str(path), model)
        with self._lock:
            self._predictions[key] = prediction
            if rasters is not None:
                self._store_rasters(key, rasters)
            if image_scores is not None:
                self._image_scores[key] = list(image_scores)
        self.errors.pop(str(path), None)
        new = False
        for inst in prediction.instances:
            if inst.class_name not in self.known_classes:
                self.known_classes[inst.class_name] = int(inst.label)
                new = True
        if new:
            self.events.classes_changed.emit()
        self.events.prediction_added.emit(path, model)

    def note_frames(self, path: Path, frames: int) -> None:
        """The file holds ``frames`` frames (an animation, a multi-page TIFF); its first is what is shown."""
        if frames > 1 and self.frames.get(str(path)) != frames:
            self.frames[str(path)] = frames
            self.events.frames_known.emit(path, frames)

    def add_error(self, path: Path, message: str) -> None:
        self.errors[str(path)] = message
        self.events.image_error.emit(path, message)

    def prediction(self, path: Path | None = None, model: str | None = None) -> Any | None:
        path = self.current if path is None else path
        if path is None:
            return None
        return self._predictions.get((str(path), self.model_key if model is None else model))

    def has_prediction(self, path: Path, model: str | None = None) -> bool:
        return (str(path), self.model_key if model is None else model) in self._predictions

    def image_scores(self, path: Path | None = None) -> list[float] | None:
        path = self.current if path is None else path
        return self._image_scores.get((str(path), self.model_key)) if path is not None else None

    def clear_predictions(self, model: str | None = None) -> None:
        """Forget cached predictions (all, or one model's), e.g. after its weights changed."""
        with self._lock:
            for store in (self._predictions, self._image_scores, self._rasters):
                for key in [k for k in store if model is None or k[1] == model]:
                    del store[key]
        self.selected = None

    def predicted_count(self, model: str | None = None) -> int:
        model = self.model_key if model is None else model
        return sum(1 for (_, m) in self._predictions if m == model)

    def rasters(self, path: Path | None = None) -> PredictionRasters | None:
        """The decoded masks of the current prediction (decoded once, kept for recent images)."""
        path = self.current if path is None else path
        prediction = self.prediction(path)
        if prediction is None or path is None:
            return None
        key = (str(path), self.model_key)
        with self._lock:
            rasters = self._rasters.get(key)
            if rasters is None or rasters.instances != list(prediction.instances):
                rasters = PredictionRasters(
                    prediction.instances, prediction.height, prediction.width
                )
                self._store_rasters(key, rasters)
            self._rasters.move_to_end(key)
        return rasters

    def _store_rasters(self, key: tuple[str, str], rasters: PredictionRasters) -> None:
        self._rasters[key] = rasters
        self._rasters.move_to_end(key)
        while len(self._rasters) > self._raster_limit:
            self._rasters.popitem(last=False)

    def visible_indices(self, path: Path | None = None) -> list[int]:
        """Indices (into the prediction's instances) passing the threshold and class visibility."""
        prediction = self.prediction(path)
        if prediction is None:
            return []
        keep = prediction.filter(min_score=self.threshold, classes=self.visible_classes())
        ids = {id(inst) for inst in keep}
        return [i for i, inst in enumerate(prediction.instances) if id(inst) in ids]

    def counts(self, path: Path | None = None) -> tuple[int, int]:
        """(shown, total) instances of the current image: "N of M instances shown"."""
        prediction = self.prediction(path)
        if prediction is None:
            return (0, 0)
        return (len(self.visible_indices(path)), len(prediction.instances))

    # ----- selection -------------------------------------------------------------------------
    def select(self, index: int | None) -> None:
        if index != self.selected:
            self.selected = index
            self.events.selection_changed.emit(index)

    def selected_instance(self) -> Any | None:
        prediction = self.prediction()
        if (
            prediction is None
            or self.selected is None
            or self.selected >= len(prediction.instances)
        ):
            return None
        return prediction.instances[self.selected]

    def _drop_hidden_selection(self) -> None:
        if self.selected is not None and self.selected not in self.visible_indices():
            self.selected = None
            self.events.selection_changed.emit(None)

    # ----- work order ------------------------------------------------------------------------
    def pending_order(self, model: str | None = None) -> Iterator[Path]:
        """Images still to predict: the current one first, then its neighbours outwards, then the rest."""
        images, model = self.images, self.model_key if model is None else model
        center = max(self.index, 0)
        for offset in range(max(center + 1, len(images) - center)):
            for i in (center + offset, center - offset) if offset else (center,):
                if (
                    0 <= i < len(images)
                    and (str(images[i]), model) not in self._predictions
                    and str(images[i]) not in self.errors
                ):
                    yield images[i]


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return path.name


class WorkQueue:
    """Thread-safe queue of images to predict whose order the GUI can change at any time.

    The GUI thread calls ``reorder(session.pending_order())`` when the user moves, the worker thread
    calls ``take()``; an image being predicted is never handed out twice.
    """

    def __init__(self, paths: Iterator[Path] | list[Path] = ()) -> None:
        self._lock = threading.Lock()
        self._order: list[Path] = list(paths)
        self._pos = 0
        self._taken: set[Path] = set()
        self.total = len(self._order)

    def reorder(self, paths: Iterator[Path] | list[Path]) -> None:
        with self._lock:
            self._order = [p for p in paths if p not in self._taken]
            self._pos = 0

    def take(self) -> Path | None:
        with self._lock:
            while self._pos < len(self._order):
                path = self._order[self._pos]
                self._pos += 1
                if path not in self._taken:
                    self._taken.add(path)
                    return path
            return None

    def remaining(self) -> int:
        with self._lock:
            return len(self._order) - self._pos
