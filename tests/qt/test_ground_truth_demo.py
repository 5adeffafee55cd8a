"""Ground truth beside predictions on a real CCP photo, the worker's cooperative cancel, and the bundled
demo (images + shipped model) giving real predictions on the first run."""

from __future__ import annotations

import threading
import time

import pytest
from fv_qt_helpers import install_blob_models

from fashionviewer.core.base.paths import DEMO_DIR, ccp_dir
from fashionviewer.core.viewer.model_choice import demo_available
from fashionviewer.qt.workers import start_worker

CCP = ccp_dir()


@pytest.mark.needs_ccp
@pytest.mark.skipif(
    CCP is None,
    reason="Clothing Co-Parsing photos not in ../shared/data/ccp (fashionviewer.core.base.paths.ccp_dir)",
)
def test_ccp_ground_truth_layer_and_matches(qtbot, window) -> None:
    window.open_folder(CCP / "photos")
    qtbot.waitUntil(lambda: window.ground_truth.gt is not None, timeout=30_000)
    assert window.ground_truth.gt.kind == "Clothing Co-Parsing"
    qtbot.waitUntil(lambda: window.presenter.current_image() is not None, timeout=10_000)
    gt_layer = window.canvas_widget.canvas.gt_item.image
    assert gt_layer is not None and gt_layer[..., 3].any()
    assert any(
        spec.text.startswith("GT ") for spec in window.canvas_widget.canvas.boxes_item._specs
    )
    install_blob_models(window)
    qtbot.waitUntil(lambda: window.session.prediction() is not None, timeout=30_000)
    qtbot.waitUntil(lambda: "TP" in window.details.gt.text(), timeout=10_000)
    text = window.details.gt.text()
    assert "annotated instances" in text and "FP" in text and "missed" in text
    window.session.toggle_layer("ground_truth")
    qtbot.wait(20)
    assert window.canvas_widget.canvas.gt_item.image is None


def test_worker_cancel_is_cooperative(qtbot) -> None:
    started = threading.Event()
    closed = threading.Event()

    def endless():
        try:
            while True:
                started.set()
                time.sleep(0.005)
                yield 1
        finally:
            closed.set()

    got: list[int] = []
    worker = start_worker(endless, on_yield=got.append)
    qtbot.waitUntil(lambda: len(got) > 3, timeout=5000)
    worker.cancel()
    qtbot.waitUntil(worker.done.is_set, timeout=5000)
    assert closed.is_set()  # the generator's finally ran


def test_worker_errors_reach_the_gui(qtbot) -> None:
    def broken():
        yield 1
        raise ValueError("boom")

    errors: list[Exception] = []
    worker = start_worker(broken, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert str(errors[0]) == "boom" and worker.done.is_set()


@pytest.mark.skipif(
    not (demo_available() and DEMO_DIR.is_dir() and any(DEMO_DIR.iterdir())),
    reason="the demo images/model are not installed in resources/ yet",
)
def test_demo_first_run_shows_real_predictions(qtbot, settings) -> None:
    from fashionviewer.qt.main_window import make_window

    window = make_window(None, settings=settings)
    qtbot.addWidget(window)
    assert window.session.folder == DEMO_DIR
    qtbot.waitUntil(lambda: window.session.prediction() is not None, timeout=60_000)
    assert "RANDOM" not in window.model_bar.label.text()
    assert window.session.counts()[0] > 0, (
        "the shipped demo model shows instances on its own demo scene"
    )
    window.session.select(0)  # the demo's scores are re-scored by its CNN: the details say so
    inst = window.session.selected_instance()
    qtbot.waitUntil(lambda: "detector" in window.details.info.text(), timeout=5_000)
    assert (
        f"{inst.score:.3f}" in window.details.info.text()
        and f"{inst.detector_score:.3f}" in window.details.info.text()
    )
    window.close()
