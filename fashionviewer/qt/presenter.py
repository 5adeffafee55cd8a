"""Keeps the canvas in step with the session: decodes the current photo off the GUI thread,
composites the overlay from cached rasters on every filter/layer change, maps clicks to instances.

A key press only changes the current path: the picture arrives later from a worker as a
display-sized level (core.viewer.display) and, for a photo larger than that, its full-resolution
pixels after it; results for an image the user has already left are kept in the small cache but
not shown, and a newer request cancels the older one between the two decodes. The masks of a photo
shown at a reduced level are resampled onto it in a worker too; the GUI thread only composites them."""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Generator

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from fashionviewer.core.data.imageio import load_image
from fashionviewer.core.data.overlay import (
    PredictionRasters,
    caption,
    class_color,
    composite,
    scaled_rasters,
)
from fashionviewer.core.viewer.display import DisplayImage, load_display_image
from fashionviewer.core.viewer.session import ViewerSession
from fashionviewer.qt.canvas import BoxSpec, CanvasWidget
from fashionviewer.qt.workers import GeneratorWorker, start_worker


def _scale(
    rasters: PredictionRasters, height: int, width: int
) -> Generator[None, None, PredictionRasters]:
    """Worker body: the masks resampled onto a display level and their outlines found (a few ms per mask of a
    48-megapixel photo; the parsing model gives up to dozens of them)."""
    yield  # a cancel here skips the work
    return scaled_rasters(rasters, height, width).decode_all()


def _load(path: Path, display: DisplayImage | None = None):
    """Worker generator: the display level first (unless given), then, for a photo larger than its
    level, the full-resolution pixels (masks, the CNN's crops); stops early when cancelled."""
    if display is None:
        display = load_display_image(path)
        yield path, display, None if display.reduced else display.pixels
    if display.reduced:
        yield path, display, load_image(path)


