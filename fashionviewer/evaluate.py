"""``fashionviewer evaluate --gt GT --pred RESULTS``: COCO AP of saved predictions.

GT is a COCO JSON file or folder (an annotated folder's annotations.fashionviewer.json
too), an iMaterialist train.csv (or its folder) or a Clothing Co-Parsing folder; RESULTS is a
COCO results JSON list (what
``save_coco_results`` writes). Results are matched to ground-truth images by
``file_name`` when they carry one, else by ``image_id`` (see
``fashionviewer.core.data.evaluation``).

Taxonomies: a CCP ground truth can be mapped into the iMaterialist taxonomy
(``fashionviewer.core.data.taxonomy``) to score a model that predicts in it; which taxonomy
applies is read from the results' provenance (``run.json`` beside them, or the ``info`` of a
COCO file) unless ``--taxonomy`` says. ``--iou parsing`` gives per-pixel pixel accuracy and mean
IoU (``fashionviewer.core.data.parsing_metrics``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from fashionviewer.core.base.atomic import atomic_write_json
from fashionviewer.core.base.errors import DataError, FashionViewerError
from fashionviewer.core.base.jsonio import read_json
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME
from fashionviewer.core.data.evaluation import (
    evaluate_coco,
    format_metrics,
    load_ground_truth,
    match_results,
)
from fashionviewer.core.data.parsing_metrics import (
    align_results,
    format_parsing_metrics,
    parsing_metrics,
)
from fashionviewer.core.data.prediction_files import load_coco_results, validate_coco_results
from fashionviewer.core.data.taxonomy import (
    CCP,
    CCP_TO_IMATERIALIST,
    IMATERIALIST,
    TAXONOMIES,
    imaterialist_names,
)

RESULT_NAMES = ("coco_results.json", "results.json", "predictions.json")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fashionviewer evaluate",
        description="COCO box/mask AP of predictions against ground truth.",
    )
    parser.add_argument(
        "--gt",
        required=True,
        help="COCO JSON (or folder), iMaterialist train.csv (or folder), or CCP folder",
    )
    parser.add_argument(
        "--pred", required=True, help="COCO results JSON (or a folder holding coco_results.json)"
    )
    parser.add_argument(
        "--iou",
        choices=("segm", "bbox", "parsing"),
        default="segm",
        help="mask AP (segm, default), box AP (bbox), or per-pixel parsing: pixel accuracy and mean "
        "IoU over garment classes, beside the CCP paper's 88.23 %% pixel accuracy",
    )
    parser.add_argument(
        "--taxonomy",
        choices=("auto", *TAXONOMIES),
        default="auto",
        help="the taxonomy the results are in; a CCP ground truth is mapped into it "
        f"({IMATERIALIST}: the 46 iMaterialist-Fashion 2019 categories). auto (default): the "
        "'taxonomy' recorded in run.json beside the results, or in the 'info' of a COCO "
        f"results file; when none is recorded, the ground truth's own ({CCP} for a CCP folder)",
    )
    parser.add_argument(
        "--min-score",
        type=float,
        default=0.0,
        help="--iou parsing: predictions scoring below this are not painted (default 0: every "
        "prediction in the file; where they overlap, the highest score wins)",
    )
    parser.add_argument(
        "--split",
        choices=("all", "train", "val"),
        default="all",
        help="dataset split of a GT folder (default all); results for other images are ignored",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the metrics as JSON")
    return parser


def _results_path(path: Path) -> Path:
    if path.is_dir():
        for name in RESULT_NAMES:
            if (path / name).is_file():
                return path / name
        raise FashionViewerError(f"{path}: no {' / '.join(RESULT_NAMES)} in this folder")
    return path


def _recorded(results_path: Path) -> list[dict]:
    """What was recorded with a results file, nearest first: ``run.json`` beside it, then its own COCO
    ``info`` (each read once, unreadable ones left out)."""
    found = []
    for path in (results_path.parent / "run.json", results_path):
        if not path.is_file() or (path == results_path and path.stat().st_size > 1 << 26):
            continue
        try:
            data = read_json(path)
        except FashionViewerError:
            continue
        info = data.get("info", data) if isinstance(data, dict) else None
        if isinstance(info, dict):
            found.append(info)
    return found


def recorded_taxonomy(records: list[dict]) -> str | None:
    """The taxonomy recorded with a results file (``_recorded``): ``run.json`` beside it, or its own COCO
    ``info``."""
    for info in records:
        if info.get("taxonomy") in TAXONOMIES:
            return str(info["taxonomy"])
    return None


def recorded_added_classes(records: list[dict]) -> set[str]:
    """Classes a fine-tune added beyond the results' taxonomy (``classes_beyond_taxonomy``, recorded beside
    them): a ground truth in that taxonomy cannot list them, so their results are left out and counted like
    those of classes it does not list."""
    for info in records:
        added = info.get("classes_beyond_taxonomy")
        if isinstance(added, list):
            return {str(name) for name in added}
    return set()


def _is_ccp_folder(path: Path) -> bool:
    return (
        path.is_dir()
        and (path / "photos").is_dir()
        and (path / "annotations" / "pixel-level").is_dir()
    )


def _ground_truth(path: Path, split: str, taxonomy: str | None) -> dict:
    """The ground truth, a CCP folder mapped into ``taxonomy`` when that is not CCP's own."""
    from fashionviewer.core.data.datasets.ccp import CCPDataset

    is_ccp = _is_ccp_folder(path)
    if is_ccp and taxonomy not in (None, CCP):
        return CCPDataset(path, split, taxonomy=taxonomy).coco_ground_truth()
    if path.is_dir() and (path / DEFAULT_FILE_NAME).is_file():  # the annotated folder itself
        path = path / DEFAULT_FILE_NAME
    gt = load_ground_truth(path, split)
    names = {str(c.get("name")) for c in gt.get("categories", [])}
    if (
        taxonomy == IMATERIALIST
        and names
        and names <= set(CCP_TO_IMATERIALIST)
        and not names <= set(imaterialist_names())
    ):
        return ccp_names_to_imaterialist(gt)
    if taxonomy == CCP and not names <= set(CCP_TO_IMATERIALIST):
        raise FashionViewerError(
            f"{path}: --taxonomy ccp needs a Clothing Co-Parsing folder or a COCO ground truth "
            "in CCP's label names"
        )
    return gt


