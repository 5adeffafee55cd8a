"""Help ▸ Keyboard Shortcuts: a monospace table of (what, keys) rows."""

from __future__ import annotations

from typing import Sequence

from PySide6.QtWidgets import QMessageBox, QWidget

# The window's own keys the table lists after the annotation mode's (which come from its tools and commands).
VIEW_SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("Previous / next image", "← / → (A / D)"),
    ("Zoom to fit / 1:1", "F / 1"),
    ("Show annotations layer", "Shift+A"),
)


def shortcut_text(rows: Sequence[tuple[str, str]]) -> str:
    return "\n".join(f"{keys:<22} {text}" for text, keys in rows)


def show_shortcuts(parent: QWidget, rows: Sequence[tuple[str, str]]) -> QMessageBox:
    """Open (not exec) the table of ``rows`` followed by ``VIEW_SHORTCUTS``."""
    box = QMessageBox(
        QMessageBox.Icon.NoIcon,
        "Keyboard Shortcuts",
        shortcut_text([*rows, *VIEW_SHORTCUTS]),
        parent=parent,
    )
    box.setStyleSheet("QLabel { font-family: monospace; }")
    box.open()
    return box
