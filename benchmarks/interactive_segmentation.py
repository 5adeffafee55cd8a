"""Interactive segmentation on real garments: ``python benchmarks/interactive_segmentation.py``.

The oracle protocol on the garments of the Clothing Co-Parsing validation photos (CCPDataset's ``val``
split: 100 photos, seed 0, never trained on by any bundled model; photos 0801-1004 are never read):

* a garment is a CCP instance in the iMaterialist taxonomy (all pixels of one category: two shoes are one
  garment) of at least 400 px, any category: shoes, belts, bags and bracelets count;
* box protocol: interaction 1 is a box 5 px around the garment; each further one is a click at the point
  farthest inside the largest error region (missed: a positive click, spurious: a negative one);
* clicks-only protocol: interaction 1 is a positive click at the garment's innermost point (the maximum of
  its distance transform), then the same oracle clicks;
* NoC@85 counts interactions until IoU >= 0.85, capped at 11 (never reached: 11);
* seconds per interaction (one call) at photo size, one process, one thread; the first call on each garment
  (which computes the crop's features) is reported apart from the later ones.

Methods, on the same garments in one run: ``learned`` (``segment``: the bundled interactive network),
``segment`` (the previous ``segment``: its GrabCut path, ``method="grabcut"``) and ``grabcut`` (OpenCV's
GrabCut on the whole photo: rectangle init from the box, 5 iterations, clicks as 5-px hard seed discs,
re-run from scratch). The slow GrabCut methods run on every k-th garment (``--baseline-garments``), and the
learned model's figures on that subset are reported beside them. ``--reuse JSON`` takes the methods stored
in an earlier result file of the same sample instead of running them again (the table says so).
Writes ``benchmarks/results/interactive_segmentation.{md,json}`` (after each method, atomically).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import parse_ccp_benchmark, run_benchmark  # noqa: E402
from trainers.interactive import error_click, innermost_point  # noqa: E402  (the oracle training simulates)

MIN_AREA = 400
BOX_PAD = 5
TARGET_IOU = 0.85
MAX_INTERACTIONS = 11
BASELINE_ITERATIONS = 5
BASELINE_RADIUS = 5
METHOD_NAMES = {
    "learned": "learned model (segment)",
    "segment": "previous segment (GrabCut path)",
    "grabcut": "OpenCV GrabCut (whole photo)",
}


def load_garments(root: Path) -> tuple[list[dict[str, Any]], int]:
    """Every garment of >= MIN_AREA px of the val photos, in photo order: file, category name, mask."""
    from fashionviewer.core.data.datasets.ccp import CCPDataset

    dataset = CCPDataset(root, "val", taxonomy="imaterialist")
    garments = []
    for index, entry in enumerate(dataset.images):
        assert not 801 <= entry.image_id <= 1004  # held out by the data's owners
        for ann in dataset._annotations(index):
            mask = np.asarray(ann["segmentation"]).astype(bool)
            if mask.sum() >= MIN_AREA:
                garments.append(
                    {
                        "file": entry.file_name,
                        "category": dataset.class_names[ann["label"] - 1],
                        "area": int(mask.sum()),
                        "mask": mask,
                    }
                )
    return garments, len(dataset.images)


def padded_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    return (
        max(0, int(xs.min()) - BOX_PAD),
        max(0, int(ys.min()) - BOX_PAD),
        min(width, int(xs.max()) + 1 + BOX_PAD),
        min(height, int(ys.max()) + 1 + BOX_PAD),
    )


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def plain_grabcut(image: np.ndarray, box, positive, negative, state: dict) -> np.ndarray:
    bgr = state.setdefault("bgr", np.ascontiguousarray(image[..., ::-1]))
    mask = np.zeros(image.shape[:2], np.uint8)
    background, foreground = np.zeros((1, 65)), np.zeros((1, 65))
    if box is not None and not positive and not negative:
        x0, y0, x1, y1 = box
        cv2.grabCut(
            bgr,
            mask,
            (x0, y0, x1 - x0, y1 - y0),
            background,
            foreground,
            BASELINE_ITERATIONS,
            cv2.GC_INIT_WITH_RECT,
        )
    else:
        if box is not None:
            x0, y0, x1, y1 = box
            mask[y0:y1, x0:x1] = cv2.GC_PR_FGD
        else:
            mask[:] = cv2.GC_PR_BGD
        for x, y in positive:
            cv2.circle(mask, (x, y), BASELINE_RADIUS, int(cv2.GC_FGD), -1)
        for x, y in negative:
            cv2.circle(mask, (x, y), BASELINE_RADIUS, int(cv2.GC_BGD), -1)
        if not ((mask == cv2.GC_BGD) | (mask == cv2.GC_PR_BGD)).any():
            mask[0, 0] = cv2.GC_BGD
        cv2.grabCut(
            bgr, mask, None, background, foreground, BASELINE_ITERATIONS, cv2.GC_INIT_WITH_MASK
        )
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def via_segment(method: str) -> Callable[..., np.ndarray]:
    from fashionviewer.core.inference.interactive import InteractiveSession, segment

    def run(image: np.ndarray, box, positive, negative, state: dict) -> np.ndarray:
        session = state.setdefault("session", InteractiveSession())
        mask = segment(image, box, positive, negative, session=session, method=method)
        state["method"] = session.method
        return mask

    return run


def one_garment(
    method: Callable[..., np.ndarray], image: np.ndarray, truth: np.ndarray, with_box: bool
) -> dict[str, Any]:
    box = padded_box(truth) if with_box else None
    positive: list[tuple[int, int]] = [] if with_box else [innermost_point(truth)]
    negative: list[tuple[int, int]] = []
    state: dict[str, Any] = {}
    seconds, curve = [], []
    while True:
        start = time.perf_counter()
        pred = method(image, box, positive, negative, state)
        seconds.append(time.perf_counter() - start)
        curve.append(iou(pred, truth))
        if curve[-1] >= TARGET_IOU or len(curve) >= MAX_INTERACTIONS:
            break
        click = error_click(truth, pred)
        if click is None:
            break
        (positive if click[0] else negative).append(click[1])
    noc = len(curve) if curve[-1] >= TARGET_IOU else MAX_INTERACTIONS
    return {
        "noc": noc,
        "first_iou": round(curve[0], 4),
        "curve": [round(v, 4) for v in curve],
        "first_seconds": round(seconds[0], 4),
        "later_seconds": [round(s, 4) for s in seconds[1:]],
        "used": state.get("method"),
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures of the per-garment rows of one method."""
    out: dict[str, Any] = {"garments": len(rows)}
    for protocol in ("box", "clicks"):
        runs = [r[protocol] for r in rows]
        first = [r["first_seconds"] for r in runs]
        later = [s for r in runs for s in r["later_seconds"]]
        curves = [r["curve"] for r in runs]
        out[protocol] = {
            "first_iou_mean": round(float(np.mean([r["first_iou"] for r in runs])), 4),
            "noc85_mean": round(float(np.mean([r["noc"] for r in runs])), 3),
            "failed_85_within_11": round(
                float(np.mean([r["noc"] >= MAX_INTERACTIONS for r in runs])), 4
            ),
            "mean_iou_after_clicks_0_to_3": [
                round(float(np.mean([c[min(k, len(c) - 1)] for c in curves])), 4) for k in range(4)
            ],
            "seconds_median_all": round(float(statistics.median(first + later)), 4),
            "seconds_median_first_call": round(float(statistics.median(first)), 4),
            "seconds_median_later_calls": round(float(statistics.median(later)), 4)
            if later
            else None,
            "interactions": len(first) + len(later),
        }
    return out


