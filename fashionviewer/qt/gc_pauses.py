"""Keep Python's full garbage collections short while the viewer runs.

CPython's full (generation 2) collection walks every tracked object, holding the GIL: with torch,
Qt and a loaded model that is several hundred thousand objects, long enough to freeze the event loop
for a visible moment whichever thread triggers it. Objects alive once the window and its model are
up (modules, classes, the network's parameters) live as long as the viewer, so they are moved to
the permanent generation (:func:`gc.freeze`), which collections skip; what each image creates is
still collected as before. ``benchmarks/viewer_responsiveness.py --case predict`` measures it.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Exempt every object alive now from later collections (call after start-up and model loads)."""
    gc.freeze()


# pyqtgraph's GarbageCollector while collection is kept to the GUI thread
_collector: object | None = None


def collect_in_gui_thread() -> None:
    """From now on Python's cycle collector runs only in the GUI thread: automatic collection is off and a
    timer collects, generation by generation, as CPython's thresholds say (pyqtgraph's ``GarbageCollector``).

    A collection triggered by an allocation in a worker thread (a model loading, an image decoding) can free
    the Python wrappers of a closed window's Qt objects there; Qt then locks the object while PySide waits
    for the GIL that the GUI thread holds while it deletes that window's children: both wait for ever."""
    global _collector
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _collector = GarbageCollector(interval=0.5)


def collect_anywhere() -> None:
    """Automatic collection again, in whichever thread allocates (scripts and tests after the last window)."""
    global _collector
    if _collector is not None:
        _collector.timer.stop()  # type: ignore[attr-defined]
        _collector = None
        gc.enable()
