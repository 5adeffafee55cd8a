"""Train ▸ …: the Train dialog (or a given request) starts a run in the training panel; when a finished run's
"Load the new weights" is pressed, its checkpoint is loaded: new CNN weights join the loaded detector, a new
detector is added to the model bar and loaded with the bar's device and options."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QDockWidget, QMessageBox, QWidget

from fashionviewer.core.viewer.model_choice import (
    ModelChoice,
    available_devices,
    default_device,
)
from fashionviewer.core.viewer.training import TrainingRequest
from fashionviewer.qt.dialogs.training import TrainingDialog
from fashionviewer.qt.panels.models import ModelBar
from fashionviewer.qt.panels.training import TrainingPanel
from fashionviewer.qt.prediction import PredictionController


def start_training(
    parent: QWidget,
    settings: QSettings,
    panel: TrainingPanel,
    dock: QDockWidget,
    trainer: str,
    options: Callable[[str], dict[str, Any]],
    request: TrainingRequest | None = None,
) -> None:
    """Run ``trainer`` (a core.viewer.training.TRAINERS key) as ``request`` says, asking with the Train dialog
    when None; ``options(trainer)`` is what else the dialog offers (annotation mode's ``training_options``)."""
    if panel.running:
        QMessageBox.information(
            parent, "Training", "A training run is already going; cancel it first."
        )
        return
    if request is None:
        out = settings.value(
            f"trainOut/{trainer}", str(Path.home() / "fashionviewer-runs" / trainer)
        )
        dialog = TrainingDialog(
            trainer, available_devices(), default_device(), str(out), parent, **options(trainer)
        )
        if not dialog.exec():
            return
        request = dialog.request()
    settings.setValue(f"trainOut/{trainer}", request.out)
    dock.show()
    dock.raise_()
    panel.start(request)


def load_trained(
    payload: tuple[TrainingRequest, str],
    prediction: PredictionController,
    model_bar: ModelBar,
    load_model: Callable[[ModelChoice], None],
    show_status: Callable[[str, int], None],
) -> None:
    """The training panel's ``load_requested``: (the run's request, its checkpoint)."""
    request, checkpoint = payload
    if request.trainer == "fmnist":
        if prediction.models is not None:
            prediction.set_classifier(checkpoint)
            return
        choice = model_bar.current_choice()
        if choice is None:
            show_status(f"New CNN weights: {checkpoint}; load a detector to use them.", 15000)
            return
        choice.classifier = checkpoint
    else:
        model_bar.add_checkpoint(checkpoint)
        choice = ModelChoice(
            checkpoint,
            model_bar.device.currentText(),
            model_bar.allow_random.isChecked(),
            prediction.models.choice.classifier if prediction.models is not None else None,
            tta=model_bar.tta.isChecked(),
        )
    load_model(choice)
