"""File ▸ Export Masks… dialog (scope, formats, output folder) and the background export job."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from fashionviewer.core.base.atomic import ensure_writable_dir
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.runs.export import FORMATS
from fashionviewer.qt.dialogs.common import folder_field, ok_cancel, problem_label

FORMAT_LABELS = {
    "instances": "Per-instance binary masks (0/255)",
    "index": "Instance-index PNG (0 = background, i = instance i)",
    "class": "Class-index PNG with palette",
    "overlay": "Colour overlay PNG",
    "coco": "COCO results JSON (with model, weights SHA-256, threshold, date)",
}


@dataclass
class ExportRequest:
    out_dir: Path
    formats: tuple[str, ...]
    whole_folder: bool


class ExportDialog(QDialog):
    def __init__(
        self,
        out_dir: str,
        threshold: float,
        hidden_classes: list[str],
        folder_size: int,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export Masks")
        self.current = QRadioButton("Current image", checked=True)
        self.folder = QRadioButton(f"Whole folder ({folder_size} images, in the background)")
        self.checks = {name: QCheckBox(FORMAT_LABELS[name], checked=True) for name in FORMATS}
        self.out = QLineEdit(out_dir)
        hidden = f"; hidden classes left out: {', '.join(hidden_classes)}" if hidden_classes else ""
        note = QLabel(
            f"Exports what is shown: instances with score ≥ {threshold:.2f}{hidden}.", wordWrap=True
        )
        self.problem = problem_label()
        form = QFormLayout()
        form.addRow("Images", self.current)
        form.addRow("", self.folder)
        for name in FORMATS:
            form.addRow("Formats" if name == FORMATS[0] else "", self.checks[name])
        form.addRow("Output folder", folder_field(self.out, "Export to"))
        buttons = ok_cancel(self, "Export", self._accept)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)

    def request(self) -> ExportRequest:
        formats = tuple(name for name, check in self.checks.items() if check.isChecked())
        return ExportRequest(Path(self.out.text().strip()), formats, self.folder.isChecked())

    def _accept(self) -> None:
        request = self.request()
        if not request.formats:
            self.problem.setText("Choose at least one format.")
            return
        try:
            ensure_writable_dir(request.out_dir)  # say so now, not after minutes of work
        except FashionViewerError as exc:
            self.problem.setText(f"{exc}. Choose another folder.")
            return
        self.accept()
