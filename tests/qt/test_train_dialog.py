"""The Train dialog builds its rows from each trainer's declaration, and the Train menu offers every trainer:
the parsing network's entry fine-tunes the loaded model on the folder's annotations."""

from __future__ import annotations

from pathlib import Path

import pytest

from fashionviewer.core.viewer.trainer_menu import TRAINER_MENUS
from fashionviewer.qt.dialogs.training import ANNOTATIONS_ITEM, TrainingDialog


@pytest.mark.parametrize("trainer", sorted(TRAINER_MENUS))
def test_one_row_per_declared_option(qtbot, trainer: str, tmp_path: Path) -> None:
    dialog = TrainingDialog(trainer, ["cpu"], "cpu", str(tmp_path / "out"))
    qtbot.addWidget(dialog)
    shown = [option.key for option in TRAINER_MENUS[trainer].options if option.shown]
    assert (
        list(dialog.fields) == shown
        and dialog.windowTitle() == f"Train {TRAINER_MENUS[trainer].title}"
    )
    dialog.epochs.setValue(3)
    request = dialog.request()
    assert (request.trainer, request.epochs, request.out, request.device) == (
        trainer,
        3,
        str(tmp_path / "out"),
        "cpu",
    )
    assert request.model == TRAINER_MENUS[trainer].option("model").default


def test_parsing_fine_tunes_the_loaded_model_on_the_folders_annotations(
    qtbot, tmp_path: Path
) -> None:
    from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME

    (tmp_path / DEFAULT_FILE_NAME).write_text("{}")
    dialog = TrainingDialog(
        "parsing",
        ["cpu"],
        "cpu",
        str(tmp_path / "out"),
        annotations=str(tmp_path),
        init_from="/models/fashion.pt",
    )
    qtbot.addWidget(dialog)
    assert dialog.dataset.currentText() == ANNOTATIONS_ITEM and dialog.data_path.text() == str(
        tmp_path
    )
    args = dialog.request().arguments()
    assert (
        args[args.index("--dataset") + 1] == "annotations"
        and args[args.index("--init-from") + 1] == "/models/fashion.pt"
        and "--new-classes" not in args  # the trainer's default: the head is extended
    )
    assert "frozen" in dialog.new_classes.toolTip()  # the choices explained where they are made
    assert "--items-init" not in args and "Fashion-MNIST" in dialog.items_init.toolTip()
    dialog.new_classes.setCurrentText("branch")
    dialog.instances.setCurrentText("components")
    dialog.items_init.setCurrentText("scratch")
    args = dialog.request().arguments()
    assert args[args.index("--new-classes") + 1] == "branch"
    assert args[args.index("--instances") + 1] == "components"
    assert args[args.index("--items-init") + 1] == "scratch"
    dialog.dataset.setCurrentText("ccp")  # from scratch on CCP: no start model, no folder
    args = dialog.request().arguments()
    assert "--init-from" not in args and "--data-path" not in args


def test_the_train_menu_lists_every_trainer(window) -> None:
    (train,) = [action.menu() for action in window.menuBar().actions() if action.text() == "&Train"]
    offered = [a.text() for a in train.actions() if a.text().endswith("…")]  # then Cancel Training
    assert offered == [f"{menu.title}…" for menu in TRAINER_MENUS.values()] + [
        "Fine-tune Loaded Model on Annotations…"
    ]
    assert window.train_parsing_action.text() == "Garment parsing network…"
