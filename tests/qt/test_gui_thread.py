"""The GUI thread only shows things: while the model predicts and the user steps through a folder with a
large photo, every decode, mask raster, resampling, CNN input and pixel conversion runs in a worker.

Structural, not timed: each heavy function is wrapped to record the thread that runs it; the test fails if
any ran on the GUI thread, and also if one never ran at all (then it would prove nothing)."""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyqtgraph.functions as pg_functions
from fv_qt_helpers import scene
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

import fashionviewer.core.data.overlay as overlay
import fashionviewer.core.models.classifier as classifier
import fashionviewer.core.runs.step as step
import fashionviewer.qt.panels.browser as browser
import fashionviewer.qt.presenter as presenter
from fashionviewer.core.viewer.display import DISPLAY_MAX_SIDE
from fashionviewer.core.viewer.model_choice import ModelChoice, photo_model_available

HEAVY = {  # (module, name): what it does
    (presenter, "load_display_image"): "decode a display level",
    (presenter, "load_image"): "decode full-resolution pixels for the canvas",
    (step, "load_image"): "decode for the model",
    (presenter, "scaled_rasters"): "resample masks onto a display level",
    (overlay, "raster_from_rle"): "decode a mask into its raster",
    (classifier, "preprocess_crop"): "make a CNN input",
    (browser, "load_thumbnail"): "decode a thumbnail",
}
NEVER = {  # pyqtgraph's per-pixel conversions: the canvas hands uint8 layers over as they are
    (pg_functions, "makeARGB"): "convert a layer to ARGB",
    (pg_functions, "rescaleData"): "rescale a layer's levels",
}


def test_stepping_while_predicting_leaves_heavy_work_to_workers(
    qtbot, window, tmp_path: Path, monkeypatch, model_choice: ModelChoice
) -> None:
    # larger than a display level: its masks are resampled for display
    large = (DISPLAY_MAX_SIDE + 952, 2200)
    Image.fromarray(np.asarray(Image.fromarray(scene(7)).resize(large))).save(
        tmp_path / "b_large.jpg", quality=90
    )
    for i in range(4):
        Image.fromarray(scene(i, (640, 480))).save(tmp_path / f"a_{i}.png")
        Image.fromarray(scene(10 + i, (480, 640))).save(tmp_path / f"c_{i}.jpg")
    (tmp_path / "c_broken.jpg").write_bytes(b"not a JPEG")

    gui = threading.get_ident()
    threads: dict[str, set[str]] = defaultdict(set)
    for table in (HEAVY, NEVER):
        for (module, name), what in table.items():

            def recording(*args, _original=getattr(module, name), _what=what, **kwargs):  # noqa: B008 - bound now
                threads[_what].add("GUI" if threading.get_ident() == gui else "worker")
                return _original(*args, **kwargs)

            monkeypatch.setattr(module, name, recording)

    s = window.session
    assert window.open_folder(tmp_path)
    # The real-photo model when it is shipped (what the issue measured), else the tests' detector.
    window.load_model(ModelChoice("fashion") if photo_model_available() else model_choice)
    qtbot.waitUntil(lambda: window.prediction.running, timeout=120_000)
    count = len(s.images)
    for key in [Qt.Key.Key_Right] * (count - 1) + [Qt.Key.Key_Left] * (count - 1):
        QTest.keyClick(window, key)
        qtbot.wait(150)
    # stay on the large photo until it is predicted and shown
    s.set_current(tmp_path.resolve() / "b_large.jpg")
    qtbot.waitUntil(lambda: not window.prediction.running, timeout=180_000)
    qtbot.waitUntil(lambda: window.presenter.current_image() is not None, timeout=60_000)
    qtbot.waitUntil(
        lambda: window.canvas_widget.canvas.overlay_item.image is not None, timeout=30_000
    )
    # the whole picture's CNN input
    qtbot.waitUntil(lambda: not window.details.crop.isHidden(), timeout=30_000)
    qtbot.wait(300)  # thumbnails scrolled into sight

    on_gui = {what: sorted(where) for what, where in threads.items() if "GUI" in where}
    assert on_gui == {}, f"ran on the GUI thread: {on_gui}"
    never_ran = [what for what in HEAVY.values() if what not in threads]
    assert never_ran == [], f"never ran, so the test shows nothing about them: {never_ran}"
    assert not any(what in threads for what in NEVER.values()), dict(threads)
    # the large photo went through the display-level path
    assert window.presenter.current_display().reduced
