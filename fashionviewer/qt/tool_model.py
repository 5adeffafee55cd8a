"""Which network the box and click tools segment with, kept across sessions.

A trained interactive model chosen in the training panel ("Use the new model for the box and click tools") is
remembered in the settings and used again at the next start; Train ▸ Use the Bundled Box/Click Model goes back.
A remembered file that is gone or cannot be loaded any more is dropped with one status line, never an error
dialog: the bundled model (or GrabCut without it) is used instead."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QSettings

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.inference.interactive_model import bundled_model_path, use_model

SETTINGS_KEY = "annotation/interactiveModel"


class ToolModelChoice:
    """Remembers and restores the box and click tools' network (``interactive_model.use_model``)."""

    def __init__(self, settings: QSettings, notify: Callable[[str, int], None]) -> None:
        self.settings = settings
        self.notify = notify

    def remembered(self) -> str | None:
        value = self.settings.value(SETTINGS_KEY)
        return str(value) if value else None

    def restore(self) -> Path | None:
        """Use the remembered model, if any; None when there is none or it cannot be used (then forgotten)."""
        path = self.remembered()
        if path is None:
            return None
        try:
            used = use_model(path)
        except WeightsError as exc:
            self.settings.remove(SETTINGS_KEY)
            self.notify(
                f"The box and click tools' model chosen earlier cannot be used ({exc}); "
                "they use the bundled one.",
                15000,
            )
            return None
        self.notify(
            f"The box and click tools use {used} (Train ▸ Use the Bundled Box/Click Model).", 8000
        )
        return used

    def remember(self, path: str) -> None:
        """The training panel's ``tool_model_chosen``: ``path`` is already in use; keep it for next time."""
        self.settings.setValue(SETTINGS_KEY, str(path))

    def use_bundled(self) -> None:
        use_model(None)
        self.settings.remove(SETTINGS_KEY)
        self.notify(
            f"The box and click tools use the bundled model ({bundled_model_path().name}).", 8000
        )