def ccp_names_to_imaterialist(gt: dict) -> dict:
    """A COCO ground truth in CCP's label names mapped by name into iMaterialist's categories (ClassIds);
    instances of CCP labels iMaterialist has no category for are left out, as CCPDataset leaves them."""
    ids = {name: k for k, name in enumerate(imaterialist_names())}
    old = {c["id"]: CCP_TO_IMATERIALIST.get(str(c["name"])) for c in gt["categories"]}
    used = sorted({ids[n] for n in old.values() if n is not None})
    return {
        **gt,
        "categories": [{"id": k, "name": imaterialist_names()[k]} for k in used],
        "annotations": [
            {**a, "category_id": ids[old[a["category_id"]]]}
            for a in gt["annotations"]
            if old.get(a["category_id"]) is not None
        ],
    }


def drop_unlisted_classes(
    gt: dict, results: list[dict], taxonomy: str | None = None, added: set[str] | None = None
) -> tuple[list[dict], dict[str, int]]:
    """A ground truth that lists only the classes present (as FiftyOne, CVAT and labelme2coco write COCO):
    results of the results' taxonomy that it does not list are left out and counted by class. A class name
    outside that taxonomy is kept for ``align_results`` to refuse (the results are in another taxonomy);
    without a taxonomy, results are dropped only when some of them are listed. ``added``: classes a fine-tune
    added to that taxonomy, part of the results' vocabulary."""
    names = {str(c.get("name")) for c in gt.get("categories", [])}
    vocabulary = (
        set(imaterialist_names())
        if taxonomy == IMATERIALIST
        else set(CCP_TO_IMATERIALIST)
        if taxonomy == CCP
        else None
    )
    if vocabulary is not None and added:
        vocabulary = vocabulary | added
    if vocabulary is None and not any(str(r.get("class_name")) in names for r in results):
        return results, {}
    # the ground truth is in another taxonomy
    if vocabulary is not None and not names <= vocabulary:
        return results, {}
    kept, dropped = [], {}
    for r in results:
        name = r.get("class_name")
        if (
            name is None
            or str(name) in names
            or (vocabulary is not None and str(name) not in vocabulary)
        ):
            kept.append(r)
        else:
            dropped[str(name)] = dropped.get(str(name), 0) + 1
    return kept, dropped


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # -h or a usage error (argparse already printed why)
        return int(exc.code or 0)
    results_path = _results_path(Path(args.pred))
    results = load_coco_results(results_path)
    records = _recorded(results_path)
    taxonomy = args.taxonomy if args.taxonomy != "auto" else recorded_taxonomy(records)
    gt = _ground_truth(Path(args.gt), args.split, taxonomy)
    added = recorded_added_classes(records) if taxonomy is not None else set()
    results, unlisted = drop_unlisted_classes(gt, results, taxonomy, added)
    if unlisted:
        classes = ", ".join(sorted(unlisted)[:5]) + (" ..." if len(unlisted) > 5 else "")
        print(
            f"({sum(unlisted.values())} predictions of {len(unlisted)} classes the ground truth does not list "
            f"ignored: {classes})"
        )
    # Results name their classes: score them by name, whatever ids the file uses (strict when mapped).
    try:
        results = align_results(gt, results, strict=taxonomy is not None)
    except DataError as exc:
        if _is_ccp_folder(Path(args.gt)):
            raise
        # --taxonomy maps only a CCP ground truth: for any other the names themselves must agree
        known = ", ".join(sorted(str(c.get("name")) for c in gt.get("categories", []))[:6])
        raise DataError(
            f"{str(exc).split(';')[0]}: none of the results' classes is a category of {args.gt} "
            f"({known} ...); a COCO ground truth is matched by class name, so it must use the "
            f"results' names ({taxonomy or 'their taxonomy'}) or CCP's label names"
        ) from None
    if args.iou == "parsing":
        matched, dropped = match_results(
            gt, validate_coco_results(results, "results"), ignore_unknown_images=args.split != "all"
        )
        metrics = parsing_metrics(gt, matched, args.min_score)
        metrics["ignored_results"] = dropped
        print(format_parsing_metrics(metrics))
    else:
        metrics = evaluate_coco(gt, results, args.iou, ignore_unknown_images=args.split != "all")
        print(format_metrics(metrics))
    if taxonomy is not None:
        metrics["taxonomy"] = taxonomy
    metrics["ignored_unlisted_classes"] = sum(unlisted.values())
    if metrics["ignored_results"]:
        print(
            f"({metrics['ignored_results']} predictions for images outside the '{args.split}' split ignored)"
        )
    if args.json:
        atomic_write_json(args.json, metrics)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    import sys

    from fashionviewer.cli import run_command  # prints user errors as one line

    sys.exit(run_command(main, sys.argv[1:]))
