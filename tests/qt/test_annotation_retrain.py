"""Annotate three real CCP photos through the GUI (accept, relabel to a new class, a box-drawn instance
refined by a click, a brush edit, a polygon, done), train 2 steps from Train ▸ Mask R-CNN… as the real
QProcess fine-tuning the loaded model, then load the new checkpoint and predict with it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from fashionviewer.core.base.paths import MODELS_DIR, sha256_file
from fashionviewer.core.data.annotation_file import load_annotations
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME
from fashionviewer.core.viewer.model_choice import ModelChoice
from fashionviewer.core.viewer.training import TrainingRequest
from fashionviewer.qt.annotation import mode as mode_module
from fashionviewer.qt.annotation.class_picker import ClassPicker
from fashionviewer.qt.dialogs.training import ANNOTATIONS_ITEM, TrainingDialog

CCP_MODEL = MODELS_DIR / "maskrcnn_ccp.pt"
NEW_CLASS = "obi sash"  # not one of the model's 56 classes: the fine-tune extends its heads


@pytest.fixture
def photos(tmp_path: Path, ccp_root: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("0001.jpg", "0002.jpg", "0003.jpg"):
        shutil.copy(ccp_root / "photos" / name, folder / name)
    return folder


def key(
    window, key: Qt.Key, modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier
) -> None:
    QTest.keyClick(window, key, modifiers)


def viewport_point(window, x: float, y: float) -> QPoint:
    canvas = window.canvas_widget.canvas
    return canvas.mapFromScene(canvas.view.mapViewToScene(QPointF(x, y)))


def drag(
    qtbot, window, points: list[tuple[float, float]], button=Qt.MouseButton.LeftButton
) -> None:
    viewport = window.canvas_widget.canvas.viewport()
    start = viewport_point(window, *points[0])
    QTest.mousePress(viewport, button, Qt.KeyboardModifier.NoModifier, start)
    for x, y in points[1:]:
        QTest.mouseMove(viewport, viewport_point(window, x, y))
    QTest.mouseRelease(
        viewport, button, Qt.KeyboardModifier.NoModifier, viewport_point(window, *points[-1])
    )


def click(window, x: float, y: float, button=Qt.MouseButton.LeftButton) -> None:
    viewport = window.canvas_widget.canvas.viewport()
    pos = viewport_point(window, x, y)
    QTest.mousePress(viewport, button, Qt.KeyboardModifier.NoModifier, pos)
    QTest.mouseRelease(viewport, button, Qt.KeyboardModifier.NoModifier, pos)


def typed_picker(qtbot, typed: str):
    """The class picker as the user drives it: type to search, Enter takes the top match (or the new name)."""

    def pick(classes, current="", parent=None):
        picker = ClassPicker(classes, current, parent)
        qtbot.addWidget(picker)
        picker.open()  # window-modal, as exec() shows it: its keys do not reach the main window
        picker.activateWindow()
        qtbot.waitUntil(picker.isActiveWindow, timeout=2000)
        qtbot.keyClicks(picker.search, typed)
        QTest.keyClick(picker.search, Qt.Key.Key_Return)
        parent.activateWindow()  # as when a modal dialog closes
        qtbot.waitUntil(parent.isActiveWindow, timeout=2000)
        return picker.chosen() if picker.result() else None

    return pick


def show_image(qtbot, window, index: int) -> None:
    window.session.go(index)
    qtbot.waitUntil(
        lambda: (
            window.presenter.current_image() is not None and window.session.prediction() is not None
        ),
        timeout=60_000,
    )


@pytest.mark.skipif(
    not CCP_MODEL.is_file(), reason="the bundled maskrcnn_ccp model is not installed"
)
def test_annotate_three_ccp_photos_then_retrain_from_the_menu(
    qtbot, window, photos: Path, tmp_path: Path, monkeypatch
) -> None:
    s, mode = window.session, window.annotation
    window.open_folder(photos)
    window.load_model(ModelChoice(str(CCP_MODEL), "cpu", tta=False))
    qtbot.waitUntil(lambda: window.prediction.models is not None, timeout=60_000)
    show_image(qtbot, window, 0)
    s.set_threshold(0.2)
    key(window, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert mode.active and window.annotation.toolbar.isVisible()

    # Photo 1: Tab selects the first prediction, Enter accepts it; L relabels it (type-to-search).
    key(window, Qt.Key.Key_Tab)
    chosen = s.selected_instance()
    assert chosen is not None
    key(window, Qt.Key.Key_Return)
    anns = mode.annotations()
    assert (
        len(anns) == 1
        and anns[0].source == "predicted"
        and anns[0].origin["score"] == pytest.approx(chosen.score)
    )
    # off the prediction layer
    assert mode.selected == anns[0].id and chosen not in s.prediction().instances
    monkeypatch.setattr(mode_module, "pick_class", typed_picker(qtbot, "SKIR"))
    key(window, Qt.Key.Key_L)
    assert mode.editor.aset.category_name(mode.annotations()[0].category_id) == "skirt"
    assert mode.annotations()[0].source == "edited"

    # Photo 2: Shift+Enter accepts all above the threshold; a box-drawn instance, refined by a click.
    show_image(qtbot, window, 1)
    shown = len(s.visible_indices())
    assert shown >= 1
    key(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert len(mode.annotations()) == shown and s.visible_indices() == []
    monkeypatch.setattr(mode_module, "pick_class", typed_picker(qtbot, NEW_CLASS))
    key(window, Qt.Key.Key_Escape)  # nothing selected: L sets the class of new instances
    assert mode.selected is None and s.selected is None
    key(window, Qt.Key.Key_L)
    assert mode.current_class() == NEW_CLASS
    key(window, Qt.Key.Key_B)
    assert mode.tools.tool == "box"
    with qtbot.waitSignal(mode.drawing.segmented, timeout=60_000) as drawn:
        drag(qtbot, window, [(180, 300), (260, 420), (360, 520)])
    new_id = drawn.args[0]
    drawn_ann = mode.editor.annotation(mode.file_name(), new_id)
    assert (
        drawn_ann.source == "drawn"
        and mode.editor.aset.category_name(drawn_ann.category_id) == NEW_CLASS
    )
    area_before = drawn_ann.area
    assert 0 < area_before <= 180 * 220
    with qtbot.waitSignal(mode.drawing.segmented, timeout=60_000):
        click(window, 350, 510, Qt.MouseButton.RightButton)  # right click: not part of it
    assert not mode.editor.annotation(mode.file_name(), new_id).mask()[510, 350]

    # A brush edit on the drawn instance: one stroke, one undo step, pixels added along the stroke.
    key(window, Qt.Key.Key_R)
    for _ in range(3):
        key(window, Qt.Key.Key_BracketRight)
    assert mode.radius_box.value() > 8
    before = mode.editor.annotation(mode.file_name(), new_id).mask()
    drag(qtbot, window, [(100, 200), (120, 210), (140, 220)])
    after = mode.editor.annotation(mode.file_name(), new_id).mask()
    assert after[210, 120] and not before[210, 120] and after.sum() > before.sum()
    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(mode.editor.annotation(mode.file_name(), new_id).mask(), before)
    key(
        window,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert np.array_equal(mode.editor.annotation(mode.file_name(), new_id).mask(), after)

    # Photo 3: accept one, draw a polygon, mark the image done.
    show_image(qtbot, window, 2)
    key(window, Qt.Key.Key_Escape)
    key(window, Qt.Key.Key_Tab)
    key(window, Qt.Key.Key_Return)
    key(window, Qt.Key.Key_P)
    for x, y in ((60, 60), (160, 60), (160, 160), (60, 160)):
        click(window, x, y)
    key(window, Qt.Key.Key_Return)
    assert len(mode.annotations()) == 2 and mode.annotations()[1].mask()[100, 100]
    key(window, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert mode.editor.image("0003.jpg").done
    assert window.browser.model.data(window.browser.model.index(2)).startswith("✓")
    assert window.browser.model.data(window.browser.model.index(0)).startswith("✎")
    key(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    annotation_file = photos / DEFAULT_FILE_NAME
    aset, problems = load_annotations(annotation_file)
    assert problems == [] and len(aset.images) == 3
    instances = sum(len(rec.annotations) for rec in aset.images.values())
    digest = sha256_file(annotation_file)

    # Train ▸ Mask R-CNN…: this folder's annotations, fine-tuning the loaded model, 2 steps, as a QProcess.
    out = tmp_path / "retrained"

    def fill(dialog: TrainingDialog) -> int:
        assert dialog.dataset.currentText() == ANNOTATIONS_ITEM  # offered first
        assert dialog.weights.currentText().startswith("the loaded model")  # the default
        dialog.epochs.setValue(1)
        dialog.limit.setValue(2)
        dialog.image_size.setValue(128)
        dialog.device.setCurrentText("cpu")
        dialog.out.setText(str(out))
        dialog._accept()
        return dialog.result()

    monkeypatch.setattr(TrainingDialog, "exec", fill)
    monkeypatch.setattr(
        TrainingRequest,
        "arguments",
        lambda self, orig=TrainingRequest.arguments: (
            orig(self)[:-2]
            + [
                "--batch-size",
                "1",
                "--workers",
                "0",
                "--threads",
                "1",
                "--val-steps",
                "-1",
                "--warmup-steps",
                "1",
                "--events",
                "-",
            ]
        ),
    )
    # "load it?"
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    panel = window.training
    with qtbot.waitSignal(panel.finished, timeout=300_000) as finished:
        window.train_maskrcnn_action.trigger()
    assert finished.args == ["completed"], panel.message.text() + panel.log.toPlainText()[-2000:]
    assert "--init-from" in panel.log.toPlainText() and panel.progress.step == 2
    checkpoint = panel.progress.checkpoint
    # The app loads the new model and predicts the folder again with it.
    qtbot.waitUntil(
        lambda: (
            window.prediction.models is not None
            and window.prediction.models.choice.source == checkpoint
        ),
        timeout=60_000,
    )
    qtbot.waitUntil(lambda: s.prediction() is not None, timeout=60_000)

    card = json.loads(Path(checkpoint).with_suffix(".json").read_text())
    assert card["training"]["annotations"] == {
        "file": str(annotation_file.resolve()),
        "sha256": digest,
        "images": 3,
        "instances": instances,
    }
    assert (
        card["class_names"][:56]
        == json.loads(CCP_MODEL.with_suffix(".json").read_text())["class_names"]
    )
    assert NEW_CLASS in card["class_names"] and card["training"]["fine_tuned_from"][
        "classes_added"
    ] == [NEW_CLASS]

    from fashionviewer.core.data.imageio import load_image
    from fashionviewer.core.inference.families import load_predictor

    predictor = load_predictor(checkpoint, tta=False)
    result = predictor.predict(load_image(photos / "0001.jpg"), file_name="0001.jpg")
    assert len(predictor.class_names) == 57 and result.width == 550 and result.height == 832
    assert all(inst.class_name in card["class_names"] for inst in result.instances)
