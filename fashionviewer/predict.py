"""``fashionviewer predict FOLDER --out DIR``: run a Mask R-CNN over a folder, headless.

Writes, atomically, ``DIR/predictions.json`` (COCO results: one record per
instance with ``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score``,
RLE ``segmentation``, plus ``file_name`` and ``class_name``), ``DIR/images.json``
(the images index: ``image_id``, ``file_name`` relative to FOLDER, ``width``,
``height``) and ``DIR/run.json`` (what ran, on what, what was skipped and why).
Image ids are 1-based positions in the sorted listing, so they stay the same
when a file is skipped and when the folder is split into shards.

Fast and unbreakable:

The work is done by :mod:`fashionviewer.core.runs` (this module parses arguments and prints):

* One per-image step (:mod:`~fashionviewer.core.runs.step`, also the viewer's) with the
  persistent cache (:mod:`~fashionviewer.core.runs.cache`, shared with the viewer):
  an image whose bytes, weights and settings were seen before is not predicted
  again; new weights never return stale results.
* Resume (:mod:`~fashionviewer.core.runs.journal`): every finished image is appended at once to
  ``DIR/predictions.partial.jsonl``; a run that is killed or interrupted
  continues where it stopped when started again with the same arguments. The
  final files are streamed from that file, so memory stays flat.
* Reading and decoding run on a small thread pool a few images ahead of the model.
* A file that cannot be read is named on stderr with a one-line reason and
  skipped; the run goes on.
* ``--shard I/N`` (or ``torchrun --nproc_per_node=N -m fashionviewer.predict``)
  predicts every N-th image; ``--merge DIR`` joins the shards (:mod:`~fashionviewer.core.runs.shards`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

from fashionviewer.core.base.atomic import atomic_write_json, ensure_writable_dir
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.inference.defaults import SCORE_FLOOR
from fashionviewer.core.inference.protocol import InstancePredictor
from fashionviewer.core.runs.cache import BoundCache, bind_cache, open_cache, predictor_key
from fashionviewer.core.runs.export import COCO_FILE, parse_formats, provenance
from fashionviewer.core.runs.folder_run import (
    INDEX_FILE,
    RESULTS_FILE,
    RUN_FILE,
    RUN_FORMAT,
    RunSummary,
    Shard,
    export_partial,
    list_ignored_files,
    list_jobs,
    os_errors_as_user_errors,
    parse_shard,
    run_jobs,
    write_results,
)
from fashionviewer.core.runs.journal import PARTIAL_FILE, PARTIAL_FORMAT, PartialResults
from fashionviewer.core.runs.shards import device_for, merge, merge_under_torchrun, torchrun_env
from fashionviewer.core.runs.step import PerImageStep

EXIT_OK, EXIT_SKIPPED = 0, 3

EPILOG = f"""\
outputs (in --out):
  {RESULTS_FILE}    COCO results (image_id, category_id, bbox, score, RLE segmentation, file_name, class_name)
  {INDEX_FILE}         image_id, file_name (relative to FOLDER), width, height of every predicted image
  {RUN_FILE}            model, weights SHA-256, settings, counts, the reason for every skipped file
                        and the other (non-image) files left out
  {PARTIAL_FILE}  results so far while running; a killed run resumes from it (removed when done)
  {COCO_FILE}, *.png   with --export (sub-folders of FOLDER are mirrored)

cache:
  Results are cached by image content + weights SHA-256 + settings in a SQLite file shared with the
  viewer (default: the user cache folder, or $FASHIONVIEWER_CACHE), so a second run over the same
  folder, or opening it in the viewer, does not run the model again. --no-cache turns it off. Each record
  carries a checksum: a damaged one is named in a "warning:" line on stderr and predicted again.

