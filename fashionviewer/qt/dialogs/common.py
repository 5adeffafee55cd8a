"""Pieces both dialogs use: a folder field with Browse…, the problem line, and OK/Cancel buttons."""

from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)


def folder_field(edit: QLineEdit, caption: str) -> QWidget:
    """``edit`` with a Browse… button that picks a folder into it."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit, 1)
    button = QPushButton("Browse…")
    button.clicked.connect(
        lambda: (
            (d := QFileDialog.getExistingDirectory(box, caption, edit.text())) and edit.setText(d)
        )
    )
    row.addWidget(button)
    return box


def problem_label() -> QLabel:
    """Where a dialog explains, in plain words, why it cannot go ahead yet."""
    label = QLabel(wordWrap=True, objectName="dialogProblem")
    label.setStyleSheet("color: #d9534f;")
    return label


def ok_cancel(dialog: QDialog, ok_text: str, on_accept: Callable[[], None]) -> QDialogButtonBox:
    buttons = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
    )
    buttons.button(QDialogButtonBox.StandardButton.Ok).setText(ok_text)
    buttons.accepted.connect(on_accept)
    buttons.rejected.connect(dialog.reject)
    return buttons
