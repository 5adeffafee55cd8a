"""The real-photo garment model on the 100 held-out CCP photos, measured with the project's own commands.

    python benchmarks/fashion_model.py [--model fashion] [--threads 1] [--min-score 0.001]

Links the photos of the CCP validation split (``CCPDataset(split="val")``: the seeded 100 of
0001-0800 that no model here trains on) into a scratch folder, then runs exactly what a user
would:

    fashionviewer predict VALDIR --model MODEL --out OUT --min-score S --no-cache --threads T
    fashionviewer evaluate --gt CCP --split val --pred OUT/predictions.json --iou segm|bbox|parsing --json ...

(the taxonomy, iMaterialist, is read from OUT/run.json). Reports segm/bbox AP, the per-class AP of
the ten classes with the most validation instances, pixel accuracy and mean IoU beside the CCP
paper's 88.23 %, and seconds per photo (the predict run's wall time over its photos, decoding
included, ``--threads`` torch threads); writes ``benchmarks/results/fashion_model.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import parse_ccp_benchmark, run_benchmark  # noqa: E402

from fashionviewer.core.base.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from fashionviewer.core.data.datasets.ccp import CCPDataset  # noqa: E402
from fashionviewer.core.inference.defaults import SCORE_FLOOR  # noqa: E402
from fashionviewer.evaluate import main as evaluate  # noqa: E402
from fashionviewer.predict import main as predict  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", default="fashion", help="bundled name or checkpoint (default fashion)"
    )
    parser.add_argument(
        "--min-score", type=float, default=0.001, help="predict's --min-score (AP wants them all)"
    )
    parser.add_argument(
        "--parsing-min-score",
        type=float,
        default=SCORE_FLOOR,
        help="the headline parsing figures paint predictions scoring at least this (default "
        f"{SCORE_FLOOR:g}: what a default `fashionviewer predict` run writes)",
    )
    parser.add_argument(
        "--parsing-sweep",
        default="0,0.1,0.2,0.3,0.5",
        help="also report parsing at these evaluate --min-score values",
    )
    parser.add_argument("--name", default="fashion_model", help="results file stem")
    parsed = parse_ccp_benchmark(parser, argv, default_threads=1)
    if parsed is None:
        return 2
    args, root = parsed
    val = CCPDataset(root, "val", taxonomy="imaterialist")
    ground_truth = val.coco_ground_truth()
    names = {cat["id"]: cat["name"] for cat in ground_truth["categories"]}
    counts = Counter(names[a["category_id"]] for a in ground_truth["annotations"])
    with tempfile.TemporaryDirectory() as scratch:
        photos, out = Path(scratch) / "val", Path(scratch) / "out"
        photos.mkdir()
        for entry in val.images:
            os.symlink(entry.path, photos / entry.file_name)
        predict_cmd = [
            str(photos),
            "--model",
            args.model,
            "--out",
            str(out),
            "--min-score",
            str(args.min_score),
            "--no-cache",
            "--threads",
            str(args.threads),
        ]
        status = predict(predict_cmd)
        if status != 0:
            return status
        run = json.loads((out / "run.json").read_text())
        metrics = {}
        runs = [
            ("segm", []),
            ("bbox", []),
            ("parsing", ["--min-score", str(args.parsing_min_score)]),
        ]
        runs += [(f"parsing@{v}", ["--min-score", v]) for v in args.parsing_sweep.split(",") if v]
        for key, extra in runs:
            target = Path(scratch) / f"{key}.json"
            status = evaluate(
                [
                    "--gt",
                    str(root),
                    "--split",
                    "val",
                    "--pred",
                    str(out / "predictions.json"),
                    "--iou",
                    key.split("@")[0],
                    "--json",
                    str(target),
                    *extra,
                ]
            )
            if status != 0:
                return status
            metrics[key] = json.loads(target.read_text())
    seconds = run["seconds"] / max(run["model_runs"], 1)
    wall, cpu = _timing(args.model, val)
    top = [name for name, _ in counts.most_common(10)]
    report = {
        "model": args.model,
        "weights_sha256": run.get("weights_sha256"),
        "taxonomy": run.get("taxonomy"),
        "images": run["images"],
        "threads": args.threads,
        "seconds_per_photo": round(seconds, 3),
        "median_predict_seconds": round(wall, 3),
        "median_predict_cpu_seconds": round(cpu, 3),
        "load_average": round(os.getloadavg()[0], 2),
        "segm": {k: metrics["segm"][k] for k in ("AP", "AP50", "AP75")},
        "bbox": {k: metrics["bbox"][k] for k in ("AP", "AP50", "AP75")},
        "per_class_segm_ap_top10": {name: metrics["segm"]["per_class"][name] for name in top},
        "per_class_bbox_ap_top10": {name: metrics["bbox"]["per_class"][name] for name in top},
        "val_instances_top10": {name: counts[name] for name in top},
        "pixel_accuracy": metrics["parsing"]["pixel_accuracy"],
        "miou": metrics["parsing"]["miou"],
        "garment_pixel_accuracy": metrics["parsing"]["garment_pixel_accuracy"],
        "parsing_min_score": metrics["parsing"]["min_score"],
        "parsing_sweep": {
            str(m["min_score"]): {"pixel_accuracy": m["pixel_accuracy"], "miou": m["miou"]}
            for key, m in metrics.items()
            if key.startswith("parsing@")
        },
        "ccp_paper_pixel_accuracy": metrics["parsing"]["ccp_paper_pixel_accuracy"],
        "commands": [
            f"fashionviewer predict VALDIR {' '.join(predict_cmd[1:]).replace(str(out), 'OUT')}",
            "fashionviewer evaluate --gt ../shared/data/ccp --split val --pred OUT/predictions.json --iou segm",
            "fashionviewer evaluate --gt ../shared/data/ccp --split val --pred OUT/predictions.json --iou bbox",
            "fashionviewer evaluate --gt ../shared/data/ccp --split val --pred OUT/predictions.json --iou parsing"
            f" --min-score {args.parsing_min_score:g}",
        ],
    }
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results / f"{args.name}.json", report)
    atomic_write_text(args.results / f"{args.name}.md", _markdown(report))
    print(_markdown(report))
    return 0


def _timing(model: str, val: CCPDataset) -> tuple[float, float]:
    """Median wall and CPU (this process) seconds of ``predict`` per photo, decoded beforehand. The CPU
    time does not grow when other jobs share the cores; the wall time does."""
    import statistics
    import time

    from fashionviewer.core.data.imageio import load_image
    from fashionviewer.core.inference.families import load_predictor

    predictor = load_predictor(model, "cpu")
    walls, cpus = [], []
    for entry in val.images[:30]:
        image = load_image(entry.path)
        wall, cpu = time.perf_counter(), time.process_time()
        predictor.predict(image, entry.file_name)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _markdown(r: dict) -> str:
    lines = [
        f"# `{r['model']}` on the 100 held-out CCP photos (iMaterialist taxonomy)",
        "",
        "Written by `python benchmarks/fashion_model.py`, which runs, on a folder linking the photos of "
        '`CCPDataset(split="val")` (VALDIR):',
        "",
        "```",
        *r["commands"],
        "```",
        "",
        "| measure | value |",
        "|---|---|",
        f"| segm AP / AP50 / AP75 | {r['segm']['AP']:.3f} / {r['segm']['AP50']:.3f} / {r['segm']['AP75']:.3f} |",
        f"| bbox AP / AP50 / AP75 | {r['bbox']['AP']:.3f} / {r['bbox']['AP50']:.3f} / {r['bbox']['AP75']:.3f} |",
        f"| pixel accuracy (CCP paper: {100 * r['ccp_paper_pixel_accuracy']:.2f} %) | "
        f"{100 * r['pixel_accuracy']:.2f} % |",
        f"| garment pixel accuracy (pixels whose truth is a garment) | {100 * r['garment_pixel_accuracy']:.2f} % |",
        f"| mean IoU over garment classes | {r['miou']:.3f} |",
        f"| seconds per photo, the predict run ({r['threads']} torch thread(s), decoding included) | "
        f"{r['seconds_per_photo']:.3f} |",
        f"| `Predictor.predict` per photo, median wall / CPU seconds (load average {r['load_average']}) | "
        f"{r['median_predict_seconds']:.3f} / {r['median_predict_cpu_seconds']:.3f} |",
        "",
        "Per-class AP, the ten classes with the most validation instances:",
        "",
        "| class | val instances | segm AP | bbox AP |",
        "|---|---|---|---|",
    ]
    for name, count in r["val_instances_top10"].items():
        lines.append(
            f"| {name} | {count} | {r['per_class_segm_ap_top10'][name]:.3f} | "
            f"{r['per_class_bbox_ap_top10'][name]:.3f} |"
        )
    lines += [
        "",
        f"The parsing figures above paint every prediction scoring >= {r['parsing_min_score']:g}, "
        "what a default `fashionviewer predict` run writes (the highest score wins where they overlap). "
        "At other `--min-score` values (0: every prediction of the AP run):",
        "",
        "| --min-score | pixel accuracy | mean IoU |",
        "|---|---|---|",
    ]
    lines += [
        f"| {s} | {100 * v['pixel_accuracy']:.2f} % | {v['miou']:.3f} |"
        for s, v in r["parsing_sweep"].items()
    ]
    lines += ["", f"Weights sha256 `{r['weights_sha256']}`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    run_benchmark(main)
