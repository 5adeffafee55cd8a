"""The window's menu bar: File (with Open Recent), View, Model and Train. The Annotate menu is annotation mode's own.

The menus see only what the window hands in: its commands (``MenuCommands``), the session, the canvas, the docks
and the recent-folders list; never the window's panels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from PySide6.QtCore import QSettings
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QWidget

from fashionviewer.core.viewer.session import ViewerSession
from fashionviewer.core.viewer.training import TRAINERS
from fashionviewer.qt.canvas import ImageCanvas
from fashionviewer.qt.panels.layers import LAYER_KEYS

MAX_RECENT = 10


class RecentFolders:
    """The folders opened last, newest first, kept in the settings under ``recentFolders``."""

    def __init__(self, settings: QSettings) -> None:
        self.settings = settings

    def folders(self) -> list[str]:
        value = self.settings.value("recentFolders", [])
        return [str(v) for v in (value if isinstance(value, list) else [value]) if v]

    def remember(self, folder: Path) -> None:
        recent = [str(folder)] + [f for f in self.folders() if f != str(folder)]
        self.settings.setValue("recentFolders", recent[:MAX_RECENT])

    def fill(self, menu: QMenu, open_folder: Callable[[str], Any]) -> None:
        """File ▸ Open Recent, rebuilt each time it opens."""
        menu.clear()
        for folder in self.folders():
            menu.addAction(folder, lambda f=folder: open_folder(f))
        if menu.isEmpty():
            menu.addAction("(none)").setEnabled(False)


def add_action(
    window: QWidget,
    menu: QMenu,
    text: str,
    slot: Callable[[], Any],
    *keys: str | QKeySequence.StandardKey,
    checkable: bool = False,
) -> QAction:
    """A menu entry whose shortcuts work whichever dock has focus (the action is the window's too)."""
    action = QAction(text, window, checkable=checkable)
    action.setShortcuts([QKeySequence(k) for k in keys])
    action.triggered.connect(lambda *_: slot())
    menu.addAction(action)
    window.addAction(action)
    return action


@dataclass(frozen=True)
class MenuCommands:
    """What the menu entries trigger; every slot takes no argument except where said."""

    choose_folder: Callable[[], Any]
    open_folder: Callable[[str], Any]  # a recent folder
    open_demo: Callable[[], Any]
    export_masks: Callable[[], Any]
    quit: Callable[[], Any]
    open_checkpoint: Callable[[], Any]
    predict_again: Callable[[], Any]
    train: Callable[[str], Any]  # a core.viewer.training.TRAINERS key
    fine_tune: Callable[[], Any]
    cancel_training: Callable[[], Any]
    use_bundled_tool_model: Callable[[], Any]


@dataclass(frozen=True)
class Menus:
    recent: QMenu
    layer_actions: dict[str, QAction]  # View ▸ Show LAYER, by layer name
    train_actions: dict[str, QAction]  # Train ▸ TITLE…, by trainer name


def build_menus(
    window: QMainWindow,
    session: ViewerSession,
    canvas: ImageCanvas,
    docks: Iterable[QDockWidget],
    recent: RecentFolders,
    commands: MenuCommands,
) -> Menus:
    """File, View, Model and Train, added to ``window``'s menu bar in that order."""
    bar = window.menuBar()
    recent_menu = _file_menu(window, bar.addMenu("&File"), recent, commands)
    layer_actions = _view_menu(window, bar.addMenu("&View"), session, canvas, docks)
    model = bar.addMenu("&Model")
    add_action(window, model, "Open Checkpoint…", commands.open_checkpoint)
    add_action(window, model, "Predict Folder Again", commands.predict_again)
    train = bar.addMenu("&Train")
    # every declared trainer (core.viewer.trainer_menu)
    train_actions = {
        name: add_action(window, train, f"{title}…", lambda n=name: commands.train(n))
        for name, title in TRAINERS.items()
    }
    add_action(window, train, "Fine-tune Loaded Model on Annotations…", commands.fine_tune)
    add_action(window, train, "Cancel Training", commands.cancel_training)
    train.addSeparator()
    add_action(window, train, "Use the Bundled Box/Click Model", commands.use_bundled_tool_model)
    return Menus(recent_menu, layer_actions, train_actions)


def _file_menu(
    window: QMainWindow, file: QMenu, recent: RecentFolders, commands: MenuCommands
) -> QMenu:
    add_action(window, file, "Open Folder…", commands.choose_folder, QKeySequence.StandardKey.Open)
    recent_menu = file.addMenu("Open Recent")
    recent_menu.aboutToShow.connect(lambda: recent.fill(recent_menu, commands.open_folder))
    add_action(window, file, "Open Demo", commands.open_demo)
    file.addSeparator()
    add_action(window, file, "Export Masks…", commands.export_masks, "Ctrl+E")
    file.addSeparator()
    add_action(window, file, "Quit", commands.quit, QKeySequence.StandardKey.Quit)
    return recent_menu


def _view_menu(
    window: QMainWindow,
    view: QMenu,
    session: ViewerSession,
    canvas: ImageCanvas,
    docks: Iterable[QDockWidget],
) -> dict[str, QAction]:
    s = session
    for text, slot, keys in (
        ("Previous Image", s.previous, ("Left", "A")),
        ("Next Image", s.next, ("Right", "D")),
        ("First Image", s.first, ("Home",)),
        ("Last Image", s.last, ("End",)),
    ):
        add_action(window, view, text, slot, *keys)
    view.addSeparator()
    add_action(window, view, "Zoom to Fit", canvas.fit, "F")
    add_action(window, view, "Actual Size (1:1)", canvas.actual_size, "1")
    add_action(window, view, "Zoom In", lambda: canvas.zoom(1.25), "+", "=")
    add_action(window, view, "Zoom Out", lambda: canvas.zoom(0.8), "-")
    add_action(window, view, "Clear Selection", lambda: s.select(None), "Escape")
    view.addSeparator()
    layer_actions: dict[str, QAction] = {}
    for name, (label, key) in LAYER_KEYS.items():
        action = add_action(
            window, view, f"Show {label}", lambda n=name: s.toggle_layer(n), key, checkable=True
        )
        action.setChecked(s.layers[name])
        layer_actions[name] = action
    s.events.layers_changed.connect(lambda n, v: layer_actions[n].setChecked(v))
    view.addSeparator()
    for dock in docks:
        view.addAction(dock.toggleViewAction())
    return layer_actions
