"""How much sooner the click tool shows a mask: ``python benchmarks/interactive_progress.py``.

On every garment of >= 400 px of the CCP validation photos (``interactive_segmentation.load_garments``: never
trained on; photos 0801-1004 are never read), one positive click at the garment's innermost point, alone
(the click tool's first interaction), at photo size, one process, ``--threads`` torch threads:

* ``segment`` (the baseline): the user sees the mask when the call returns;
* ``segment_steps`` (what the viewer runs): the user sees the coarse mask at its first yield (the first crop,
  before a zoom-in pass) and the final mask when it returns.

Both run on the same garment one after the other (the order alternates), each with a fresh session, so
each click's figures include encoding its crop. Reports the share of clicks that zoom in, and for those the
median seconds to the first mask shown and to the final mask, side by side, their ratios, and the IoU of the
coarse and the final mask with the garment. Writes ``benchmarks/results/interactive_progress.{md,json}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import parse_ccp_benchmark, run_benchmark  # noqa: E402
from benchmarks.interactive_segmentation import iou, load_garments  # noqa: E402
from trainers.interactive import innermost_point  # noqa: E402  (the benchmark's first click)


def _one(image: Any, click: tuple[int, int], progressive: bool) -> dict[str, Any]:
    from fashionviewer.core.inference.interactive import InteractiveSession, segment, segment_steps

    session = InteractiveSession()
    start = time.perf_counter()
    if not progressive:
        mask = segment(image, positive=[click], session=session)
        seconds = time.perf_counter() - start
        return {"first": seconds, "final": seconds, "coarse": None, "mask": mask}
    steps, first, coarse = segment_steps(image, positive=[click], session=session), None, None
    while True:
        try:
            shown = next(steps)
        except StopIteration as done:
            mask = done.value
            break
        if first is None:
            first, coarse = time.perf_counter() - start, shown
    final = time.perf_counter() - start
    return {"first": first or final, "final": final, "coarse": coarse, "mask": mask}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="at most N garments (0: all)")
    parsed = parse_ccp_benchmark(parser, argv, default_threads=1)
    if parsed is None:
        return 2
    args, root = parsed
    from fashionviewer.core.data.imageio import load_image
    from fashionviewer.core.inference.interactive_model import bundled_model

    if bundled_model() is None:
        print("error: the bundled interactive model is missing", file=sys.stderr)
        return 2
    garments, n_photos = load_garments(root)
    if args.limit:
        garments = garments[: args.limit]
    images: dict[str, Any] = {}
    rows = []
    for k, garment in enumerate(garments):
        image = images.setdefault(garment["file"], load_image(root / "photos" / garment["file"]))
        click = innermost_point(garment["mask"])
        order = (False, True) if k % 2 == 0 else (True, False)
        runs = {progressive: _one(image, click, progressive) for progressive in order}
        base, prog = runs[False], runs[True]
        assert (base["mask"] == prog["mask"]).all()  # the same passes, the same answer
        rows.append(
            {
                "zooms": prog["coarse"] is not None,
                "segment_s": base["final"],
                "steps_first_s": prog["first"],
                "steps_final_s": prog["final"],
                "coarse_iou": iou(prog["coarse"], garment["mask"])
                if prog["coarse"] is not None
                else None,
                "final_iou": iou(prog["mask"], garment["mask"]),
            }
        )
    zoomed = [r for r in rows if r["zooms"]]

    def median(key: str, subset: list[dict[str, Any]]) -> float:
        return round(statistics.median(r[key] for r in subset), 4) if subset else float("nan")

    summary = {
        "garments": len(rows),
        "photos": n_photos,
        "clicks_that_zoom_in": len(zoomed),
        "zooming": {
            "segment_s (mask shown when the call returns)": median("segment_s", zoomed),
            "segment_steps first mask shown s": median("steps_first_s", zoomed),
            "segment_steps final mask s": median("steps_final_s", zoomed),
            "first mask shown, ratio steps / segment": round(
                median("steps_first_s", zoomed) / median("segment_s", zoomed), 3
            )
            if zoomed
            else None,
            "final mask, ratio steps / segment": round(
                median("steps_final_s", zoomed) / median("segment_s", zoomed), 3
            )
            if zoomed
            else None,
            "coarse mask IoU (median)": median("coarse_iou", zoomed),
            "final mask IoU (median)": median("final_iou", zoomed),
        },
        "all clicks": {
            "segment_s": median("segment_s", rows),
            "segment_steps first mask shown s": median("steps_first_s", rows),
            "segment_steps final mask s": median("steps_final_s", rows),
        },
    }
    report = {
        "command": "python benchmarks/interactive_progress.py"
        + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "threads": args.threads,
        "summary": summary,
    }
    from fashionviewer.core.base.atomic import atomic_write_json, atomic_write_text

    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results / "interactive_progress.json", report)
    lines = [
        "# Click tool: time to the first mask shown (segment_steps) vs segment",
        "",
        f"`{report['command']}`, {report['date']}, {args.threads} torch thread(s); "
        f"{len(rows)} garments of {n_photos} CCP validation photos, one click at the innermost point.",
        "",
        f"Clicks whose first crop is zoomed in: {len(zoomed)} of {len(rows)}.",
        "",
        "| zooming clicks | median |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in summary["zooming"].items()],
        "",
        "| all clicks | median |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in summary["all clicks"].items()],
        "",
    ]
    atomic_write_text(args.results / "interactive_progress.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    run_benchmark(main)
