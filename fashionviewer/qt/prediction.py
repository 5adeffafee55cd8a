"""Runs the models in the background: loads the detector and the CNN off the GUI thread, then predicts
the folder in the session's order (current image, neighbours, the rest), re-ordering when the user
moves. Results go into the session's cache; nothing here knows about widgets. The persistent
prediction cache (core.runs.cache, shared with ``fashionviewer predict``) is consulted by the worker, so
a folder predicted before shows its overlays without running the detector."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Generator

from PySide6.QtCore import QObject, Signal

from fashionviewer.core.runs.analysis import Analysis, analyse_queue
from fashionviewer.core.runs.cache import default_cache_path
from fashionviewer.core.viewer.model_choice import LoadedModels, ModelChoice, load_models
from fashionviewer.core.viewer.session import ViewerSession, WorkQueue
from fashionviewer.qt.workers import GeneratorWorker, start_worker


def _load_classifier(name_or_path: str) -> Generator[str, None, Any]:
    from fashionviewer.core.models.classifier import load_classifier

    yield f"Loading the Fashion-MNIST CNN {name_or_path}…"
    return load_classifier(name_or_path)


class PredictionController(QObject):
    status = Signal(str)
    progress = Signal(int, int)  # done, total (total 0: idle)
    models_loaded = Signal(object)  # LoadedModels
    failed = Signal(str)  # a plain-words error (missing weights...)

    def __init__(self, session: ViewerSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.models: LoadedModels | None = None
        self._loader: GeneratorWorker | None = None
        self._worker: GeneratorWorker | None = None
        self._queue: WorkQueue | None = None
        self._done = 0
        self.last_seconds: list[float] = []
        # the persistent prediction cache (path: core.runs.cache.default_cache_path)
        self.use_cache = True
        session.events.current_changed.connect(lambda _p: self._reorder())
        session.events.images_changed.connect(self.restart)

    # ----- models ----------------------------------------------------------------------------
    def load(self, choice: ModelChoice) -> None:
        self.cancel()
        if self._loader is not None:
            self._loader.cancel()
        self._loader = start_worker(
            load_models,
            choice,
            on_yield=self.status.emit,
            on_return=self._loaded,
            on_error=self._load_failed,
        )

    def set_classifier(self, name_or_path: str) -> None:
        """Swap the Fashion-MNIST CNN (e.g. freshly trained) and re-run the folder with the same detector."""
        if self.models is None:
            return
        models = self.models
        start_worker(
            _load_classifier,
            name_or_path,
            on_yield=self.status.emit,
            on_return=lambda clf: self._loaded(
                replace(
                    models,
                    classifier=clf,
                    classifier_note="",
                    choice=replace(models.choice, classifier=name_or_path),
                )
            ),
            on_error=self._load_failed,
        )

    def _loaded(self, models: LoadedModels) -> None:
        self._loader = None
        self.models = models
        self.session.clear_predictions(models.key)  # the same file may hold new weights now
        self.session.set_model_key(models.key)
        self.models_loaded.emit(models)
        note = (
            f" (no Fashion-MNIST CNN: {models.classifier_note})" if models.classifier_note else ""
        )
        self.status.emit(f"Model: {models.label}{note}")
        self.restart()

    def _load_failed(self, exc: Exception) -> None:
        self._loader = None
        self.failed.emit(str(exc))

    @property
    def loading(self) -> bool:
        return self._loader is not None

    # ----- prediction ------------------------------------------------------------------------
    def restart(self) -> None:
        """(Re)start predicting whatever of the current image list is not cached yet."""
        self.cancel()
        if self.models is None or not self.session.images:
            return
        self._queue = WorkQueue(self.session.pending_order())
        self._done = 0
        if self._queue.total == 0:
            self.progress.emit(0, 0)
            return
        m = self.models
        preprocess = None
        if m.classifier is not None:
            from fashionviewer.core.models.classifier import preprocess_crop as preprocess
        self.progress.emit(0, self._queue.total)
        self._worker = start_worker(
            analyse_queue,
            self._queue.take,
            m.predictor,
            m.key,
            m.classifier,
            preprocess,
            getattr(m.classifier, "name", ""),
            cache_path=default_cache_path() if self.use_cache else None,
            on_yield=self._on_result,
            on_error=lambda exc: self.failed.emit(f"Prediction stopped: {exc}"),
        )
        worker = self._worker
        worker.signals.finished.connect(lambda: self._on_finish(worker))

    def _on_result(self, result: Analysis) -> None:
        if result.model != self.session.model_key:
            return
        self._done += 1
        self.last_seconds.append(result.seconds)
        if result.error is not None:
            self.session.add_error(result.path, result.error)
        else:
            self.session.add_prediction(
                result.path, result.prediction, result.model, result.rasters, result.image_scores
            )
        total = self._done + (self._queue.remaining() if self._queue else 0)
        self.progress.emit(self._done, max(total, self._done))

    def _on_finish(self, worker: GeneratorWorker) -> None:
        if self._worker is worker:  # not a cancelled run finishing after a newer one started
            self._worker = None
            self.progress.emit(0, 0)

    def _reorder(self) -> None:
        if self._queue is not None and self._worker is not None:
            self._queue.reorder(self.session.pending_order())

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        self._queue = None
        self.progress.emit(0, 0)

    @property
    def running(self) -> bool:
        return self._worker is not None

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Block until the current run ends (tests and shutdown only)."""
        worker = self._worker
        deadline = time.monotonic() + timeout_s
        while worker is not None and not worker.done.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        return worker is None or worker.done.is_set()
