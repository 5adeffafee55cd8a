"""Memory of ``fashionviewer predict`` over a long folder: does it stay flat?

    python benchmarks/predict_memory.py [--images 800] [--checkpoints 100,800] [--model demo|PATH]
                                        [--device cpu] [--threads 0]

Runs the real command (``fashionviewer.predict.main``: prefetch threads, persistent cache, partial
results, streamed final JSON) over the first ``--images`` Clothing Co-Parsing photos in
``../shared/data/ccp/photos`` (read in place, never copied), with a fresh cache and output folder
in a temporary directory so the model runs on every image. After the images named in
``--checkpoints`` it records the peak resident memory of the process so far (``ru_maxrss``) and the
current RSS. Target: peak RSS after the last checkpoint within 10 % of the first.

``--model demo`` uses the bundled demo model when installed; otherwise a seeded random-weights
``maskrcnn_mobilenet_v3_light`` (its untrained heads hit the 50-detections-per-image cap on every
photo, the worst case for masks held in memory). Writes ``benchmarks/results/predict_memory.{md,json}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402
from common import ccp_root_or_report  # noqa: E402

from fashionviewer.core.base.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from fashionviewer.core.base.errors import FashionViewerError  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def rss_mb() -> float:
    """Current resident set size (MiB)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_argument(name: str, workdir: Path) -> tuple[str, str]:
    """(--model value, description): the demo model, a checkpoint path, or a random light stand-in."""
    from fashionviewer.core.viewer.model_choice import demo_available

    if name != "demo" or demo_available():
        return name, name
    from fashionviewer.core.data.fmnist import CLASSES
    from fashionviewer.core.models.registry import get_model, save_checkpoint

    torch.manual_seed(0)
    path = workdir / "random_light.pt"
    save_checkpoint(
        get_model("maskrcnn_mobilenet_v3_light", len(CLASSES) + 1, weights=None),
        path,
        {"class_names": list(CLASSES)},
    )
    return str(
        path
    ), "maskrcnn_mobilenet_v3_light, seeded random weights (demo model not installed), 320 px"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=800)
    parser.add_argument(
        "--checkpoints", default="100,800", help="image counts at which memory is sampled"
    )
    parser.add_argument("--model", default="demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    args = parser.parse_args()
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",") if c.strip()})
    if not checkpoints or checkpoints[-1] > args.images or checkpoints[0] < 1:
        parser.error("--checkpoints must be image counts between 1 and --images")
    root = ccp_root_or_report()
    if root is None:
        return 2
    photos = root / "photos"

    from fashionviewer.predict import main as predict

    samples: list[dict[str, float]] = []
    started = time.perf_counter()

    def on_image(done: int) -> None:
        if done in checkpoints:
            samples.append(
                {
                    "images": done,
                    "peak_rss_mb": round(peak_rss_mb(), 1),
                    "rss_mb": round(rss_mb(), 1),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
            print(
                f"after {done} images: peak RSS {samples[-1]['peak_rss_mb']:.0f} MiB, "
                f"RSS {samples[-1]['rss_mb']:.0f} MiB",
                file=sys.stderr,
            )

    with tempfile.TemporaryDirectory(prefix="fv-predict-memory-") as tmp:
        work = Path(tmp)
        model, model_text = model_argument(args.model, work)
        argv = [
            str(photos),
            "--out",
            str(work / "out"),
            "--model",
            model,
            "--device",
            args.device,
            "--cache",
            str(work / "cache.sqlite3"),
            "--limit",
            str(args.images),
            "--allow-random",
        ]
        if args.threads:
            argv += ["--threads", str(args.threads)]
        baseline = rss_mb()
        try:
            status = predict(argv, on_image=on_image)
        except FashionViewerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        seconds = time.perf_counter() - started
        results_mb = (work / "out" / "predictions.json").stat().st_size / 2**20

    first, last = samples[0], samples[-1]
    ratio = last["peak_rss_mb"] / first["peak_rss_mb"]
    report = {
        "benchmark": "predict_memory",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": model_text,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "images": args.images,
        "photos": f"{photos} (Clothing Co-Parsing, first {args.images} in sorted order)",
        "exit_status": status,
        "seconds": round(seconds, 1),
        "seconds_per_image": round(seconds / args.images, 3),
        "results_json_mb": round(results_mb, 1),
        "rss_before_run_mb": round(baseline, 1),
        "samples": samples,
        "peak_ratio_last_to_first": round(ratio, 4),
        "within_10_percent": ratio <= 1.10,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "predict_memory.json", report)
    rows = "\n".join(
        f"| {s['images']} | {s['peak_rss_mb']:.0f} | {s['rss_mb']:.0f} | {s['seconds']:.0f} |"
        for s in samples
    )
    atomic_write_text(
        RESULTS / "predict_memory.md",
        f"""# `fashionviewer predict` memory over a long folder

{report["date"]} — {report["machine"]}

Model: {model_text}; device {args.device}, {report["threads"]} torch thread(s); fresh cache, so the model
runs on every image. Photos: {report["photos"]}. {args.images} images in {seconds:.0f} s
({report["seconds_per_image"]:.2f} s/image); COCO results file {results_mb:.1f} MB. RSS before the run
(after imports): {baseline:.0f} MiB.

| images done | peak RSS (MiB) | RSS now (MiB) | elapsed (s) |
|---:|---:|---:|---:|
{rows}

Peak RSS after {last["images"]} images / after {first["images"]}: **{ratio:.3f}**
({"within" if ratio <= 1.10 else "NOT within"} the 10 % target).

Reproduce: `python benchmarks/predict_memory.py --images {args.images} --checkpoints {args.checkpoints}`
""",
    )
    print(
        f"peak RSS {first['peak_rss_mb']:.0f} MiB after {first['images']} images, {last['peak_rss_mb']:.0f} MiB "
        f"after {last['images']}: ratio {ratio:.3f}; wrote {RESULTS / 'predict_memory.md'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
