"""Does the viewer's event loop stall on huge photos? ``python benchmarks/viewer_responsiveness.py``

Builds a folder with a 6000×8000 JPEG, a 40-megapixel PNG and the bad-input folder, opens it in the
real main window (offscreen) and, while a 10 ms heartbeat timer records the gaps between its ticks,
(1) presses the arrow key every ``--interval-ms`` through the folder and back (``--passes`` times),
(2) opens each huge photo and waits until it is shown and its full pixels are decoded. Two runs in
one process, side by side:

* ``full texture`` (the baseline, the viewer before display levels): the worker decodes the photo at
  full resolution and the GUI thread uploads all of it as the canvas texture;
* ``display level`` (now): the worker decodes a display-sized level (JPEG draft mode, box reduction)
  and, after it, the full-resolution pixels; the texture is at most DISPLAY_MAX_SIDE pixels a side.

Writes ``benchmarks/results/viewer_responsiveness.md`` and ``.json``: worst and 99th-percentile gap
of each phase and run, and their ratios. Target: worst gap under 100 ms. No model is loaded: this
measures browsing (decode, texture), not prediction.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HEARTBEAT_MS = 10


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def _gaps_summary(gaps: list[int]) -> dict:
    ticks = gaps[1:]
    return {"ticks": len(ticks), "worst_ms": max(ticks), "p99_ms": _percentile(ticks, 0.99),
            "median_ms": _percentile(ticks, 0.5), "ticks_over_100ms": sum(t > 100 for t in ticks)}


def _run(app, folder: Path, settings_dir: Path, interval_ms: int, passes: int, huge: list[str]) -> dict:
    """One window: the folder stepped through at ``interval_ms`` (phase "step"), then each huge photo
    opened and waited for until its full pixels are in (phase "open"); the heartbeat's gaps of each."""
    from PySide6.QtCore import QElapsedTimer, QSettings, Qt, QTimer
    from PySide6.QtTest import QTest

    from fashionviewer.qt.main_window import MainWindow

    window = MainWindow(settings=QSettings(str(settings_dir / "settings.ini"), QSettings.Format.IniFormat))
    window.resize(1200, 800)
    window.show()
    window.open_folder(folder, remember=False)

    def wait(ms: int, until=lambda: False) -> None:
        end = time.monotonic() + ms / 1000
        while time.monotonic() < end and not until():
            app.processEvents()
            time.sleep(0.001)

    wait(1000)
    clock = QElapsedTimer()
    gaps: list[int] = []
    timer = QTimer()
    timer.setInterval(HEARTBEAT_MS)
    timer.timeout.connect(lambda: gaps.append(clock.restart()))
    session, presenter = window.session, window.presenter
    count = len(session.images)
    keys = ([Qt.Key.Key_Right] * (count - 1) + [Qt.Key.Key_Left] * (count - 1)) * passes
    clock.start()
    timer.start()
    for key in keys:
        QTest.keyClick(window, key)
        wait(interval_ms)
    wait(2000)  # the last decodes arrive
    phases = {"step": {"key_presses": len(keys), **_gaps_summary(gaps)}}
    textures = []
    gaps.clear()
    clock.restart()
    started = time.perf_counter()
    for name in huge:
        session.set_current(folder.resolve() / name)
        wait(120_000, until=lambda: presenter.current_image() is not None)
        textures.append(list(window.canvas_widget.canvas.image_item.image.shape[:2]))
        wait(500)
    timer.stop()
    phases["open"] = {"photos": len(huge), "seconds": round(time.perf_counter() - started, 1),
                      "textures": textures, **_gaps_summary(gaps)}
    window.close()
    app.processEvents()
    return phases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval-ms", type=int, default=200, help="time between arrow-key presses")
    parser.add_argument("--passes", type=int, default=2, help="times through the folder and back")
    parser.add_argument("--folder", type=Path, default=None, help="where to build (and reuse) the test folder")
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from fashionviewer.core.base.atomic import atomic_write_json, atomic_write_text
    from fashionviewer.core.data.imageio import load_image
    from fashionviewer.core.viewer.display import DISPLAY_MAX_SIDE, DisplayImage
    from fashionviewer.qt import presenter
    from tests.fixtures.bad_inputs import build_bad_input_folder
    from tests.fixtures.huge_images import build_huge_images

    app = QApplication.instance() or QApplication([])
    work = Path(tempfile.mkdtemp())
    folder = args.folder or work / "folder"
    sizes = build_huge_images(folder)
    if not (folder / "bad inputs").exists():
        build_bad_input_folder(folder / "bad inputs")

    def full_texture(path: Path, max_side: int = 0) -> DisplayImage:  # the viewer before display levels
        pixels = load_image(path)
        return DisplayImage(pixels, pixels.shape[1], pixels.shape[0])

    display_level = presenter.load_display_image
    runs: dict[str, dict] = {}
    for name, loader in (("full texture (baseline)", full_texture), ("display level", display_level)):
        presenter.load_display_image = loader
        runs[name] = _run(app, folder, work, args.interval_ms, args.passes, list(sizes))
        print(name, runs[name], flush=True)
    presenter.load_display_image = display_level

    command = "python benchmarks/viewer_responsiveness.py" + "".join(
        f" {flag} {value}" for flag, value, default in (("--interval-ms", args.interval_ms, 200),
                                                        ("--passes", args.passes, 2)) if value != default)
    base, new = runs["full texture (baseline)"], runs["display level"]
    ratios = {phase: {"worst": round(base[phase]["worst_ms"] / max(new[phase]["worst_ms"], 1), 2),
                      "p99": round(base[phase]["p99_ms"] / max(new[phase]["p99_ms"], 1), 2)} for phase in base}
    record = {"command": command, "heartbeat_ms": HEARTBEAT_MS, "interval_ms": args.interval_ms,
              "passes": args.passes, "huge_images": {k: list(v) for k, v in sizes.items()},
              "display_max_side": DISPLAY_MAX_SIDE, "cpus": os.cpu_count(),
              "load_average_1min": round(os.getloadavg()[0], 2), "platform": platform.platform(),
              "runs": runs, "baseline_over_display_level": ratios}
    phase_names = {"step": f"arrow key every {args.interval_ms} ms", "open": "each huge photo opened until shown"}
    rows = "\n".join(f"| {phase_names[phase]} | {name} | {r[phase]['worst_ms']} | {r[phase]['p99_ms']} | "
                     f"{r[phase]['median_ms']} | {r[phase]['ticks_over_100ms']} | {r[phase]['ticks']} |"
                     for phase in ("step", "open") for name, r in runs.items())
    ratio_text = "; ".join(f"{phase_names[phase]}: worst gap {r['worst']}×, p99 {r['p99']}×"
                           for phase, r in ratios.items())
    (jpeg, jpeg_size), (png, png_size) = sizes.items()
    text = (f"# Viewer responsiveness on huge photos\n\n"
            f"A folder with {jpeg} ({jpeg_size[0]}×{jpeg_size[1]}), {png} ({png_size[0]}×{png_size[1]}) and the "
            f"bad-input folder (test fixtures). Phase 1: the arrow key every {args.interval_ms} ms through the "
            f"folder and back, {args.passes}× ({base['step']['key_presses']} presses). Phase 2: each huge photo "
            f"made current and waited for until it is shown and its full pixels are decoded (textures shown: "
            f"baseline {base['open']['textures']}, now {new['open']['textures']}). A {HEARTBEAT_MS} ms heartbeat "
            f"timer records the event-loop gaps. Offscreen Qt, no model loaded, {os.cpu_count()} CPUs shared "
            f"with other work (load average {record['load_average_1min']} at the end: gaps of a few hundred ms "
            "come from the scheduler alone on this machine).\n\n"
            "| phase | run | worst gap (ms) | p99 (ms) | median (ms) | ticks > 100 ms | ticks |\n"
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |\n"
            f"{rows}\n\n"
            f"Baseline / display level: {ratio_text}. Target: worst gap under 100 ms. The display level's "
            f"longer side is at most {DISPLAY_MAX_SIDE} px.\n\n"
            f"Measured by `{command}` (writes this file and viewer_responsiveness.json).\n")
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results / "viewer_responsiveness.md", text)
    atomic_write_json(args.results / "viewer_responsiveness.json", record)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
