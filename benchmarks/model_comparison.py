"""Latency and AP of Mask R-CNN checkpoints side by side on the held-out CCP photos.

    python benchmarks/model_comparison.py CHECKPOINT [CHECKPOINT ...] [--threads 1] [--floor 0.05]

Each checkpoint is predicted with the app's pipeline
(:class:`~fashionviewer.core.inference.predictor.Predictor`, at the size its card names)
on every photo of the Clothing Co-Parsing val split (../shared/data/ccp), one
image at a time, and its predictions are scored with the project's evaluator
(:func:`~fashionviewer.core.data.evaluation.evaluate_coco`, pycocotools) against the
same split. Reports parameters, median/p90 seconds per image (decoding
excluded), and segm/bbox AP and AP50; writes
``benchmarks/results/model_comparison.{md,json}``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import parse_ccp_benchmark, run_benchmark  # noqa: E402

from fashionviewer.core.base.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from fashionviewer.core.data.datasets.ccp import CCPDataset  # noqa: E402
from fashionviewer.core.data.evaluation import evaluate_coco  # noqa: E402
from fashionviewer.core.data.imageio import load_image  # noqa: E402
from fashionviewer.core.inference.families import (  # noqa: E402
    load_model,
    load_predictor,
    resolve_model_path,
)


def measure(checkpoint: str, dataset: CCPDataset, ground_truth: dict, floor: float) -> dict:
    predictor = load_predictor(checkpoint, "cpu", score_floor=floor)
    card = predictor.card
    images = [(entry, load_image(entry.path)) for entry in dataset.images]
    predictor.predict(images[0][1])  # warm-up
    seconds, results = [], []
    for entry, image in images:
        start = time.perf_counter()
        prediction = predictor.predict(image, entry.file_name, entry.image_id)
        seconds.append(time.perf_counter() - start)
        results += prediction.to_coco_results(category_ids=predictor.category_ids)
    ordered = sorted(seconds)
    row = {
        "checkpoint": checkpoint,
        "architecture": card.get("architecture"),
        "min_size": card.get("min_size"),
        # Counted on the checkpoint's own model: the predictor's has its batch norms folded away.
        "parameters": sum(
            p.numel() for p in load_model(resolve_model_path(checkpoint))[0].parameters()
        ),
        "training": {
            key: card.get("training", {}).get(key)
            for key in ("seconds", "freeze_backbone", "image_size")
        },
        "median_s": round(statistics.median(ordered), 3),
        "p90_s": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
        "detections_per_image": round(len(results) / len(images), 1),
    }
    for iou in ("segm", "bbox"):
        metrics = evaluate_coco(ground_truth, results, iou) if results else {"AP": 0.0, "AP50": 0.0}
        row[f"{iou}_ap"], row[f"{iou}_ap50"] = round(metrics["AP"], 4), round(metrics["AP50"], 4)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("checkpoints", nargs="+", help="bundled model names (ccp) or checkpoint paths")
    p.add_argument(
        "--floor", type=float, default=0.05, help="score floor (COCO evaluation: low, as usual)"
    )
    parsed = parse_ccp_benchmark(p, argv, default_threads=1)
    if parsed is None:
        return 2
    args, root = parsed
    dataset = CCPDataset(root, "val")
    ground_truth = dataset.coco_ground_truth()
    rows = []
    for checkpoint in args.checkpoints:
        rows.append(measure(checkpoint, dataset, ground_truth, args.floor))
        print(rows[-1], flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        args.results / "model_comparison.json",
        {"split": "ccp val", "images": len(dataset), "threads": args.threads, "rows": rows},
    )
    lines = [
        f"# Models on {len(dataset)} held-out CCP photos ({args.threads} CPU thread(s), floor {args.floor})\n",
        "| checkpoint | architecture | px | parameters | median s/img | p90 s/img | segm AP | segm AP50 "
        "| bbox AP | bbox AP50 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['checkpoint']} | {r['architecture']} | {r['min_size']} | {r['parameters']:,} | {r['median_s']} "
        f"| {r['p90_s']} | {r['segm_ap']} | {r['segm_ap50']} | {r['bbox_ap']} | {r['bbox_ap50']} |"
        for r in rows
    ]
    lines.append(
        f"\nMeasured by `python benchmarks/model_comparison.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`.\n"
    )
    atomic_write_text(args.results / "model_comparison.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    run_benchmark(main)
