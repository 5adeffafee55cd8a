"""The main window: composes the canvas, panels, menus and controllers around one ViewerSession.

State lives in ``core.session``; pixels in ``core.overlay``; models in ``PredictionController``;
this class only wires them together and handles menus, drag and drop, export and training."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
)

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.base.paths import DEMO_DIR
from fashionviewer.core.data.imageio import load_image
from fashionviewer.core.models.classifier import cnn_input
from fashionviewer.core.models.domain import default_model_for, domain_notice
from fashionviewer.core.runs.analysis import open_cache_for
from fashionviewer.core.runs.cache import default_cache_path
from fashionviewer.core.runs.export import export_paths, provenance
from fashionviewer.core.runs.step import PerImageStep
from fashionviewer.core.viewer.model_choice import (
    LoadedModels,
    ModelChoice,
    available_devices,
    default_device,
)
from fashionviewer.core.viewer.session import ViewerSession
from fashionviewer.core.viewer.training import TRAINERS, TrainingRequest
from fashionviewer.qt.annotation.mode import AnnotationHost, AnnotationMode
from fashionviewer.qt.canvas import CanvasWidget
from fashionviewer.qt.dialogs.export import ExportDialog, ExportRequest
from fashionviewer.qt.dialogs.shortcuts import show_shortcuts
from fashionviewer.qt.dialogs.training import TrainingDialog
from fashionviewer.qt.ground_truth import GroundTruthController
from fashionviewer.qt.panels.browser import BrowserPanel
from fashionviewer.qt.panels.details import DetailsPanel
from fashionviewer.qt.panels.layers import LAYER_KEYS, LayersPanel
from fashionviewer.qt.panels.legend import LegendPanel
from fashionviewer.qt.panels.models import ModelBar
from fashionviewer.qt.panels.training import TrainingPanel
from fashionviewer.qt.prediction import PredictionController
from fashionviewer.qt.presenter import CanvasPresenter
from fashionviewer.qt.workers import GeneratorWorker, start_worker, wait_all

MAX_RECENT = 10


class MainWindow(QMainWindow):
    def __init__(
        self, session: ViewerSession | None = None, settings: QSettings | None = None
    ) -> None:
        super().__init__()
        self.session = s = session or ViewerSession()
        self.settings = settings or QSettings("FashionViewer", "FashionViewer")
        self.setWindowTitle("FashionViewer")
        self.resize(1400, 900)
        self.setAcceptDrops(True)
        self.canvas_widget = CanvasWidget(self)
        self.setCentralWidget(self.canvas_widget)
        self.ground_truth = GroundTruthController(s, self)
        self.presenter = CanvasPresenter(s, self.canvas_widget, self.ground_truth.layer)
        self.prediction = PredictionController(s, self)
        self.model_bar = ModelBar(self)
        self.addToolBar(self.model_bar)
        # Stays in the status bar while a synthetic-scenes model runs on other images (core.models.domain).
        self.domain_notice = QLabel(objectName="domainNotice")
        self.domain_notice.setStyleSheet(
            "QLabel { background: #7a2e2e; color: white; padding: 2px 6px; }"
        )
        self.domain_notice.hide()
        self.statusBar().addPermanentWidget(self.domain_notice)
        self.browser = BrowserPanel(s)
        self.layers = LayersPanel(s)
        self.legend = LegendPanel(s)
        self.details = DetailsPanel(
            s, self._cnn_input, self._cnn_classes, self.ground_truth.summary
        )
        self.training = TrainingPanel()
        self.docks: dict[str, QDockWidget] = {}
        for key, title, widget, area in (
            ("browser", "Images", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea),
            ("layers", "Layers", self.layers, Qt.DockWidgetArea.RightDockWidgetArea),
            ("legend", "Classes", self.legend, Qt.DockWidgetArea.RightDockWidgetArea),
            ("details", "Details", self.details, Qt.DockWidgetArea.RightDockWidgetArea),
            ("training", "Training", self.training, Qt.DockWidgetArea.BottomDockWidgetArea),
        ):
            dock = QDockWidget(title, self, objectName=f"{key}Dock")
            if key == "details":  # long texts (top-3, ground truth) scroll instead of being cut
                scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
                scroll.setWidget(widget)
                widget = scroll
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[key] = dock
        self.docks["training"].hide()
        self.resizeDocks(
            [self.docks["browser"], self.docks["details"]], [280, 330], Qt.Orientation.Horizontal
        )
        self.resizeDocks(
            [self.docks["layers"], self.docks["legend"], self.docks["details"]],
            [300, 160, 420],
            Qt.Orientation.Vertical,
        )
        self.export_worker: GeneratorWorker | None = None
        self._build_menus()
        # its own toolbar, menu, layer and tools
        self.annotation = AnnotationMode(
            s,
            AnnotationHost(
                self.canvas_widget,
                self.presenter,
                lambda: self.prediction.models,
                self.prediction.models_loaded,
                self.statusBar().showMessage,
                self.browser.model,
                self.training,
            ),
            self,
            self.menuBar().addMenu("&Annotate"),
        )
        self.addToolBarBreak()  # the Annotate toolbar: a row of its own under the model bar
        self.addToolBar(self.annotation.toolbar)
        self.statusBar().addPermanentWidget(self.annotation.problem_label)
        self._action(
            self.menuBar().addMenu("&Help"),
            "Keyboard Shortcuts",
            lambda: show_shortcuts(self, self.annotation.shortcuts()),
        )

        self.model_bar.choice_changed.connect(self.load_model)
        self.model_bar.cancel_requested.connect(self.prediction.cancel)
        self.prediction.progress.connect(self.model_bar.set_progress)
        self.prediction.status.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.prediction.failed.connect(self._model_failed)
        self.prediction.models_loaded.connect(self._models_loaded)
        self.ground_truth.changed.connect(self.details.refresh)
        self.ground_truth.changed.connect(self.presenter.schedule_redraw)
        self.training.load_requested.connect(self._load_trained)
        s.events.current_changed.connect(lambda _p: self._update_title())
        s.events.folder_changed.connect(self._update_title)

    # ----- menus -----------------------------------------------------------------------------
    def _action(
        self,
        menu: QMenu,
        text: str,
        slot: Callable[[], Any],
        *keys: str | QKeySequence.StandardKey,
        checkable: bool = False,
    ) -> QAction:
        action = QAction(text, self, checkable=checkable)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.triggered.connect(lambda *_: slot())
        menu.addAction(action)
        self.addAction(action)  # shortcuts work whichever dock has focus
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self._action(file, "Open Folder…", self.choose_folder, QKeySequence.StandardKey.Open)
        self.recent_menu = file.addMenu("Open Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._action(file, "Open Demo", self.open_demo)
        file.addSeparator()
        self._action(file, "Export Masks…", self.export_masks, "Ctrl+E")
        file.addSeparator()
        self._action(file, "Quit", self.close, QKeySequence.StandardKey.Quit)
        view = bar.addMenu("&View")
        s = self.session
        for text, slot, keys in (
            ("Previous Image", s.previous, ("Left", "A")),
            ("Next Image", s.next, ("Right", "D")),
            ("First Image", s.first, ("Home",)),
            ("Last Image", s.last, ("End",)),
        ):
            self._action(view, text, slot, *keys)
        view.addSeparator()
        c = self.canvas_widget.canvas
        self._action(view, "Zoom to Fit", c.fit, "F")
        self._action(view, "Actual Size (1:1)", c.actual_size, "1")
        self._action(view, "Zoom In", lambda: c.zoom(1.25), "+", "=")
        self._action(view, "Zoom Out", lambda: c.zoom(0.8), "-")
        self._action(view, "Clear Selection", lambda: s.select(None), "Escape")
        view.addSeparator()
        self.layer_actions: dict[str, QAction] = {}
        for name, (label, key) in LAYER_KEYS.items():
            action = self._action(
                view, f"Show {label}", lambda n=name: s.toggle_layer(n), key, checkable=True
            )
            action.setChecked(s.layers[name])
            self.layer_actions[name] = action
        s.events.layers_changed.connect(lambda n, v: self.layer_actions[n].setChecked(v))
        view.addSeparator()
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        model = bar.addMenu("&Model")
        self._action(
            model,
            "Open Checkpoint…",
            lambda: self.model_bar._model_activated(self.model_bar.model.count() - 1),
        )
        self._action(model, "Predict Folder Again", self._repredict)
        train = bar.addMenu("&Train")
        # every declared trainer (core.viewer.trainer_menu): train_NAME_action
        for name, title in TRAINERS.items():
            setattr(
                self,
                f"train_{name}_action",
                self._action(train, f"{title}…", lambda n=name: self.train(n)),
            )
        self._action(
            train,
            "Fine-tune Loaded Model on Annotations…",
            lambda: self.annotation.fine_tune(self.train),
        )
        self._action(train, "Cancel Training", self.training.cancel)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for folder in self.recent_folders():
            self.recent_menu.addAction(folder, lambda f=folder: self.open_folder(f))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none)").setEnabled(False)

    # ----- folders ---------------------------------------------------------------------------
    def recent_folders(self) -> list[str]:
        value = self.settings.value("recentFolders", [])
        return [str(v) for v in (value if isinstance(value, list) else [value]) if v]

    def choose_folder(self) -> None:
        start = (self.recent_folders() or [str(Path.home())])[0]
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images", start)
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path, remember: bool = True) -> bool:
        folder = Path(folder).expanduser().resolve()
        try:
            self.session.open_folder(folder)
        except FashionViewerError as exc:
            self.canvas_widget.show_notice(
                f"{exc}. Choose a folder of images (File ▸ Open Folder)."
            )
            return False
        if remember:
            recent = [str(folder)] + [f for f in self.recent_folders() if f != str(folder)]
            self.settings.setValue("recentFolders", recent[:MAX_RECENT])
        if not self.session.images:
            self.canvas_widget.show_notice(
                f"{folder} holds no images (.jpg, .png, .bmp, .tif, .webp).", warning=False
            )
        # The first folder picks the default model: the real-photo model for photos, the demo model for
        # the embedded demo. A model already loaded is never swapped (the notice below says when it misfits).
        if (
            self.prediction.models is None
            and not self.prediction.loading
            and not self.model_bar.user_chose
        ):
            self.model_bar.select_model(default_model_for(folder))
        self._update_domain_notice()
        return True

    def open_demo(self) -> None:
        if DEMO_DIR.is_dir() and any(DEMO_DIR.iterdir()):
            self.open_folder(DEMO_DIR, remember=False)
        else:
            self.canvas_widget.show_notice(
                f"The demo images are not installed ({DEMO_DIR} is empty). "
                "Open a folder of your own with File ▸ Open Folder.",
                warning=False,
            )

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            target = paths[0] if paths[0].is_dir() else paths[0].parent
            if self.open_folder(target) and paths[0].is_file() and paths[0] in self.session.images:
                self.session.set_current(paths[0])

    def _update_title(self) -> None:
        s = self.session
        parts = ["FashionViewer"]
        if s.folder is not None:
            parts.append(s.folder.name or str(s.folder))
        if s.current is not None:
            parts.append(f"{s.display_name(s.current)} ({s.index + 1}/{len(s.images)})")
        self.setWindowTitle(" — ".join(parts))

    # ----- models ----------------------------------------------------------------------------
    def load_model(self, choice: ModelChoice | None = None) -> None:
        choice = choice or self.model_bar.current_choice()
        if choice is None:
            self.canvas_widget.show_notice(
                "No bundled model is installed: choose a Mask R-CNN checkpoint "
                "(Model ▸ Open Checkpoint…) or train one (Train ▸ Mask R-CNN…).",
                warning=False,
            )
            return
        if self.prediction.models is not None and choice.classifier is None:
            # keep a CNN loaded from training
            choice.classifier = self.prediction.models.choice.classifier
        self.model_bar.label.setText(f"Loading {choice.title}…")
        self.prediction.load(choice)

    def _update_domain_notice(self) -> None:
        """A synthetic-scenes model on images other than the embedded demo: say so, visibly."""
        models = self.prediction.models
        notice = None
        if models is not None:
            notice = domain_notice(
                models.predictor.card,
                self.session.folder,
                models.predictor.model_name or models.choice.title,
            )
        self.domain_notice.setText(f"⚠ {notice}" if notice else "")
        self.domain_notice.setToolTip(notice or "")
        self.domain_notice.setVisible(bool(notice))

    def _models_loaded(self, models: LoadedModels) -> None:
        self.model_bar.show_loaded(models.label, models.random, models.details)
        self.ground_truth.model_classes = list(models.predictor.class_names)
        if (
            self.session.current is not None
            and str(self.session.current) not in self.session.errors
        ):
            self.canvas_widget.show_notice(None)
        self._update_domain_notice()
        self.details.refresh()

    def _model_failed(self, message: str) -> None:
        self.model_bar.label.setText("No model")
        self.canvas_widget.show_notice(message)
        self.statusBar().showMessage(message, 15000)

    def _repredict(self) -> None:
        if self.prediction.models is not None:
            self.session.clear_predictions(self.prediction.models.key)
            self.prediction.restart()

    def _cnn_input(self, index: int | None) -> np.ndarray | None:
        models, image, rasters = (
            self.prediction.models,
            self.presenter.current_image(),
            self.session.rasters(),
        )
        if models is None or models.classifier is None or image is None:
            return None
        from fashionviewer.core.models.classifier import preprocess_crop

        return cnn_input(
            image,
            rasters[index] if (index is not None and rasters is not None) else None,
            preprocess_crop,
        )

    def _cnn_classes(self) -> list[str]:
        models = self.prediction.models
        return list(models.classifier.classes) if models and models.classifier else []

    # ----- export ----------------------------------------------------------------------------
    def export_masks(self, request: ExportRequest | None = None) -> GeneratorWorker | None:
        s, models = self.session, self.prediction.models
        if s.current is None or models is None:
            QMessageBox.information(self, "Export Masks", "Open a folder and load a model first.")
            return None
        if request is None:
            default = self.settings.value("exportFolder", str(Path.home() / "fashionviewer-export"))
            dialog = ExportDialog(
                str(default), s.threshold, sorted(s.hidden_classes), len(s.images), self
            )
            if not dialog.exec():
                return None
            request = dialog.request()
        self.settings.setValue("exportFolder", str(request.out_dir))
        paths = list(s.images) if request.whole_folder else [s.current]
        cached = {p: (s.prediction(p), s.rasters(p) if p == s.current else None) for p in paths}
        predictor = models.predictor
        cache = open_cache_for(
            predictor, default_cache_path() if self.prediction.use_cache else None
        )
        step = PerImageStep(predictor, cache, keep_image=True)  # what the background analysis runs

        def obtain(path: Path) -> tuple[Any, np.ndarray, Any]:  # runs in the worker thread
            prediction, rasters = cached[path]
            if prediction is not None:
                return prediction, load_image(path), rasters
            result = step(path)
            if result.prediction is None:
                raise FashionViewerError(str(result.error))
            return result.prediction, result.image, None

        card = predictor.card
        info = provenance(
            model=models.label,
            weights=models.choice.source if Path(models.choice.source).suffix else None,
            weights_sha256=card.get("weights_sha256"),
            min_score=s.threshold,
            classes=s.visible_classes(),
            exported=datetime.now().astimezone().isoformat(timespec="seconds"),
        )
        problems: list[str] = []

        def progress(item: tuple[int, int, Path, str | None]) -> None:
            done, total, _path, problem = item
            if problem:
                problems.append(problem)
            self.statusBar().showMessage(f"Exporting masks: {done} / {total}")

        def finished(files: list[Path]) -> None:
            skipped = (
                f"; skipped {len(problems)} unreadable image(s): {problems[0]}" if problems else ""
            )
            self.statusBar().showMessage(
                f"Exported {len(files)} files to {request.out_dir}{skipped}", 15000
            )

        self.export_worker = start_worker(
            export_paths,
            paths,
            obtain,
            request.out_dir,
            request.formats,
            s.threshold,
            s.visible_classes(),
            info,
            s.folder,
            predictor.category_ids,
            on_yield=progress,
            on_return=finished,
            on_error=lambda exc: QMessageBox.warning(self, "Export failed", str(exc)),
        )
        return self.export_worker

    # ----- training --------------------------------------------------------------------------
    def train(self, trainer: str, request: TrainingRequest | None = None) -> None:
        if self.training.running:
            QMessageBox.information(
                self, "Training", "A training run is already going; cancel it first."
            )
            return
        if request is None:
            out = self.settings.value(
                f"trainOut/{trainer}", str(Path.home() / "fashionviewer-runs" / trainer)
            )
            dialog = TrainingDialog(
                trainer,
                available_devices(),
                default_device(),
                str(out),
                self,
                **self.annotation.training_options(trainer),
            )
            if not dialog.exec():
                return
            request = dialog.request()
        self.settings.setValue(f"trainOut/{trainer}", request.out)
        self.docks["training"].show()
        self.docks["training"].raise_()
        self.training.start(request)

    def _load_trained(self, payload: tuple[TrainingRequest, str]) -> None:
        request, checkpoint = payload
        if request.trainer == "fmnist":
            if self.prediction.models is not None:
                self.prediction.set_classifier(checkpoint)
                return
            choice = self.model_bar.current_choice()
            if choice is None:
                self.statusBar().showMessage(
                    f"New CNN weights: {checkpoint}; load a detector to use them.", 15000
                )
                return
            choice.classifier = checkpoint
        else:
            self.model_bar.add_checkpoint(checkpoint)
            choice = ModelChoice(
                checkpoint,
                self.model_bar.device.currentText(),
                self.model_bar.allow_random.isChecked(),
                self.prediction.models.choice.classifier if self.prediction.models else None,
                tta=self.model_bar.tta.isChecked(),
            )
        self.load_model(choice)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        if self.training.running:
            self.training.cancel()
            if self.training.process is not None:
                self.training.process.waitForFinished(5000)
        self.prediction.cancel()
        self.browser.model.stop()
        wait_all(10.0)
        super().closeEvent(event)


def make_window(
    folder: str | Path | None = None, load_model: bool = True, **kwargs: Any
) -> MainWindow:
    """A window showing ``folder`` (the demo when None) with the default model loading in the background."""
    window = MainWindow(**kwargs)
    if folder is None:
        window.open_demo()
    else:
        window.open_folder(folder)
    if load_model:
        window.load_model()
    return window


__all__ = ["MainWindow", "make_window"]
