"""The viewer and the persistent prediction cache (shared with ``fashionviewer predict``), and the
bad-input folder in the viewer: inline notices, navigation goes on, EXIF-rotated masks fit the picture,
thin strips and an animated GIF (its first frame, said so in the details panel) are shown and predicted."""

from __future__ import annotations

from pathlib import Path

from fv_qt_helpers import BlobPredictor, install_blob_models, load_and_wait

from fashionviewer.core.inference.predictor import Predictor
from fashionviewer.core.runs.cache import open_cache
from fashionviewer.core.viewer.model_choice import ModelChoice
from tests.fixtures.bad_inputs import build_bad_input_folder


class CountingBlobs(BlobPredictor):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def predict(self, image, file_name="", image_id=0):
        self.calls += 1
        return super().predict(image, file_name, image_id)


def _wait_idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.prediction.running, timeout=60_000)


def test_reopened_folder_comes_from_the_cache(qtbot, window, image_folder: Path) -> None:
    s = window.session
    window.open_folder(image_folder)
    first = CountingBlobs()
    install_blob_models(window, first)
    _wait_idle(qtbot, window)
    assert first.calls == 6 and s.predicted_count() == 6
    assert len(open_cache()) == 6  # the viewer filled the persistent cache

    second = CountingBlobs()  # as if the viewer were started again on the same folder
    install_blob_models(window, second)
    _wait_idle(qtbot, window)
    assert second.calls == 0 and s.predicted_count() == 6 and len(s.errors) == 1
    assert s.prediction().instances and s.prediction().file_name == s.current.name
    qtbot.waitUntil(lambda: window.presenter.current_image() is not None, timeout=5000)
    overlay = window.canvas_widget.canvas.overlay_item
    s.set_threshold(0.0)
    qtbot.waitUntil(lambda: overlay.image is not None and overlay.image[..., 3].any(), timeout=5000)


def test_folder_predicted_headless_opens_without_running_the_model(
    qtbot, window, image_folder: Path, model_choice: ModelChoice, tmp_path: Path, monkeypatch
) -> None:
    from fashionviewer.predict import main as predict

    args = [
        str(image_folder),
        "--out",
        str(tmp_path / "out"),
        "--model",
        model_choice.source,
        "--device",
        "cpu",
    ]
    # the broken file
    assert predict(args + (["--allow-random"] if model_choice.allow_random else [])) == 3
    calls: list[int] = []
    original = Predictor.predict_tensors
    monkeypatch.setattr(
        Predictor,
        "predict_tensors",
        lambda self, images, *a, **k: calls.append(len(images)) or original(self, images, *a, **k),
    )
    window.open_folder(image_folder)
    load_and_wait(qtbot, window, model_choice)
    _wait_idle(qtbot, window)
    assert calls == [] and window.session.predicted_count() == 6


def test_bad_input_folder_in_the_viewer(qtbot, window, tmp_path: Path) -> None:
    folder = tmp_path / "bad inputs"
    expect = build_bad_input_folder(folder)
    s = window.session
    assert window.open_folder(folder)
    install_blob_models(window, CountingBlobs())
    _wait_idle(qtbot, window)
    bad = {name for name, want in expect.items() if want["error"] is not None}
    assert {Path(p).relative_to(folder.resolve()).as_posix() for p in s.errors} == bad
    assert s.predicted_count() == len(expect) - len(bad)

    s.first()
    seen = 0
    for _ in range(len(s.images)):
        name = s.display_name(s.current)
        want = expect[name]
        if want["error"] is not None:
            notice = window.canvas_widget.notice
            qtbot.waitUntil(notice.isVisible, timeout=5000)
            assert s.current.name in notice.text() and want["error"] in notice.text()
        else:
            qtbot.waitUntil(lambda: window.presenter.current_image() is not None, timeout=5000)
            image = window.presenter.current_image()
            assert (image.shape[1], image.shape[0]) == tuple(want["size"]), name  # EXIF applied
            rasters = s.rasters()
            # masks fit the shown picture
            assert (rasters.width, rasters.height) == tuple(want["size"]), name
            assert not window.canvas_widget.notice.isVisible()
            # an animation: its first frame is shown and predicted, and the panel says so
            if want["frames"] > 1:
                qtbot.waitUntil(
                    lambda n=want["frames"]: f"first of {n} frames" in window.details.info.text(),
                    timeout=5000,
                )
        seen += 1
        s.next()
    assert seen == len(expect) and s.index == len(s.images) - 1
