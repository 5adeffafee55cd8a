"""Annotate ▸ Import / Export Annotations: the dialog's checks, and the import and export through the
viewer's annotation state on real CCP photos (the editor reopens the imported file)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.io

from fashionviewer.core.data.annotation_file import load_annotations
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME
from fashionviewer.core.data.formats import export_annotations
from fashionviewer.core.viewer.annotating import AnnotationEditor
from fashionviewer.core.viewer.annotation_state import AnnotationState
from fashionviewer.core.viewer.session import ViewerSession
from fashionviewer.qt.dialogs.annotations_io import (
    AnnotationsIODialog,
    AnnotationsIORequest,
    run_import,
    start_export,
)


@pytest.fixture
def folders(ccp_root, tmp_path):
    """``source``: a photo annotated with its real CCP masks, exported as labelme; ``target``: the same photo,
    not annotated yet."""
    source, target = tmp_path / "source", tmp_path / "target"
    for folder in (source, target):
        folder.mkdir()
        shutil.copy(ccp_root / "photos" / "0001.jpg", folder / "0001.jpg")
    gt = scipy.io.loadmat(ccp_root / "annotations" / "pixel-level" / "0001.mat")["groundtruth"]
    editor = AnnotationEditor(source, classes=[], autosave_delay=-1)
    for value, name in zip(
        [v for v in np.unique(gt) if v][:3], ("pants", "shoe", "bag, wallet"), strict=False
    ):
        editor.add("0001.jpg", gt.shape[1], gt.shape[0], gt == value, name)
    editor.save()
    export_annotations(source, tmp_path / "labelme", "labelme")
    return source, target, tmp_path / "labelme"


def _state(folder):
    session = ViewerSession()
    session.open_folder(folder)
    state = AnnotationState(session, lambda: None, autosave_delay=-1)
    messages, errors = [], []
    state.events.message.connect(lambda text, _ms: messages.append(text))
    state.events.error.connect(errors.append)
    return state, messages, errors


def test_import_then_export_through_the_viewer_state(qtbot, folders, tmp_path):
    source, target, labelme = folders
    state, messages, _ = _state(target)
    line = run_import(state, AnnotationsIORequest(labelme, None))
    assert line.startswith("Imported 3 instance(s) on 1 image(s)")
    assert len(state.editor.annotations("0001.jpg")) == 3  # the editor reopened the imported file
    state.editor.delete("0001.jpg", state.editor.annotations("0001.jpg")[0].id)
    start_export(state, AnnotationsIORequest(tmp_path / "yolo", "yolo"), None)
    qtbot.waitUntil(lambda: any(m.startswith("Exported") for m in messages), timeout=30_000)
    assert (
        "yolo" in messages[-1]
        and len((tmp_path / "yolo" / "labels" / "0001.txt").read_text().splitlines()) == 2
    )
    # unsaved edits were written first
    saved, problems = load_annotations(target / DEFAULT_FILE_NAME)
    assert problems == [] and len(saved.images["0001.jpg"].annotations) == 2


def test_dialog_checks_before_accepting(qapp, folders, tmp_path):
    _, target, labelme = folders
    dialog = AnnotationsIODialog(False, target)
    dialog.path.setText(str(tmp_path / "missing"))
    dialog._accept()
    assert "does not exist" in dialog.problem.text() and not dialog.result()
    (tmp_path / "empty").mkdir()
    # a folder in no known format, format left on "detect"
    dialog.path.setText(str(tmp_path / "empty"))
    dialog._accept()
    assert "could not be told" in dialog.problem.text()
    dialog.path.setText(str(labelme))
    dialog._accept()
    assert dialog.result() == 1 and dialog.request().fmt is None
    export = AnnotationsIODialog(True, target)
    export.fmt.setCurrentIndex(export.fmt.findData("coco"))
    export.ids.setCurrentIndex(export.ids.findData("1-based"))
    assert export.request().category_ids == "1-based" and export.request().fmt == "coco"


def test_import_into_a_foreign_project_file_is_refused(qapp, folders):
    _, target, labelme = folders
    (target / DEFAULT_FILE_NAME).write_text('{"shapes": [], "imagePath": "0001.jpg"}')
    state, _, _ = _state(target)
    state.ensure_editor()
    from fashionviewer.core.base.errors import FashionViewerError

    with pytest.raises(FashionViewerError, match="labelme"):
        run_import(state, AnnotationsIORequest(labelme, "labelme"))
    assert (target / DEFAULT_FILE_NAME).read_text() == '{"shapes": [], "imagePath": "0001.jpg"}'
