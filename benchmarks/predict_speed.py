"""Inference speed side by side: the plain loop a user would write vs FashionViewer's pipeline.

    python benchmarks/predict_speed.py [--images 24] [--weights coco|PATH|random] [--floor 0.3]

One process, the same real CCP photos (../shared/data/ccp) and the same weights:

(a) baseline — PIL open, ``to_tensor``, ``model([x])`` per image under
    ``torch.no_grad()`` with torchvision's defaults (every detection above 0.05
    gets a full-resolution float mask), then ``masks > 0.5``;
(b) pipeline — ``fashionviewer.core.inference.predictor.Predictor``: inference mode,
    box RoI pooling shared across threads, masks computed and pasted only for
    detections at or above the floor, straight to RLE, images decoded in a
    background thread while the model runs; ``--channels-last
    --fold-batch-norm`` add what ``load_predictor`` does on the CPU (faster
    convolutions and batch norms folded into them, but not bit-identical, so
    near-tie detections of a weak model can come out differently).

Both arms use ``maskrcnn_resnet50_fpn`` at 512 px (``--model`` to change), the
same thread count and the same weights (the pipeline has its own copy), and
take turns on chunks of ``--chunk`` images so that a change in machine load
hits both alike. Outputs must agree: every baseline instance scoring at
least the floor is matched by one of ours with the same class, box IoU ≥ 0.99
and mask IoU ≥ 0.98. A third, untimed pass runs the plain loop on inputs nudged
by 1e-6 to find the model's own unstable detections (near-ties that any change
of float rounding can flip), and agreement is also reported over the stable
ones. Reports per-image latency (median, p90), images/s and
peak memory (RSS above the idle level, sampled every 5 ms) for both, as ratios;
writes ``benchmarks/results/predict_speed_{model}_{weights}_{dtype}[_channels_last][_folded].{md,json}``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import parse_ccp_benchmark, run_benchmark  # noqa: E402

from fashionviewer.core.base.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from fashionviewer.core.base.errors import WeightsError  # noqa: E402
from fashionviewer.core.data.imageio import load_image  # noqa: E402
from fashionviewer.core.data.masks import decode_mask  # noqa: E402
from fashionviewer.core.inference.predictor import Predictor  # noqa: E402
from fashionviewer.core.models.registry import get_model, load_checkpoint  # noqa: E402

NUDGE = 1e-6  # input noise for the stability check (one 8-bit grey level is 1/255 = 0.0039)


class PeakRSS:
    """Peak resident memory of this process while the block runs, above its level at entry."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096

    def __enter__(self) -> "PeakRSS":
        self.start = self.rss()
        self.peak = self.start
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def used_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def build_model(
    name: str, weights: str, num_classes: int, min_size: int | None
) -> tuple[torch.nn.Module, str, str]:
    """The model both arms run (COCO weights, seeded random ones, or a checkpoint at its card's
    classes), what the weights are, and the architecture's name."""
    if weights == "coco":
        return (
            get_model(name, 91, weights="coco", min_size=min_size),
            "torchvision COCO weights",
            name,
        )
    if weights == "random":
        torch.manual_seed(0)
        model = get_model(name, num_classes, weights=None, min_size=min_size)
        return model, f"seeded random init, {num_classes} classes", name
    model, card = load_checkpoint(weights)
    if min_size:
        model.transform.min_size = (min_size,)
        model.transform.max_size = round(min_size * 1333 / 800)
    trained = card.get("training", {})
    return (
        model,
        (
            f"{weights} ({card['architecture']}, {len(card['class_names'])} classes, trained "
            f"{trained.get('seconds', '?')} s on {card.get('dataset', {}).get('name', '?')}"
            f"{', backbone frozen' if trained.get('freeze_backbone') else ''})"
        ),
        card["architecture"],
    )


