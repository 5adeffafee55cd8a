"""Prediction in the background, the live threshold, layer toggles, selection and details, the legend,
random-weights refusal, and the event loop staying responsive while a model runs and while stepping
through huge photos (decoded off the GUI thread, shown as a display-sized level)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fv_qt_helpers import BlobPredictor, install_blob_models, load_and_wait, scene
from PIL import ImageFile
from PySide6.QtCore import QElapsedTimer, QRectF, Qt, QTimer
from PySide6.QtTest import QTest

from fashionviewer.core.data.masks import encode_mask
from fashionviewer.core.data.predictions import ImagePrediction, Instance
from fashionviewer.core.viewer.display import DISPLAY_MAX_SIDE
from fashionviewer.core.viewer.model_choice import ModelChoice
from tests.fixtures.bad_inputs import build_bad_input_folder
from tests.fixtures.huge_images import HUGE_JPEG, build_huge_images


def test_real_model_predicts_through_the_worker(
    qtbot, window, image_folder: Path, model_choice: ModelChoice
) -> None:
    window.open_folder(image_folder)
    load_and_wait(qtbot, window, model_choice)
    if model_choice.allow_random:
        assert "RANDOM WEIGHTS" in window.model_bar.label.text()
    assert window.session.prediction().model  # a real ImagePrediction from core.inference
    assert "instances shown" in window.layers.shown.text()


def test_several_views_switch_reloads_the_model_with_one_view(
    qtbot, window, image_folder: Path, model_choice: ModelChoice
) -> None:
    window.open_folder(image_folder)
    load_and_wait(qtbot, window, model_choice)
    augmented = window.prediction.models.predictor.tta is not None
    # the demo card asks for several views
    assert ("views)" in window.model_bar.label.text()) == augmented
    chosen: list[ModelChoice] = []
    window.model_bar.choice_changed.connect(chosen.append)
    window.model_bar.tta.setChecked(False)
    assert chosen and chosen[-1].tta is False  # the window reloads the model on this signal
    qtbot.waitUntil(
        lambda: (
            window.prediction.models is not None and window.prediction.models.predictor.tta is None
        ),
        timeout=60_000,
    )
    qtbot.waitUntil(lambda: window.session.prediction() is not None, timeout=60_000)
    assert "views)" not in window.model_bar.label.text() and window.session.prediction().model


def test_threshold_layers_select(qtbot, window, image_folder: Path) -> None:
    s = window.session
    window.open_folder(image_folder)
    predictor = BlobPredictor(per_blob=2)
    install_blob_models(window, predictor)
    qtbot.waitUntil(
        lambda: s.prediction() is not None and window.presenter.current_image() is not None,
        timeout=30_000,
    )
    prediction = s.prediction()
    assert len(prediction.instances) >= 3
    # The model ran once at a low floor; the slider only filters the cached prediction.
    assert window.prediction.wait(
        60
    )  # the folder's run has ended: nothing predicts behind the slider
    calls = []
    original = predictor.predict
    predictor.predict = lambda *a, **k: calls.append(1) or original(*a, **k)
    scores = sorted(i.score for i in prediction.instances)
    window.layers.slider.setValue(0)
    qtbot.waitUntil(lambda: s.threshold == 0.0, timeout=2000)
    assert window.layers.shown.text() == f"{len(scores)} of {len(scores)} instances shown"
    cut = scores[len(scores) // 2]
    window.layers.spin.setValue(round(cut + 0.005, 2))
    shown = sum(sc >= s.threshold for sc in scores)
    assert 0 < shown < len(scores)
    assert window.layers.shown.text() == f"{shown} of {len(scores)} instances shown"
    assert not calls
    predictor.predict = original

    # Layers: keyboard shortcuts and panel check boxes both change the session, and the overlay follows.
    s.set_threshold(0.0)
    qtbot.wait(20)
    overlay = window.canvas_widget.canvas.overlay_item
    assert overlay.image is not None and overlay.image[..., 3].any()
    QTest.keyClick(window, Qt.Key.Key_M)
    QTest.keyClick(window, Qt.Key.Key_O)
    assert not s.layers["masks"] and not s.layers["outlines"]
    assert not window.layers.checks["masks"].isChecked()
    qtbot.wait(20)
    assert overlay.image is None or not overlay.image[..., 3].any()
    window.layers.checks["masks"].setChecked(True)
    assert s.layers["masks"] and window.layer_actions["masks"].isChecked()

    # Click on the top-scoring instance's pixel selects it and fills the details.
    rasters = s.rasters()
    best = max(s.visible_indices(), key=lambda i: prediction.instances[i].score)
    r = rasters[best]
    ys, xs = np.nonzero(r.mask)
    window.presenter._on_click(int(xs[0] + r.x0), int(ys[0] + r.y0))
    assert s.selected is not None
    inst = prediction.instances[s.selected]
    assert inst.class_name in window.details.title.text()
    assert (
        f"{inst.score:.3f}" in window.details.info.text() and "area" in window.details.info.text()
    )
    if window.prediction.models.classifier is not None:
        assert "Fashion-MNIST CNN" in window.details.info.text()
        # The CNN's input is made in a worker (off the GUI thread) and shown when it arrives.
        qtbot.waitUntil(
            lambda: (
                window.details.crop.pixmap() is not None
                and not window.details.crop.pixmap().isNull()
            ),
            timeout=10_000,
        )

    # Per-class visibility in the legend.
    name = inst.class_name
    window.legend.set_checked(name, False)
    assert name in s.hidden_classes and all(
        prediction.instances[i].class_name != name for i in s.visible_indices()
    )
    assert s.selected is None  # the selected instance's class was hidden
    window.legend.set_checked(name, True)


def test_whole_folder_is_predicted_current_first(qtbot, window, image_folder: Path) -> None:
    s = window.session
    window.open_folder(image_folder)
    s.go(3)
    order: list[Path] = []
    s.events.prediction_added.connect(lambda path, model: order.append(path))
    install_blob_models(window)
    qtbot.waitUntil(lambda: not window.prediction.running, timeout=60_000)
    assert order[0] == s.images[3]
    assert s.predicted_count() == 6 and len(s.errors) == 1  # the broken file is reported, not fatal
    assert window.model_bar.progress.isHidden()


def test_random_weights_refused_without_opt_in(
    qtbot, window, image_folder: Path, model_choice: ModelChoice
) -> None:
    if not model_choice.allow_random:
        return  # the shipped model is trained; nothing to refuse
    window.open_folder(image_folder)
    window.load_model(ModelChoice(model_choice.source, "cpu", allow_random=False))
    qtbot.waitUntil(lambda: window.canvas_widget.notice.isVisible(), timeout=30_000)
    assert "random" in window.canvas_widget.notice.text().lower()
    assert window.prediction.models is None


def test_event_loop_stays_responsive_while_predicting(
    qtbot, window, tmp_path: Path, model_choice: ModelChoice
) -> None:
    from PIL import Image

    for i in range(4):
        Image.fromarray(scene(100 + i, (800, 600))).save(tmp_path / f"big_{i}.png")
    window.open_folder(tmp_path)
    gaps: list[int] = []
    clock = QElapsedTimer()
    clock.start()

    def tick() -> None:
        gaps.append(clock.restart())

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    window.load_model(model_choice)
    qtbot.waitUntil(lambda: window.prediction.running, timeout=60_000)
    clock.restart()
    timer.start()
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline and window.prediction.running:
        qtbot.wait(50)
    timer.stop()
    assert len(gaps) > 20
    worst = max(gaps[1:])
    print(f"worst event-loop gap while predicting: {worst} ms over {len(gaps)} ticks")
    assert worst < 100, f"the event loop stalled for {worst} ms while predicting"


@pytest.fixture(scope="session")
def huge_folder(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, tuple[int, int]]]:
    """A 6000×8000 JPEG and a 40-megapixel PNG beside the bad-input folder (made once per test session)."""
    folder = tmp_path_factory.mktemp("huge photos")
    build_bad_input_folder(folder / "bad inputs")
    return folder, build_huge_images(folder)


def _full_rect(item) -> QRectF:
    """Where an image item's pixels land in the view (image coordinates of the photo)."""
    return item.mapRectToParent(item.boundingRect())


