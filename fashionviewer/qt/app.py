"""``fashionviewer [FOLDER]``: start the viewer (the bundled demo when FOLDER is omitted)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fashionviewer", description="View what the fashion models see."
    )
    parser.add_argument("folder", nargs="?", help="folder of images (default: the bundled demo)")
    parser.add_argument(
        "--model",
        help="checkpoint (.pt/.json) or bundled name (default: the real-photo model "
        "'fashion' for a folder of photos, 'demo' for the embedded demo)",
    )
    parser.add_argument("--device", help="cpu, cuda, mps (default: the best present)")
    parser.add_argument(
        "--allow-random",
        action="store_true",
        help="accept untrained (random) weights, labelled as such",
    )
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("FashionViewer")
    app.setOrganizationName("FashionViewer")

    from fashionviewer.core.viewer.model_choice import ModelChoice, default_device
    from fashionviewer.qt.gc_pauses import freeze_long_lived
    from fashionviewer.qt.main_window import make_window

    window = make_window(args.folder, load_model=False)
    bar = window.model_bar
    if args.device:
        bar.device.setCurrentText(args.device)
    bar.allow_random.setChecked(args.allow_random)
    if args.model is not None:
        if "/" in args.model or args.model.endswith((".pt", ".json")):
            bar.add_checkpoint(args.model)
        window.load_model(
            ModelChoice(args.model, args.device or default_device(), args.allow_random)
        )
    else:
        window.load_model()
    window.show()
    freeze_long_lived()
    return int(app.exec())