def baseline(
    model: torch.nn.Module, paths: list[Path], nudge: float = 0.0
) -> tuple[list[dict], list[float], float]:
    """The plain loop; ``nudge`` adds that much Gaussian noise to each input (the stability check)."""
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    outputs, latencies = [], []
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for path in paths:
        t0 = time.perf_counter()
        x = to_tensor(Image.open(path).convert("RGB"))
        if nudge:
            x = x + nudge * torch.randn(x.shape, generator=generator)
        with torch.no_grad():
            out = model([x])[0]
        out["masks"] = out["masks"][:, 0] > 0.5
        outputs.append(out)
        latencies.append(time.perf_counter() - t0)
    return outputs, latencies, time.perf_counter() - start


def pipeline(
    predictor: Predictor, paths: list[Path], batch: int
) -> tuple[list, list[float], float]:
    predictions, latencies = [], []
    start = time.perf_counter()
    # decode the next images while the model runs
    with ThreadPoolExecutor(max_workers=1) as decoder:
        images = decoder.map(load_image, paths)
        pending: list[np.ndarray] = []
        t0 = time.perf_counter()
        for i, image in enumerate(images):
            pending.append(image)
            if len(pending) == batch or i == len(paths) - 1:
                predictions += predictor.predict_batch(
                    pending, [p.name for p in paths[i - len(pending) + 1 : i + 1]]
                )
                now = time.perf_counter()
                latencies += [(now - t0) / len(pending)] * len(pending)
                pending, t0 = [], now
    return predictions, latencies, time.perf_counter() - start


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 1.0


