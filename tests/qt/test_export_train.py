"""Export from the window (current image, whole folder in the background, unwritable folder) and training
from the Train menu: a real QProcess running trainers.fmnist, cancelled; completed and loaded; failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fv_qt_helpers import BlobPredictor, install_blob_models
from PySide6.QtWidgets import QDialog

from fashionviewer.core.data.fmnist import resolve_data_dir
from fashionviewer.core.runs.export import COCO_FILE
from fashionviewer.core.viewer.training import TrainingRequest
from fashionviewer.qt.dialogs.export import ExportDialog, ExportRequest
from fashionviewer.qt.dialogs.training import TrainingDialog


def _ready(qtbot, window, folder: Path) -> None:
    window.open_folder(folder)
    install_blob_models(window, BlobPredictor(per_blob=2))
    qtbot.waitUntil(lambda: window.session.prediction() is not None, timeout=30_000)


def test_export_current_image_honours_threshold_and_classes(
    qtbot, window, image_folder: Path, tmp_path: Path
) -> None:
    _ready(qtbot, window, image_folder)
    s = window.session
    s.set_threshold(0.5)
    hidden = s.prediction().instances[0].class_name
    s.set_class_visible(hidden, False)
    kept = [s.prediction().instances[i] for i in s.visible_indices()]
    worker = window.export_masks(
        ExportRequest(tmp_path / "out", ("instances", "index", "coco"), False)
    )
    qtbot.waitUntil(worker.done.is_set, timeout=20_000)
    qtbot.waitUntil(lambda: "Exported" in window.statusBar().currentMessage(), timeout=5000)
    masks = sorted((tmp_path / "out").glob("scene_00_0*.png"))
    assert len(masks) == len(kept) and not any(hidden.replace("/", "_") in m.name for m in masks)
    doc = json.loads((tmp_path / "out" / COCO_FILE).read_text())
    assert (
        doc["info"]["threshold"] == 0.5
        and doc["info"]["weights_sha256"] == "0" * 64
        and doc["info"]["model"]
    )
    assert len(doc["annotations"]) == len(kept)


def test_export_whole_folder_in_background(
    qtbot, window, image_folder: Path, tmp_path: Path
) -> None:
    _ready(qtbot, window, image_folder)
    window.prediction.cancel()  # uncached images are predicted by the export itself
    worker = window.export_masks(
        ExportRequest(tmp_path / "all", ("class", "overlay", "coco"), True)
    )
    qtbot.waitUntil(worker.done.is_set, timeout=60_000)
    qtbot.waitUntil(lambda: "Exported" in window.statusBar().currentMessage(), timeout=5000)
    assert len(list((tmp_path / "all").glob("*_classes.png"))) == 6
    assert "skipped 1 unreadable" in window.statusBar().currentMessage()
    assert len(json.loads((tmp_path / "all" / COCO_FILE).read_text())["images"]) == 6


def test_export_dialog_refuses_unwritable_folder(qtbot, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    dialog = ExportDialog(str(blocker / "out"), 0.5, [], 3)
    qtbot.addWidget(dialog)
    dialog._accept()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert "Choose another folder" in dialog.problem.text()


def _fmnist_available() -> bool:
    try:
        resolve_data_dir()
        return True
    except Exception:  # noqa: BLE001
        return False


needs_fmnist = pytest.mark.skipif(
    not _fmnist_available(),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)


def _fill_dialog(monkeypatch, out: Path, epochs: int, limit: int) -> None:
    def fake_exec(self: TrainingDialog) -> int:
        self.epochs.setValue(epochs)
        self.limit.setValue(limit)
        self.device.setCurrentText("cpu")
        self.out.setText(str(out))
        self._accept()
        return self.result()

    monkeypatch.setattr(TrainingDialog, "exec", fake_exec)


@needs_fmnist
def test_train_from_menu_then_cancel(qtbot, window, tmp_path: Path, monkeypatch) -> None:
    _fill_dialog(monkeypatch, tmp_path / "run", epochs=3, limit=640)
    monkeypatch.setattr(
        TrainingRequest,
        "arguments",
        lambda self, orig=TrainingRequest.arguments: (
            orig(self)[:-2] + ["--batch-size", "64", "--threads", "1", "--events", "-"]
        ),
    )
    window.train_fmnist_action.trigger()
    panel = window.training
    assert panel.running and window.docks["training"].isVisible()
    qtbot.waitUntil(lambda: panel.progress.step >= 1, timeout=60_000)  # live step events arrive
    assert panel.progress.steps_per_epoch == 10 and panel.bar.value() > 0
    with qtbot.waitSignal(panel.finished, timeout=60_000) as finished:
        panel.cancel()
    assert finished.args == ["cancelled"]
    assert panel.message.text().startswith("Training cancelled")
    assert not panel.load_button.isVisible()


@needs_fmnist
def test_train_one_step_completes_and_loads_weights(
    qtbot, window, image_folder: Path, tmp_path: Path, monkeypatch
) -> None:
    _ready(qtbot, window, image_folder)
    _fill_dialog(monkeypatch, tmp_path / "run", epochs=1, limit=128)
    window.train_fmnist_action.trigger()
    panel = window.training
    with qtbot.waitSignal(panel.finished, timeout=120_000) as finished:
        pass
    assert finished.args == ["completed"], panel.message.text()
    assert panel.progress.epoch_rows and "val acc" in panel.progress.curves()
    assert panel.load_button.isVisibleTo(window)
    checkpoint = panel.progress.checkpoint
    panel.load_button.click()
    qtbot.waitUntil(
        lambda: (
            window.prediction.models is not None
            and window.prediction.models.choice.classifier == checkpoint
        ),
        timeout=30_000,
    )


def test_failed_training_is_explained(qtbot, window, tmp_path: Path) -> None:
    request = TrainingRequest(
        "fmnist", "cnn3", str(tmp_path / "run"), data_path=str(tmp_path / "no-such-data")
    )
    with qtbot.waitSignal(window.training.finished, timeout=60_000) as finished:
        window.train("fmnist", request)
    assert finished.args == ["failed"]
    text = window.training.message.text()
    assert (
        text.startswith("Training failed")
        and "Fashion-MNIST not found" in text
        and "apt-get install" in text
    )
