"""``fashionviewer evaluate --gt GT --pred RESULTS``: COCO AP of saved predictions.

GT is a COCO JSON file or folder, an iMaterialist train.csv (or its folder) or a
Clothing Co-Parsing folder; RESULTS is a COCO results JSON list (what
``save_coco_results`` writes). Results are matched to ground-truth images by
``file_name`` when they carry one, else by ``image_id`` (see
``fashionviewer.core.data.evaluation``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from fashionviewer.core.base.atomic import atomic_write_json
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.evaluation import evaluate_coco, format_metrics, load_ground_truth
from fashionviewer.core.data.predictions import load_coco_results

RESULT_NAMES = ("coco_results.json", "results.json", "predictions.json")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fashionviewer evaluate",
                                     description="COCO box/mask AP of predictions against ground truth.")
    parser.add_argument("--gt", required=True,
                        help="COCO JSON (or folder), iMaterialist train.csv (or folder), or CCP folder")
    parser.add_argument("--pred", required=True, help="COCO results JSON (or a folder holding coco_results.json)")
    parser.add_argument("--iou", choices=("segm", "bbox"), default="segm", help="mask (segm, default) or box AP")
    parser.add_argument("--split", choices=("all", "train", "val"), default="all",
                        help="dataset split of a GT folder (default all); results for other images are ignored")
    parser.add_argument("--json", metavar="OUT", help="also write the metrics as JSON")
    return parser


def _results_path(path: Path) -> Path:
    if path.is_dir():
        for name in RESULT_NAMES:
            if (path / name).is_file():
                return path / name
        raise FashionViewerError(f"{path}: no {' / '.join(RESULT_NAMES)} in this folder")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # -h or a usage error (argparse already printed why)
        return int(exc.code or 0)
    results = load_coco_results(_results_path(Path(args.pred)))
    gt = load_ground_truth(args.gt, args.split)
    metrics = evaluate_coco(gt, results, args.iou, ignore_unknown_images=args.split != "all")
    print(format_metrics(metrics))
    if metrics["ignored_results"]:
        print(f"({metrics['ignored_results']} predictions for images outside the '{args.split}' split ignored)")
    if args.json:
        atomic_write_json(args.json, metrics)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    import sys

    from fashionviewer.cli import run_command  # prints user errors as one line

    sys.exit(run_command(main, sys.argv[1:]))
