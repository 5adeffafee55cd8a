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

``--case predict --baseline-tree DIR`` measures the viewer while the model predicts: the same huge photos,
the bad-input folder and real photos saved as TIFF, BMP, WebP and EXIF-rotated JPEG (about 30 files),
the ``fashion`` model predicting without the cache (started again whenever it has done the folder, so it
predicts throughout), the next image every ``--interval-ms`` for ``--seconds`` and a 100 ms heartbeat.
Each arm runs in its own process, the old code from ``DIR`` (``git worktree add /tmp/fv-before COMMIT``)
and then this tree, in alternating order over ``--rounds``. See ``predict_case`` for the measures.
``--case parts`` times each cause alone, as before and now, with how long it keeps other threads out.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
# A predict-case arm imports fashionviewer from the tree it measures (the parent names it).
sys.path.insert(0, os.environ.get("FV_BENCH_SOURCE_TREE", str(REPO)))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HEARTBEAT_MS = 10
PREDICT_HEARTBEAT_MS = 100


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def _gaps_summary(gaps: list[int]) -> dict:
    ticks = gaps[1:]
    return {
        "ticks": len(ticks),
        "worst_ms": max(ticks),
        "p99_ms": _percentile(ticks, 0.99),
        "median_ms": _percentile(ticks, 0.5),
        "ticks_over_100ms": sum(t > 100 for t in ticks),
    }


def _run(
    app, folder: Path, settings_dir: Path, interval_ms: int, passes: int, huge: list[str]
) -> dict:
    """One window: the folder stepped through at ``interval_ms`` (phase "step"), then each huge photo
    opened and waited for until its full pixels are in (phase "open"); the heartbeat's gaps of each."""
    from PySide6.QtCore import QElapsedTimer, QSettings, Qt, QTimer
    from PySide6.QtTest import QTest

    from fashionviewer.qt.main_window import MainWindow

    window = MainWindow(
        settings=QSettings(str(settings_dir / "settings.ini"), QSettings.Format.IniFormat)
    )
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
    phases["open"] = {
        "photos": len(huge),
        "seconds": round(time.perf_counter() - started, 1),
        "textures": textures,
        **_gaps_summary(gaps),
    }
    window.close()
    app.processEvents()
    return phases


# ----- the predict case: the viewer while the model predicts -----------------------------------------
def build_predict_folder(folder: Path) -> dict[str, tuple[int, int]]:
    """The huge photos, the bad-input folder and real photos as TIFF, BMP, WebP and EXIF-rotated JPEGs
    (built once; existing files are kept). Returns the huge photos' {name: (width, height)}."""
    from PIL import Image

    from tests.fixtures.bad_inputs import build_bad_input_folder
    from tests.fixtures.huge_images import _photo_like, build_huge_images

    sizes = build_huge_images(folder)
    if not (folder / "bad inputs").exists():
        build_bad_input_folder(folder / "bad inputs")
    formats = folder / "formats"
    if not formats.exists():
        formats.mkdir()
        # read in place, never copied into the repo
        photos = REPO.parent / "shared" / "data" / "ccp" / "photos"

        def photo(i: int) -> Image.Image:  # a real street-fashion photo when the data is here
            source = photos / f"{i + 1:04d}.jpg"
            return (
                Image.open(source).convert("RGB")
                if source.exists()
                else Image.fromarray(_photo_like(550, 830, i))
            )

        photo(0).save(formats / "photo.tif")
        photo(1).save(formats / "photo.bmp")
        photo(2).save(formats / "photo.webp", quality=85)
        for i, (name, orientation, size) in enumerate(
            (("photo_exif6.jpg", 6, None), ("big_exif8.jpg", 8, (3300, 5000)))
        ):
            image = photo(3 + i)
            image = image.resize(size, Image.Resampling.BILINEAR) if size else image
            exif = image.getexif()
            exif[0x0112] = orientation
            image.save(formats / name, exif=exif.tobytes(), quality=90)
        Image.fromarray(_photo_like(4000, 3000, 7)).save(formats / "big.tif")
    return sizes


