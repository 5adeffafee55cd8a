"""Does the sparse RoI pool still pay for itself? The same Predictor set-up with each CPU RoI pool.

    python benchmarks/roi_pool.py [--model demo|maskrcnn_resnet50_fpn] [--images 6] [--rounds 3] [--threads 2]

Two Predictors share one model (channels-last, batch norms folded: what ``load_predictor`` does on the
CPU, one view, no re-scoring) and differ only in the RoI pool wrapped around the box and mask poolers:
``SparseRoIAlign`` (one sparse product per level) and ``ThreadedRoIPool`` (torchvision's kernel split
over threads). Per image the two take turns (the order alternating by round), so machine load hits
both alike; also timed alone: both pools on the same real features and proposals of each image.
Reports medians and ratios (threaded / sparse: above 1 means the sparse pool is faster) and whether
the two Predictors' instances agree. Writes ``benchmarks/results/roi_pool_{model}.json``; the
decision and its figures are written up by hand in ``benchmarks/results/roi_pool.md``.

``--model demo``: the bundled demo model on the bundled demo scenes (no data needed);
``--model maskrcnn_resnet50_fpn``: the paper's architecture at 512 px with random weights (the
RoI heads' cost does not depend on the weights: the RPN still hands 1,000 proposals per image) on CCP photos.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fashionviewer.core.base.atomic import atomic_write_json  # noqa: E402
from fashionviewer.core.base.paths import DEMO_DIR, ccp_dir  # noqa: E402
from fashionviewer.core.data.imageio import load_image  # noqa: E402
from fashionviewer.core.inference.families import load_predictor  # noqa: E402
from fashionviewer.core.inference.predictor import Predictor  # noqa: E402
from fashionviewer.core.inference.roi_pool import SparseRoIAlign, ThreadedRoIPool  # noqa: E402
from fashionviewer.core.models.registry import get_model  # noqa: E402


def predictors(name: str) -> tuple[Predictor, Predictor, list[Path]]:
    """(sparse, threaded) Predictors sharing one model, and the images to run them on."""
    if name == "demo":
        sparse = load_predictor("demo", "cpu", rescore=False, tta=False)
        paths = sorted(DEMO_DIR.glob("*.png"))
    else:
        root = ccp_dir()
        if root is None:
            raise SystemExit(
                "error: --model maskrcnn_resnet50_fpn runs on the CCP photos (../shared/data/ccp)"
            )
        model = get_model(name, 2, weights=None, min_size=512)
        sparse = Predictor(
            model, ["item"], "cpu", channels_last=True, fold_batch_norm=True, model_name=name
        )
        paths = sorted((root / "photos").glob("*.jpg"))
    threaded = Predictor(
        sparse.model,
        sparse.class_names,
        "cpu",
        sparse.score_floor,
        model_name=sparse.model_name,
        # already folded and channels-last
        channels_last=True,
        sparse_roi_pool=False,
    )
    assert sparse.sparse_roi_pool and not threaded.sparse_roi_pool
    return sparse, threaded, paths


def pool_seconds(predictor: Predictor, image: torch.Tensor) -> dict[str, float]:
    """Each pool alone on this image's real features and proposals (box pool; mask pool on 20 boxes)."""
    model = predictor.model
    heads = model.roi_heads
    with torch.inference_mode():
        image_list, _ = model.transform([image.float() / 255])
        features = model.backbone(image_list.tensors)
        proposals, _ = model.rpn(image_list, features)
        sizes = image_list.image_sizes
        timings = {}
        for pool in (SparseRoIAlign, ThreadedRoIPool):
            box_pool, mask_pool = pool(heads.box_roi_pool), pool(heads.mask_roi_pool)
            box_pool(features, proposals, sizes)  # warm-up (scales, threads)
            start = time.perf_counter()
            box_pool(features, proposals, sizes)
            mask_pool(features, [p[:20] for p in proposals], sizes)
            timings[pool.__name__] = time.perf_counter() - start
    return timings


def agree(a, b) -> bool:
    if len(a.instances) != len(b.instances):
        return False
    return all(
        x.label == y.label and max(abs(p - q) for p, q in zip(x.box, y.box, strict=False)) < 0.05
        for x, y in zip(a.instances, b.instances, strict=False)
    )


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="demo", choices=["demo", "maskrcnn_resnet50_fpn"])
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sparse, threaded, paths = predictors(args.model)
    images = [load_image(path) for path in paths[: args.images]]
    arms = {"sparse": sparse, "threaded": threaded}
    seconds: dict[str, list[float]] = {arm: [] for arm in arms}
    pools: dict[str, list[float]] = {"SparseRoIAlign": [], "ThreadedRoIPool": []}
    agreed = []
    for arm in arms.values():
        arm.predict(images[0])  # warm-up
    for round_ in range(args.rounds):
        for i, image in enumerate(images):
            order = list(arms) if (round_ + i) % 2 == 0 else list(reversed(arms))
            outputs = {}
            for arm in order:
                start = time.perf_counter()
                outputs[arm] = arms[arm].predict(image)
                seconds[arm].append(time.perf_counter() - start)
            agreed.append(agree(outputs["sparse"], outputs["threaded"]))
            for name, value in pool_seconds(
                sparse, torch.from_numpy(image).permute(2, 0, 1)
            ).items():
                pools[name].append(value)
    median = {arm: statistics.median(values) for arm, values in seconds.items()}
    pool_median = {name: statistics.median(values) for name, values in pools.items()}
    result = {
        "model": args.model,
        "images": len(images),
        "rounds": args.rounds,
        "threads": args.threads,
        "min_size": list(sparse.model.transform.min_size),
        "score_floor": sparse.score_floor,
        "predict_median_s": {arm: round(v, 4) for arm, v in median.items()},
        "predict_ratio_threaded_over_sparse": round(median["threaded"] / median["sparse"], 3),
        "pools_alone_median_s": {name: round(v, 4) for name, v in pool_median.items()},
        "pools_ratio_threaded_over_sparse": round(
            pool_median["ThreadedRoIPool"] / pool_median["SparseRoIAlign"], 3
        ),
        "pool_share_of_predict": round(pool_median["ThreadedRoIPool"] / median["threaded"], 3),
        "instances_agree": f"{sum(agreed)}/{len(agreed)}",
        "command": f"python benchmarks/roi_pool.py {' '.join(sys.argv[1:])}",
    }
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results / f"roi_pool_{args.model}.json", result)
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
