"""Train ▸ … dialog: one row per option the trainer declares (``core.viewer.trainer_menu``) -> TrainingRequest."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.viewer.trainer_menu import CHOICE, FOLDER, TRAINER_MENUS, MenuOption
from fashionviewer.core.viewer.training import TrainingRequest
from fashionviewer.qt.dialogs.common import folder_field, ok_cancel, problem_label

ANNOTATIONS_ITEM = "this folder's annotations"  # dataset "annotations" on the open folder


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
    # CCP has a default location
    if not data_path and dataset in TRAINER_MENUS[trainer].datasets_need_folder:
        return f"Choose the {dataset} dataset's folder."
    return None


class TrainingDialog(QDialog):
    def __init__(
        self,
        trainer: str,
        devices: list[str],
        default_device: str,
        out_dir: str,
        parent: QWidget | None = None,
        annotations: str = "",
        init_from: str = "",
    ) -> None:
        """``annotations``: the open folder when it has an annotation file (offered first); ``init_from``: the
        loaded model's checkpoint when this trainer can fine-tune it, offered (and the default with the
        annotations) as a start."""
        super().__init__(parent)
        self.trainer, self.menu = trainer, TRAINER_MENUS[trainer]
        self.annotations, self.init_from = annotations, init_from
        self.setWindowTitle(f"Train {self.menu.title}")
        self.fields: dict[str, QWidget] = {}
        form = QFormLayout()
        for option in self.menu.options:
            if option.shown:
                widget = self._widget(option, devices, default_device, out_dir)
                widget.setToolTip(option.tip)
                self.fields[option.key] = widget
                # dialog.epochs, dialog.limit...: what tests and callers use
                setattr(self, option.key, widget)
                form.addRow(
                    option.label,
                    folder_field(widget, option.label) if option.kind == FOLDER else widget,
                )
        self.problem = problem_label()
        # fine-tuning keeps the loaded model's architecture
        if "weights" in self.fields and "model" in self.fields:
            self.weights.currentTextChanged.connect(
                lambda text: self.model.setEnabled(
                    not (self.init_from and text == self._loaded_item())
                )
            )
        if "dataset" in self.fields:
            self.dataset.currentTextChanged.connect(self._dataset_changed)
            self._dataset_changed(self.dataset.currentText())
        buttons = ok_cancel(self, "Start training", self._accept)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)

    def _widget(
        self, option: MenuOption, devices: list[str], default_device: str, out_dir: str
    ) -> QWidget:
        if option.kind == FOLDER:
            text = out_dir if option.key == "out" else ""
            return QLineEdit(
                text, placeholderText="default location" if option.key == "data_path" else ""
            )
        if option.kind != CHOICE:
            return QSpinBox(
                minimum=option.minimum,
                maximum=option.maximum,
                singleStep=option.step,
                value=option.default,
                specialValueText=option.special,
            )
        box = QComboBox()
        box.addItems(self._items(option, devices))
        box.setCurrentText(default_device if option.key == "device" else str(option.default))
        if option.key in ("dataset", "weights"):
            box.setCurrentIndex(0)  # the folder's annotations / the loaded model when offered
        return box

    def _items(self, option: MenuOption, devices: list[str]) -> list[str]:
        if option.key == "device":
            return list(devices)
        if option.key == "dataset":
            return ([ANNOTATIONS_ITEM] if self.annotations else []) + list(option.choices)
        if option.key == "weights":
            from fashionviewer.core.viewer.model_choice import coco_weights_available

            # COCO weights only when already cached (nothing is downloaded); else train from scratch.
            return (
                ([self._loaded_item()] if self.init_from else [])
                + (["coco"] if coco_weights_available() else [])
                + list(option.choices)
            )
        return list(option.choices)

    def _loaded_item(self) -> str:
        return f"the loaded model ({Path(self.init_from).name})"

    def _dataset_changed(self, text: str) -> None:
        """The folder's annotations: its path, and by default fine-tuning the loaded model."""
        mine = text == ANNOTATIONS_ITEM
        if mine:
            self.data_path.setText(self.annotations)
            if self.init_from and "weights" in self.fields:
                self.weights.setCurrentIndex(0)
        elif self.data_path.text() == self.annotations:
            self.data_path.clear()
        self.data_path.setEnabled(not mine)

    def request(self) -> TrainingRequest:
        values: dict[str, object] = {}
        for option in self.menu.options:
            widget = self.fields.get(option.key)
            if isinstance(widget, QSpinBox):
                values[option.request_field] = widget.value()
            elif isinstance(widget, QComboBox):
                values[option.request_field] = widget.currentText()
            elif isinstance(widget, QLineEdit):
                values[option.request_field] = widget.text().strip()
        if values.get("dataset") == ANNOTATIONS_ITEM:
            values["dataset"] = "annotations"
        if self.init_from and values.get("weights") == self._loaded_item():
            values["weights"], values["init_from"] = "", self.init_from
        elif (
            self.init_from
            and "weights" not in self.fields
            and values.get("dataset") == "annotations"
        ):
            # a trainer that only fine-tunes on annotations (parsing)
            values["init_from"] = self.init_from
        return TrainingRequest(trainer=self.trainer, **values)  # type: ignore[arg-type]

    def _accept(self) -> None:
        request = self.request()
        problem = check_data(self.trainer, request.data_path, request.dataset)
        if not request.out:
            problem = "Choose an output folder for the checkpoint."
        if problem:
            self.problem.setText(problem)
            return
        self.accept()
