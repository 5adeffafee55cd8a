"""How fast a big folder opens in the viewer: ``python benchmarks/open_folder.py [--images 10000]``.

Creates N empty ``.jpg`` files (opening must not decode any), opens the folder in the real
main window (offscreen), jumps to the last image, and reports the time, writing
``benchmarks/results/open_folder.md``. Target: browsable within 1 s for 10,000 images.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from fashionviewer.core.base.atomic import atomic_write_text
    from fashionviewer.qt.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    work = Path(tempfile.mkdtemp())
    folder = work / "big"
    folder.mkdir()
    for i in range(args.images):
        (folder / f"img_{i:05d}.jpg").touch()
    times = []
    for _ in range(args.repeats):
        window = MainWindow(
            settings=QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
        )
        window.show()
        app.processEvents()
        start = time.perf_counter()
        window.open_folder(folder, remember=False)
        app.processEvents()
        window.session.last()
        app.processEvents()
        times.append(time.perf_counter() - start)
        window.close()
        app.processEvents()
    text = (
        f"# Opening a folder of {args.images:,} images\n\n"
        f"Time from Open Folder to showing the last image, {args.repeats} runs: median "
        f"{statistics.median(times):.3f} s, worst {max(times):.3f} s (target: under 1 s).\n\n"
        f"Measured by `python benchmarks/open_folder.py --images {args.images}`.\n"
    )
    atomic_write_text(args.results / "open_folder.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
