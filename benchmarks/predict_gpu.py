"""GPU throughput of the prediction pipeline: images/s for R50-FPN at 512 px, batch 1 and 8, fp32 and bf16.

    python benchmarks/predict_gpu.py [--images 64] [--weights coco|PATH|random|auto] [--device cuda]

Prepared to run as one short script (well under 8 minutes on one data-centre
GPU) when a machine with a GPU is available. Images are real CCP photos
(../shared/data/ccp) decoded into memory first, so the figures are the model
and its post-processing (``Predictor.predict_batch``: RoI heads, mask pasting
to RLE), not JPEG decoding. bf16 means the backbone and FPN run under
``torch.autocast(dtype=torch.bfloat16)`` (the RPN and heads stay float32, as in
the app's opt-in ``backbone_dtype``). Target: >= 50 images/s.

Writes ``benchmarks/results/predict_gpu.{md,json}``. ``--device cpu --images 2
--repeats 1`` runs the same code on a CPU as a smoke test (its figures say
nothing about a GPU and are written to ``--results`` only when asked).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import run_benchmark  # noqa: E402
from predict_speed import build_model  # noqa: E402

from fashionviewer.core.base.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from fashionviewer.core.base.paths import DEMO_DIR, ccp_dir  # noqa: E402
from fashionviewer.core.data.imageio import list_images, load_image  # noqa: E402
from fashionviewer.core.inference.folding import fold_batch_norms  # noqa: E402
from fashionviewer.core.inference.predictor import Predictor  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(predictor: Predictor, images: list, batch: int, repeats: int) -> dict[str, float]:
    """Images per second over ``repeats`` passes through ``images`` in batches of ``batch`` (after a warm-up)."""
    predictor.predict_batch(images[:batch])
    synchronize(predictor.device)
    start = time.perf_counter()
    done = 0
    for _ in range(repeats):
        for i in range(0, len(images) - batch + 1, batch):
            predictor.predict_batch(images[i : i + batch])
            done += batch
    synchronize(predictor.device)
    seconds = time.perf_counter() - start
    return {"images": done, "seconds": round(seconds, 3), "images_per_s": round(done / seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3, help="passes over the images per setting")
    p.add_argument("--model", default="maskrcnn_resnet50_fpn")
    p.add_argument(
        "--weights",
        default="auto",
        help="coco, a checkpoint path, random, or auto (coco if cached)",
    )
    p.add_argument(
        "--num-classes", type=int, default=47, help="classes incl. background for random weights"
    )
    p.add_argument(
        "--min-size", type=int, default=None, help="shorter side in px (default: the model's own)"
    )
    p.add_argument("--floor", type=float, default=0.3)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--device", default="cuda")
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="where to write predict_gpu.{md,json} (default benchmarks/results on a GPU, nowhere on a CPU)",
    )
    args = p.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA GPU here (use --device cpu for a smoke test)", file=sys.stderr)
        return 2
    root = ccp_dir()
    paths = sorted((root / "photos").glob("*.jpg")) if root else list_images(DEMO_DIR)
    images = [load_image(path) for path in paths[: args.images]]
    if not images:
        print("error: no images found (CCP photos or the bundled demo)", file=sys.stderr)
        return 2
    if args.weights == "auto":
        from fashionviewer.core.base.errors import WeightsError

        try:
            model, source, arch = build_model(args.model, "coco", args.num_classes, args.min_size)
        except WeightsError:
            model, source, arch = build_model(args.model, "random", args.num_classes, args.min_size)
    else:
        model, source, arch = build_model(args.model, args.weights, args.num_classes, args.min_size)
    names = [f"class {i}" for i in range(1, model.roi_heads.box_predictor.cls_score.out_features)]
    model = model.eval().to(device, memory_format=torch.channels_last)
    fold_batch_norms(model)  # as load_predictor does

    rows = []
    for dtype in (None, torch.bfloat16):
        predictor = Predictor(
            model, names, device, score_floor=args.floor, model_name=arch, backbone_dtype=dtype
        )
        for batch in (int(b) for b in args.batches.split(",")):
            result = throughput(predictor, images, min(batch, len(images)), args.repeats)
            rows.append(
                {"precision": "bf16 backbone" if dtype else "fp32", "batch": batch, **result}
            )
            print(rows[-1], flush=True)

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (smoke test)"
    report = {
        "model": arch,
        "weights": source,
        "min_size": model.transform.min_size[0],
        "floor": args.floor,
        "device": gpu,
        "torch": torch.__version__,
        "photos": "CCP" if root else "bundled demo",
        "rows": rows,
    }
    results = args.results or (REPO / "benchmarks" / "results" if device.type == "cuda" else None)
    if results is not None:
        results.mkdir(parents=True, exist_ok=True)
        atomic_write_json(results / "predict_gpu.json", report)
        table = "\n".join(
            f"| {r['precision']} | {r['batch']} | {r['images_per_s']} |" for r in rows
        )
        atomic_write_text(
            results / "predict_gpu.md",
            f"# GPU throughput: {arch} at {report['min_size']} px on {gpu}\n\nWeights: {source}; "
            f"floor {args.floor}; {len(images)} {report['photos']} photos x {args.repeats}.\n\n"
            f"| precision | batch | images/s |\n|---|---|---|\n{table}\n",
        )
    return 0


if __name__ == "__main__":
    run_benchmark(main)