def as_instances(prediction) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(label, box, boolean mask) of a pipeline prediction's or a baseline output's instances."""
    if isinstance(prediction, dict):
        return [
            (int(label), box.numpy(), mask.numpy())
            for label, box, mask in zip(
                prediction["labels"], prediction["boxes"], prediction["masks"], strict=False
            )
        ]
    return [
        (inst.label, np.array(inst.box), decode_mask(inst.rle).astype(bool))
        for inst in prediction.instances
    ]


def matches(
    base_outputs: list[dict], others: list, floor: float
) -> list[tuple[float, float] | None]:
    """For each baseline instance scoring at least ``floor``: (box IoU, mask IoU) of its best match
    among ``others`` (same class, box IoU >= 0.99, mask IoU >= 0.98), or None."""
    found = []
    for out, other in zip(base_outputs, others, strict=False):
        theirs = as_instances(other)
        for k in torch.nonzero(out["scores"] >= floor).flatten().tolist():
            box, mask, label = (
                out["boxes"][k].numpy(),
                out["masks"][k].numpy(),
                int(out["labels"][k]),
            )
            best = None
            for their_label, their_box, their_mask in theirs:
                if their_label == label and (b_iou := box_iou(box, their_box)) >= 0.99:
                    union = np.logical_or(mask, their_mask).sum()
                    m_iou = np.logical_and(mask, their_mask).sum() / union if union else 1.0
                    if best is None or m_iou > best[1]:
                        best = (b_iou, m_iou)
            found.append(best if best is not None and best[1] >= 0.98 else None)
    return found


def agreement(found: list[tuple[float, float] | None], among: list[bool] | None = None) -> dict:
    """Summary of :func:`matches`, over the instances flagged in ``among`` if given."""
    kept = [f for i, f in enumerate(found) if among is None or among[i]]
    hits = [f for f in kept if f is not None]
    return {
        "checked": len(kept),
        "matched": len(hits),
        "worst_box_iou": round(float(min((h[0] for h in hits), default=1.0)), 4),
        "worst_mask_iou": round(float(min((h[1] for h in hits), default=1.0)), 4),
        "agree": len(hits) == len(kept),
    }


def summary(latencies: list[float], total: float, n: int, memory_mb: float) -> dict:
    ordered = sorted(latencies)
    return {
        "median_s": round(statistics.median(ordered), 3),
        "p90_s": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
        "images_per_s": round(n / total, 3),
        "peak_mb": round(memory_mb, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--model", default="maskrcnn_resnet50_fpn")
    p.add_argument(
        "--weights",
        default="auto",
        help="coco, a checkpoint path, random, or auto (coco if cached)",
    )
    p.add_argument(
        "--num-classes", type=int, default=2, help="classes incl. background for random weights"
    )
    p.add_argument(
        "--min-size",
        type=int,
        default=None,
        help="shorter side in px (default: the architecture's, 512 for R50-FPN; a checkpoint's own)",
    )
    p.add_argument(
        "--floor",
        type=float,
        default=0.3,
        help="the pipeline's score floor (and the agreement check's)",
    )
    p.add_argument("--batch", type=int, default=1)
    p.add_argument(
        "--chunk",
        type=int,
        default=4,
        help="the arms take turns on chunks of this many images, so both see the same machine load",
    )
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="the pipeline's model in channels-last order as load_predictor does on the CPU (faster "
        "convolutions, different float rounding)",
    )
    p.add_argument(
        "--fold-batch-norm",
        action="store_true",
        help="the pipeline's batch norms folded into its convolutions as load_predictor does "
        "(core.folding; float rounding differs by about 1e-6)",
    )
    p.add_argument(
        "--roi-pool",
        choices=["auto", "sparse", "threaded"],
        default="auto",
        help="the pipeline's CPU RoI pool (core.roi_pool): auto = sparse with --channels-last, as "
        "load_predictor does; threaded = torchvision's kernel on every core",
    )
    p.add_argument(
        "--backbone-dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="the pipeline's backbone precision (bfloat16: fast on CPUs with AVX512-BF16)",
    )
    parsed = parse_ccp_benchmark(p, argv, default_threads=torch.get_num_threads())
    if parsed is None:
        return 2
    args, root = parsed
    if args.batch < 1 or args.chunk < 1 or args.chunk % args.batch:
        p.error("--batch and --chunk must be >= 1, and --chunk a multiple of --batch")
    paths = sorted((root / "photos").glob("*.jpg"))[: args.images]
    weights = args.weights
    if weights == "auto":
        try:
            model, source, arch = build_model(args.model, "coco", args.num_classes, args.min_size)
            weights = "coco"
        except WeightsError:
            model, source, arch = build_model(args.model, "random", args.num_classes, args.min_size)
            weights = "random"
    else:
        model, source, arch = build_model(args.model, weights, args.num_classes, args.min_size)
    size = model.transform.min_size[0]
    weights_tag = weights if weights in ("coco", "random") else Path(weights).stem
    if weights_tag in ("model", "model_best"):  # a trainer's output folder names the run
        weights_tag = Path(weights).resolve().parent.name
    model.eval()
    num_classes = model.roi_heads.box_predictor.cls_score.out_features
    names = [f"class {i}" for i in range(1, num_classes)]

    backbone_dtype = torch.bfloat16 if args.backbone_dtype == "bfloat16" else None
    # Its own copy of the same weights: channels-last converts the model in place.
    predictor = Predictor(
        copy.deepcopy(model),
        names,
        "cpu",
        score_floor=args.floor,
        model_name=arch,
        channels_last=args.channels_last,
        backbone_dtype=backbone_dtype,
        fold_batch_norm=args.fold_batch_norm,
        sparse_roi_pool=None if args.roi_pool == "auto" else args.roi_pool == "sparse",
    )
    baseline(model, paths[:1])  # warm-up, both arms
    predictor.predict(load_image(paths[0]))
    base_out, base_lat, base_total, base_peak = [], [], 0.0, 0.0
    fast_out, fast_lat, fast_total, fast_peak = [], [], 0.0, 0.0
    # the arms take turns: load changes hit both alike
    for start in range(0, len(paths), args.chunk):
        chunk = paths[start : start + args.chunk]
        with PeakRSS() as memory:
            outputs, latencies, total = baseline(model, chunk)
        base_out, base_lat, base_total = (
            base_out + outputs,
            base_lat + latencies,
            base_total + total,
        )
        base_peak = max(base_peak, memory.used_mb)
        with PeakRSS() as memory:
            outputs, latencies, total = pipeline(predictor, chunk, args.batch)
        fast_out, fast_lat, fast_total = (
            fast_out + outputs,
            fast_lat + latencies,
            fast_total + total,
        )
        fast_peak = max(fast_peak, memory.used_mb)
    # How stable is the model itself? The same plain loop on inputs nudged by NUDGE (far below one
    # 8-bit grey level): detections it does not reproduce are near-ties any rounding change can flip.
    found = matches(base_out, fast_out, args.floor)
    stable = [
        f is not None for f in matches(base_out, baseline(model, paths, nudge=NUDGE)[0], args.floor)
    ]

    result = {
        "model": arch,
        "weights": source,
        "min_size": size,
        "images": len(paths),
        "threads": args.threads,
        "floor": args.floor,
        "batch": args.batch,
        "chunk": args.chunk,
        "channels_last": args.channels_last,
        "fold_batch_norm": args.fold_batch_norm,
        "backbone_dtype": args.backbone_dtype,
        "sparse_roi_pool": predictor.sparse_roi_pool,
        "detections_per_image_baseline": round(
            float(np.mean([len(o["scores"]) for o in base_out])), 1
        ),
        "instances_per_image_at_floor": round(
            float(np.mean([len(p.instances) for p in fast_out])), 1
        ),
        "baseline": summary(base_lat, base_total, len(paths), base_peak),
        "pipeline": summary(fast_lat, fast_total, len(paths), fast_peak),
        "agreement": agreement(found),
        "baseline_self_agreement_nudged": agreement([(1.0, 1.0) if ok else None for ok in stable]),
        "agreement_on_stable_instances": agreement(found, among=stable),
        "nudge": NUDGE,
    }
    result["throughput_ratio"] = round(
        result["pipeline"]["images_per_s"] / result["baseline"]["images_per_s"], 2
    )
    result["peak_memory_ratio"] = round(
        result["pipeline"]["peak_mb"] / max(result["baseline"]["peak_mb"], 1e-6), 2
    )
    args.results.mkdir(parents=True, exist_ok=True)
    layout = ("_channels_last" if args.channels_last else "") + (
        "_folded" if args.fold_batch_norm else ""
    )
    if args.roi_pool != "auto":
        layout += f"_{args.roi_pool}_pool"
    stem = f"predict_speed_{arch}_{weights_tag}_{args.backbone_dtype}{layout}"
    atomic_write_json(args.results / f"{stem}.json", result)
    b, f = result["baseline"], result["pipeline"]
    table = (
        f"# Inference speed: {arch} at {size} px, {len(paths)} CCP photos, {args.threads} threads\n\n"
        f"Weights: {source}. Pipeline floor {args.floor}, batch {args.batch}, "
        f"{'channels-last' if args.channels_last else 'NCHW'}"
        f"{', batch norms folded' if args.fold_batch_norm else ''}, "
        f"{'sparse' if predictor.sparse_roi_pool else 'threaded'} RoI pool, backbone {args.backbone_dtype}; the arms "
        f"alternate every {args.chunk} images. "
        f"Detections per image (baseline, ≥0.05): {result['detections_per_image_baseline']}; "
        f"instances per image at the floor: {result['instances_per_image_at_floor']}.\n\n"
        "| arm | median s/img | p90 s/img | images/s | peak MB |\n|---|---|---|---|---|\n"
        f"| baseline (plain loop) | {b['median_s']} | {b['p90_s']} | {b['images_per_s']} | {b['peak_mb']} |\n"
        f"| pipeline | {f['median_s']} | {f['p90_s']} | {f['images_per_s']} | {f['peak_mb']} |\n"
        f"| **ratio** | | | **{result['throughput_ratio']}×** | {result['peak_memory_ratio']}× |\n\n"
        f"Agreement (every baseline instance at the floor matched: same class, box IoU ≥ 0.99, mask IoU ≥ "
        f"0.98): {result['agreement']}\n\n"
        f"Stability of the model itself: the plain loop on inputs nudged by {NUDGE:g} (Gaussian) reproduces "
        f"{result['baseline_self_agreement_nudged']['matched']} of its "
        f"{result['baseline_self_agreement_nudged']['checked']} instances; the pipeline matches "
        f"{result['agreement_on_stable_instances']['matched']} of those "
        f"{result['agreement_on_stable_instances']['checked']}.\n\nMeasured by `python benchmarks/predict_speed.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`.\n"
    )
    atomic_write_text(args.results / f"{stem}.md", table)
    print(table)
    return 0


if __name__ == "__main__":
    run_benchmark(main)
