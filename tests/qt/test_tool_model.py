"""The box and click tools' network chosen in the training panel is remembered across sessions (settings), a
remembered file that is gone falls back to the bundled model with one status line, and Train ▸ Use the
Bundled Box/Click Model goes back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fashionviewer.core.inference import interactive_model
from fashionviewer.qt.tool_model import SETTINGS_KEY


@pytest.fixture
def trained(tmp_path: Path):
    """A trained interactive model file of its own (the bundled weights under another name)."""
    bundled = interactive_model.bundled_model_path()
    path = tmp_path / "mine" / "model.pt"
    path.parent.mkdir()
    shutil.copy(bundled, path)
    shutil.copy(bundled.with_suffix(".json"), path.with_suffix(".json"))
    yield path
    interactive_model.use_model(None)


def _train_menu_action(window, text: str):
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Train")
    return next(a for a in menu.actions() if a.text() == text)


def _new_window(qtbot, settings):
    from fashionviewer.qt.main_window import MainWindow

    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    return window


def test_a_chosen_model_is_used_again_at_the_next_start_until_the_bundled_one_is_chosen(
    qtbot, window, settings, trained
) -> None:
    panel = window.training
    panel.progress.checkpoint = str(trained)  # as a finished interactive run leaves it
    panel.use_button.show()
    panel.use_button.click()
    assert interactive_model.model_in_use_path() == trained
    assert settings.value(SETTINGS_KEY) == str(trained)
    window.close()
    interactive_model.use_model(None)  # the viewer closed: the process would start afresh

    again = _new_window(qtbot, settings)
    assert interactive_model.model_in_use_path() == trained
    assert str(trained) in again.statusBar().currentMessage()
    _train_menu_action(again, "Use the Bundled Box/Click Model").trigger()
    assert interactive_model.model_in_use_path() == interactive_model.bundled_model_path()
    assert settings.value(SETTINGS_KEY) is None
    assert "bundled" in again.statusBar().currentMessage()
    again.close()


def test_a_remembered_model_that_is_gone_falls_back_to_the_bundled_one(
    qtbot, settings, trained
) -> None:
    settings.setValue(SETTINGS_KEY, str(trained))
    trained.unlink()
    window = _new_window(qtbot, settings)
    assert interactive_model.model_in_use_path() == interactive_model.bundled_model_path()
    message = window.statusBar().currentMessage()
    assert "cannot be used" in message and "bundled" in message and "\n" not in message
    assert settings.value(SETTINGS_KEY) is None  # forgotten: no line at every start
    window.close()
