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
from fv_qt_helpers import install_blob_models, scene
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

import fashionviewer.core.data.imageio as imageio
import fashionviewer.core.data.overlay as overlay
import fashionviewer.core.inference.parsing as parsing
import fashionviewer.core.inference.rcnn_ops as rcnn_ops
import fashionviewer.core.inference.tta as tta
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
    # the model's masks as RLE (whichever family predicts: the parsing network or a Mask R-CNN)
    (parsing, "encode_mask"): "encode a predicted mask",
    (rcnn_ops, "encode_mask"): "encode a predicted mask",
    (tta, "encode_mask"): "encode a predicted mask",
    # what load_image decodes with: OpenCV for JPEG and PNG, Pillow's pixel copy for the rest
    (imageio, "_decode_by_opencv"): "decode a JPEG or PNG",
    (imageio, "_pixels"): "copy out Pillow's pixels",
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
    Image.fromarray(scene(20, (480, 640))).save(tmp_path / "d_bitmap.bmp")  # Pillow decodes it

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


def test_a_burst_of_results_repaints_progress_and_legend_once(
    qtbot, window, image_folder: Path, monkeypatch
) -> None:
    """Results read from the cache arrive hundreds a second: the progress count and the legend take
    the latest at most every 100 ms instead of repainting for each (the GUI thread's time)."""
    s = window.session
    window.open_folder(image_folder)
    install_blob_models(window)
    qtbot.waitUntil(lambda: not window.prediction.running, timeout=60_000)
    predicted = [(path, s.prediction(path)) for path in s.images if s.prediction(path)]
    assert len(predicted) >= 5 and any(p.instances for _, p in predicted)
    qtbot.wait(300)  # the run's last refreshes are done
    values: list[int] = []
    refreshes: list[int] = []
    bar, legend = window.model_bar, window.legend
    set_value = bar.progress.setValue
    monkeypatch.setattr(bar.progress, "setValue", lambda v: (values.append(v), set_value(v)))
    refresh = legend.refresh
    monkeypatch.setattr(legend, "refresh", lambda: (refreshes.append(1), refresh()))

    total = 10 * len(predicted)
    bar.set_progress(0, total)  # a run starts: shown at once
    qtbot.waitUntil(lambda: bar.progress.isVisible() and bar.cancel.isVisible(), timeout=5_000)
    assert values == [0]
    for done in range(1, total + 1):  # in one turn of the event loop, as a burst comes
        path, prediction = predicted[done % len(predicted)]
        s.add_prediction(path, prediction)
        bar.set_progress(done, total)
    assert values == [0] and refreshes == []
    qtbot.waitUntil(lambda: values == [0, total] and refreshes == [1], timeout=5_000)
    qtbot.wait(250)
    assert values == [0, total] and refreshes == [1]  # nothing more after the burst
    current = s.prediction()
    name = current.instances[0].class_name if current and current.instances else None
    if name is not None:  # the legend counts the current photo's instances
        texts = [legend.list.item(i).text() for i in range(legend.list.count())]
        assert any(t.startswith(name) and "(" in t for t in texts), texts
    bar.set_progress(0, 0)  # the run ends: hidden at once
    assert bar.progress.isHidden() and bar.cancel.isHidden()


def test_annotation_layer_is_shown_without_a_per_pixel_conversion(qtbot, monkeypatch) -> None:
    """The annotations' RGBA layer goes to pyqtgraph as it is, on each render and each brush
    preview: levels of (0, 255) made pyqtgraph rescale every pixel on the GUI thread."""
    from fashionviewer.core.data.annotations import Annotation
    from fashionviewer.core.data.masks import encode_mask
    from fashionviewer.qt.annotation.layer import AnnotationLayer
    from fashionviewer.qt.canvas import ImageCanvas

    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(600, 400)
    canvas.show()
    canvas.set_image(scene(3, (900, 600)))
    layer = AnnotationLayer(canvas, lambda name, category_id: category_id)
    mask = np.zeros((600, 900), np.uint8)
    mask[100:300, 200:500] = 1
    annotations = [Annotation(1, 2, encode_mask(mask), "drawn")]
    conversions: list[str] = []
    for name in NEVER:
        original = getattr(*name)
        monkeypatch.setattr(
            *name, lambda *a, _n=name[1], _o=original, **k: (conversions.append(_n), _o(*a, **k))[1]
        )
    layer.render(annotations, lambda category_id: "shirt", 600, 900)
    canvas.viewport().repaint()
    stroke = np.zeros((600, 900), bool)
    stroke[350:380, 100:140] = True
    layer.paint_region(None, stroke, 90, 340, 150, 390, (10, 200, 30))  # a brush preview
    layer.item.render()  # what its next paint does
    assert conversions == []
    shown = layer.item.qimage  # the QImage pyqtgraph paints: the layer's own pixels
    assert (shown.width(), shown.height()) == (900, 600)
    assert layer.rgba[200, 300, 3] > 0 and layer.rgba[360, 120, 1] == 200
    assert layer.rgba[50, 50, 3] == 0
