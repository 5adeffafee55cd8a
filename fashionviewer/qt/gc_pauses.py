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