class CanvasPresenter(QObject):
    image_loaded = Signal(object)  # path
    redrawn = Signal(float)  # seconds the last overlay redraw took

    def __init__(
        self,
        session: ViewerSession,
        widget: CanvasWidget,
        ground_truth: Callable[[Path], tuple[np.ndarray | None, list[BoxSpec]]] | None = None,
    ) -> None:
        super().__init__(widget)
        self.session, self.widget, self.canvas = session, widget, widget.canvas
        # path -> (RGBA layer, GT box specs), set by the GT controller
        self.ground_truth = ground_truth
        # full-resolution pixels of the shown photo, once decoded
        self.image: np.ndarray | None = None
        self.image_path: Path | None = None
        self.display: DisplayImage | None = None  # what the canvas shows
        self._images: OrderedDict[Path, DisplayImage] = OrderedDict()  # a few recent display levels
        # the latest full decode of a reduced photo
        self._full: tuple[Path, np.ndarray] | None = None
        self._loading: Path | None = None
        self._loader: GeneratorWorker | None = None
        # (full, display level)
        self._scaled: tuple[PredictionRasters, PredictionRasters] | None = None
        # the full-size rasters a worker is resampling
        self._scaling: PredictionRasters | None = None
        # Coalesce bursts of changes (slider drags, key repeat) into one redraw per event-loop turn.
        self._redraw_timer = QTimer(self, singleShot=True, interval=0)
        self._redraw_timer.timeout.connect(self.redraw)
        ev = session.events
        ev.current_changed.connect(self._on_current)
        for signal in (
            ev.threshold_changed,
            ev.opacity_changed,
            ev.layers_changed,
            ev.classes_changed,
            ev.selection_changed,
            ev.model_changed,
        ):
            signal.connect(lambda *a: self.schedule_redraw())
        ev.prediction_added.connect(self._on_prediction)
        ev.image_error.connect(self._on_error)
        self.canvas.clicked.connect(self._on_click)

    # ----- image -----------------------------------------------------------------------------
    def _on_current(self, path: Path | None) -> None:
        self.widget.show_notice(None)
        if path is None:
            self.image, self.image_path, self.display = None, None, None
            self.canvas.set_image(None)
            return
        if str(path) in self.session.errors:
            self._show_error(path, self.session.errors[str(path)])
            return
        cached = self._images.get(path)
        if cached is not None:
            self._show(path, cached)
            if self.image is not None:
                return
        if self._loading != path:
            if self._loader is not None:
                self._loader.cancel()  # the user moved on: its full decode is not needed
            self._loading = path
            self._loader = start_worker(
                _load,
                path,
                cached,
                on_yield=lambda r: self._loaded(*r),
                on_error=lambda exc, p=path: self._load_failed(p, exc),
            )

    def _loaded(self, path: Path, display: DisplayImage, full: np.ndarray | None) -> None:
        self._images[path] = display
        self.session.note_frames(path, display.frames)
        self._images.move_to_end(path)
        while len(self._images) > 12:
            self._images.popitem(last=False)
        if full is not None and display.reduced:
            self._full = (path, full)  # one at a time: 48 MP is 144 MB
        if self._loading == path and (full is not None or not display.reduced):
            self._loading = None
        if path != self.session.current:
            return
        if self.image_path != path or self.display is None:
            self._show(path, display)
        elif full is not None:
            self.image = full
            self.image_loaded.emit(path)

    def _load_failed(self, path: Path, exc: Exception) -> None:
        if self._loading == path:
            self._loading = None
        self.session.add_error(path, str(exc))

    def _show(self, path: Path, display: DisplayImage) -> None:
        self.image_path, self.display = path, display
        if not display.reduced:
            self.image = display.pixels
        else:
            self.image = self._full[1] if self._full is not None and self._full[0] == path else None
        self.canvas.set_image(display.pixels, (display.height, display.width))
        self.redraw()
        if self.image is not None:
            self.image_loaded.emit(path)

    def _on_error(self, path: Path, message: str) -> None:
        if path == self.session.current:
            self._show_error(path, message)

    def _show_error(self, path: Path, message: str) -> None:
        self.image, self.image_path, self.display = None, path, None
        self.canvas.set_image(None)
        self.widget.show_notice(
            f"Cannot show this file: {message}. The other images still work; use ← / → to move on."
        )

    def _on_prediction(self, path: Path, model: str) -> None:
        if path == self.session.current and model == self.session.model_key:
            self.schedule_redraw()

    # ----- overlay ---------------------------------------------------------------------------
    def schedule_redraw(self) -> None:
        self._redraw_timer.start()

    def redraw(self) -> None:
        """Composite the visible instances of the current image (masks stay decoded in rasters)."""
        display = self.display
        if display is None or self.image_path != self.session.current:
            return
        start = time.perf_counter()
        s = self.session
        rasters = s.rasters()
        specs: list[BoxSpec] = []
        if rasters is not None and (rasters.height, rasters.width) == (
            display.height,
            display.width,
        ):
            visible = s.visible_indices()
            layers = s.layers
            shown = self._display_rasters(rasters, display)
            if shown is not None and (
                layers["masks"] or layers["outlines"] or s.selected is not None
            ):
                self.canvas.set_overlay(
                    composite(
                        shown,
                        visible,
                        s.opacity,
                        layers["masks"],
                        layers["outlines"],
                        highlight=s.selected,
                    )
                )
            else:  # nothing to paint, or the masks are still being resampled (boxes come first)
                self.canvas.set_overlay(None)
            if layers["boxes"] or layers["labels"] or layers["scores"]:
                for i in visible:
                    inst = rasters.instances[i]
                    text = caption(inst, layers["labels"], layers["scores"])
                    specs.append(
                        BoxSpec(
                            inst.box,
                            class_color(inst.label),
                            text,
                            i == s.selected,
                            show_box=layers["boxes"] or i == s.selected,
                        )
                    )
        else:
            self.canvas.set_overlay(None)
        gt_layer, gt_specs = (None, [])
        if (
            s.layers["ground_truth"]
            and self.ground_truth is not None
            and self.image_path is not None
        ):
            gt_layer, gt_specs = self.ground_truth(self.image_path)
        self.canvas.set_ground_truth(gt_layer)
        self.canvas.set_boxes(gt_specs + specs)
        self.redrawn.emit(time.perf_counter() - start)

    def _display_rasters(
        self, rasters: PredictionRasters, display: DisplayImage
    ) -> PredictionRasters | None:
        """The masks at the shown level's size (a huge photo's overlay is composited at display size), or
        None while a worker resamples them (a redraw follows)."""
        if not display.reduced:
            return rasters
        if self._scaled is not None and self._scaled[0] is rasters:
            return self._scaled[1]
        if self._scaling is not rasters:
            self._scaling = rasters
            height, width = display.pixels.shape[:2]
            start_worker(
                _scale,
                rasters,
                height,
                width,
                on_return=lambda shown: self._scaled_done(rasters, shown),
            )
        return None

    def _scaled_done(self, rasters: PredictionRasters, shown: PredictionRasters) -> None:
        if self._scaling is rasters:
            self._scaling = None
        self._scaled = (rasters, shown)
        self.schedule_redraw()

    def _on_click(self, x: int, y: int) -> None:
        rasters = self.session.rasters()
        if rasters is None:
            return
        self.session.select(rasters.instance_at(x, y, self.session.visible_indices()))

    def current_image(self) -> Any:
        """The current photo's full-resolution pixels, None until they are decoded."""
        return self.image if self.image_path == self.session.current else None

    def current_display(self) -> DisplayImage | None:
        """What the canvas shows of the current photo (its display level and full size)."""
        return self.display if self.image_path == self.session.current else None