def _where(frame: Any, depth: int = 3) -> str:
    """The innermost ``depth`` Python frames of a thread, innermost first ("file:line function")."""
    parts = []
    while frame is not None and len(parts) < depth:
        code = frame.f_code
        parts.append(
            f"{'/'.join(Path(code.co_filename).parts[-2:])}:{frame.f_lineno} {code.co_name}"
        )
        frame = frame.f_back
    return " < ".join(parts) or "(no Python frame)"


def _lateness_summary(intervals: list[float], heartbeat_ms: int) -> dict:
    """How late each heartbeat tick came (its interval less the heartbeat's), in ms."""
    late = sorted(max(0.0, 1000 * t - heartbeat_ms) for t in intervals)
    pick = (lambda q: round(late[int(q * (len(late) - 1))], 1)) if late else (lambda q: 0.0)
    return {
        "ticks": len(late),
        "worst_ms": pick(1.0),
        "p99_ms": pick(0.99),
        "median_ms": pick(0.5),
        "ticks_over_50ms": sum(v > 50 for v in late),
        "ticks_over_100ms": sum(v > 100 for v in late),
        "worst_interval_ms": round(1000 * max(intervals), 1) if intervals else 0.0,
    }


def run_arm(args: argparse.Namespace) -> int:
    """One arm, in its own process: the window on ``--folder`` with ``--model`` predicting throughout
    (without the cache; started again when it has done the folder), the next image every
    ``--interval-ms`` for ``--seconds``, a 100 ms heartbeat, and a sampler thread that notes where
    the GUI thread and the other threads are while a tick is overdue (the cause of a gap)."""
    import collections
    import subprocess
    import threading

    import torch
    from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    import fashionviewer
    from fashionviewer.core.viewer.model_choice import ModelChoice
    from fashionviewer.qt.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    load_start = os.getloadavg()[0]
    window = MainWindow(
        settings=QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
    )
    window.resize(1200, 800)
    window.show()
    prediction, session = window.prediction, window.session
    prediction.use_cache = False  # the model must run, not the cache
    window.load_model(ModelChoice(args.model, "cpu"))
    window.open_folder(args.folder, remember=False)

    def run_loop(seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        loop, end = QEventLoop(), time.monotonic() + seconds
        check = QTimer(interval=20)
        check.timeout.connect(lambda: loop.quit() if until() or time.monotonic() >= end else None)
        check.start()
        loop.exec()
        check.stop()

    # (when, file, the worker's seconds) of each image predicted; the model loads later, so its worker connects this
    results: list[tuple[float, str, float]] = []
    on_result = prediction._on_result
    prediction._on_result = lambda r: (
        results.append((time.perf_counter(), r.path.name, round(r.seconds, 3))),
        on_result(r),
    )[-1]
    # the model is loaded and has predicted once
    run_loop(600, until=lambda: len(prediction.last_seconds) > 0)
    if not prediction.last_seconds:
        raise SystemExit("error: the model predicted nothing in 600 s")
    gui = threading.get_ident()
    state = {"last": time.perf_counter(), "cpu": 0.0, "restarts": 0, "steps": 0}
    # (when, interval, GUI thread's CPU seconds in it) per tick
    ticks: list[tuple[float, float, float]] = []
    # (when, GUI thread's frames, the other threads')
    samples: list[tuple[float, str, list[str]]] = []
    stop = threading.Event()

    def beat() -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        ticks.append((now, now - state["last"], cpu - state["cpu"]))
        state["last"], state["cpu"] = now, cpu

    def sample() -> None:
        me = threading.get_ident()
        while not stop.wait(0.01):
            # a tick overdue
            if time.perf_counter() - state["last"] > (PREDICT_HEARTBEAT_MS + 30) / 1000:
                frames = sys._current_frames()
                samples.append(
                    (
                        time.perf_counter(),
                        _where(frames.get(gui)),
                        [_where(f) for ident, f in frames.items() if ident not in (gui, me)],
                    )
                )

    direction = [1]

    def step() -> None:
        count, index = len(session.images), session.index
        if not 0 <= index + direction[0] < count:
            direction[0] = -direction[0]
        QTest.keyClick(window, Qt.Key.Key_Right if direction[0] > 0 else Qt.Key.Key_Left)
        state["steps"] += 1
        # done the folder: predict it again
        if not prediction.running and prediction.models is not None:
            session.clear_predictions(prediction.models.key)
            prediction.restart()
            state["restarts"] += 1

    heartbeat = QTimer(interval=PREDICT_HEARTBEAT_MS)
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.timeout.connect(beat)
    stepper = QTimer(interval=args.interval_ms)
    stepper.setTimerType(Qt.TimerType.PreciseTimer)
    stepper.timeout.connect(step)
    sampler = threading.Thread(target=sample, daemon=True)
    done_before, started, cpu_started = (
        len(prediction.last_seconds),
        time.perf_counter(),
        time.thread_time(),
    )
    process_cpu_started = time.process_time()
    state["last"], state["cpu"] = started, cpu_started
    sampler.start()
    # a profiler may attach now (py-spy record --pid)
    print(f"measuring: pid {os.getpid()}", flush=True)
    heartbeat.start()
    stepper.start()
    run_loop(args.seconds)
    heartbeat.stop()
    stepper.stop()
    stop.set()
    elapsed = time.perf_counter() - started
    per_image = prediction.last_seconds[done_before:]
    intervals = [interval for _, interval, _ in ticks]
    gui_cpu, process_cpu = (
        time.thread_time() - cpu_started,
        time.process_time() - process_cpu_started,
    )

    def causes(begin: float, end: float, cpu: float) -> dict:
        """Where the threads were while a tick was overdue; ``gui_cpu_ms``: what the GUI thread itself ran
        (little CPU in a long gap: it waited for the GIL or for a CPU, not for its own work)."""
        inside = [s for s in samples if begin <= s[0] <= end]
        gui_where = collections.Counter(s[1] for s in inside).most_common(2)
        others = collections.Counter(
            w for s in inside for w in s[2] if "viewer_responsiveness" not in w
        )
        return {
            "gui_cpu_ms": round(1000 * cpu, 1),
            "samples": len(inside),
            "gui_thread": gui_where,
            "other_threads": others.most_common(3),
        }

    worst_end, worst_interval, worst_cpu = (
        max(ticks, key=lambda t: t[1]) if ticks else (0.0, 0.0, 0.0)
    )
    late_ticks = sorted(ticks, key=lambda t: -t[1])[:5]
    tree = Path(fashionviewer.__file__).resolve().parent.parent
    commit = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    record = {
        "source_tree": str(tree),
        "commit": commit or tree.name,  # a `git archive` copy: its folder's name
        "seconds": round(elapsed, 1),
        "key_presses": state["steps"],
        "gaps": _lateness_summary(intervals, PREDICT_HEARTBEAT_MS),
        "gui_thread_cpu_s": round(gui_cpu, 2),
        "process_cpu_s": round(process_cpu, 1),
        "gui_cpu_ms_most_in_one_tick": round(1000 * max((c for _, _, c in ticks), default=0.0), 1),
        "worst_gap_cause": causes(worst_end - worst_interval, worst_end, worst_cpu),
        "five_worst": [
            {
                "interval_ms": round(1000 * i, 1),
                "at_s": round(e - started, 2),
                **causes(e - i, e, c),
            }
            for e, i, c in late_ticks
        ],
        "worker": {
            "images": len(per_image),
            "images_per_s": round(len(per_image) / elapsed, 3),
            "median_s_per_image": round(sorted(per_image)[len(per_image) // 2], 3)
            if per_image
            else None,
            "folder_passes_started": state["restarts"],
            "per_image": [(name, sec) for when, name, sec in results if when >= started],
        },
        "torch_threads": torch.get_num_threads(),
        "switch_interval_s": sys.getswitchinterval(),
        "load_average_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }
    window.close()
    app.processEvents()
    args.arm_json.write_text(json.dumps(record, indent=1))
    return 0


def predict_case(args: argparse.Namespace) -> int:
    """Both arms, each in its own process, in alternating order; writes viewer_responsiveness_predict.*"""
    import subprocess

    from fashionviewer.core.base.atomic import atomic_write_json, atomic_write_text

    if args.baseline_tree is None or not (args.baseline_tree / "fashionviewer").is_dir():
        raise SystemExit(
            "error: --case predict needs --baseline-tree DIR, a source tree of the code before "
            "(git worktree add /tmp/fv-before COMMIT)"
        )
    work = Path(tempfile.mkdtemp())
    folder = (args.folder or work / "folder").resolve()
    sizes = build_predict_folder(folder)
    files = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink()
    )
    arms = {"before": args.baseline_tree.resolve(), "after": args.tree.resolve()}
    runs: dict[str, list[dict]] = {arm: [] for arm in arms}
    for round_ in range(args.rounds):
        for arm in list(arms) if round_ % 2 == 0 else list(reversed(arms)):
            out = work / f"{arm}-{round_}.json"
            env = {
                **os.environ,
                "FV_BENCH_SOURCE_TREE": str(arms[arm]),
                "FASHIONVIEWER_CACHE": str(work / "cache"),
                "QT_QPA_PLATFORM": "offscreen",
            }
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--case",
                "predict",
                "--arm-json",
                str(out),
                "--folder",
                str(folder),
                "--seconds",
                str(args.seconds),
                "--interval-ms",
                str(args.interval_ms),
                "--model",
                args.model,
            ]
            done = subprocess.run(command, env=env, cwd=str(arms[arm]))
            if done.returncode != 0:
                raise SystemExit(f"error: the {arm} arm exited {done.returncode}")
            runs[arm].append(json.loads(out.read_text()))
            print(arm, json.dumps(runs[arm][-1])[:1500], flush=True)

    def median(arm: str, *keys: str) -> float:
        values = []
        for run in runs[arm]:
            value: Any = run
            for key in keys:
                value = value[key]
            values.append(value)
        return sorted(values)[len(values) // 2]

    ratio = {
        name: round(median("before", *keys) / max(median("after", *keys), 0.1), 2)
        for name, keys in (("worst_gap", ("gaps", "worst_ms")), ("p99_gap", ("gaps", "p99_ms")))
    }
    ratio["images_per_s_after_over_before"] = round(
        median("after", "worker", "images_per_s")
        / max(median("before", "worker", "images_per_s"), 1e-9),
        2,
    )
    command = (
        f"python benchmarks/viewer_responsiveness.py --case predict --baseline-tree {args.baseline_tree}"
        + (f" --tree {args.tree}" if args.tree.resolve() != REPO else "")
        + f" --seconds {args.seconds:g} --rounds {args.rounds}"
        + (f" --interval-ms {args.interval_ms}" if args.interval_ms != 200 else "")
    )
    record = {
        "command": command,
        "model": args.model,
        "interval_ms": args.interval_ms,
        "seconds": args.seconds,
        "heartbeat_ms": PREDICT_HEARTBEAT_MS,
        "gap": f"how late a heartbeat tick came: its interval less {PREDICT_HEARTBEAT_MS} ms",
        "files": files,
        "huge_images": {k: list(v) for k, v in sizes.items()},
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "runs": runs,
        "before_over_after": ratio,
    }

    def cause_text(cause: dict) -> str:
        gui = (
            cause["gui_thread"][0][0]
            if cause["gui_thread"]
            else "no sample (the sampler got no GIL)"
        )
        other = cause["other_threads"][0][0] if cause["other_threads"] else "-"
        return (
            f"the GUI thread ran {cause['gui_cpu_ms']} ms of CPU in it, was sampled at `{gui}`; the busiest "
            f"other thread at `{other}` ({cause['samples']} samples)"
        )

    rows, causes = [], []
    for arm in arms:
        for i, run in enumerate(runs[arm]):
            g, w = run["gaps"], run["worker"]
            rows.append(
                f"| {arm} ({run['commit']}) #{i + 1} | {g['worst_ms']} | {g['p99_ms']} | {g['median_ms']} | "
                f"{g['ticks_over_50ms']} | {g['ticks_over_100ms']} | {g['ticks']} | {w['images_per_s']} | "
                f"{w['images']} | {run['gui_thread_cpu_s']} | {run['load_average_1min'][0]} → "
                f"{run['load_average_1min'][1]} |"
            )
            causes.append(
                f"- {arm} #{i + 1}, worst tick {g['worst_interval_ms']} ms: "
                f"{cause_text(run['worst_gap_cause'])}"
            )
    text = (
        f"# Viewer responsiveness while the model predicts\n\n"
        f"The viewer (offscreen, 1200×800) on a folder of {len(files)} files: "
        + ", ".join(f"{name} ({w}×{h})" for name, (w, h) in sizes.items())
        + ", the bad-input folder (broken, truncated, empty, a 40,000² PNG header, an animated GIF, EXIF-rotated,"
        " 16-bit, CMYK, 3000-pixel strips, a broken link) and real CCP photos as TIFF, BMP, WebP and EXIF-rotated "
        f"JPEGs (one 16 MP), a 12 MP TIFF. The `{args.model}` model predicts without the cache throughout (the "
        f"folder is predicted again whenever it is done); the arrow key every {args.interval_ms} ms for "
        f"{args.seconds:g} s through the folder and back. A {PREDICT_HEARTBEAT_MS} ms heartbeat timer: the gap "
        f"is how late each tick came (its interval less {PREDICT_HEARTBEAT_MS} ms). Each arm runs in its own "
        f"process, before and after in alternating order, {os.cpu_count()} CPUs shared with other work "
        "(load averages at each arm's start and end).\n\n"
        "| arm | worst gap (ms) | p99 (ms) | median (ms) | ticks > 50 ms | ticks > 100 ms | ticks | worker "
        "images/s | images | GUI thread CPU (s) | load |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n"
        + "\n".join(rows)
        + "\n\n"
        f"Before / after (medians): worst gap {ratio['worst_gap']}×, p99 {ratio['p99_gap']}×; worker "
        f"throughput after / before {ratio['images_per_s_after_over_before']}×. Target: worst gap under 100 ms, "
        "p99 under 50 ms.\n\nWhere the threads were during each arm's worst gap (a sampler thread, every 10 ms "
        "while a tick is overdue):\n\n" + "\n".join(causes) + "\n\n"
        f"Measured by `{command}` (writes this file and viewer_responsiveness_predict.json).\n"
    )
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results / "viewer_responsiveness_predict.md", text)
    atomic_write_json(args.results / "viewer_responsiveness_predict.json", record)
    print(text)
    return 0


def _worker_gil_and_per_result_steps(app: Any, photo: Any, mask: Any) -> list[tuple]:
    """The parts case's steps for what kept the GUI thread out from a worker (the GIL held) or held
    it per result: (name, where, before, how before, now, how now)."""
    import numpy as np
    import pyqtgraph as pg
    from PIL import Image, ImageOps
    from pycocotools import mask as mask_utils
    from PySide6.QtCore import QSettings

    from fashionviewer.core.data.imageio import load_image
    from fashionviewer.core.data.masks import encode_mask
    from fashionviewer.qt.main_window import MainWindow

    height, width = mask.shape
    work = Path(tempfile.mkdtemp())
    huge, huge_png = work / "huge.jpg", work / "huge.png"
    Image.fromarray(photo).save(huge, quality=88)
    Image.fromarray(photo).save(huge_png, compress_level=1)

    def pycocotools_encode() -> None:
        """encode_mask before: one pycocotools call, the GIL held throughout."""
        mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))

    def pillow_load(path: Path) -> Callable[[], np.ndarray]:  # load_image before: Pillow's copies
        def run() -> np.ndarray:
            with Image.open(path) as img:
                rgb = np.asarray(ImageOps.exif_transpose(img).convert("RGB"), dtype=np.uint8)
                return np.array(rgb, order="C")

        return run

    annotation_rgba = np.zeros((height, width, 4), np.uint8)
    annotation_rgba[2000:6000, 1000:5000] = (200, 30, 40, 140)
    annotation_item = pg.ImageItem(axisOrder="row-major")

    def annotation_layer(levels: Any) -> Callable[[], None]:
        def run() -> None:
            if levels is None:
                annotation_item.setImage(annotation_rgba, levels=None)
            else:
                annotation_item.setImage(annotation_rgba, levels=levels, autoLevels=False)
            annotation_item.render()  # what its next paint does

        return run

    # the bar in the window: a new count re-lays out and repaints the window's toolbar
    window = MainWindow(settings=QSettings(str(work / "s.ini"), QSettings.Format.IniFormat))
    window.resize(1200, 800)
    window.show()
    bar = window.model_bar

    def progress_burst(coalesced: bool) -> Callable[[], None]:
        """100 results, each in its own turn of the event loop (queued signals from the worker)."""

        def run() -> None:
            bar.set_progress(0, 1000)
            app.processEvents()  # the bar shown
            for done in range(1, 101):
                if coalesced:
                    bar.set_progress(done, 1000)
                else:  # the old set_progress: every count painted
                    bar.progress.setValue(done)
                app.processEvents()
            bar.set_progress(0, 0)

        return run

    from fashionviewer.core.inference.families import load_predictor

    # what is alive in the viewer once it predicts: torch, Qt and the real-photo model
    predictor = load_predictor("fashion")

    def full_collection(frozen: bool) -> Callable[[], None]:
        def run() -> None:
            if frozen:
                gc.freeze()  # what qt.gc_pauses.freeze_long_lived does after a model load
            gc.collect()
            if frozen:
                gc.unfreeze()
            run.keep = predictor  # type: ignore[attr-defined]

        return run

    return [
        (
            "the model's RLE of one 48-megapixel mask (core.data.masks.encode_mask)",
            "worker",
            pycocotools_encode,
            "pycocotools, GIL held throughout",
            lambda: encode_mask(mask.view(np.uint8)),
            "numpy, the same string",
        ),
        (
            "a 48-megapixel JPEG decoded for the model (core.data.imageio.load_image)",
            "worker",
            pillow_load(huge),
            "Pillow, np.asarray joins all pixels under the GIL",
            lambda: load_image(huge),
            "OpenCV, the same pixels",
        ),
        (
            "a 48-megapixel PNG decoded for the model (core.data.imageio.load_image)",
            "worker",
            pillow_load(huge_png),
            "Pillow, np.asarray joins all pixels under the GIL",
            lambda: load_image(huge_png),
            "OpenCV, the same pixels",
        ),
        (
            "the annotation layer of a 48-megapixel photo shown (qt.annotation.layer)",
            "GUI thread",
            annotation_layer((0, 255)),
            "levels (0, 255): rescaled per render",
            annotation_layer(None),
            "no levels: shown as it is",
        ),
        (
            "a full garbage collection, `fashion` loaded (whichever thread runs it holds the GIL)",
            "any thread",
            full_collection(frozen=False),
            "every object walked",
            full_collection(frozen=True),
            "long-lived objects frozen (gc.freeze)",
        ),
        (
            "100 results in a burst: the model bar's progress (qt.panels.models)",
            "GUI thread",
            progress_burst(coalesced=False),
            "each count painted",
            progress_burst(coalesced=True),
            "the latest count every 100 ms",
        ),
    ]