def test_event_loop_stays_responsive_stepping_through_huge_photos(
    qtbot, window, huge_folder, monkeypatch
) -> None:
    folder, sizes = huge_folder
    gui = threading.current_thread()
    decoded_on_gui: list[tuple[int, int]] = []
    original_load = ImageFile.ImageFile.load

    def recording_load(self):  # every Pillow decode goes through here
        if threading.current_thread() is gui and self.size[0] * self.size[1] > 2_000_000:
            decoded_on_gui.append(self.size)
        return original_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    canvas = window.canvas_widget.canvas
    textures: list[tuple[int, ...]] = []
    set_layer = canvas._set_layer
    monkeypatch.setattr(
        canvas,
        "_set_layer",
        lambda item, pixels: (
            textures.append(pixels.shape) if pixels is not None else None,
            set_layer(item, pixels),
        )[-1],
    )

    s = window.session
    assert window.open_folder(folder)
    qtbot.waitUntil(
        lambda: (
            window.presenter.current_display() is not None
            or window.canvas_widget.notice.isVisible()
        ),
        timeout=10_000,
    )
    gaps: list[int] = []
    clock = QElapsedTimer()
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: gaps.append(clock.restart()))
    clock.start()
    timer.start()
    keys = [Qt.Key.Key_Right] * (len(s.images) - 1) + [Qt.Key.Key_Left] * 3 + [Qt.Key.Key_Right] * 3
    for key in keys:  # a key every 200 ms, as a user holding an arrow key in a slow rhythm
        QTest.keyClick(window, key)
        qtbot.wait(200)
    timer.stop()
    assert s.index == len(s.images) - 1

    s.set_current(folder.resolve() / HUGE_JPEG[0])
    qtbot.waitUntil(lambda: window.presenter.current_image() is not None, timeout=60_000)
    width, height = sizes[HUGE_JPEG[0]]
    display = window.presenter.current_display()
    assert (display.width, display.height) == (width, height) and display.reduced
    assert max(display.pixels.shape[:2]) <= DISPLAY_MAX_SIDE
    # full resolution, for masks and export
    assert window.presenter.current_image().shape == (height, width, 3)
    assert canvas.image_shape == (height, width) and _full_rect(canvas.image_item) == QRectF(
        0, 0, width, height
    )

    # An instance at full resolution: its overlay is composited at the display level and lines up.
    mask = np.zeros((height, width), np.uint8)
    mask[2000:4000, 2000:4000] = 1
    s.add_prediction(
        s.current,
        ImagePrediction(
            s.current.name,
            width,
            height,
            [Instance((2000, 2000, 4000, 4000), 1, "T-shirt/top", 0.9, encode_mask(mask))],
            model="test",
        ),
    )
    s.set_threshold(0.0)
    qtbot.waitUntil(lambda: canvas.overlay_item.image is not None, timeout=5000)
    overlay = canvas.overlay_item.image
    assert overlay.shape[:2] == display.pixels.shape[:2]
    assert _full_rect(canvas.overlay_item) == QRectF(0, 0, width, height)
    rows, cols = np.nonzero(overlay[..., 3])
    scale = overlay.shape[0] / height
    assert rows.min() == pytest.approx(2000 * scale, abs=1) and cols.max() == pytest.approx(
        4000 * scale, abs=1
    )
    window.presenter._on_click(3000, 3000)  # a click in the photo's own pixels
    assert s.selected == 0

    assert decoded_on_gui == [], "a large image was decoded on the GUI thread"
    assert textures and max(max(shape[:2]) for shape in textures) <= DISPLAY_MAX_SIDE
    ticks = sorted(gaps[1:])
    worst, p99 = ticks[-1], ticks[int(0.99 * (len(ticks) - 1))]
    print(
        f"stepping through huge photos: worst event-loop gap {worst} ms, p99 {p99} ms over {len(ticks)} ticks"
    )
    # generous: benchmarks/ measures the target
    assert worst < 1000, f"the event loop stalled for {worst} ms"
