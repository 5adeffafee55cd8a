"""Train ▸ … dialog: dataset and path, model, epochs, image size, device, output folder -> TrainingRequest."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QComboBox, QDialog, QFormLayout, QLineEdit, QSpinBox, QVBoxLayout, QWidget

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.viewer.training import TRAINERS, TrainingRequest
from fashionviewer.qt.dialogs.common import folder_field, ok_cancel, problem_label

MASKRCNN_DATASETS = ("fmnist-scenes", "imaterialist", "coco", "ccp")  # core.datasets.DATASETS names
ANNOTATIONS_ITEM = "this folder's annotations"  # dataset "annotations" on the open folder


def trainer_models(trainer: str) -> list[str]:
    if trainer == "fmnist":
        from fashionviewer.core.models import cnn

        return sorted(cnn.ARCHITECTURES)
    from fashionviewer.core.models.registry import list_models

    return list_models()


def check_data(trainer: str, data_path: str, dataset: str = "") -> str | None:
    """A plain-words problem with the chosen data, found before the run starts (None: looks fine)."""
    if trainer == "fmnist":
        from fashionviewer.core.data.fmnist import resolve_data_dir

        try:
            resolve_data_dir(data_path or None)
        except FashionViewerError as exc:
            return str(exc)
        return None
    if data_path and not Path(data_path).exists():
        return f"{data_path}: no such folder; choose the dataset's folder"
    if dataset == "annotations":
        from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME

        if not (Path(data_path) / DEFAULT_FILE_NAME).is_file():
            return f"{data_path}: no {DEFAULT_FILE_NAME} yet; annotate some images first (Annotate ▸ Annotation Mode)"
    if not data_path and dataset != "ccp":  # only CCP has a default location (../shared/data/ccp)
        return f"Choose the {dataset} dataset's folder."
    return None


class TrainingDialog(QDialog):
    def __init__(self, trainer: str, devices: list[str], default_device: str, out_dir: str,
                 parent: QWidget | None = None, annotations: str = "", init_from: str = "") -> None:
        """``annotations``: the open folder when it has an annotation file (offered first); ``init_from``: the
        loaded Mask R-CNN's checkpoint, offered (and the default with the annotations) to fine-tune."""
        super().__init__(parent)
        self.trainer = trainer
        self.annotations, self.init_from = annotations, init_from
        self.setWindowTitle(f"Train {TRAINERS[trainer]}")
        self.dataset = QComboBox()
        self.dataset.addItems(["Fashion-MNIST"] if trainer == "fmnist"
                              else ([ANNOTATIONS_ITEM] if annotations else []) + list(MASKRCNN_DATASETS))
        self.dataset.setEnabled(trainer != "fmnist")
        self.data_path = QLineEdit(placeholderText="default location" if trainer == "fmnist" else "dataset folder")
        self.model = QComboBox()
        self.model.addItems(trainer_models(trainer))
        preferred = "cnn3" if trainer == "fmnist" else "maskrcnn_mobilenet_v3_light"
        if self.model.findText(preferred) >= 0:
            self.model.setCurrentText(preferred)
        self.epochs = QSpinBox(minimum=1, maximum=500, value=5 if trainer == "fmnist" else 2)
        self.image_size = QSpinBox(minimum=0, maximum=2048, singleStep=32, value=0, specialValueText="model default")
        self.image_size.setEnabled(trainer != "fmnist")
        self.limit = QSpinBox(minimum=0, maximum=10_000_000, singleStep=100, value=0, specialValueText="all")
        self.weights = QComboBox()
        if trainer == "maskrcnn":
            from fashionviewer.core.viewer.model_choice import coco_weights_available

            # COCO weights only when already cached (nothing is downloaded); else train from scratch.
            self.weights.addItems(([self._loaded_item()] if init_from else [])
                                  + (["coco"] if coco_weights_available() else []) + ["none"])
        self.weights.setEnabled(trainer != "fmnist")
        self.device = QComboBox()
        self.device.addItems(devices)
        self.device.setCurrentText(default_device)
        self.out = QLineEdit(out_dir)
        self.problem = problem_label()
        form = QFormLayout()
        form.addRow("Dataset", self.dataset)
        form.addRow("Data folder", folder_field(self.data_path, "Dataset folder"))
        form.addRow("Model", self.model)
        form.addRow("Epochs", self.epochs)
        form.addRow("Image size (shorter side)", self.image_size)
        form.addRow("Training images" if trainer == "fmnist" else "Steps per epoch", self.limit)
        if trainer == "maskrcnn":
            form.addRow("Start from weights", self.weights)
        form.addRow("Device", self.device)
        form.addRow("Output folder", folder_field(self.out, "Output folder"))
        self.weights.currentTextChanged.connect(  # fine-tuning keeps the loaded model's architecture
            lambda text: self.model.setEnabled(not (self.init_from and text == self._loaded_item())))
        self.dataset.currentTextChanged.connect(self._dataset_changed)
        self._dataset_changed(self.dataset.currentText())
        buttons = ok_cancel(self, "Start training", self._accept)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)

    def _loaded_item(self) -> str:
        return f"the loaded model ({Path(self.init_from).name})"

    def _dataset_changed(self, text: str) -> None:
        """The folder's annotations: its path, and by default fine-tuning the loaded model."""
        mine = text == ANNOTATIONS_ITEM
        if mine:
            self.data_path.setText(self.annotations)
            if self.init_from:
                self.weights.setCurrentIndex(0)
        elif self.data_path.text() == self.annotations:
            self.data_path.clear()
        self.data_path.setEnabled(not mine)

    def request(self) -> TrainingRequest:
        dataset = self.dataset.currentText()
        fine_tune = bool(self.init_from) and self.weights.currentText() == self._loaded_item()
        return TrainingRequest(
            trainer=self.trainer, model=self.model.currentText(), out=self.out.text().strip(),
            epochs=self.epochs.value(), device=self.device.currentText(),
            dataset="" if self.trainer == "fmnist" else ("annotations" if dataset == ANNOTATIONS_ITEM else dataset),
            data_path=self.data_path.text().strip(), image_size=self.image_size.value(),
            limit_train=self.limit.value(), weights="" if fine_tune else self.weights.currentText(),
            init_from=self.init_from if fine_tune else "")

    def _accept(self) -> None:
        request = self.request()
        problem = check_data(self.trainer, request.data_path, request.dataset)
        if not request.out:
            problem = "Choose an output folder for the checkpoint."
        if problem:
            self.problem.setText(problem)
            return
        self.accept()
