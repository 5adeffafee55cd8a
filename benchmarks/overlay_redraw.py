"""How long re-filtering + redrawing one image with 100 instances takes (threshold slider, class toggle).

Measures (a) the pure numpy part: ``ViewerSession.visible_indices`` + ``core.overlay.composite`` from
cached rasters, and (b) the viewer's whole redraw (``CanvasPresenter.redraw``: composite, boxes and
captions handed to the canvas) offscreen. Masks are decoded once before timing, as in the viewer.

    python benchmarks/overlay_redraw.py [--instances 100] [--size 1024x768] [--repeats 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from fashionviewer.core.data.masks import encode_mask  # noqa: E402
from fashionviewer.core.data.overlay import PredictionRasters, composite  # noqa: E402
from fashionviewer.core.data.predictions import ImagePrediction, Instance  # noqa: E402
from fashionviewer.core.viewer.session import ViewerSession  # noqa: E402


def make_prediction(n: int, width: int, height: int, seed: int = 0) -> ImagePrediction:
    rng = np.random.default_rng(seed)
    instances = []
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(n):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(15, width / 6), rng.uniform(15, height / 6)
        mask = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1).astype(np.uint8)
        ys, xs = np.nonzero(mask)
        box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else (0, 0, 1, 1)
        label = int(rng.integers(1, 11))
        instances.append(
            Instance(box, label, f"class {label}", float(rng.uniform(0.05, 1.0)), encode_mask(mask))
        )
    return ImagePrediction("bench.png", width, height, instances)


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--size", default="1024x768")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    prediction = make_prediction(args.instances, width, height)

    start = time.perf_counter()
    rasters = PredictionRasters(prediction.instances, height, width).decode_all()
    decode_ms = (time.perf_counter() - start) * 1000

    session = ViewerSession()
    image = Path("/virtual/bench.png")
    session.open_folder(Path("/virtual"), images=[image])
    session.set_model_key("bench")
    session.add_prediction(image, prediction, rasters=rasters)
    thresholds = iter(np.tile(np.linspace(0.05, 0.95, 19), args.repeats * 4))

    def refilter_and_composite() -> None:
        session.set_threshold(float(next(thresholds)))
        composite(rasters, session.visible_indices(), 0.5, True, True)

    core_ms = timed(refilter_and_composite, args.repeats)

    from PySide6.QtWidgets import QApplication

    from fashionviewer.qt.canvas import CanvasWidget
    from fashionviewer.qt.presenter import CanvasPresenter

    app = QApplication.instance() or QApplication([])
    widget = CanvasWidget()
    widget.resize(1200, 900)
    widget.show()
    presenter = CanvasPresenter(session, widget)
    presenter._show(image, np.full((height, width, 3), 128, np.uint8))
    app.processEvents()

    def full_redraw() -> None:
        # set directly: time one redraw, not the signal fan-out
        session.threshold = float(next(thresholds))
        presenter.redraw()
        widget.canvas.viewport().repaint()  # include painting the boxes and captions

    full_ms = timed(full_redraw, args.repeats)
    session.set_threshold(0.0)
    print(
        f"{args.instances} instances on a {width}x{height} image, {args.repeats} repeats "
        f"(one-time mask decode: {decode_ms:.0f} ms)"
    )
    for name, values in (
        ("re-filter + numpy composite", core_ms),
        ("full viewer redraw + paint", full_ms),
    ):
        print(
            f"  {name:30s} median {statistics.median(values):6.1f} ms   p95 {np.percentile(values, 95):6.1f} ms"
        )
    widget.close()
    widget.deleteLater()
    presenter = widget = None  # drop the last references before the event loop cleans up
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
