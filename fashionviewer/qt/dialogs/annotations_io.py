"""Annotate ▸ Import Annotations… / Export Annotations…: another tool's annotations into the open folder's
project file, or the project file out to COCO, labelme, YOLO, VOC, CVAT or iMaterialist's CSV
(:mod:`fashionviewer.core.data.formats` does the work; this is the dialog and the hand-over to the editor)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.formats import (
    FORMATS,
    IMPORT_FORMATS,
    detect_format,
    export_annotations,
    import_annotations,
)
from fashionviewer.core.data.formats.common import CATEGORY_ID_MODES
from fashionviewer.qt.dialogs.common import folder_field, ok_cancel, problem_label

FORMAT_LABELS = {
    "coco": "COCO instances JSON",
    "labelme": "labelme / X-AnyLabeling JSON (one per image)",
    "yolo": "YOLO segmentation (Ultralytics: images/, labels/, data.yaml)",
    "voc": "Pascal VOC masks (SegmentationClass/Object PNGs, labelmap.txt)",
    "cvat": "CVAT for images 1.1 XML",
    "imaterialist": "iMaterialist-Fashion 2019 train.csv",
}
DETECT = "detect"


@dataclass
class AnnotationsIORequest:
    path: Path  # import: the source file or folder; export: the output folder
    fmt: str | None  # None: detect (import only)
    category_ids: str = "dataset"


class AnnotationsIODialog(QDialog):
    """``export=False``: pick a source (file or folder) and its format; ``export=True``: a format and an
    output folder (and, for COCO, the category numbering)."""

    def __init__(self, export: bool, folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.export, self.folder = export, folder
        self.setWindowTitle("Export Annotations" if export else "Import Annotations")
        self.fmt = QComboBox()
        if not export:
            self.fmt.addItem("Detect from the file", DETECT)
        for name in FORMATS if export else IMPORT_FORMATS:
            self.fmt.addItem(FORMAT_LABELS[name], name)
        self.path = QLineEdit(str(folder.parent / f"{folder.name}-annotations") if export else "")
        self.ids = QComboBox()
        for mode in CATEGORY_ID_MODES:
            self.ids.addItem(
                {"dataset": "the dataset's own ids", "1-based": "1..K (tools that reserve id 0)"}[
                    mode
                ],
                mode,
            )
        self.problem = problem_label()
        form = QFormLayout()
        form.addRow("Format", self.fmt)
        if export:
            form.addRow("Output folder", folder_field(self.path, "Export annotations to"))
            form.addRow("COCO category ids", self.ids)
        else:
            form.addRow("Source", self._source_field())
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(ok_cancel(self, "Export" if export else "Import", self._accept))

    def _source_field(self) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.path, 1)
        for text, pick in (
            (
                "File…",
                lambda: QFileDialog.getOpenFileName(
                    box, "Annotation file", str(self.folder), "Annotations (*.json *.xml *.csv)"
                )[0],
            ),
            (
                "Folder…",
                lambda: QFileDialog.getExistingDirectory(
                    box, "Annotation folder", str(self.folder)
                ),
            ),
        ):
            button = QPushButton(text)
            button.clicked.connect(
                lambda _=False, pick=pick: (chosen := pick()) and self.path.setText(chosen)
            )
            row.addWidget(button)
        return box

    def request(self) -> AnnotationsIORequest:
        fmt = self.fmt.currentData()
        return AnnotationsIORequest(
            Path(self.path.text().strip()), None if fmt == DETECT else fmt, self.ids.currentData()
        )

    def _accept(self) -> None:
        request = self.request()
        if not str(request.path) or str(request.path) == ".":
            self.problem.setText(
                "Choose a folder." if self.export else "Choose a file or folder to import."
            )
            return
        if not self.export:
            if not request.path.exists():
                self.problem.setText(f"{request.path} does not exist.")
                return
            if request.fmt is None and detect_format(request.path) not in IMPORT_FORMATS:
                self.problem.setText("The format could not be told from the file: choose it above.")
                return
        self.accept()


def run_import(state: Any, request: AnnotationsIORequest) -> str:
    """Import into the open folder: unsaved edits are written first, then the editor reopens the file.
    Returns the line to show; raises FashionViewerError (one line) when nothing was imported."""
    folder = _folder(state)
    state.flush()
    if state.editor is not None and state.editor.read_only:
        raise FashionViewerError(state.editor.problems[0])
    with _busy():
        path, images, instances, problems = import_annotations(request.path, folder, request.fmt)
    state.editor = None  # read the file again: the import is on disk, the old editor's copy is not
    state.ensure_editor()
    note = f"; {len(problems)} skipped ({problems[0]})" if problems else ""
    return f"Imported {instances} instance(s) on {images} image(s) into {path.name}{note}"


def run_export(state: Any, request: AnnotationsIORequest) -> str:
    folder = _folder(state)
    state.flush()
    editor = state.ensure_editor()
    with _busy():
        written = export_annotations(
            folder,
            request.path,
            request.fmt or "coco",
            request.category_ids,
            annotation_set=editor.aset.copy() if editor is not None else None,
        )
    return f"Exported {len(written)} file(s) to {request.path} ({request.fmt})"


def _folder(state: Any) -> Path:
    folder = state.session.folder
    if folder is None:
        raise FashionViewerError("open a folder first")
    return Path(folder)


class _busy:
    def __enter__(self) -> None:
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)

    def __exit__(self, *exc: object) -> None:
        QGuiApplication.restoreOverrideCursor()


def open_annotations_dialog(state: Any, parent: QWidget, export: bool) -> None:
    """Show the dialog and do the import or export, reporting through the annotation state's message and
    error events (one line each)."""
    folder = state.session.folder
    if folder is None:
        state.fail("Open a folder first.")
        return
    dialog = AnnotationsIODialog(export, Path(folder), parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return
    try:
        state.notify((run_export if export else run_import)(state, dialog.request()))
    except FashionViewerError as exc:
        state.fail(str(exc))