# ----- the parts case: each cause alone ---------------------------------------------------------------
def parts_case(args: argparse.Namespace) -> int:
    """Each heavy step of showing a 48-megapixel photo's prediction, as the viewer did it before and does now,
    timed in this process with the longest stretch a probe thread could not run (the GIL held, or no CPU)."""
    import statistics
    import threading

    import numpy as np
    from PySide6.QtWidgets import QApplication

    from fashionviewer.core.base.atomic import atomic_write_json, atomic_write_text
    from fashionviewer.core.data.masks import decode_mask, encode_mask
    from fashionviewer.core.data.overlay import (
        PredictionRasters,
        raster_from_rle,
        rasterize_mask,
        scaled_rasters,
    )
    from fashionviewer.core.data.predictions import Instance
    from fashionviewer.core.models.classifier import preprocess_crop
    from fashionviewer.qt.canvas import ImageCanvas
    from tests.fixtures.huge_images import _photo_like

    app = QApplication.instance() or QApplication([])
    gaps: list[float] = []
    stop = threading.Event()

    # wakes every ms: its longest gap is the longest time another thread kept it out
    def probe() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    def measure(fn: Callable[[], Any], repeat: int = 3) -> dict:
        totals, holds = [], []
        for _ in range(repeat):
            time.sleep(0.05)
            gaps.clear()
            start = time.perf_counter()
            fn()
            totals.append(time.perf_counter() - start)
            time.sleep(0.01)
            holds.append(max(gaps, default=0.0))
        return {
            "ms": round(1000 * statistics.median(totals), 1),
            "probe_kept_out_ms": round(1000 * min(holds), 1),
        }

    threading.Thread(target=probe, daemon=True).start()
    height, width = 8000, 6000
    rows, cols = np.ogrid[:height, :width]
    mask = ((rows - 4000) / 3000) ** 2 + ((cols - 3000) / 2000) ** 2 < 1
    rle = encode_mask(mask.view(np.uint8))
    raster = raster_from_rle(rle)
    rasters = PredictionRasters(
        [Instance((1000.0, 1000.0, 5000.0, 7000.0), 1, "shirt", 0.9, rle)], height, width
    ).decode_all()
    canvas = ImageCanvas()
    canvas.resize(900, 700)
    canvas.show()
    app.processEvents()
    level = _photo_like(2048, 1536, 3)

    def paint(levels: Any) -> Callable[[], None]:
        def run() -> None:
            canvas.image_item.setImage(level[::-1].copy() if run.flip else level, levels=levels)  # type: ignore
            run.flip = not run.flip  # type: ignore[attr-defined]
            canvas.viewport().repaint()

        run.flip = False  # type: ignore[attr-defined]
        return run

    def outline_pixels() -> None:
        raster._edge = None
        _ = raster.edge_pixels  # the property computes them

    photo = _photo_like(width, height, 1)
    steps = [
        (
            "a 48-megapixel mask's raster",
            "worker",
            lambda: rasterize_mask(decode_mask(rle)),
            "pycocotools decode, then crop",
            lambda: raster_from_rle(rle),
            "built from the runs over the mask's box",
        ),
        (
            f"its outline's pixels ({raster.mask.shape[1]}×{raster.mask.shape[0]} box)",
            "GUI thread → worker",
            lambda: np.nonzero(raster.outline),
            "np.nonzero, at the first redraw",
            outline_pixels,
            "cv2.findNonZero, in the worker",
        ),
        (
            "its mask resampled onto the 1536×2048 display level",
            "GUI thread → worker",
            lambda: scaled_rasters(rasters, 2048, 1536),
            "on the GUI thread, at the first redraw",
            lambda: scaled_rasters(rasters, 2048, 1536).decode_all(),
            "with its outline, in a worker",
        ),
        (
            "a new 2048×1536 picture painted",
            "GUI thread",
            paint((0, 255)),
            "levels (0, 255): rescaled per render",
            paint(None),
            "no levels: shown as it is",
        ),
        (
            "the whole-picture CNN input of a 48-megapixel photo",
            "GUI thread → worker",
            lambda: preprocess_crop(photo, None),
            "on the GUI thread (details panel)",
            lambda: preprocess_crop(photo, None),
            "the same, in a worker",
        ),
    ]
    steps += _worker_gil_and_per_result_steps(app, photo, mask)
    results = []
    for name, where, before, before_how, after, after_how in steps:
        results.append(
            {
                "step": name,
                "where": where,
                "before": before_how,
                "after": after_how,
                "before_measured": measure(before),
                "after_measured": measure(after),
            }
        )
        print(results[-1], flush=True)
    stop.set()
    canvas.close()
    load = round(os.getloadavg()[0], 2)
    rows_md = "\n".join(
        f"| {r['step']} | {r['where']} | {r['before']}: {r['before_measured']['ms']} ms "
        f"(probe kept out {r['before_measured']['probe_kept_out_ms']} ms) | "
        f"{r['after']}: {r['after_measured']['ms']} ms "
        f"(probe kept out {r['after_measured']['probe_kept_out_ms']} ms) |"
        for r in results
    )
    text = (
        "# Viewer responsiveness: the causes one by one\n\n"
        "Each heavy step of showing a 48-megapixel photo's prediction, as the viewer did it before and does now, "
        'in one process (median of 3). "Probe kept out": the longest time a thread that wakes every '
        "millisecond could not run meanwhile (the least of the 3 runs): a step on a worker that holds the GIL "
        "that long stalls the GUI thread as long; a step on the GUI thread stalls it for its whole time. "
        f"{os.cpu_count()} CPUs shared with other work (load average {load}).\n\n"
        "| step | where | before | now |\n| --- | --- | --- | --- |\n" + rows_md + "\n\n"
        "Measured by `python benchmarks/viewer_responsiveness.py --case parts` (writes this file and "
        "viewer_responsiveness_parts.json).\n"
    )
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results / "viewer_responsiveness_parts.md", text)
    atomic_write_json(
        args.results / "viewer_responsiveness_parts.json",
        {"load_average_1min": load, "cpus": os.cpu_count(), "steps": results},
    )
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--interval-ms", type=int, default=200, help="time between arrow-key presses"
    )
    parser.add_argument("--passes", type=int, default=2, help="times through the folder and back")
    parser.add_argument(
        "--folder", type=Path, default=None, help="where to build (and reuse) the test folder"
    )
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--case", choices=("browse", "predict", "parts"), default="browse")
    parser.add_argument(
        "--baseline-tree", type=Path, help="predict case: the source tree of the code before"
    )
    parser.add_argument(
        "--tree",
        type=Path,
        default=REPO,
        help="predict case: the source tree of the code after (default: this checkout)",
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="predict case: how long each arm steps"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="predict case: before/after pairs, order alternating"
    )
    parser.add_argument(
        "--model", default="fashion", help="predict case: the model the viewer runs"
    )
    # internal: run one arm, write its JSON
    parser.add_argument("--arm-json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case == "parts":
        return parts_case(args)
    if args.case == "predict":
        if args.arm_json is not None:
            return run_arm(args)
        return predict_case(args)

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

    # the viewer before display levels
    def full_texture(path: Path, max_side: int = 0) -> DisplayImage:
        pixels = load_image(path)
        return DisplayImage(pixels, pixels.shape[1], pixels.shape[0])

    display_level = presenter.load_display_image
    runs: dict[str, dict] = {}
    for name, loader in (
        ("full texture (baseline)", full_texture),
        ("display level", display_level),
    ):
        presenter.load_display_image = loader
        runs[name] = _run(app, folder, work, args.interval_ms, args.passes, list(sizes))
        print(name, runs[name], flush=True)
    presenter.load_display_image = display_level

    command = "python benchmarks/viewer_responsiveness.py" + "".join(
        f" {flag} {value}"
        for flag, value, default in (
            ("--interval-ms", args.interval_ms, 200),
            ("--passes", args.passes, 2),
        )
        if value != default
    )
    base, new = runs["full texture (baseline)"], runs["display level"]
    ratios = {
        phase: {
            "worst": round(base[phase]["worst_ms"] / max(new[phase]["worst_ms"], 1), 2),
            "p99": round(base[phase]["p99_ms"] / max(new[phase]["p99_ms"], 1), 2),
        }
        for phase in base
    }
    record = {
        "command": command,
        "heartbeat_ms": HEARTBEAT_MS,
        "interval_ms": args.interval_ms,
        "passes": args.passes,
        "huge_images": {k: list(v) for k, v in sizes.items()},
        "display_max_side": DISPLAY_MAX_SIDE,
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "runs": runs,
        "baseline_over_display_level": ratios,
    }
    phase_names = {
        "step": f"arrow key every {args.interval_ms} ms",
        "open": "each huge photo opened until shown",
    }
    rows = "\n".join(
        f"| {phase_names[phase]} | {name} | {r[phase]['worst_ms']} | {r[phase]['p99_ms']} | "
        f"{r[phase]['median_ms']} | {r[phase]['ticks_over_100ms']} | {r[phase]['ticks']} |"
        for phase in ("step", "open")
        for name, r in runs.items()
    )
    ratio_text = "; ".join(
        f"{phase_names[phase]}: worst gap {r['worst']}×, p99 {r['p99']}×"
        for phase, r in ratios.items()
    )
    (jpeg, jpeg_size), (png, png_size) = sizes.items()
    text = (
        f"# Viewer responsiveness on huge photos\n\n"
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
        f"Measured by `{command}` (writes this file and viewer_responsiveness.json).\n"
    )
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results / "viewer_responsiveness.md", text)
    atomic_write_json(args.results / "viewer_responsiveness.json", record)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
