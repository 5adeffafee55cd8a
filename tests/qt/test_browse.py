"""Browsing: open a folder, keyboard navigation, filter, lazy thumbnails, unreadable files, recent
folders, drag and drop, and a 10,000-image folder opening within a second."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtTest import QTest


def test_open_folder_and_keyboard_navigation(qtbot, window, image_folder: Path) -> None:
    s = window.session
    assert window.open_folder(image_folder)
    assert len(s.images) == 7 and s.index == 0
    qtbot.waitUntil(lambda: window.presenter.current_image() is not None, timeout=5000)
    for key, expected in (
        (Qt.Key.Key_Right, 1),
        (Qt.Key.Key_D, 2),
        (Qt.Key.Key_Left, 1),
        (Qt.Key.Key_A, 0),
        (Qt.Key.Key_End, 6),
        (Qt.Key.Key_Home, 0),
    ):
        QTest.keyClick(window, key)
        assert s.index == expected, key
    assert "scene_00.png (1/7)" in window.windowTitle()
    assert window.recent_folders()[0] == str(image_folder.resolve())


def test_unreadable_image_shows_inline_notice(qtbot, window, image_folder: Path) -> None:
    window.open_folder(image_folder)
    s = window.session
    broken = next(p for p in s.images if "broken" in p.name)
    s.set_current(broken)
    qtbot.waitUntil(lambda: window.canvas_widget.notice.isVisible(), timeout=5000)
    assert (
        "not an image" in window.canvas_widget.notice.text()
        or "cannot" in window.canvas_widget.notice.text()
    )
    s.next()  # the rest keeps working
    qtbot.waitUntil(lambda: window.presenter.current_image() is not None, timeout=5000)
    assert not window.canvas_widget.notice.isVisible()


def test_filter_box_and_lazy_thumbnails(qtbot, window, image_folder: Path) -> None:
    window.open_folder(image_folder)
    browser = window.browser
    qtbot.keyClicks(browser.filter_edit, "BROKEN")  # case-insensitive
    qtbot.waitUntil(lambda: len(window.session.images) == 1, timeout=2000)
    assert window.session.current.name == "scene_03b_broken.jpg"
    assert browser.count_label.text().startswith("1 of 7")
    browser.filter_edit.clear()
    qtbot.waitUntil(lambda: len(window.session.images) == 7, timeout=2000)
    model = browser.model
    first = model.index(0)
    model.data(first, Qt.ItemDataRole.DecorationRole)  # as the view does when the item is shown
    qtbot.waitUntil(lambda: window.session.images[0] in model._icons, timeout=5000)


def test_drag_and_drop_a_folder(qtbot, window, image_folder: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(image_folder / "scene_02.png"))])
    event = QDropEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    assert (
        window.session.folder == image_folder.resolve()
        and window.session.current.name == "scene_02.png"
    )


def test_ten_thousand_images_open_without_decoding_them(
    qtbot, window, tmp_path: Path, monkeypatch
) -> None:
    """Opening lists files only; thumbnails decode lazily, off the GUI thread, for what is on screen.

    How long opening takes is measured by benchmarks/open_folder.py, not asserted here."""
    import fashionviewer.qt.panels.browser as browser

    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(10_000):
        (folder / f"img_{i:05d}.jpg").touch()
    import threading

    decoded: list[Path] = []
    on_gui_thread: list[Path] = []
    real = browser.load_thumbnail

    def spy(path, size):
        decoded.append(Path(path))
        if threading.current_thread() is threading.main_thread():
            on_gui_thread.append(Path(path))
        return real(path, size)

    monkeypatch.setattr(browser, "load_thumbnail", spy)
    window.open_folder(folder)
    window.session.last()
    assert len(window.session.images) == 10_000 and window.session.index == 9_999
    assert window.browser.model.rowCount() == 10_000
    # the visible thumbnails, in the background
    qtbot.waitUntil(lambda: len(decoded) > 0, timeout=5000)
    qtbot.wait(300)
    assert len(decoded) < 500, f"{len(decoded)} thumbnails decoded for one screenful"
    assert not on_gui_thread, "thumbnails must decode off the GUI thread"
