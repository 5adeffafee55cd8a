"""The main window: composes the canvas, panels, menus and controllers around one ViewerSession.

State lives in ``core.viewer.session``; pixels in ``core.data.overlay``; models in ``qt/prediction.py``;
the docks and menus are built by ``qt/docks.py`` and ``qt/menus.py``, exporting and training run in
``qt/export_flow.py`` and ``qt/training_flow.py``. This class wires them together and handles folders,
drag and drop and models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.base.paths import DEMO_DIR
from fashionviewer.core.models.classifier import cnn_input
from fashionviewer.core.models.domain import default_model_for, domain_notice
from fashionviewer.core.viewer.model_choice import LoadedModels, ModelChoice
from fashionviewer.core.viewer.session import ViewerSession
from fashionviewer.core.viewer.training import TrainingRequest
from fashionviewer.qt.annotation.mode import AnnotationHost, AnnotationMode
from fashionviewer.qt.canvas import CanvasWidget
from fashionviewer.qt.dialogs.export import ExportRequest
from fashionviewer.qt.dialogs.shortcuts import show_shortcuts
from fashionviewer.qt.docks import add_docks
from fashionviewer.qt.export_flow import start_export
from fashionviewer.qt.gc_pauses import collect_in_gui_thread, freeze_long_lived
from fashionviewer.qt.ground_truth import GroundTruthController
from fashionviewer.qt.menus import MenuCommands, RecentFolders, add_action, build_menus
from fashionviewer.qt.panels.browser import BrowserPanel
from fashionviewer.qt.panels.details import DetailsPanel
from fashionviewer.qt.panels.layers import LayersPanel
from fashionviewer.qt.panels.legend import LegendPanel
from fashionviewer.qt.panels.models import ModelBar
from fashionviewer.qt.panels.training import TrainingPanel
from fashionviewer.qt.prediction import PredictionController
from fashionviewer.qt.presenter import CanvasPresenter
from fashionviewer.qt.tool_model import ToolModelChoice
from fashionviewer.qt.training_flow import load_trained, start_training
from fashionviewer.qt.workers import GeneratorWorker, wait_all


class MainWindow(QMainWindow):
    def __init__(
        self, session: ViewerSession | None = None, settings: QSettings | None = None
    ) -> None:
        super().__init__()
        collect_in_gui_thread()  # workers must never free Qt objects (qt/gc_pauses.py)
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
        self.docks = add_docks(
            self, self.browser, self.layers, self.legend, self.details, self.training
        )
        self.export_worker: GeneratorWorker | None = None
        self.recent = RecentFolders(self.settings)
        self.tool_model = ToolModelChoice(self.settings, self.statusBar().showMessage)
        self.training.tool_model_chosen.connect(self.tool_model.remember)
        self._add_menus()
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
        add_action(
            self,
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
        self.tool_model.restore()  # the box and click tools' model chosen in an earlier session
        s.events.current_changed.connect(lambda _p: self._update_title())
        s.events.folder_changed.connect(self._update_title)

    def _add_menus(self) -> None:
        """File, View, Model and Train (qt/menus.py); Annotate and Help follow in ``__init__``."""
        self.menus = build_menus(
            self,
            self.session,
            self.canvas_widget.canvas,
            self.docks.values(),
            self.recent,
            MenuCommands(
                choose_folder=self.choose_folder,
                open_folder=self.open_folder,
                open_demo=self.open_demo,
                export_masks=self.export_masks,
                quit=self.close,
                open_checkpoint=lambda: self.model_bar._model_activated(
                    self.model_bar.model.count() - 1
                ),
                predict_again=self._repredict,
                train=self.train,
                fine_tune=lambda: self.annotation.fine_tune(self.train),
                cancel_training=self.training.cancel,
                use_bundled_tool_model=self.tool_model.use_bundled,
            ),
        )
        self.layer_actions = self.menus.layer_actions
        for (
            name,
            action,
        ) in self.menus.train_actions.items():  # train_NAME_action per declared trainer
            setattr(self, f"train_{name}_action", action)

    # ----- folders ---------------------------------------------------------------------------
    def recent_folders(self) -> list[str]:
        return self.recent.folders()

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
            self.recent.remember(folder)
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
        freeze_long_lived()  # the model lives until the next load: keep it out of full collections
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

    # ----- export and training (qt/export_flow.py, qt/training_flow.py) -----------------------
    def export_masks(self, request: ExportRequest | None = None) -> GeneratorWorker | None:
        worker = start_export(
            self,
            self.session,
            self.prediction.models,
            self.settings,
            self.prediction.use_cache,
            self.statusBar().showMessage,
            request,
        )
        if worker is not None:
            self.export_worker = worker
        return worker

    def train(self, trainer: str, request: TrainingRequest | None = None) -> None:
        start_training(
            self,
            self.settings,
            self.training,
            self.docks["training"],
            trainer,
            self.annotation.training_options,
            request,
        )

    def _load_trained(self, payload: tuple[TrainingRequest, str]) -> None:
        load_trained(
            payload, self.prediction, self.model_bar, self.load_model, self.statusBar().showMessage
        )

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
