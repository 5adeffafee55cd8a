"""The window's menus and docks (qt/menus.py, qt/docks.py), File ▸ Open Recent, and the seams of the
export and training flows (qt/export_flow.py, qt/training_flow.py) that need no model run: refusing to
export without a model, and where a finished run's checkpoint goes."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMessageBox

from fashionviewer.core.viewer.training import TRAINERS, TrainingRequest
from fashionviewer.qt.menus import MAX_RECENT, RecentFolders
from fashionviewer.qt.training_flow import load_trained


def _entries(window, title: str) -> list[tuple[str, list[str]]]:
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == title)
    return [
        (a.text(), [k.toString() for k in a.shortcuts()])
        for a in menu.actions()
        if not a.isSeparator()
    ]


def _standard(key: QKeySequence.StandardKey) -> str:
    return QKeySequence(key).toString()


def test_file_model_and_train_menus(window) -> None:
    assert _entries(window, "&File") == [
        ("Open Folder…", [_standard(QKeySequence.StandardKey.Open)]),
        ("Open Recent", []),
        ("Open Demo", []),
        ("Export Masks…", ["Ctrl+E"]),
        ("Quit", [_standard(QKeySequence.StandardKey.Quit)]),  # none on some platforms
    ]
    assert _entries(window, "&Model") == [("Open Checkpoint…", []), ("Predict Folder Again", [])]
    train = [text for text, _keys in _entries(window, "&Train")]
    assert train == [f"{title}…" for title in TRAINERS.values()] + [
        "Fine-tune Loaded Model on Annotations…",
        "Cancel Training",
        "Use the Bundled Box/Click Model",
    ]
    for name, title in TRAINERS.items():
        assert getattr(window, f"train_{name}_action").text() == f"{title}…"


def test_view_layer_entries_follow_the_session(window) -> None:
    s = window.session
    for name, action in window.layer_actions.items():
        before = s.layers[name]
        assert action.isChecked() == before
        action.trigger()  # the menu entry toggles the session's layer ...
        assert s.layers[name] == (not before) and action.isChecked() == (not before)
        s.toggle_layer(name)  # ... and a change elsewhere checks the entry
        assert s.layers[name] == before and action.isChecked() == before


def test_open_recent_lists_newest_first_and_opens_one(
    window, image_folder: Path, tmp_path: Path
) -> None:
    recent = window.menus.recent
    recent.aboutToShow.emit()
    assert [a.text() for a in recent.actions()] == ["(none)"]
    assert not recent.actions()[0].isEnabled()
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(image_folder / "scene_00.png", other / "only.png")
    assert window.open_folder(image_folder) and window.open_folder(other)
    recent.aboutToShow.emit()
    expected = [str(other.resolve()), str(image_folder.resolve())]
    assert [a.text() for a in recent.actions()] == expected
    recent.actions()[1].trigger()
    assert window.session.folder == image_folder.resolve() and len(window.session.images) == 7
    assert window.recent_folders() == expected[::-1]


def test_recent_folders_keep_the_newest_ten_without_repeats(settings, tmp_path: Path) -> None:
    recent = RecentFolders(settings)
    assert recent.folders() == []
    recent.remember(
        tmp_path / "only"
    )  # one folder is stored as a plain string, read back as a list
    settings.sync()
    assert RecentFolders(settings).folders() == [str(tmp_path / "only")]
    for i in range(12):
        recent.remember(tmp_path / f"f{i}")
    recent.remember(tmp_path / "f5")
    folders = recent.folders()
    assert len(folders) == MAX_RECENT and len(set(folders)) == MAX_RECENT
    assert folders[:3] == [str(tmp_path / n) for n in ("f5", "f11", "f10")]
    assert str(tmp_path / "f1") not in folders and str(tmp_path / "only") not in folders


def test_export_without_a_model_says_what_is_missing(
    window, image_folder: Path, monkeypatch
) -> None:
    shown: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "information", lambda _parent, _title, text: shown.append(text)
    )
    assert window.export_masks() is None  # no folder, no model
    window.open_folder(image_folder)
    window.prediction.cancel()
    assert window.prediction.models is None and window.export_masks() is None
    assert shown == ["Open a folder and load a model first."] * 2 and window.export_worker is None


def test_trained_detector_joins_the_model_bar_and_loads(window, tmp_path: Path) -> None:
    checkpoint = str(tmp_path / "run" / "model_final.pt")
    bar = window.model_bar
    bar.tta.setChecked(False)
    loads: list = []
    request = TrainingRequest("maskrcnn", "maskrcnn_mobilenet_v3_light", str(tmp_path / "run"))
    load_trained((request, checkpoint), window.prediction, bar, loads.append, lambda *_: None)
    assert bar.model.currentData() == checkpoint and bar.model.currentText() == "model_final.pt"
    assert len(loads) == 1
    choice = loads[0]
    assert (choice.source, choice.device, choice.tta) == (
        checkpoint,
        bar.device.currentText(),
        False,
    )


def test_trained_cnn_without_a_detector_waits_for_one(window, tmp_path: Path) -> None:
    bar = window.model_bar
    bar.model.setCurrentIndex(bar.model.count() - 1)  # "Open checkpoint…": no detector chosen
    assert bar.current_choice() is None and window.prediction.models is None
    loads: list = []
    status: list[str] = []
    request = TrainingRequest("fmnist", "cnn3", str(tmp_path / "run"))
    cnn = str(tmp_path / "run" / "cnn.pt")
    load_trained(
        (request, cnn), window.prediction, bar, loads.append, lambda t, _ms: status.append(t)
    )
    assert loads == [] and status == [f"New CNN weights: {cnn}; load a detector to use them."]
    bar.model.setCurrentIndex(0)  # a bundled detector chosen (not loaded): the CNN joins it
    load_trained((request, cnn), window.prediction, bar, loads.append, lambda *_: None)
    assert (
        len(loads) == 1 and loads[0].classifier == cnn and loads[0].source == bar.model.itemData(0)
    )


def test_docks_and_their_view_entries(window) -> None:
    docks = window.docks
    assert list(docks) == ["browser", "layers", "legend", "details", "training"]
    assert [d.windowTitle() for d in docks.values()] == [
        "Images",
        "Layers",
        "Classes",
        "Details",
        "Training",
    ]
    assert [d.isVisible() for d in docks.values()] == [True, True, True, True, False]
    assert docks["details"].widget().widget() is window.details  # scrolled, not cut
    view = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    toggles = view.actions()[-len(docks) :]
    assert toggles == [d.toggleViewAction() for d in docks.values()]
    toggles[-1].trigger()  # View ▸ Training shows the panel
    assert docks["training"].isVisible()