shards (several processes or GPUs):
  fashionviewer predict FOLDER --out DIR --shard 0/2  and  ... --shard 1/2   (image i goes to shard (i-1) % N)
  fashionviewer predict --merge DIR     joins DIR/predictions.shard-I-of-N.json into {RESULTS_FILE},
                                        {INDEX_FILE} and {RUN_FILE} (image ids are global: no renumbering)
  torchrun --nproc_per_node=N -m fashionviewer.predict FOLDER --out DIR
      one shard per process from RANK/WORLD_SIZE (device cuda:LOCAL_RANK on CUDA); rank 0 merges at the end.
  With shards, the {COCO_FILE} export is written by the merge; PNG exports by each shard.

exit status:
  0 every image predicted, 3 done but some files were skipped (each named on stderr with its reason),
  2 a user error (bad folder, model, device, output folder), 130 interrupted (run again to resume).
  Under torchrun every rank exits 0 when done; skipped files are listed in {RUN_FILE}.
"""


# --------------------------------------------------------------------------- command line


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fashionviewer predict",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Predict instance masks for every image in a folder (COCO results JSON).",
    )
    p.add_argument("folder", nargs="?", help="folder of images (searched recursively)")
    p.add_argument("--out", help=f"output folder for {RESULTS_FILE}, {INDEX_FILE} and {RUN_FILE}")
    p.add_argument(
        "--model",
        default=None,
        help="bundled model name (fashion, demo, ccp), coco (torchvision's, from the torch cache) "
        "or a checkpoint NAME.pt/.json (default: the real-photo "
        "model 'fashion'; 'demo' for the embedded demo folder)",
    )
    p.add_argument(
        "--min-score",
        type=float,
        default=SCORE_FLOOR,
        help=f"drop instances scoring below this (default {SCORE_FLOOR})",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:N, mps or auto (default: the best available)",
    )
    p.add_argument(
        "--allow-random",
        action="store_true",
        help="accept a checkpoint with random (untrained) weights",
    )
    p.add_argument(
        "--no-tta",
        action="store_true",
        help="one view per image even when the model card asks for test-time augmentation (faster)",
    )
    p.add_argument(
        "--export",
        metavar="FORMATS",
        help="also export masks: png (instances, index, class and overlay PNGs), coco, or any of "
        "instances,index,class,overlay,coco, comma-separated",
    )
    p.add_argument(
        "--gt",
        "--image-ids-from",
        dest="gt",
        metavar="GT",
        help="key the results by this ground truth's image ids, matched by file name: a COCO instances "
        "file or folder (the annotated folder too) or a run's images.json; images it does not list "
        "get ids after its largest (counted in one warning line)",
    )
    p.add_argument(
        "--category-ids",
        choices=("dataset", "1-based"),
        default="dataset",
        help="category ids of the --export files: the dataset's own (default; predictions.json always "
        "has them) or 1..K for tools that reserve id 0 (CVAT, Datumaro), recorded in the COCO info",
    )
    p.add_argument(
        "--cache", metavar="PATH", help="prediction cache file (default: shared with the viewer)"
    )
    p.add_argument(
        "--no-cache", action="store_true", help="neither read nor write the prediction cache"
    )
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="predict shard I of N (0 <= I < N); default from torchrun's "
        "RANK/WORLD_SIZE, else the whole folder",
    )
    p.add_argument(
        "--merge", metavar="DIR", help="join the shard results in DIR (no FOLDER needed)"
    )
    p.add_argument(
        "--limit",
        type=int,
        default=0,
        help="only the first N images of the sorted listing (0: all)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="image reading threads (0: read in the model's thread)",
    )
    p.add_argument(
        "--prefetch", type=int, default=4, help="images read ahead of the model (default 4)"
    )
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return p


def main(
    argv: Sequence[str] | None = None, *, on_image: Callable[[int], None] | None = None
) -> int:
    """Run the command; FashionViewerError propagates to the CLI (``error: ...``, exit 2).

    ``on_image(n)`` is called after each image of this run is done (benchmarks sample memory with it).
    """
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.merge:
        if args.folder or args.shard:
            parser.error("--merge DIR takes no FOLDER and no --shard")
        merged = merge(Path(args.merge))
        print(merged.line())
        return EXIT_SKIPPED if merged.skipped else EXIT_OK
    if not args.folder or not args.out:
        parser.error("FOLDER and --out DIR are required (or --merge DIR)")
    if args.min_score < 0 or args.limit < 0 or args.workers < 0 or args.prefetch < 1:
        parser.error("--min-score, --limit and --workers must be >= 0 and --prefetch >= 1")

    torchrun = torchrun_env()
    shard = (
        parse_shard(args.shard)
        if args.shard
        else Shard(torchrun[0], torchrun[1])
        if torchrun
        else Shard()
    )
    folder = Path(args.folder)
    jobs = list_jobs(folder)
    if args.limit:
        jobs = jobs[: args.limit]
    gt_ids = _ground_truth_ids(args.gt, jobs) if args.gt else None
    jobs = shard.select(jobs)
    if gt_ids is not None:
        jobs = [dataclasses.replace(job, image_id=gt_ids[job.file_name]) for job in jobs]
    out = ensure_writable_dir(args.out)  # before loading the model: fail fast
    formats = parse_formats(args.export) if args.export else ()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from fashionviewer.core.inference.families import load_predictor
    from fashionviewer.core.models.domain import card_domain, default_model_for, domain_notice

    if args.model is None:  # photos get the real-photo model; the embedded demo its own
        args.model = default_model_for(folder)
    device = device_for(args.device, torchrun[2] if torchrun else None)
    # Predicted at the shared floor (or lower) and filtered at --min-score when writing, so the
    # viewer and later runs reuse what this one caches.
    predictor = load_predictor(
        args.model,
        device=device,
        allow_random=args.allow_random,
        score_floor=min(args.min_score, SCORE_FLOOR),
        tta=not args.no_tta,
    )
    bound = None if args.no_cache else _bind_cache(args.cache, predictor)
    key = bound.key if bound is not None else (predictor_key(predictor) or "")

    summary = RunSummary(images=len(jobs), other_files=list_ignored_files(folder, out))
    start = time.perf_counter()
    header = {"format": PARTIAL_FORMAT, "model_key": key, "folder": str(folder.resolve())}
    with (
        os_errors_as_user_errors(out),
        PartialResults(out / shard.name(PARTIAL_FILE), header) as partial,
    ):
        bar = tqdm(total=len(jobs), desc="predict", unit="image", file=sys.stderr, disable=None)
        run_jobs(
            PerImageStep(predictor, bound),
            jobs,
            partial,
            summary,
            workers=args.workers,
            ahead=args.prefetch,
            report=_stderr,
            progress=bar.update,
            on_image=on_image,
        )
        bar.close()
        summary.seconds = time.perf_counter() - start
        category_ids = list(predictor.category_ids)
        results, index = write_results(
            out, shard, jobs, partial, args.min_score, summary, category_ids
        )
        card = predictor.card
        notice = domain_notice(card, folder, predictor.model_name)
        if notice:
            print(f"note: {notice}", file=sys.stderr)
        rescored_by = predictor.rescoring()
        test_time_augmentation = predictor.tta.to_dict() if predictor.tta is not None else None
        weights = predictor.weights_path
        meta = {
            "format": RUN_FORMAT,
            "folder": str(folder.resolve()),
            "model": predictor.model_name,
            "rescored_by": rescored_by,
            "test_time_augmentation": test_time_augmentation,
            "weights": str(weights),
            "weights_sha256": card.get("weights_sha256"),
            "model_key": key,
            "settings": predictor.settings(),
            "device": str(predictor.device),
            "min_score": args.min_score,
            "score_floor": predictor.score_floor,
            "shard": [shard.index, shard.count],
            "limit": args.limit,
            "export": list(formats),
            "results": results.name,
            "index": index.name,
            "images": summary.images,
            "predicted": summary.done,
            "from_cache": summary.cached,
            "resumed": summary.resumed,
            "model_runs": summary.predicted,
            "instances": summary.instances,
            "skipped": summary.skipped,
            "other_files_ignored": len(summary.other_files),
            "other_files": summary.other_files[:1000],
            "seconds": round(summary.seconds, 2),
            "domain": card_domain(card),
            "domain_notice": notice,
            "taxonomy": card.get("taxonomy"),
            # a fine-tune's new classes beside that taxonomy's (evaluate leaves them out against it)
            "classes_beyond_taxonomy": list(card.get("classes_beyond_taxonomy") or []),
            "categories": [
                {"id": i, "name": n}
                for i, n in zip(category_ids, predictor.class_names, strict=False)
            ],
            "image_ids_from": str(Path(args.gt).resolve()) if args.gt else None,
        }
        # With shards the single COCO export file is the merge's job (each shard would overwrite it).
        shard_formats = [f for f in formats if f != "coco" or shard.count == 1]
        if shard_formats:
            info = provenance(
                model=predictor.model_name,
                weights=weights,
                weights_sha256=card.get("weights_sha256"),
                min_score=args.min_score,
                device=str(predictor.device),
                rescored_by=rescored_by,
                test_time_augmentation=test_time_augmentation,
                taxonomy=card.get("taxonomy"),
            )
            export_ids: list[int] | None = category_ids
            # model labels 1..K are the ids; the dataset's recorded beside
            if args.category_ids == "1-based":
                info["category_ids"] = {
                    "numbering": "1-based",
                    "dataset_ids": {str(k): i for k, i in enumerate(category_ids, start=1)},
                }
                export_ids = None
            done = sum(partial.holds(job) for job in jobs)
            with tqdm(
                total=done, desc="export", unit="image", file=sys.stderr, disable=None
            ) as export_bar:
                export_partial(
                    partial,
                    jobs,
                    out,
                    shard_formats,
                    args.min_score,
                    folder,
                    info,
                    category_ids=export_ids,
                    report=_stderr,
                    progress=export_bar.update,
                    class_names=list(predictor.class_names),
                )
        # last: its presence means "this shard is complete"
        atomic_write_json(out / shard.name(RUN_FILE), meta)
        partial.remove()
    print(summary.line(predictor.describe(), str(predictor.device), results))

    if torchrun and not args.shard:
        merged = merge_under_torchrun(out, torchrun)
        if merged is not None:
            print(merged.line())
        return EXIT_OK  # every rank: torchrun would read 3 (skipped files) as a failed worker
    return EXIT_SKIPPED if summary.skipped else EXIT_OK


def _ground_truth_ids(gt: str, jobs: Sequence[Any]) -> dict[str, int]:
    """file name -> the ground truth's image id for every job (see ``--gt``)."""
    from fashionviewer.core.data.formats import image_ids_from, match_image_ids

    ids, missing = match_image_ids(
        [job.file_name for job in jobs], image_ids_from(gt), f"--gt {gt}"
    )
    seen: dict[int, str] = {}
    for name, image_id in ids.items():
        if image_id in seen:
            raise FashionViewerError(
                f"--gt {gt}: {seen[image_id]} and {name} both match image id {image_id}"
            )
        seen[image_id] = name
    if missing:
        print(
            f"warning: {len(missing)} image(s) not in {gt} (first: {missing[0]}) get ids from "
            f"{ids[missing[0]]} on",
            file=sys.stderr,
        )
    return ids


def _stderr(line: str) -> None:
    tqdm.write(line, file=sys.stderr)


def _bind_cache(path: str | None, predictor: InstancePredictor) -> BoundCache | None:
    """The cache bound to ``predictor``; an explicit --cache that cannot be opened is a user error,
    the default one only a warning (the run works without it). A damaged record is named on stderr."""
    try:
        cache = open_cache(path)
    except FashionViewerError as exc:
        if path is not None:
            raise FashionViewerError(f"--cache {exc}") from exc
        print(f"warning: {exc}; predicting without the cache", file=sys.stderr)
        return None
    return bind_cache(cache, predictor, warn=lambda line: _stderr(f"warning: {line}"))


if __name__ == "__main__":
    from fashionviewer.cli import run_command

    sys.exit(run_command(main, sys.argv[1:]))
