"""Toolbar: model selector (the real-photo garment model, the bundled demo, torchvision COCO when
cached, checkpoint files), device selector, the random-weights opt-in, the several-views
(test-time augmentation) switch, and the prediction progress with its Cancel button."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QLabel,
    QProgressBar,
    QPushButton,
    QToolBar,
    QWidget,
)

from fashionviewer.core.inference.defaults import COCO_MODEL
from fashionviewer.core.models.domain import DEMO_MODEL, PHOTO_MODEL
from fashionviewer.core.viewer.model_choice import (
    ModelChoice,
    available_devices,
    coco_weights_available,
    default_device,
    demo_available,
    photo_model_available,
)

_BROWSE = "__browse__"
PROGRESS_MS = 100  # the progress count is repainted at most this often


class ModelBar(QToolBar):
    choice_changed = Signal(object)  # ModelChoice
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.setObjectName("modelBar")
        self.model = QComboBox(minimumContentsLength=18)
        self.model.setToolTip(
            "The model that predicts the folder: the garment model for photos, the demo model "
            "for the embedded Fashion-MNIST scenes"
        )
        if photo_model_available():
            self.model.addItem("Garment model (real photos)", PHOTO_MODEL)
        if demo_available():
            self.model.addItem("Demo model (Fashion-MNIST scenes)", DEMO_MODEL)
        if coco_weights_available():
            self.model.addItem("torchvision COCO Mask R-CNN", COCO_MODEL)
        self.model.addItem("Checkpoint file…", _BROWSE)
        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.device.setCurrentText(default_device())
        self.allow_random = QCheckBox("Allow random weights")
        self.allow_random.setToolTip(
            "Untrained models predict nonsense; they are refused unless this is ticked, "
            "and then labelled RANDOM WEIGHTS"
        )
        self.tta = QCheckBox("Several views", checked=True)
        self.tta.setToolTip(
            "When the model card asks for it, each photo is predicted at several sizes and "
            "mirrored, and the results merged: more accurate, several times slower"
        )
        self.label = QLabel("No model")
        self.label.setObjectName("modelLabel")
        # once the user picks a model, opening a folder no longer changes it
        self.user_chose = False
        self.progress = QProgressBar(maximumWidth=180, textVisible=True)
        self.progress.setFormat("%v / %m")
        self._progress = (0, 0)  # the latest (done, total); shown by _show_progress
        self._progress_shown = False
        self._progress_timer = QTimer(self, singleShot=True, interval=PROGRESS_MS)
        self._progress_timer.timeout.connect(self._show_progress)
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop predicting the rest of the folder (cached results stay)")
        self.cancel.clicked.connect(self.cancel_requested.emit)
        for text, widget in (("Model ", self.model), ("  Device ", self.device)):
            self.addWidget(QLabel(text))
            self.addWidget(widget)
        self.addWidget(self.allow_random)
        self.addWidget(self.tta)
        self.addSeparator()
        self.addWidget(self.label)
        # a toolbar shows and hides its widgets through their actions (QWidget.setVisible does not hold)
        self.progress_action = self.addWidget(self.progress)
        self.cancel_action = self.addWidget(self.cancel)
        self.progress_action.setVisible(False)
        self.cancel_action.setVisible(False)
        self._last_index = 0
        self.model.activated.connect(self._model_activated)
        self.device.activated.connect(lambda _i: self.emit_choice())
        self.allow_random.toggled.connect(lambda _on: self.emit_choice())
        self.tta.toggled.connect(lambda _on: self.emit_choice())

    def current_choice(self) -> ModelChoice | None:
        source = self.model.currentData()
        if source in (None, _BROWSE):
            return None
        return ModelChoice(
            source,
            self.device.currentText(),
            self.allow_random.isChecked(),
            tta=self.tta.isChecked(),
        )

    def emit_choice(self) -> None:
        choice = self.current_choice()
        if choice is not None:
            self.choice_changed.emit(choice)

    def select_model(self, source: str) -> bool:
        """Select the entry of ``source`` without loading it; whether the selection changed."""
        found = self.model.findData(source)
        if found < 0 or found == self.model.currentIndex():
            return False
        self.model.setCurrentIndex(found)
        self._last_index = found
        return True

    def _model_activated(self, index: int) -> None:
        self.user_chose = True
        if self.model.itemData(index) == _BROWSE:
            path, _ = QFileDialog.getOpenFileName(
                self, "Open a Mask R-CNN checkpoint", "", "Checkpoints (*.pt *.json)"
            )
            if not path:
                self.model.setCurrentIndex(self._last_index)
                return
            self.add_checkpoint(path)
        self._last_index = self.model.currentIndex()
        self.emit_choice()

    def add_checkpoint(self, path: str) -> None:
        """Add (or re-select) a checkpoint entry without loading it."""
        found = self.model.findData(path)
        if found < 0:
            self.model.insertItem(self.model.count() - 1, Path(path).name, path)
            found = self.model.findData(path)
        self.model.setCurrentIndex(found)
        self._last_index = found

    def show_loaded(self, label: str, random: bool, details: str) -> None:
        """The loaded model in words; its card (trained on what, when, from which weights) as the tooltip."""
        self.label.setText(label)
        self.label.setStyleSheet("color: #e05050; font-weight: bold;" if random else "")
        self.label.setToolTip(details)

    def set_progress(self, done: int, total: int) -> None:
        """Shown or hidden at once; while it runs, the count at most every PROGRESS_MS (one repaint
        of the toolbar costs ~2 ms of the GUI thread, and cached results arrive hundreds a second)."""
        self._progress = (done, total)
        running = total > 0
        if not (running and self._progress_shown):  # shown or hidden now
            self._show_progress()
        elif not self._progress_timer.isActive():
            self._progress_timer.start()

    def _show_progress(self) -> None:
        self._progress_timer.stop()
        done, total = self._progress
        running = self._progress_shown = total > 0
        self.progress_action.setVisible(running)
        self.cancel_action.setVisible(running)
        if not running:  # gone now, not at the toolbar's next layout pass
            self.progress.hide()
            self.cancel.hide()
        if running:
            self.progress.setMaximum(total)
            self.progress.setValue(done)
