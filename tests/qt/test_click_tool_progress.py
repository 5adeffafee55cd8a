"""The click tool shows the mask as it is computed, on a real CCP validation photo: right after the click its
marker and a busy cursor, then the coarse mask of the first crop (painted before the zoom-in pass ends), then
the final one; two quick clicks on the instance drop the first, stale result and apply one with both."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from tests.qt.test_annotation_retrain import click, drag, key


def _zooming_click(ccp_root: Path) -> tuple[Path, tuple[int, int]]:
    """A validation photo and a garment's innermost point whose lone click zooms in (a coarse mask first)."""
    import cv2

    from fashionviewer.core.data.datasets.ccp import CCPDataset
    from fashionviewer.core.data.imageio import load_image
    from fashionviewer.core.inference.interactive import InteractiveSession, segment_steps

    dataset = CCPDataset(ccp_root, "val", taxonomy="imaterialist", limit=6)
    for index, entry in enumerate(dataset.images):
        image = load_image(entry.path)
        for ann in dataset._annotations(index):
            mask = np.asarray(ann["segmentation"]).astype(np.uint8)
            distance = cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
            y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
            if distance[y, x] < 6:
                continue  # a click the screen's rounding could move off the garment
            steps = segment_steps(image, positive=[(x, y)], session=InteractiveSession())
            if next(steps, None) is not None:
                return Path(entry.path), (int(x), int(y))
    raise AssertionError("no garment of 6 validation photos zooms in from a lone click")


def test_a_click_shows_its_marker_then_the_coarse_mask_then_the_final_one(
    qtbot, window, tmp_path: Path, ccp_root: Path
) -> None:
    photo, (x, y) = _zooming_click(ccp_root)
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photo, folder / photo.name)
    mode = window.annotation
    window.open_folder(folder)
    qtbot.waitUntil(lambda: window.presenter.current_image() is not None, timeout=60_000)
    key(window, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    key(window, Qt.Key.Key_C)
    tools, drawing = mode.tools, mode.drawing
    viewport = window.canvas_widget.canvas.viewport()
    seen: list[tuple] = []
    drawing.previewed.connect(
        lambda target: seen.append(("coarse", target, tools.pending, mode.status.text()))
    )
    drawing.segmented.connect(lambda target: seen.append(("final", target)))
    with qtbot.waitSignal(drawing.segmented, timeout=60_000):
        click(window, x, y)
        # pending, before any result: the click's marker, a busy cursor, the status says so
        assert drawing.segmenting and tools.pending and tools.pending_clicks.isVisible()
        assert viewport.cursor().shape() == Qt.CursorShape.BusyCursor
        assert "segmenting" in mode.status.text()
    qtbot.waitUntil(lambda: not drawing.segmenting, timeout=10_000)
    # one coarse mask per zoom-in pass (at most two), each standing in for the new instance while pending
    *coarse, final = seen
    assert 1 <= len(coarse) <= 2 and final[0] == "final", seen
    assert all(c[:3] == ("coarse", None, True) and "coarse mask shown" in c[3] for c in coarse)
    new = final[1]
    assert mode.editor.annotation(mode.file_name(), new).mask()[y, x]
    assert not tools.pending and not tools.pending_clicks.isVisible()
    assert viewport.cursor().shape() == Qt.CursorShape.CrossCursor

    # two quick right clicks inside the mask: the first one's result is stale, only one is applied
    inside = np.argwhere(mode.editor.annotation(mode.file_name(), new).mask())
    (y1, x1), (y2, x2) = (inside[len(inside) // 4], inside[3 * len(inside) // 4])
    seen.clear()
    click(window, int(x1), int(y1), Qt.MouseButton.RightButton)
    click(window, int(x2), int(y2), Qt.MouseButton.RightButton)
    assert tools.pending and tools.pending_removals.isVisible()
    qtbot.waitUntil(lambda: any(s[0] == "final" for s in seen), timeout=60_000)
    qtbot.waitUntil(lambda: not drawing.segmenting, timeout=10_000)
    qtbot.wait(200)  # nothing else arrives
    assert [s for s in seen if s[0] == "final"] == [("final", new)], seen
    mask = mode.editor.annotation(mode.file_name(), new).mask()
    assert not mask[int(y1), int(x1)] and not mask[int(y2), int(x2)] and mask[y, x]
    assert len(mode.annotations()) == 1 and not tools.pending


def test_a_click_on_the_next_image_made_while_the_last_one_still_segments_is_not_lost(
    qtbot, window, tmp_path: Path, ccp_root: Path, monkeypatch
) -> None:
    import threading

    from fashionviewer.qt.annotation import drawing as drawing_module

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("0003.jpg", "0004.jpg"):
        shutil.copy(ccp_root / "photos" / name, folder / name)
    # the first photo's segmentation waits until the test lets it go: a slow click, deterministically
    gate, entered, real = threading.Event(), threading.Event(), drawing_module.segment_steps

    def gated(*args, **kwargs):
        entered.set()
        gate.wait(60)
        return (yield from real(*args, **kwargs))

    monkeypatch.setattr(drawing_module, "segment_steps", gated)
    mode = window.annotation
    window.open_folder(folder)
    qtbot.waitUntil(lambda: window.presenter.current_image() is not None, timeout=60_000)
    key(window, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    key(window, Qt.Key.Key_C)
    assert mode.file_name() == "0003.jpg"
    click(window, 275, 420)
    assert mode.drawing.segmenting
    assert entered.wait(30)  # past the worker's cancel point: running until the gate opens
    window.session.next()
    qtbot.waitUntil(lambda: mode.file_name() == "0004.jpg", timeout=60_000)
    qtbot.waitUntil(lambda: window.presenter.current_image() is not None, timeout=60_000)
    assert mode.drawing.segmenting  # the first photo's click is still running
    with qtbot.waitSignal(mode.drawing.segmented, timeout=60_000) as drawn:
        click(window, 275, 420)  # asked while busy: runs when the stale one ends
        gate.set()
    ann = mode.editor.annotation("0004.jpg", drawn.args[0])
    assert ann.mask()[420, 275] and len(mode.annotations()) == 1
    qtbot.waitUntil(lambda: not mode.drawing.segmenting, timeout=10_000)
    assert mode.editor.annotations("0003.jpg") == []  # the first photo's result was not applied


def test_a_box_keeps_its_outline_and_a_busy_cursor_until_its_mask_arrives(
    qtbot, window, tmp_path: Path, ccp_root: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(ccp_root / "photos" / "0003.jpg", folder / "0003.jpg")
    mode = window.annotation
    window.open_folder(folder)
    qtbot.waitUntil(lambda: window.presenter.current_image() is not None, timeout=60_000)
    key(window, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    key(window, Qt.Key.Key_B)
    tools = mode.tools
    viewport = window.canvas_widget.canvas.viewport()
    with qtbot.waitSignal(mode.drawing.segmented, timeout=60_000) as drawn:
        drag(qtbot, window, [(180, 300), (260, 420), (360, 520)])
        assert tools.pending and tools.pending_box.isVisible()
        rect = tools.pending_box.rect()
        assert abs(rect.left() - 180) <= 1 and abs(rect.bottom() - 520) <= 1
        assert viewport.cursor().shape() == Qt.CursorShape.BusyCursor
    qtbot.waitUntil(lambda: not mode.drawing.segmenting, timeout=10_000)
    assert not tools.pending_box.isVisible()
    assert viewport.cursor().shape() == Qt.CursorShape.CrossCursor
    assert mode.editor.annotation(mode.file_name(), drawn.args[0]).mask().any()
