"""Annotation mode over another program's file at the project path (``AnnotationEditor.read_only``): the
file's instances are shown and can be selected and inspected, every editing action is disabled (the state
refuses an edit that still arrives, with the editor's one line), and the problem line says what the file is
and how to convert it (Annotate ▸ Import…, offered with the file itself as the source)."""

from __future__ import annotations

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QWidget

from fashionviewer.core.viewer.annotating import AnnotationEditor
from fashionviewer.core.viewer.annotation_tools import Tool

# the actions that change the file: off while it is read-only (select, next and previous stay)
EDITING = frozenset(
    {tool.value for tool in Tool if tool is not Tool.SELECT}
    | {"smaller", "larger", "accept", "accept_all", "delete", "relabel", "done", "undo", "redo"}
    | {"save"}
)


def enable_actions(
    actions: dict[str, QAction],
    always: set[QAction],
    widgets: tuple[QWidget, ...],
    on: bool,
    read_only: bool,
) -> None:
    """Enable the mode's actions (and its class and brush boxes) for the mode being ``on``: all of them
    while the file is writable, the non-editing ones while it is read-only; ``always`` ones in any case."""
    for name, action in actions.items():
        action.setEnabled((on and not (read_only and name in EDITING)) or action in always)
    for widget in widgets:
        widget.setEnabled(on and not read_only)


def problem_text(editor: AnnotationEditor) -> str:
    """The problem line of a file that had problems: a read-only file's one line as it is; otherwise the
    first skipped record, how many more, and that the file stays as it is until an edit."""
    if editor.read_only:
        return f"⚠ {editor.problems[0]}"
    more = f" (and {len(editor.problems) - 1} more)" if len(editor.problems) > 1 else ""
    return (
        f"⚠ {editor.problems[0]}{more}. The rest is loaded; the first edit keeps the file as "
        f"{editor.path.name}.bak before saving over it."
    )


__all__ = ["EDITING", "enable_actions", "problem_text"]
