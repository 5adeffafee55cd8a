"""The annotation loop on the real-photo model: a folder of real CCP photos with its annotation file, `fashion`
loaded, Train ▸ Fine-tune Loaded Model on Annotations… runs trainers.parsing as the real QProcess, the panel
shows its curves, and the viewer loads the new model, predicts again and shows its card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from fashionviewer.core.base.paths import MODELS_DIR, sha256_file
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME
from fashionviewer.core.data.datasets.ccp import CCPDataset
from fashionviewer.core.viewer.model_choice import ModelChoice
from fashionviewer.core.viewer.training import TrainingRequest
from fashionviewer.qt.dialogs.training import ANNOTATIONS_ITEM, TrainingDialog
from tests.fixtures.annotated_folder import write_annotated_folder

FASHION = MODELS_DIR / "fashion.pt"


@pytest.mark.skipif(not FASHION.is_file(), reason="the bundled fashion model is not installed")
def test_fine_tune_the_loaded_parsing_model_from_the_train_menu(
    qtbot, window, ccp_root: Path, tmp_path: Path, monkeypatch
) -> None:
    dataset = CCPDataset(ccp_root, "train", taxonomy="imaterialist", limit=3)
    folder = tmp_path / "photos"
    annotation_file = write_annotated_folder(
        folder,
        dataset.coco_ground_truth(),
        {entry.file_name: entry.path for entry in dataset.images},
    )
    digest = sha256_file(annotation_file)
    window.open_folder(folder)
    window.load_model(ModelChoice(str(FASHION), "cpu", tta=False))
    qtbot.waitUntil(lambda: window.prediction.models is not None, timeout=60_000)
    out = tmp_path / "fine-tuned"

    def fill(dialog: TrainingDialog) -> int:
        assert dialog.trainer == "parsing"  # the loaded model's family picks the trainer
        assert dialog.dataset.currentText() == ANNOTATIONS_ITEM and dialog.data_path.text() == str(
            folder
        )
        dialog.epochs.setValue(2)
        dialog.out.setText(str(out))
        dialog._accept()
        return dialog.result()

    monkeypatch.setattr(TrainingDialog, "exec", fill)
    # a few replayed photos, one thread: a quick real run
    monkeypatch.setattr(
        TrainingRequest,
        "arguments",
        lambda self, orig=TrainingRequest.arguments: (
            orig(self)[:-2] + ["--limit", "4", "--threads", "1", "--events", "-"]
        ),
    )
    # "load it?"
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    (action,) = [a for a in window.menuBar().actions() if a.text() == "&Train"]
    (fine_tune,) = [
        a for a in action.menu().actions() if a.text() == "Fine-tune Loaded Model on Annotations…"
    ]
    panel = window.training
    with qtbot.waitSignal(panel.finished, timeout=300_000) as finished:
        fine_tune.trigger()
    assert finished.args == ["completed"], panel.message.text() + panel.log.toPlainText()[-2000:]
    log = panel.log.toPlainText()
    assert (
        "trainers.parsing" in log
        and "--dataset annotations" in log
        and f"--init-from {FASHION}" in log
    )
    curves = panel.progress.curves()
    # live curves, one point per epoch
    assert len(curves["train loss"]) == 2 and len(curves["miou"]) == 2
    checkpoint = panel.progress.checkpoint
    qtbot.waitUntil(
        lambda: (
            window.prediction.models is not None
            and window.prediction.models.choice.source == checkpoint
        ),
        timeout=60_000,
    )
    qtbot.waitUntil(lambda: window.session.prediction() is not None, timeout=60_000)

    card = json.loads(Path(checkpoint).with_suffix(".json").read_text())
    assert (
        card["annotations"]["file"] == str(annotation_file.resolve())
        and card["annotations"]["sha256"] == digest
    )
    assert card["fine_tuned_from"]["sha256"] == sha256_file(FASHION)
    # the model panel says what the weights were trained on
    tooltip = window.model_bar.label.toolTip()
    assert (
        str(annotation_file.resolve()) in tooltip
        and digest[:12] in tooltip
        and card["date"] in tooltip
    )


def test_fine_tune_without_annotations_says_what_is_missing(
    qtbot, window, tmp_path: Path, monkeypatch
) -> None:
    said: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda _parent, _title, text: said.append(text))
    started: list[str] = []
    window.annotation.fine_tune(started.append)
    assert started == [] and said and "Nothing to fine-tune yet" in said[0]
    assert not (tmp_path / DEFAULT_FILE_NAME).exists()
