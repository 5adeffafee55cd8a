"""In the window: a labelme JSON at the project path (real CCP shapes) opens annotation mode read-only with
its shapes drawn, every editing action disabled and refused, the file unchanged byte for byte after trying to
edit and closing; Annotate ▸ Import… offers the file itself and converts it (the original kept as .bak);
Annotate ▸ Export… runs in a worker with a progress dialog whose Cancel leaves no file behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialog, QProgressBar, QProgressDialog, QPushButton

from fashionviewer.core.data.annotation_file import load_annotations
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME, FORMAT
from fashionviewer.core.data.formats import read_format
from fashionviewer.core.viewer.annotating import AnnotationEditor
from fashionviewer.core.viewer.annotation_tools import Tool
from fashionviewer.qt.annotation.read_only import EDITING
from fashionviewer.qt.dialogs import annotations_io
from fashionviewer.qt.dialogs.annotations_io import AnnotationsIORequest, start_export
from tests.core.viewer.test_annotation_read_only import PHOTO, labelme_from_ccp, polygon_mask_pil


@pytest.fixture
def foreign(ccp_root, tmp_path) -> tuple[Path, bytes, dict]:
    folder = tmp_path / "photos"
    folder.mkdir()
    for stem in (PHOTO, "0002"):
        shutil.copy(ccp_root / "photos" / f"{stem}.jpg", folder / f"{stem}.jpg")
    doc, polygons = labelme_from_ccp(ccp_root, f"{PHOTO}.jpg")
    (folder / DEFAULT_FILE_NAME).write_text(json.dumps(doc, indent=1))
    return folder, (folder / DEFAULT_FILE_NAME).read_bytes(), polygons


def _open_read_only(qtbot, window, folder: Path):
    window.open_folder(folder)
    qtbot.waitUntil(lambda: window.presenter.current_image() is not None, timeout=30_000)
    mode = window.annotation
    QTest.keyClick(window, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert mode.active and mode.toggle_action.isChecked() and mode.state.read_only
    return mode


def _try_every_edit(window, mode) -> None:
    keys = [
        (Qt.Key.Key_B, Qt.KeyboardModifier.NoModifier),  # box
        (Qt.Key.Key_C, Qt.KeyboardModifier.NoModifier),  # click
        (Qt.Key.Key_P, Qt.KeyboardModifier.NoModifier),  # polygon
        (Qt.Key.Key_Return, Qt.KeyboardModifier.NoModifier),  # accept
        (Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier),  # accept all
        (Qt.Key.Key_Delete, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier),  # done
        (Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier),  # undo
        (Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier),  # redo
        (Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier),  # save
    ]
    for key, modifier in keys:
        QTest.keyClick(window, key, modifier)
    for name in sorted(EDITING):
        mode.trigger(name)  # a disabled action: nothing happens
    for tool in (Tool.BOX, Tool.CLICK, Tool.POLYGON, Tool.BRUSH, Tool.ERASER):
        mode.set_tool(tool)  # what a shortcut would do: refused
        assert mode.state.tool is Tool.SELECT


def test_labelme_project_file_opens_read_only_and_is_never_written(
    qtbot, window, foreign, capsys
) -> None:
    folder, original, polygons = foreign
    mode = _open_read_only(qtbot, window, folder)
    line = mode.editor.problems[0]
    assert mode.problem_label.isVisibleTo(window) and mode.problem_label.text() == f"⚠ {line}"
    assert "labelme file: shown read-only" in line and "Import… converts it" in line
    assert line in window.statusBar().currentMessage()
    # its shapes are drawn as the annotations: one instance per class
    qtbot.waitUntil(lambda: f"{len(polygons)} annotated" in mode.status.text(), timeout=10_000)
    first = mode.annotations()[0]
    ys, xs = np.nonzero(first.mask())
    assert mode.layer.annotation_at(int(xs[len(xs) // 2]), int(ys[len(ys) // 2])) == first.id
    # editing is off; selecting and inspecting are on
    assert all(not mode.actions[name].isEnabled() for name in EDITING)
    assert all(mode.actions[n].isEnabled() for n in ("select", "next", "previous", "import"))
    assert not mode.class_box.isEnabled() and not mode.radius_box.isEnabled()
    QTest.keyClick(window, Qt.Key.Key_Tab)
    assert mode.selected == first.id
    errors: list[str] = []
    mode.state.events.error.connect(errors.append)
    _try_every_edit(window, mode)
    assert errors == [line] * 5 and window.statusBar().currentMessage() == line
    assert len(mode.annotations()) == len(polygons) and mode.selected == first.id
    window.close()
    assert (folder / DEFAULT_FILE_NAME).read_bytes() == original
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [DEFAULT_FILE_NAME, f"{PHOTO}.jpg", "0002.jpg"]
    )
    assert capsys.readouterr().err.count("shown read-only") == 1


def test_import_offers_the_file_itself_and_converts_it(qtbot, window, foreign, monkeypatch):
    folder, original, polygons = foreign
    path = folder / DEFAULT_FILE_NAME
    mode = _open_read_only(qtbot, window, folder)
    offered: list[str] = []

    def accept(dialog) -> int:
        offered.append(dialog.path.text())
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(annotations_io.AnnotationsIODialog, "exec", accept)
    mode.trigger("import")
    assert offered == [str(path)]
    assert window.statusBar().currentMessage() == (
        f"Converted {DEFAULT_FILE_NAME} to COCO ({len(polygons)} instance(s) on 1 image(s)); the "
        f"original is kept as {DEFAULT_FILE_NAME}.bak"
    )
    assert (folder / f"{DEFAULT_FILE_NAME}.bak").read_bytes() == original
    aset, problems = load_annotations(path)
    assert problems == [] and aset.written_by == FORMAT
    rec = aset.images[f"{PHOTO}.jpg"]
    assert len(rec.annotations) == len(polygons)
    for ann in rec.annotations:
        expected = polygon_mask_pil(
            polygons[aset.category_name(ann.category_id)], rec.height, rec.width
        )
        got = ann.mask().astype(bool)
        assert (got & expected).sum() / (got | expected).sum() >= 0.95
    # the editor reopened writable, in annotation mode: editing works and is saved
    assert mode.active and not mode.state.read_only and not mode.problem_label.isVisibleTo(window)
    assert all(mode.actions[name].isEnabled() for name in EDITING)
    QTest.keyClick(window, Qt.Key.Key_Tab)
    QTest.keyClick(window, Qt.Key.Key_Delete)
    QTest.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert len(load_annotations(path)[0].images[f"{PHOTO}.jpg"].annotations) == len(polygons) - 1
    assert (folder / f"{DEFAULT_FILE_NAME}.bak").read_bytes() == original


IMAGES = 12


@pytest.fixture
def big_project(tmp_path) -> Path:
    """Twelve generated 1600x1200 photos with three annotated regions each (an export that takes a while)."""
    folder = tmp_path / "big"
    folder.mkdir()
    editor = AnnotationEditor(folder, classes=["shirt", "pants", "shoes"], autosave_delay=-1)
    ramp = np.linspace(0, 255, 1600, dtype=np.uint8)
    for i in range(IMAGES):
        Image.fromarray(np.dstack([np.tile(ramp, (1200, 1))] * 3)).save(folder / f"{i:02d}.png")
        for k, cls in enumerate(("shirt", "pants", "shoes")):
            mask = np.zeros((1200, 1600), bool)
            mask[100 + 300 * k : 350 + 300 * k, 200 + 10 * i : 900 + 40 * k] = True
            editor.add(f"{i:02d}.png", 1600, 1200, mask, cls)
    editor.save()
    return folder


def test_export_runs_in_a_worker_and_cancel_leaves_nothing(qtbot, window, big_project, tmp_path):
    window.open_folder(big_project)
    state = window.annotation.state
    messages: list[str] = []
    state.events.message.connect(lambda text, _ms: messages.append(text))
    out = tmp_path / "voc"
    worker = start_export(state, AnnotationsIORequest(out, "voc"), window)
    [dialog] = window.findChildren(QProgressDialog)
    dialog.findChild(QPushButton).click()  # Cancel (before the dialog shows: it waits 300 ms)
    qtbot.waitUntil(lambda: any(m.startswith("Export cancelled") for m in messages), timeout=30_000)
    assert worker.cancelled and worker.done.is_set()
    assert messages == [f"Export cancelled: nothing was written to {out}"]
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # again, to the end: the dialog's bar steps through every image, then the files, complete
    progress: list[int] = []
    worker = start_export(state, AnnotationsIORequest(out, "voc"), window)
    [bar] = [d for d in window.findChildren(QProgressDialog) if d is not dialog]
    bar.findChild(QProgressBar).valueChanged.connect(progress.append)  # set on the GUI thread
    qtbot.waitUntil(lambda: any(m.startswith("Exported") for m in messages), timeout=60_000)
    assert progress == list(range(IMAGES + 1))
    assert messages[-1] == f"Exported {3 * IMAGES + 2} file(s) to {out} (voc)"
    back, problems, fmt = read_format(out)
    original, _ = load_annotations(big_project / DEFAULT_FILE_NAME)
    assert fmt == "voc" and problems == [] and sorted(back.images) == sorted(original.images)
    for name, rec in original.images.items():
        got = sorted(a.mask().sum() for a in back.images[name].annotations)
        assert got == sorted(a.mask().sum() for a in rec.annotations)
    # a failing export: one line, nothing written
    errors: list[str] = []
    state.events.error.connect(errors.append)
    worker = start_export(state, AnnotationsIORequest(tmp_path / "csv", "imaterialist"), window)
    qtbot.waitUntil(worker.done.is_set, timeout=30_000)
    qtbot.waitUntil(lambda: bool(errors), timeout=10_000)
    assert errors == [
        "iMaterialist export: the annotation file's categories are not the iMaterialist taxonomy "
        "(ids 0-45 with its names)"
    ]
    assert not (tmp_path / "csv").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
