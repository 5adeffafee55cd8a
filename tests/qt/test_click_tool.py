"""The click tool in the viewer on a real CCP photo: C, a click on an object gives its mask from a worker (the
event loop keeps running), the status bar names the learned model, and a right click refines the instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from tests.qt.test_annotation_retrain import click, key


def test_click_tool_segments_an_object_and_a_right_click_refines_it(
    qtbot, window, tmp_path: Path, ccp_root: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(ccp_root / "photos" / "0003.jpg", folder / "0003.jpg")
    mode = window.annotation
    window.open_folder(folder)
    qtbot.waitUntil(lambda: window.presenter.current_image() is not None, timeout=60_000)
    key(window, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert mode.active
    key(window, Qt.Key.Key_C)
    assert mode.tools.tool == "click"
    messages: list[str] = []
    mode.state.events.message.connect(lambda text, *_: messages.append(text))
    with qtbot.waitSignal(mode.drawing.segmented, timeout=60_000) as drawn:
        click(window, 275, 420)  # the middle of the photo: the person's clothes
    new = drawn.args[0]
    ann = mode.editor.annotation(mode.file_name(), new)
    # the click in image pixels (screen rounding: within a pixel)
    [[cx, cy, positive]] = ann.origin["clicks"]
    assert ann.source == "drawn" and positive and abs(cx - 275) <= 1 and abs(cy - 420) <= 1
    assert ann.mask()[int(cy), int(cx)]
    assert any("learned interactive model" in m for m in messages), messages
    x0, y0, x1, y1 = ann.bbox_xyxy()
    inside = np.argwhere(ann.mask())
    # another pixel of it, away from the first click
    y, x = (int(v) for v in inside[len(inside) // 3])
    with qtbot.waitSignal(mode.drawing.segmented, timeout=60_000):
        click(window, x, y, Qt.MouseButton.RightButton)
    assert not mode.editor.annotation(mode.file_name(), new).mask()[y, x]
    assert len(mode.annotations()) == 1  # refined, not a second instance
