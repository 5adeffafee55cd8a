"""Annotate ▸ Import Annotations… / Export Annotations…: another tool's annotations into the open folder's
project file, or the project file out to COCO, labelme, YOLO, VOC, CVAT or iMaterialist's CSV, and Datumaro's
formats where it is installed
(:mod:`fashionviewer.core.data.formats` does the work; this is the dialog and the hand-over to the editor).

Import… while the project file is another program's (the editor is read-only) offers that file itself as
the source: importing it converts it (the original kept as ``NAME.bak``) and the editor reopens writable.
Export… runs in a worker thread (``qt.workers``) behind a progress dialog with Cancel; a cancelled export
writes nothing into the output folder (its files are staged beside it and moved in only at the end)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QProgressDialog,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.formats import (
    FORMATS,
    IMPORT_FORMATS,
    backup_path,
    datumaro_bridge,
    detect_format,
    export_steps,
    import_annotations,
)
from fashionviewer.core.data.formats.common import CATEGORY_ID_MODES
from fashionviewer.qt.dialogs.common import folder_field, ok_cancel, problem_label
from fashionviewer.qt.workers import GeneratorWorker, start_worker

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
        # Datumaro's formats where the optional extra is installed (datumaro_bridge.formats is () else)
        for name in (FORMATS if export else IMPORT_FORMATS) + datumaro_bridge.formats(export):
            label = FORMAT_LABELS.get(name) or f"Datumaro: {name[len(datumaro_bridge.PREFIX) :]}"
            self.fmt.addItem(label, name)
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
    Importing a read-only editor's own file converts it (kept as ``NAME.bak`` first). Returns the line to
    show; raises FashionViewerError (one line) when nothing was imported."""
    folder = _folder(state)
    state.flush()
    editor = state.editor
    read_only = editor is not None and editor.read_only
    converting = read_only and request.path.resolve() == editor.path.resolve()
    if read_only and not converting:
        raise FashionViewerError(editor.problems[0])
    # the name import_annotations keeps the original under (it writes that copy before the new file)
    backup = backup_path(editor.path) if converting else None
    with _busy():
        path, images, instances, problems = import_annotations(request.path, folder, request.fmt)
    state.editor = None  # read the file again: the import is on disk, the old editor's copy is not
    state.ensure_editor()
    state.select(None)  # the layer is drawn again from the reopened file
    note = f"; {len(problems)} skipped ({problems[0]})" if problems else ""
    if backup is not None:
        return (
            f"Converted {path.name} to COCO ({instances} instance(s) on {images} image(s)); the "
            f"original is kept as {backup.name}{note}"
        )
    return f"Imported {instances} instance(s) on {images} image(s) into {path.name}{note}"


def start_export(state: Any, request: AnnotationsIORequest, parent: QWidget) -> GeneratorWorker:
    """Export the open folder's annotations in a worker behind a progress dialog with Cancel; the result
    (or that the export was cancelled and nothing was written) is reported through the state's events."""
    folder = _folder(state)
    state.flush()
    editor = state.ensure_editor()
    aset = editor.aset.copy() if editor is not None else None  # the worker's own copy
    fmt = request.fmt or "coco"
    dialog = QProgressDialog(f"Exporting annotations as {fmt}…", "Cancel", 0, 0, parent)
    dialog.setWindowTitle("Export Annotations")
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(300)
    dialog.setAutoReset(False)
    written: list[Path] = []
    over: list[bool] = []  # the worker finished: closing the dialog is no Cancel

    def job() -> Generator[tuple[int, int], None, list[Path]]:
        # kept here too: a Cancel that comes while the files are moved in does not stop them
        written.extend(
            (yield from export_steps(folder, request.path, fmt, request.category_ids, aset))
        )
        return written

    def progress(step: tuple[int, int]) -> None:
        done, total = step
        dialog.setMaximum(max(total, 1))
        dialog.setValue(done)
        unit = "step(s)" if datumaro_bridge.is_datumaro(fmt) else "image(s)"  # + Datumaro's stages
        dialog.setLabelText(f"Exporting annotations as {fmt}: {done} of {total} {unit}")

    def finished() -> None:
        over.append(True)
        dialog.hide()
        dialog.deleteLater()
        if written:  # complete, even when Cancel came while the files were being moved in
            state.notify(f"Exported {len(written)} file(s) to {request.path} ({fmt})")
        elif worker.cancelled:
            state.notify(f"Export cancelled: nothing was written to {request.path}")

    worker = start_worker(
        job,
        on_yield=progress,
        on_error=lambda exc: state.fail(
            str(exc) if isinstance(exc, FashionViewerError) else f"Export failed: {exc}"
        ),
        on_finish=finished,
    )
    dialog.canceled.connect(lambda: over or worker.cancel())
    return worker


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
    editor = state.editor
    if not export and editor is not None and editor.read_only:
        dialog.path.setText(
            str(editor.path)
        )  # the one import that helps: converting the file itself
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return
    try:
        if export:
            start_export(state, dialog.request(), parent)
        else:
            state.notify(run_import(state, dialog.request()))
    except FashionViewerError as exc:
        state.fail(str(exc))
