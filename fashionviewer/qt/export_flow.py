"""File ▸ Export Masks…: the export dialog (or a given request), then ``core.runs.export.export_paths`` in a
background worker, its progress and outcome on the status bar.

Images the session already predicted are exported from there; the others go through the same
``core.runs.step.PerImageStep`` as the background analysis, in the worker."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox, QWidget

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.imageio import load_image
from fashionviewer.core.runs.analysis import open_cache_for
from fashionviewer.core.runs.cache import default_cache_path
from fashionviewer.core.runs.export import export_paths, provenance
from fashionviewer.core.runs.step import PerImageStep
from fashionviewer.core.viewer.model_choice import LoadedModels
from fashionviewer.core.viewer.session import ViewerSession
from fashionviewer.qt.dialogs.export import ExportDialog, ExportRequest
from fashionviewer.qt.workers import GeneratorWorker, start_worker


def start_export(
    parent: QWidget,
    session: ViewerSession,
    models: LoadedModels | None,
    settings: QSettings,
    use_cache: bool,
    show_status: Callable[[str, int], None],
    request: ExportRequest | None = None,
) -> GeneratorWorker | None:
    """Start exporting the current image (or the whole folder) as ``request`` says, asking for it when None;
    None when there is nothing to export or the dialog was cancelled. ``show_status(text, ms)`` shows a line on
    the status bar (0 ms: until replaced)."""
    s = session
    if s.current is None or models is None:
        QMessageBox.information(parent, "Export Masks", "Open a folder and load a model first.")
        return None
    if request is None:
        request = _ask(parent, s, settings)
        if request is None:
            return None
    settings.setValue("exportFolder", str(request.out_dir))
    paths = list(s.images) if request.whole_folder else [s.current]
    problems: list[str] = []

    def progress(item: tuple[int, int, Path, str | None]) -> None:
        done, total, _path, problem = item
        if problem:
            problems.append(problem)
        show_status(f"Exporting masks: {done} / {total}", 0)

    def finished(files: list[Path]) -> None:
        skipped = (
            f"; skipped {len(problems)} unreadable image(s): {problems[0]}" if problems else ""
        )
        show_status(f"Exported {len(files)} files to {request.out_dir}{skipped}", 15000)

    return start_worker(
        export_paths,
        paths,
        _obtainer(s, models, paths, use_cache),
        request.out_dir,
        request.formats,
        s.threshold,
        s.visible_classes(),
        _provenance(s, models),
        s.folder,
        models.predictor.category_ids,
        on_yield=progress,
        on_return=finished,
        on_error=lambda exc: QMessageBox.warning(parent, "Export failed", str(exc)),
    )


def _ask(parent: QWidget, s: ViewerSession, settings: QSettings) -> ExportRequest | None:
    default = settings.value("exportFolder", str(Path.home() / "fashionviewer-export"))
    dialog = ExportDialog(
        str(default), s.threshold, sorted(s.hidden_classes), len(s.images), parent
    )
    return dialog.request() if dialog.exec() else None


def _obtainer(
    s: ViewerSession, models: LoadedModels, paths: list[Path], use_cache: bool
) -> Callable[[Path], tuple[Any, np.ndarray, Any]]:
    """What the worker calls per image: (prediction, pixels, rasters or None). The session's predictions are
    read here, on the GUI thread; images without one are predicted (and cached) in the worker."""
    cached = {p: (s.prediction(p), s.rasters(p) if p == s.current else None) for p in paths}
    predictor = models.predictor
    cache = open_cache_for(predictor, default_cache_path() if use_cache else None)
    step = PerImageStep(predictor, cache, keep_image=True)  # what the background analysis runs

    def obtain(path: Path) -> tuple[Any, np.ndarray, Any]:  # runs in the worker thread
        prediction, rasters = cached[path]
        if prediction is not None:
            return prediction, load_image(path), rasters
        result = step(path)
        if result.prediction is None:
            raise FashionViewerError(str(result.error))
        return result.prediction, result.image, None

    return obtain


def _provenance(s: ViewerSession, models: LoadedModels) -> dict[str, Any]:
    return provenance(
        model=models.label,
        weights=models.choice.source if Path(models.choice.source).suffix else None,
        weights_sha256=models.predictor.card.get("weights_sha256"),
        min_score=s.threshold,
        classes=s.visible_classes(),
        exported=datetime.now().astimezone().isoformat(timespec="seconds"),
    )
