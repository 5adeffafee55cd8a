"""Keeps the canvas in step with the session: decodes the current photo off the GUI thread,
composites the overlay from cached rasters on every filter/layer change, maps clicks to instances."""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from fashionviewer.core.data.imageio import load_image
from fashionviewer.core.data.overlay import caption, class_color, composite
from fashionviewer.core.viewer.session import ViewerSession
from fashionviewer.qt.canvas import BoxSpec, CanvasWidget
from fashionviewer.qt.workers import start_worker


def _load(path: Path):  # generator for the worker: one decode
    yield path, load_image(path)


class CanvasPresenter(QObject):
    image_loaded = Signal(object)  # path
    redrawn = Signal(float)  # seconds the last overlay redraw took

    def __init__(self, session: ViewerSession, widget: CanvasWidget,
                 ground_truth: Callable[[Path], tuple[np.ndarray | None, list[BoxSpec]]] | None = None) -> None:
        super().__init__(widget)
        self.session, self.widget, self.canvas = session, widget, widget.canvas
        self.ground_truth = ground_truth  # path -> (RGBA layer, GT box specs), set by the GT controller
        self.image: np.ndarray | None = None
        self.image_path: Path | None = None
        self._images: OrderedDict[Path, np.ndarray] = OrderedDict()  # a few recent decodes
        self._loading: Path | None = None
        # Coalesce bursts of changes (slider drags, key repeat) into one redraw per event-loop turn.
        self._redraw_timer = QTimer(self, singleShot=True, interval=0)
        self._redraw_timer.timeout.connect(self.redraw)
        ev = session.events
        ev.current_changed.connect(self._on_current)
        for signal in (ev.threshold_changed, ev.opacity_changed, ev.layers_changed, ev.classes_changed,
                       ev.selection_changed, ev.model_changed):
            signal.connect(lambda *a: self.schedule_redraw())
        ev.prediction_added.connect(self._on_prediction)
        ev.image_error.connect(self._on_error)
        self.canvas.clicked.connect(self._on_click)

    # ----- image -----------------------------------------------------------------------------
    def _on_current(self, path: Path | None) -> None:
        self.widget.show_notice(None)
        if path is None:
            self.image, self.image_path = None, None
            self.canvas.set_image(None)
            return
        if str(path) in self.session.errors:
            self._show_error(path, self.session.errors[str(path)])
            return
        cached = self._images.get(path)
        if cached is not None:
            self._show(path, cached)
            return
        if self._loading != path:
            self._loading = path
            start_worker(_load, path, on_yield=lambda r: self._loaded(*r),
                         on_error=lambda exc, p=path: self._load_failed(p, exc))

    def _loaded(self, path: Path, image: np.ndarray) -> None:
        self._images[path] = image
        while len(self._images) > 6:
            self._images.popitem(last=False)
        if self._loading == path:
            self._loading = None
        if path == self.session.current:
            self._show(path, image)

    def _load_failed(self, path: Path, exc: Exception) -> None:
        if self._loading == path:
            self._loading = None
        self.session.add_error(path, str(exc))

    def _show(self, path: Path, image: np.ndarray) -> None:
        self.image, self.image_path = image, path
        self.canvas.set_image(image)
        self.redraw()
        self.image_loaded.emit(path)

    def _on_error(self, path: Path, message: str) -> None:
        if path == self.session.current:
            self._show_error(path, message)

    def _show_error(self, path: Path, message: str) -> None:
        self.image, self.image_path = None, path
        self.canvas.set_image(None)
        self.widget.show_notice(f"Cannot show this file: {message}. The other images still work; "
                                "use ← / → to move on.")

    def _on_prediction(self, path: Path, model: str) -> None:
        if path == self.session.current and model == self.session.model:
            self.schedule_redraw()

    # ----- overlay ---------------------------------------------------------------------------
    def schedule_redraw(self) -> None:
        self._redraw_timer.start()

    def redraw(self) -> None:
        """Composite the visible instances of the current image (masks stay decoded in rasters)."""
        if self.image is None or self.image_path != self.session.current:
            return
        start = time.perf_counter()
        s = self.session
        rasters = s.rasters()
        specs: list[BoxSpec] = []
        if rasters is not None and (rasters.height, rasters.width) == self.image.shape[:2]:
            visible = s.visible_indices()
            layers = s.layers
            if layers["masks"] or layers["outlines"] or s.selected is not None:
                self.canvas.set_overlay(composite(rasters, visible, s.opacity, layers["masks"], layers["outlines"],
                                                  highlight=s.selected))
            else:
                self.canvas.set_overlay(None)
            if layers["boxes"] or layers["labels"] or layers["scores"]:
                for i in visible:
                    inst = rasters.instances[i]
                    text = caption(inst, layers["labels"], layers["scores"])
                    specs.append(BoxSpec(inst.box, class_color(inst.label), text, i == s.selected,
                                         show_box=layers["boxes"] or i == s.selected))
        else:
            self.canvas.set_overlay(None)
        gt_layer, gt_specs = (None, [])
        if s.layers["ground_truth"] and self.ground_truth is not None and self.image_path is not None:
            gt_layer, gt_specs = self.ground_truth(self.image_path)
        self.canvas.set_ground_truth(gt_layer)
        self.canvas.set_boxes(gt_specs + specs)
        self.redrawn.emit(time.perf_counter() - start)

    def _on_click(self, x: int, y: int) -> None:
        rasters = self.session.rasters()
        if rasters is None:
            return
        self.session.select(rasters.instance_at(x, y, self.session.visible_indices()))

    def current_image(self) -> Any:
        return self.image if self.image_path == self.session.current else None