def run_method(
    name: str, garments: list[dict[str, Any]], images: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    method = (
        plain_grabcut
        if name == "grabcut"
        else via_segment("learned" if name == "learned" else "grabcut")
    )
    rows = []
    for k, garment in enumerate(garments):
        image = images[garment["file"]]
        rows.append(
            {
                "garment": garment["index"],
                "box": one_garment(method, image, garment["mask"], True),
                "clicks": one_garment(method, image, garment["mask"], False),
            }
        )
        if (k + 1) % 25 == 0:
            print(f"  {name}: {k + 1}/{len(garments)} garments", file=sys.stderr, flush=True)
    return rows


def _table(record: dict[str, Any]) -> list[str]:
    rows = [
        "| method | garments | box only: mean IoU | box + clicks: mean NoC@85 | box: never (11) | "
        "box: IoU after 1/2/3 clicks | clicks only: first-click IoU | clicks only: mean NoC@85 | "
        "median s / interaction (first call / later) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, figures in record["tables"]:
        b, c = figures["box"], figures["clicks"]
        after = " / ".join(f"{v:.3f}" for v in b["mean_iou_after_clicks_0_to_3"][1:])
        later = b["seconds_median_later_calls"]
        rows.append(
            f"| {label} | {figures['garments']} | {b['first_iou_mean']:.3f} | {b['noc85_mean']:.2f} | "
            f"{b['failed_85_within_11']:.0%} | {after} | {c['first_iou_mean']:.3f} | {c['noc85_mean']:.2f} | "
            f"{b['seconds_median_all']:.3f} ({b['seconds_median_first_call']:.3f} / "
            f"{later if later is None else f'{later:.3f}'}) |"
        )
    return rows


def write(record: dict[str, Any], results: Path) -> None:
    from fashionviewer.core.base.atomic import atomic_write_json, atomic_write_text

    per = record["per_garment"]
    subset = set(record["sample"]["baseline_subset"])
    tables = []
    if "learned" in per:
        tables.append((f"{METHOD_NAMES['learned']}, all garments", summarize(per["learned"])))
        tables.append(
            (
                f"{METHOD_NAMES['learned']}, baseline subset",
                summarize([r for r in per["learned"] if r["garment"] in subset]),
            )
        )
    for name in ("segment", "grabcut"):
        if name in per:
            note = " (stored run)" if name in record.get("reused", {}) else ""
            tables.append((METHOD_NAMES[name] + note, summarize(per[name])))
    record["tables"] = tables
    results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(results / "interactive_segmentation.json", record)
    sample = record["sample"]
    md = [
        "# Interactive segmentation: box and/or oracle clicks, learned model vs GrabCut",
        "",
        f"`{record['command']}` ({record['date']}; {os.cpu_count()} CPU cores shared with other work, "
        f"load average {record['cpu']['load_average_at_end']:.1f} at the end)",
        "",
        f"Sample: all {sample['garments']} garments of >= {MIN_AREA} px (any iMaterialist category, shoes, belts, "
        f"bags and bracelets included) on CCP's {sample['photos']} validation photos (seeded split, seed 0, never "
        f"trained on); the GrabCut methods run on every {sample['baseline_step']}-th of them "
        f"({len(sample['baseline_subset'])}), and the learned model is reported on that subset too.",
        f"Box protocol: a box {BOX_PAD} px around the garment, then each click at the point farthest inside the "
        "largest error region (missed: positive, spurious: negative). Clicks-only protocol: the first click at "
        "the garment's innermost point, then the same. NoC@85 counts interactions until IoU >= 0.85, capped at "
        f"{MAX_INTERACTIONS}. Seconds per interaction at photo size, one thread; the first call (features) apart.",
        "Targets: box-only mean IoU >= 0.80, box NoC@85 <= 3.0, clicks-only NoC@85 <= 5.0, median <= 0.2 s.",
        "",
        *_table(record),
        "",
    ]
    for name, source in record.get("reused", {}).items():
        md.append(
            f"{METHOD_NAMES[name]}: figures (timings included) from the stored run `{source['command']}` "
            f"of {source['date']} on the same sample."
        )
    atomic_write_text(results / "interactive_segmentation.md", "\n".join(md) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--methods",
        default="learned,segment,grabcut",
        help="comma-separated: " + ", ".join(METHOD_NAMES),
    )
    parser.add_argument(
        "--baseline-garments", type=int, default=60, help="the GrabCut methods' subset size"
    )
    parser.add_argument(
        "--limit", type=int, default=0, help="only the first N garments (a quick look)"
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        action="append",
        default=[],
        help="take the methods stored in this result JSON (repeatable; --methods '' runs none)",
    )
    parsed = parse_ccp_benchmark(parser, argv, default_threads=1)
    if parsed is None:
        return 2
    args, root = parsed
    cv2.setNumThreads(1)
    from fashionviewer.core.base.errors import FashionViewerError
    from fashionviewer.core.data.imageio import load_image

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if unknown:
        raise FashionViewerError(
            f"--methods: unknown {', '.join(unknown)} (choose from {', '.join(METHOD_NAMES)})"
        )
    garments, photos = load_garments(root)
    for index, garment in enumerate(garments):
        garment["index"] = index
    if args.limit:
        garments = garments[: args.limit]
    step = max(1, len(garments) // max(1, args.baseline_garments))
    subset = garments[::step][: args.baseline_garments]
    command = "python benchmarks/interactive_segmentation.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    record: dict[str, Any] = {
        "command": command.strip(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "sample": {
            "split": "CCP val (100 photos, seed 0)",
            "garments": len(garments),
            "photos": photos,
            "min_area": MIN_AREA,
            "baseline_step": step,
            "baseline_subset": [g["index"] for g in subset],
            "categories": {
                c: sum(g["category"] == c for g in garments)
                for c in sorted({g["category"] for g in garments})
            },
        },
        "protocol": {
            "target_iou": TARGET_IOU,
            "max_interactions": MAX_INTERACTIONS,
            "box_pad_px": BOX_PAD,
            "noc_counts": "interactions including the box or the first click",
        },
        "cpu": {"cores": os.cpu_count(), "load_average_at_end": os.getloadavg()[0]},
        "per_garment": {},
        "reused": {},
    }
    for reuse in args.reuse:
        try:
            stored = json.loads(reuse.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FashionViewerError(
                f"--reuse {reuse}: not a readable result file ({exc})"
            ) from None
        if stored.get("sample", {}).get("baseline_subset") != record["sample"]["baseline_subset"]:
            raise FashionViewerError(
                f"--reuse {reuse}: another sample of garments; run the methods again"
            )
        for name, rows in stored.get("per_garment", {}).items():
            if name not in methods:
                record["per_garment"][name] = rows
                record["reused"][name] = stored.get("reused", {}).get(name) or {
                    "command": stored["command"],
                    "date": stored["date"],
                }
    images = {name: load_image(root / "photos" / name) for name in {g["file"] for g in garments}}
    for name in methods:
        chosen = garments if name == "learned" else subset
        print(f"{METHOD_NAMES[name]}: {len(chosen)} garments", file=sys.stderr, flush=True)
        record["per_garment"][name] = run_method(name, chosen, images)
        record["cpu"]["load_average_at_end"] = os.getloadavg()[0]
        write(record, args.results)
        print(METHOD_NAMES[name], json.dumps(summarize(record["per_garment"][name])), flush=True)
    write(record, args.results)
    print((args.results / "interactive_segmentation.md").read_text())
    return 0


if __name__ == "__main__":
    run_benchmark(main)
