"""Loading a model moves what is alive into the permanent generation (full collections skip it), and
what the viewer creates afterwards is still collected."""

from __future__ import annotations

import gc
import weakref

import pytest

from fashionviewer.core.models.domain import DEMO_MODEL
from fashionviewer.core.viewer.model_choice import ModelChoice, demo_available


class _Node:
    pass


@pytest.mark.skipif(not demo_available(), reason="the bundled demo model is not installed")
def test_a_loaded_model_is_frozen_and_later_garbage_is_still_collected(qtbot, window) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    window.load_model(ModelChoice(DEMO_MODEL, "cpu", tta=False))
    qtbot.waitUntil(lambda: window.prediction.models is not None, timeout=60_000)
    frozen = gc.get_freeze_count()
    parameters = list(window.prediction.models.predictor.model.parameters())
    assert frozen > 10_000 and len(parameters) > 10  # torch, Qt and the network: all exempt now

    cycle = _Node()
    cycle.self = cycle  # only the cycle collector can free it
    alive = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert alive() is None
    gc.unfreeze()


def test_cycles_are_collected_in_the_gui_thread_only_while_a_window_is_open(qtbot, window) -> None:
    """A worker thread's allocations never run the cycle collector (it could free Qt objects there and
    deadlock with the GUI thread); the GUI thread's timer collects what the worker left."""
    import threading

    assert not gc.isenabled()  # the window keeps collection in the GUI thread
    collected_in: list[str] = []

    def note(phase: str, info: dict) -> None:
        if phase == "start":
            collected_in.append(threading.current_thread().name)

    def worker() -> None:
        for _ in range(20_000):  # far past generation 0's threshold
            cycle = _Node()
            cycle.self = cycle

    gc.callbacks.append(note)
    try:
        thread = threading.Thread(target=worker, name="worker")
        thread.start()
        thread.join()
        assert "worker" not in collected_in
        qtbot.waitUntil(lambda: "MainThread" in collected_in, timeout=5_000)
    finally:
        gc.callbacks.remove(note)
