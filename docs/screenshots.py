"""Screenshots of the real app for the docs: run under a virtual display.

    xvfb-run -a python docs/screenshots.py [--out docs] [--model demo]

Makes ``screenshot-demo.png`` (the bundled Fashion-MNIST scenes with the shipped demo model, an
instance selected with the CNN's view of it) and, when the Clothing Co-Parsing photos are present
(../shared/data/ccp), ``screenshot-ccp.png`` (a real street photo with its ground truth beside the
predictions; git ignores it, since the photo is not the project's to ship). A model with random
weights is refused unless --allow-random, and is then labelled so in the window.

On a bare Debian machine Qt's xcb platform also needs: xvfb libxcb-icccm4 libxcb-cursor0 libxcb-keysyms1
libxcb-image0 libxcb-render-util0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _wait(app, condition, timeout_s: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return False


def _settle(app, seconds: float = 0.6) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def _select_best(window) -> None:
    s = window.session
    visible = s.visible_indices()
    if visible:
        prediction = s.prediction()
        s.select(max(visible, key=lambda i: prediction.instances[i].score))


def _load(window, app, model: str, allow_random: bool) -> bool:
    from fashionviewer.core.viewer.model_choice import ModelChoice

    if model.endswith((".pt", ".json")):
        window.model_bar.add_checkpoint(model)
    choice = ModelChoice(model, "cpu", allow_random)
    window.load_model(choice)

    def loaded() -> bool:
        return window.prediction.models is not None and window.prediction.models.choice is choice

    if not _wait(app, lambda: loaded() or window.canvas_widget.notice.isVisible(), 120):
        print("the model did not load in time", file=sys.stderr)
        return False
    if not loaded():
        print(f"cannot load the model: {window.canvas_widget.notice.text()}", file=sys.stderr)
        return False
    return True


def shoot(window, app, path: Path) -> None:
    _settle(app)
    window.grab().save(str(path))
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent))
    parser.add_argument("--model", default="demo", help="bundled model name or checkpoint path")
    parser.add_argument("--allow-random", action="store_true")
    parser.add_argument("--ccp-image", default="0005.jpg", help="which CCP photo to show")
    parser.add_argument(
        "--ccp-model",
        default=None,
        help="model for the CCP shot (e.g. a checkpoint trained on CCP); default: --model",
    )
    args = parser.parse_args()
    if "DISPLAY" not in os.environ and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        print("no display: run under xvfb-run -a", file=sys.stderr)
        return 2

    import pyqtgraph as pg
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from fashionviewer.core.base.paths import DEMO_DIR, ccp_dir
    from fashionviewer.qt.main_window import MainWindow

    pg.setConfigOptions(antialias=True)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import tempfile

    # leave the user's alone
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.resize(1500, 920)
    window.show()
    window.model_bar.allow_random.setChecked(args.allow_random)
    status = 0
    if not _load(window, app, args.model, args.allow_random):
        return 1

    if DEMO_DIR.is_dir() and any(DEMO_DIR.iterdir()):
        window.open_folder(DEMO_DIR, remember=False)
        _wait(
            app,
            lambda: (
                window.session.prediction() is not None
                and window.presenter.current_image() is not None
            ),
        )
        _select_best(window)
        shoot(window, app, out / "screenshot-demo.png")
    else:
        print(f"skipped the demo screenshot: {DEMO_DIR} is empty", file=sys.stderr)
        status = 3

    ccp = ccp_dir()
    if (
        ccp is not None
        and args.ccp_model
        and not _load(window, app, args.ccp_model, args.allow_random)
    ):
        return 1
    if ccp is not None:
        window.open_folder(ccp / "photos", remember=False)
        target = ccp / "photos" / args.ccp_image
        if target in window.session.images:
            window.session.set_current(target)
        _wait(
            app,
            lambda: (
                window.ground_truth.gt is not None
                and window.session.prediction() is not None
                and window.presenter.current_image() is not None
            ),
        )
        window.session.set_threshold(0.3)
        _wait(
            app,
            lambda: "TP" in window.details.gt.text() or "not annotated" in window.details.gt.text(),
            10,
        )
        _select_best(window)
        shoot(window, app, out / "screenshot-ccp.png")
    else:
        print("skipped the CCP screenshot: ../shared/data/ccp not found", file=sys.stderr)
        status = 3
    window.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
