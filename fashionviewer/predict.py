"""``fashionviewer predict FOLDER --out DIR``: run a Mask R-CNN over a folder, headless.

Writes, atomically, ``DIR/predictions.json`` (COCO results: one record per
instance with ``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score``,
RLE ``segmentation``, plus ``file_name`` and ``class_name``) and
``DIR/images.json`` (the images index: ``image_id``, ``file_name`` relative to
FOLDER, ``width``, ``height``). Image ids are 1-based positions in the sorted
listing, so they stay the same when a file is skipped.

Exit status: 0 all images predicted, 3 done but some files were skipped (each
named on stderr with its reason), 2 a user error (bad folder, model, device).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from tqdm import tqdm

from .core.atomic import atomic_write_json, ensure_writable_dir
from .core.errors import FashionViewerError
from .core.imageio import IMAGE_EXTENSIONS, ImageReadError, list_images, load_image
from .core.inference import Predictor, load_predictor
from .core.predictions import ImagePrediction, save_coco_results

log = logging.getLogger(__name__)

EXIT_OK, EXIT_SKIPPED = 0, 3
RESULTS_FILE = "predictions.json"
INDEX_FILE = "images.json"


@dataclass(frozen=True)
class ImageJob:
    """One image to predict: its id and where it is."""

    image_id: int
    path: Path
    file_name: str  # relative to the input folder, with forward slashes


@dataclass
class RunSummary:
    predictions: list[ImagePrediction] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one-line reasons
    seconds: float = 0.0

    @property
    def instances(self) -> int:
        return sum(len(p.instances) for p in self.predictions)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fashionviewer predict",
                                description="Predict instance masks for every image in a folder (COCO results JSON).")
    p.add_argument("folder", help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, help=f"output folder for {RESULTS_FILE} and {INDEX_FILE}")
    p.add_argument("--model", default="demo", help="bundled model name (e.g. demo) or a checkpoint NAME.pt/.json")
    p.add_argument("--min-score", type=float, default=0.05, help="drop instances scoring below this (default 0.05)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (default: the best available)")
    p.add_argument("--allow-random", action="store_true", help="accept a checkpoint with random (untrained) weights")
    return p


def list_jobs(folder: Path) -> list[ImageJob]:
    """Images under ``folder`` in sorted order, numbered from 1."""
    paths = list_images(folder)
    if not paths:
        raise FashionViewerError(f"{folder}: no images found ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return [ImageJob(i, path, path.relative_to(folder).as_posix()) for i, path in enumerate(paths, start=1)]


def predict_jobs(predictor: Predictor, jobs: Sequence[ImageJob], summary: RunSummary) -> Iterator[ImagePrediction]:
    """Predict each job; unreadable images are reported, counted in ``summary`` and skipped."""
    bar = tqdm(jobs, desc="predict", unit="image", file=sys.stderr, disable=None)
    for job in bar:
        try:
            image = load_image(job.path)
        except ImageReadError as exc:
            summary.skipped.append(str(exc))
            tqdm.write(f"skipped: {exc}", file=sys.stderr)
            continue
        yield predictor.predict(image, file_name=job.file_name, image_id=job.image_id)


def write_outputs(out: Path, predictions: Sequence[ImagePrediction]) -> Path:
    """The COCO results file and the images index; returns the results path."""
    index = [{"image_id": p.image_id, "file_name": p.file_name, "width": p.width, "height": p.height}
             for p in predictions]
    atomic_write_json(out / INDEX_FILE, index)
    return save_coco_results(out / RESULTS_FILE, predictions)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; FashionViewerError propagates to the CLI (``error: ...``, exit 2)."""
    args = get_args_parser().parse_args(argv)
    folder = Path(args.folder)
    jobs = list_jobs(folder)
    out = ensure_writable_dir(args.out)  # before loading the model: fail fast
    predictor = load_predictor(args.model, device=args.device, allow_random=args.allow_random,
                               score_floor=args.min_score)
    summary = RunSummary()
    start = time.perf_counter()
    summary.predictions = list(predict_jobs(predictor, jobs, summary))
    summary.seconds = time.perf_counter() - start
    results = write_outputs(out, summary.predictions)
    print(_summary_line(summary, predictor.model_name, str(predictor.device), results))
    return EXIT_SKIPPED if summary.skipped else EXIT_OK


def _summary_line(summary: RunSummary, model: str, device: str, results: Path) -> str:
    done = len(summary.predictions)
    rate = f", {summary.seconds / done:.2f} s/image" if done else ""
    skipped = f"; skipped {len(summary.skipped)} unreadable file(s)" if summary.skipped else ""
    return (f"predicted {done} image(s), {summary.instances} instance(s) with {model} on {device}"
            f"{rate}{skipped}; wrote {results}")


if __name__ == "__main__":
    from .__main__ import main as cli

    sys.exit(cli(["predict", *sys.argv[1:]]))
