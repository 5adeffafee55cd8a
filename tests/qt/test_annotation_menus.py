"""The Annotate menu, toolbar and Help ▸ Keyboard Shortcuts come from the one tool list and the mode's declared
commands: same entries, order and keys as before the annotation state moved into the core."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from fashionviewer.core.viewer.annotation_tools import Tool

BEFORE = [  # (menu text, shortcuts) as the Annotate menu listed them
    ("Annotation Mode", ["Ctrl+A"]),
    ("Select / Pan Tool", ["Esc"]),
    ("Box Tool (then click + / right-click −)", ["B"]),
    ("Click Tool (click an object; then click + / right-click −)", ["C"]),
    ("Polygon Tool", ["P"]),
    ("Brush", ["R"]),
    ("Eraser", ["E"]),
    ("Smaller Brush", ["["]),
    ("Larger Brush", ["]"]),
    ("Accept Selected Prediction", ["Return", "Enter"]),
    ("Accept All Above the Threshold", ["Shift+Return", "Shift+Enter"]),
    ("Delete Annotation / Reject Prediction", ["Del", "Backspace"]),
    ("Relabel…", ["L"]),
    ("Next Instance", ["Tab"]),
    ("Previous Instance", ["Shift+Tab", "Backtab"]),
    ("Mark Image Done", ["Ctrl+D"]),
    ("Undo", ["Ctrl+Z"]),
    ("Redo", ["Ctrl+Shift+Z", "Ctrl+Y"]),
    ("Save Annotations", ["Ctrl+S"]),
]


def mode_io_enabled(window) -> bool:
    return all(window.annotation.actions[name].isEnabled() for name in ("import", "export"))


def test_menus_toolbar_and_help_follow_the_tool_list(qtbot, window, monkeypatch) -> None:
    bar = window.menuBar()
    assert [a.text() for a in bar.actions()] == [
        "&File",
        "&View",
        "&Model",
        "&Train",
        "&Annotate",
        "&Help",
    ]
    annotate = bar.actions()[4].menu()
    entries = [
        (a.text(), [k.toString() for k in a.shortcuts()])
        for a in annotate.actions()
        if not a.isSeparator()
    ]
    assert entries == BEFORE + [("Import Annotations…", []), ("Export Annotations…", [])]
    assert mode_io_enabled(window)  # import and export work outside annotation mode too
    mode = window.annotation
    toolbar = [a.iconText() for a in mode.toolbar.actions()[1 : 1 + len(Tool)]]
    assert (
        toolbar
        == [t.label for t in Tool]
        == ["Select", "Box", "Click", "Polygon", "Brush", "Eraser"]
    )
    assert not mode.actions["box"].isEnabled()  # only in the mode

    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "open", lambda self: shown.append(self.text()))
    help_action = bar.actions()[5].menu().actions()[0]
    assert help_action.text() == "Keyboard Shortcuts"
    help_action.trigger()
    lines = shown[0].splitlines()
    assert len(lines) == len(BEFORE) + 3 and lines[0].split() == ["Ctrl+A", "Annotation", "mode"]
    assert lines[2].startswith("B ") and lines[2].endswith(
        "Box Tool (then click + / right-click −)"
    )
    assert lines[-1].split()[0] == "Shift+A"  # the window's own keys follow the mode's


def test_escape_drops_a_half_drawn_polygon_before_leaving_the_tool(qtbot, window) -> None:
    mode = window.annotation
    mode.set_active(True)
    mode.actions["polygon"].trigger()
    assert mode.tools.tool is Tool.POLYGON and mode.actions["polygon"].isChecked()
    mode.tools.polygon = [(1.0, 1.0), (5.0, 1.0)]
    mode.actions["select"].trigger()  # Escape: drops the polygon, the tool stays
    assert mode.tools.polygon == [] and mode.state.tool is Tool.POLYGON
    assert mode.actions["polygon"].isChecked() and not mode.actions["select"].isChecked()
    mode.actions["select"].trigger()
    assert mode.tools.tool is Tool.SELECT and mode.actions["select"].isChecked()
    mode.set_active(False)
    assert (
        not window.annotation.toggle_action.isChecked() and not mode.actions["select"].isEnabled()
    )
