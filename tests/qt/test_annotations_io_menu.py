"""In the viewer: a labelme file at the project path is reported in one line and never written over (annotation
mode opens read-only), and Annotate ▸ Import / Export Annotations… are in the menu."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fv_qt_helpers import BlobPredictor, install_blob_models
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME


@pytest.fixture
def folder(tmp_path: Path, image_folder: Path) -> Path:
    out = tmp_path / "photos"
    out.mkdir()
    for path in sorted(image_folder.glob("scene_0[0-1].png")):
        shutil.copy(path, out / path.name)
    return out


def test_labelme_at_the_project_path_opens_read_only(qtbot, window, folder: Path, capsys) -> None:
    labelme = {
        "version": "5.4.1",
        "flags": {},
        "imagePath": "scene_00.png",
        "imageData": None,
        "imageHeight": 10,
        "imageWidth": 10,
        "shapes": [
            {
                "label": f"c{i}",
                "points": [[1, 1], [5, 1], [3, 4]],
                "group_id": None,
                "shape_type": "polygon",
                "flags": {},
            }
            for i in range(8)
        ],
    }
    path = folder / DEFAULT_FILE_NAME
    path.write_text(json.dumps(labelme, indent=1))
    before = path.read_bytes()
    window.open_folder(folder)
    install_blob_models(window, BlobPredictor(2))
    qtbot.waitUntil(
        lambda: (
            window.presenter.current_image() is not None and window.session.prediction() is not None
        ),
        timeout=30_000,
    )
    window.session.set_threshold(0.0)
    # annotation mode: opens read-only (its shapes cannot be shown here: the file says 10x10)
    QTest.keyClick(window, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    mode = window.annotation
    assert mode.active and mode.toggle_action.isChecked() and mode.editor.read_only
    assert "labelme" in mode.problem_label.text() and "read-only" in mode.problem_label.text()
    assert "read-only" in window.statusBar().currentMessage()
    assert not mode.actions["accept_all"].isEnabled() and not mode.actions["save"].isEnabled()
    # accept all, save: disabled
    QTest.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    QTest.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    window.close()
    assert path.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == [
        DEFAULT_FILE_NAME,
        "scene_00.png",
        "scene_01.png",
    ]
    assert capsys.readouterr().err.count("shown read-only") == 1


def test_import_and_export_are_in_the_annotate_menu(
    qtbot, window, folder: Path, monkeypatch
) -> None:
    from fashionviewer.qt.dialogs import annotations_io

    window.open_folder(folder)
    opened = []
    monkeypatch.setattr(
        annotations_io.AnnotationsIODialog, "exec", lambda self: opened.append(self.export) or 0
    )
    annotate = [a for a in window.menuBar().actions() if a.text() == "&Annotate"][0].menu()
    texts = {a.text(): a for a in annotate.actions()}
    assert texts["Import Annotations…"].isEnabled() and texts["Export Annotations…"].isEnabled()
    texts["Import Annotations…"].trigger()
    texts["Export Annotations…"].trigger()
    # each opened its dialog (cancelled here), outside annotation mode
    assert opened == [False, True]
