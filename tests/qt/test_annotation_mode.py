"""Annotation mode on small generated photos with the stand-in detector: undo/redo from the keyboard,
reject and Tab, the eraser, the class picker's search, autosave then reopen, and an annotation file
with a bad record (one line naming it, the rest loads, the file untouched until an edit)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fv_qt_helpers import BlobPredictor, install_blob_models
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from fashionviewer.core.data.annotation_file import load_annotations
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME
from fashionviewer.core.data.masks import encode_mask
from fashionviewer.qt.annotation.class_picker import ClassPicker, matching


@pytest.fixture
def folder(tmp_path: Path, image_folder: Path) -> Path:
    out = tmp_path / "photos"
    out.mkdir()
    for path in sorted(image_folder.glob("scene_0[0-2].png")):
        shutil.copy(path, out / path.name)
    return out


def _open(qtbot, window, folder: Path, per_blob: int = 2) -> None:
    window.open_folder(folder)
    install_blob_models(window, BlobPredictor(per_blob))
    qtbot.waitUntil(
        lambda: (
            window.presenter.current_image() is not None and window.session.prediction() is not None
        ),
        timeout=30_000,
    )
    window.session.set_threshold(0.0)
    QTest.keyClick(window, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert window.annotation.active


def _key(window, key: Qt.Key, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    QTest.keyClick(window, key, modifiers)


def _viewport_point(window, x: float, y: float) -> QPoint:
    canvas = window.canvas_widget.canvas
    return canvas.mapFromScene(canvas.view.mapViewToScene(QPointF(x, y)))


def test_undo_redo_reject_and_tab_from_the_keyboard(qtbot, window, folder: Path) -> None:
    _open(qtbot, window, folder)
    s, mode = window.session, window.annotation
    predicted = len(s.prediction().instances)
    assert predicted >= 3
    _key(window, Qt.Key.Key_Tab)  # the first prediction
    first = s.selected
    _key(window, Qt.Key.Key_Delete)  # rejects it: off the prediction layer, not annotated
    assert (
        len(s.prediction().instances) == predicted - 1
        and mode.annotations() == []
        and s.selected is None
    )
    _key(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)  # accept all shown
    ids = [a.id for a in mode.annotations()]
    assert len(ids) == predicted - 1 and s.prediction().instances == []
    _key(window, Qt.Key.Key_Tab)
    _key(window, Qt.Key.Key_Tab)
    assert mode.selected == ids[1]
    _key(window, Qt.Key.Key_Tab, Qt.KeyboardModifier.ShiftModifier)
    assert mode.selected == ids[0]
    _key(window, Qt.Key.Key_Delete)
    assert [a.id for a in mode.annotations()] == ids[1:]
    _key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [a.id for a in mode.annotations()] == ids
    _key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # the accept-all was one step
    assert mode.annotations() == []
    _key(
        window,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    _key(
        window,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert [a.id for a in mode.annotations()] == ids[1:]
    assert first is not None and mode.layer.ids == ids[1:]  # the layer shows what the editor holds


def test_eraser_stroke_is_one_undo_step_and_the_layer_updates(qtbot, window, folder: Path) -> None:
    _open(qtbot, window, folder)
    mode = window.annotation
    _key(window, Qt.Key.Key_Tab)
    _key(window, Qt.Key.Key_Return)
    ann = mode.annotations()[0]
    before = ann.mask()
    ys, xs = np.nonzero(before)
    cy, cx = int(ys.mean()), int(xs.mean())
    _key(window, Qt.Key.Key_E)
    viewport = window.canvas_widget.canvas.viewport()
    QTest.mousePress(
        viewport,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        _viewport_point(window, cx - 6, cy),
    )
    QTest.mouseMove(viewport, _viewport_point(window, cx, cy))
    assert mode.layer.rgba[cy, cx, 3] == 0  # the live preview already shows the hole
    QTest.mouseMove(viewport, _viewport_point(window, cx + 6, cy))
    QTest.mouseRelease(
        viewport,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        _viewport_point(window, cx + 6, cy),
    )
    after = mode.annotations()[0].mask()
    assert (
        not after[cy, cx]
        and after.sum() < before.sum()
        and mode.annotations()[0].source == "edited"
    )
    _key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(mode.annotations()[0].mask(), before)


def test_class_picker_searches_as_you_type(qtbot) -> None:
    classes = ["shoes", "skirt", "t-shirt", "shirt", "sweater"]
    assert matching(classes, "SHI") == ["shirt", "t-shirt"]  # prefix matches first
    picker = ClassPicker(classes, "skirt")
    qtbot.addWidget(picker)
    assert picker.chosen() == "skirt"
    qtbot.keyClicks(picker.search, "swe")
    assert [picker.list.item(i).text() for i in range(picker.list.count())] == ["sweater"]
    picker.search.clear()
    qtbot.keyClicks(picker.search, "kimono")
    assert (
        picker.list.count() == 0
        and picker.chosen() == "kimono"
        and "new class" in picker.hint.text()
    )


def test_autosave_then_reopen(qtbot, window, folder: Path, settings) -> None:
    _open(qtbot, window, folder)
    mode = window.annotation
    predicted = len(window.session.prediction().instances)
    _key(window, Qt.Key.Key_Tab)
    _key(window, Qt.Key.Key_Return)
    _key(window, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    path = folder / DEFAULT_FILE_NAME
    # debounced autosave
    qtbot.waitUntil(lambda: path.is_file() and not mode.editor.dirty, timeout=10_000)
    aset, problems = load_annotations(path)
    rec = aset.images["scene_00.png"]
    assert (
        problems == []
        and rec.done
        and len(rec.annotations) == 1
        and rec.annotations[0].source == "predicted"
    )
    saved = mode.annotations()[0]
    saved_class = mode.editor.aset.category_name(saved.category_id)

    from fashionviewer.qt.main_window import MainWindow

    window.close()
    reopened = MainWindow(settings=settings)
    qtbot.addWidget(reopened)
    reopened.show()
    reopened.open_folder(folder)
    qtbot.waitUntil(lambda: reopened.presenter.current_image() is not None, timeout=10_000)
    again = reopened.annotation
    assert again.editor is not None and [a.rle for a in again.annotations()] == [saved.rle]
    assert reopened.browser.model.data(reopened.browser.model.index(0)).startswith("✓")
    # drawn without the mode
    assert reopened.session.layers["annotations"] and again.layer.ids == [saved.id]
    install_blob_models(reopened, BlobPredictor(2))
    qtbot.waitUntil(lambda: reopened.session.prediction() is not None, timeout=30_000)
    shown = reopened.session.prediction().instances  # the accepted prediction is not offered again
    assert len(shown) == predicted - 1
    assert all(
        (inst.rle["counts"], inst.class_name) != (saved.rle["counts"], saved_class)
        for inst in shown
    )
    reopened.close()


def test_bad_record_is_named_the_rest_loads_and_the_file_waits_for_an_edit(
    qtbot, window, folder: Path
) -> None:
    from PIL import Image

    w, h = Image.open(folder / "scene_00.png").size
    mask = np.zeros((h, w), np.uint8)
    mask[10:40, 20:60] = 1
    good = {
        "id": 1,
        "image_id": 1,
        "category_id": 1,
        "segmentation": encode_mask(mask),
        "source": "drawn",
    }
    bad = {"id": 2, "image_id": 1, "category_id": 99, "segmentation": encode_mask(mask)}
    data = {
        "images": [{"id": 1, "file_name": "scene_00.png", "width": w, "height": h}],
        "annotations": [good, bad],
        "categories": [{"id": 1, "name": "T-shirt/top"}],
    }
    path = folder / DEFAULT_FILE_NAME
    path.write_text(json.dumps(data))
    original = path.read_bytes()
    _open(qtbot, window, folder)
    mode = window.annotation
    line = mode.problem_label
    assert line.isVisible() and "\n" not in line.text()
    assert "annotation 1 (id 2)" in line.text() and "unknown category_id 99" in line.text()
    assert [a.id for a in mode.annotations()] == [1]  # the rest loads
    qtbot.wait(800)  # longer than the autosave delay: opening never writes
    assert path.read_bytes() == original
    _key(window, Qt.Key.Key_Tab)
    _key(window, Qt.Key.Key_Delete)  # the first edit
    qtbot.waitUntil(lambda: path.read_bytes() != original, timeout=10_000)
    # the skipped record is not lost
    assert (folder / (DEFAULT_FILE_NAME + ".bak")).read_bytes() == original
