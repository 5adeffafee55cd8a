"""``fashionviewer predict FOLDER --out DIR``: run a Mask R-CNN over a folder, headless.

Writes, atomically, ``DIR/predictions.json`` (COCO results: one record per
instance with ``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score``,
RLE ``segmentation``, plus ``file_name`` and ``class_name``), ``DIR/images.json``
(the images index: ``image_id``, ``file_name`` relative to FOLDER, ``width``,
``height``) and ``DIR/run.json`` (what ran, on what, what was skipped and why).
Image ids are 1-based positions in the sorted listing, so they stay the same
when a file is skipped and when the folder is split into shards.

Fast and unbreakable:

* Persistent cache (:mod:`fashionviewer.core.runs.cache`, shared with the viewer):
  an image whose bytes, weights and settings were seen before is not predicted
  again; new weights never return stale results.
* Resume: every finished image is appended at once to
  ``DIR/predictions.partial.jsonl``; a run that is killed or interrupted
  continues where it stopped when started again with the same arguments. The
  final files are streamed from that file, so memory stays flat.
* Reading and decoding run on a small thread pool a few images ahead of the model.
* A file that cannot be read is named on stderr with a one-line reason and
  skipped; the run goes on.
* ``--shard I/N`` (or ``torchrun --nproc_per_node=N -m fashionviewer.predict``)
  predicts every N-th image; ``--merge DIR`` joins the shards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from fashionviewer.core.base.atomic import atomic_path, atomic_write_json, ensure_writable_dir
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.imageio import IMAGE_EXTENSIONS, ImageReadError, list_images, load_image
from fashionviewer.core.data.predictions import ImagePrediction, load_coco_results
from fashionviewer.core.runs.cache import BoundCache, bind_cache, open_cache, predictor_key
from fashionviewer.core.runs.export import COCO_FILE, export_folder, parse_formats, provenance
from fashionviewer.core.runs.pipeline import prefetch

log = logging.getLogger(__name__)

EXIT_OK, EXIT_SKIPPED = 0, 3
RESULTS_FILE = "predictions.json"
INDEX_FILE = "images.json"
RUN_FILE = "run.json"
PARTIAL_FILE = "predictions.partial.jsonl"
RUN_FORMAT = "fashionviewer.predict/1"
PARTIAL_FORMAT = "fashionviewer.predict.partial/1"
# The viewer predicts at this floor and filters with its slider; predicting at the same floor (and
# filtering at --min-score when writing) lets each reuse what the other cached.
CACHE_FLOOR = 0.05

EPILOG = f"""\
outputs (in --out):
  {RESULTS_FILE}    COCO results (image_id, category_id, bbox, score, RLE segmentation, file_name, class_name)
  {INDEX_FILE}         image_id, file_name (relative to FOLDER), width, height of every predicted image
  {RUN_FILE}            model, weights SHA-256, settings, counts and the reason for every skipped file
  {PARTIAL_FILE}  results so far while running; a killed run resumes from it (removed when done)
  {COCO_FILE}, *.png   with --export (sub-folders of FOLDER are mirrored)

cache:
  Results are cached by image content + weights SHA-256 + settings in a SQLite file shared with the
  viewer (default: the user cache folder, or $FASHIONVIEWER_CACHE), so a second run over the same
  folder, or opening it in the viewer, does not run the model again. --no-cache turns it off.

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


@dataclass(frozen=True)
class ImageJob:
    """One image to predict: its id and where it is."""

    image_id: int
    path: Path
    file_name: str  # relative to the input folder, with forward slashes


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): images whose id - 1 is ``index`` modulo ``count``."""

    index: int = 0
    count: int = 1

    def name(self, base: str) -> str:
        """``predictions.json`` -> ``predictions.shard-0-of-2.json`` (unchanged for a single shard)."""
        if self.count <= 1:
            return base
        stem, dot, ext = base.partition(".")
        return f"{stem}.shard-{self.index}-of-{self.count}{dot}{ext}"

    def select(self, jobs: Sequence[ImageJob]) -> list[ImageJob]:
        return [job for job in jobs if (job.image_id - 1) % self.count == self.index]


@dataclass
class RunSummary:
    images: int = 0  # in this shard
    resumed: int = 0  # already in the partial results
    cached: int = 0  # from the persistent cache
    predicted: int = 0  # run through the model
    instances: int = 0  # written (at or above --min-score)
    skipped: list[str] = field(default_factory=list)  # one-line reasons
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return self.resumed + self.cached + self.predicted


@dataclass
class Prepared:
    """What the prefetch threads hand to the model loop for one job."""

    job: ImageJob
    stat: list[int] | None = None
    digest: str | None = None
    image: np.ndarray | None = None
    cached: ImagePrediction | None = None
    error: str | None = None


# --------------------------------------------------------------------------- command line


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fashionviewer predict", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Predict instance masks for every image in a folder (COCO results JSON).")
    p.add_argument("folder", nargs="?", help="folder of images (searched recursively)")
    p.add_argument("--out", help=f"output folder for {RESULTS_FILE}, {INDEX_FILE} and {RUN_FILE}")
    p.add_argument("--model", default=None,
                   help="bundled model name (fashion, demo, ccp) or a checkpoint NAME.pt/.json (default: the real-photo "
                        "model 'fashion'; 'demo' for the embedded demo folder)")
    p.add_argument("--min-score", type=float, default=0.05, help="drop instances scoring below this (default 0.05)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (default: the best available)")
    p.add_argument("--allow-random", action="store_true", help="accept a checkpoint with random (untrained) weights")
    p.add_argument("--no-tta", action="store_true",
                   help="one view per image even when the model card asks for test-time augmentation (faster)")
    p.add_argument("--export", metavar="FORMATS",
                   help="also export masks: png (instances, index, class and overlay PNGs), coco, or any of "
                        "instances,index,class,overlay,coco, comma-separated")
    p.add_argument("--cache", metavar="PATH", help="prediction cache file (default: shared with the viewer)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the prediction cache")
    p.add_argument("--shard", metavar="I/N", help="predict shard I of N (0 <= I < N); default from torchrun's "
                                                 "RANK/WORLD_SIZE, else the whole folder")
    p.add_argument("--merge", metavar="DIR", help="join the shard results in DIR (no FOLDER needed)")
    p.add_argument("--limit", type=int, default=0, help="only the first N images of the sorted listing (0: all)")
    p.add_argument("--workers", type=int, default=2, help="image reading threads (0: read in the model's thread)")
    p.add_argument("--prefetch", type=int, default=4, help="images read ahead of the model (default 4)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return p


def main(argv: Sequence[str] | None = None, *, on_image: Callable[[int], None] | None = None) -> int:
    """Run the command; FashionViewerError propagates to the CLI (``error: ...``, exit 2).

    ``on_image(n)`` is called after each image of this run is done (benchmarks sample memory with it).
    """
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.merge:
        if args.folder or args.shard:
            parser.error("--merge DIR takes no FOLDER and no --shard")
        return merge(Path(args.merge))
    if not args.folder or not args.out:
        parser.error("FOLDER and --out DIR are required (or --merge DIR)")
    if args.min_score < 0 or args.limit < 0 or args.workers < 0 or args.prefetch < 1:
        parser.error("--min-score, --limit and --workers must be >= 0 and --prefetch >= 1")

    torchrun = _torchrun_env()
    shard = parse_shard(args.shard) if args.shard else Shard(torchrun[0], torchrun[1]) if torchrun else Shard()
    folder = Path(args.folder)
    jobs = list_jobs(folder)
    if args.limit:
        jobs = jobs[: args.limit]
    jobs = shard.select(jobs)
    out = ensure_writable_dir(args.out)  # before loading the model: fail fast
    formats = parse_formats(args.export) if args.export else ()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from fashionviewer.core.inference.predictor import load_predictor, resolve_model_path
    from fashionviewer.core.models.domain import card_domain, default_model_for, domain_notice

    if args.model is None:  # photos get the real-photo model; the embedded demo its own
        args.model = default_model_for(folder)
    device = _device_for(args.device, torchrun[2] if torchrun else None)
    predictor = load_predictor(args.model, device=device, allow_random=args.allow_random,
                               score_floor=min(args.min_score, CACHE_FLOOR), tta=not args.no_tta)
    bound = None if args.no_cache else _bind_cache(args.cache, predictor)
    key = bound.key if bound is not None else (predictor_key(predictor) or "")
    weights = resolve_model_path(args.model)

    summary = RunSummary(images=len(jobs))
    start = time.perf_counter()
    header = {"format": PARTIAL_FORMAT, "model_key": key, "folder": str(folder.resolve())}
    with _os_errors_as_user_errors(out), PartialResults(out / shard.name(PARTIAL_FILE), header) as partial:
        run_jobs(predictor, jobs, partial, bound, summary, workers=args.workers, ahead=args.prefetch,
                 on_image=on_image)
        summary.seconds = time.perf_counter() - start
        category_ids = list(predictor.category_ids)
        results, index = write_results(out, shard, jobs, partial, args.min_score, summary, category_ids)
        card = getattr(predictor, "card", {}) or {}
        notice = domain_notice(card, folder, predictor.model_name)
        if notice:
            print(f"note: {notice}", file=sys.stderr)
        rescorer = getattr(predictor, "rescorer", None)
        rescored_by = ({"classifier": rescorer.name, "weights_sha256": rescorer.weights_sha256,
                        "hflip": rescorer.hflip, "power": rescorer.power} if rescorer is not None else None)
        tta = getattr(predictor, "tta", None)
        test_time_augmentation = tta.to_dict() if tta is not None else None
        meta = {
            "format": RUN_FORMAT, "folder": str(folder.resolve()), "model": predictor.model_name,
            "rescored_by": rescored_by, "test_time_augmentation": test_time_augmentation,
            "weights": str(weights), "weights_sha256": card.get("weights_sha256"), "model_key": key,
            "device": str(predictor.device), "min_score": args.min_score, "score_floor": predictor.score_floor,
            "shard": [shard.index, shard.count], "limit": args.limit, "export": list(formats),
            "results": results.name, "index": index.name, "images": summary.images,
            "predicted": summary.done, "from_cache": summary.cached, "resumed": summary.resumed,
            "model_runs": summary.predicted, "instances": summary.instances, "skipped": summary.skipped,
            "seconds": round(summary.seconds, 2),
            "domain": card_domain(card), "domain_notice": notice, "taxonomy": card.get("taxonomy"),
            "categories": [{"id": i, "name": n} for i, n in zip(category_ids, predictor.class_names)],
        }
        # With shards the single COCO export file is the merge's job (each shard would overwrite it).
        shard_formats = [f for f in formats if f != "coco" or shard.count == 1]
        if shard_formats:
            export_partial(partial, jobs, out, shard_formats, args.min_score, folder,
                           provenance(model=predictor.model_name, weights=weights,
                                      weights_sha256=card.get("weights_sha256"), min_score=args.min_score,
                                      device=str(predictor.device), rescored_by=rescored_by,
                                      test_time_augmentation=test_time_augmentation,
                                      taxonomy=card.get("taxonomy")), category_ids=category_ids)
        atomic_write_json(out / shard.name(RUN_FILE), meta)  # last: its presence means "this shard is complete"
        partial.remove()
    model = predictor.model_name + (f" re-scored by {rescored_by['classifier']}" if rescored_by else "")
    if tta is not None:
        model += f" ({tta.view_count} views)"
    print(_summary_line(summary, model, str(predictor.device), results))

    if torchrun and not args.shard:
        return _merge_under_torchrun(out, torchrun)
    return EXIT_SKIPPED if summary.skipped else EXIT_OK


@contextlib.contextmanager
def _os_errors_as_user_errors(out: Path) -> Iterator[None]:
    """A full disk or a vanished output folder mid-run: one line, not a traceback (the partial
    results stay, so the run resumes once there is room)."""
    try:
        yield
    except OSError as exc:
        raise FashionViewerError(f"{exc.filename or out}: cannot write ({exc.strerror or exc}); "
                                 "run again to resume") from exc


def parse_shard(text: str) -> Shard:
    """``"I/N"`` -> Shard(I, N), checked (a one-line user error otherwise)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise FashionViewerError(f"--shard {text}: expected I/N, e.g. 0/2") from None
    if count < 1 or not 0 <= index < count:
        raise FashionViewerError(f"--shard {text}: need 0 <= I < N")
    return Shard(index, count)


def list_jobs(folder: Path) -> list[ImageJob]:
    """Images under ``folder`` in sorted order, numbered from 1."""
    paths = list_images(folder)
    if not paths:
        raise FashionViewerError(f"{folder}: no images found ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return [ImageJob(i, path, path.relative_to(folder).as_posix()) for i, path in enumerate(paths, start=1)]


def _bind_cache(path: str | None, predictor: Any) -> BoundCache | None:
    """The cache bound to ``predictor``; an explicit --cache that cannot be opened is a user error,
    the default one only a warning (the run works without it)."""
    try:
        cache = open_cache(path)
    except FashionViewerError as exc:
        if path is not None:
            raise FashionViewerError(f"--cache {exc}") from exc
        print(f"warning: {exc}; predicting without the cache", file=sys.stderr)
        return None
    return bind_cache(cache, predictor)


# --------------------------------------------------------------------------- the run


def run_jobs(predictor: Any, jobs: Sequence[ImageJob], partial: "PartialResults", bound: BoundCache | None,
             summary: RunSummary, workers: int = 2, ahead: int = 4,
             on_image: Callable[[int], None] | None = None) -> None:
    """Predict every job ``partial`` does not hold yet, appending each result to it as it finishes.

    Reading, hashing, cache look-ups and decoding run ``ahead`` images in advance on ``workers``
    threads; the model runs here. Unreadable files are reported and counted in ``summary``.
    """
    todo = [job for job in jobs if not partial.holds(job)]
    summary.resumed = len(jobs) - len(todo)
    bar = tqdm(total=len(jobs), initial=summary.resumed, desc="predict", unit="image", file=sys.stderr, disable=None)

    def prepare(job: ImageJob) -> Prepared:  # runs on a prefetch thread
        prepared = Prepared(job)
        try:
            stat = os.stat(job.path)
            prepared.stat = [stat.st_size, stat.st_mtime_ns]
        except OSError:
            pass  # load_image says why, in its own words
        if bound is not None:
            prepared.digest, prepared.cached = bound.lookup(job.path, job.file_name, job.image_id)
            if prepared.cached is not None:
                return prepared  # no decode: the model will not run
        try:
            prepared.image = load_image(job.path)
        except ImageReadError as exc:
            prepared.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a decoder bug on one odd file must not stop the folder
            prepared.error = f"{job.path}: cannot decode image ({type(exc).__name__}: {_first_line(exc)})"
        return prepared

    count = 0
    for item in prefetch(todo, prepare, workers=workers, ahead=ahead):
        prediction = item.cached
        if prediction is None and item.error is None:
            try:
                prediction = predictor.predict(item.image, file_name=item.job.file_name, image_id=item.job.image_id)
            except Exception as exc:  # noqa: BLE001 - one image the model chokes on must not stop the folder
                item.error = f"{item.job.path}: prediction failed ({type(exc).__name__}: {_first_line(exc)})"
            else:
                if bound is not None:
                    bound.store(item.digest, prediction)
                summary.predicted += 1
        elif prediction is not None:
            summary.cached += 1
        item.image = None  # drop the pixels before the next one arrives
        if item.error is not None:
            summary.skipped.append(item.error)
            tqdm.write(f"skipped: {item.error}", file=sys.stderr)
        else:
            partial.append(item.job.file_name, item.stat, prediction)  # type: ignore[arg-type]
        bar.update(1)
        count += 1
        if on_image is not None:
            on_image(count)
    bar.close()


def write_results(out: Path, shard: Shard, jobs: Sequence[ImageJob], partial: "PartialResults", min_score: float,
                  summary: RunSummary, category_ids: Sequence[int] | None = None) -> tuple[Path, Path]:
    """Stream the partial results, in image-id order, into the COCO results file and the images index.

    One image is in memory at a time. Instances below ``min_score`` are dropped here (the partial
    file and the cache keep everything above the predictor's floor).
    """
    results_path, index_path = out / shard.name(RESULTS_FILE), out / shard.name(INDEX_FILE)
    summary.instances = 0

    def records() -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        for job in jobs:
            prediction = partial.get(job)
            if prediction is None:
                continue  # skipped: unreadable
            kept = replace(prediction, instances=prediction.filter(min_score), file_name=job.file_name)
            summary.instances += len(kept.instances)
            entry = {"image_id": job.image_id, "file_name": job.file_name, "width": prediction.width,
                     "height": prediction.height}
            yield entry, kept.to_coco_results(image_id=job.image_id, category_ids=category_ids)

    with atomic_path(results_path) as tmp_results, atomic_path(index_path) as tmp_index, \
            JsonListWriter(tmp_results) as results, JsonListWriter(tmp_index) as index:
        for entry, recs in records():
            index.add(entry)
            for record in recs:
                results.add(record)
    return results_path, index_path


def export_partial(partial: "PartialResults", jobs: Sequence[ImageJob], out: Path, formats: Sequence[str],
                   min_score: float, folder: Path, info: dict[str, Any], workers: int = 2,
                   category_ids: Sequence[int] | None = None) -> list[Path]:
    """``--export``: PNG and/or COCO export of the finished images (images decoded only for overlays)."""
    need_image = "overlay" in formats
    done = [job for job in jobs if partial.holds(job)]

    def load(job: ImageJob) -> tuple[ImageJob, np.ndarray | None, str | None]:
        if not need_image:
            return job, None, None
        try:
            return job, load_image(job.path), None
        except ImageReadError as exc:
            return job, None, str(exc)

    def items() -> Iterator[tuple[ImagePrediction, np.ndarray | None, Path]]:
        for job, image, problem in prefetch(done, load, workers=workers if need_image else 0):
            if problem is not None:
                tqdm.write(f"not exported: {problem}", file=sys.stderr)
                continue
            prediction = partial.get(job)
            if prediction is not None:
                yield replace(prediction, file_name=job.file_name), image, job.path

    bar = tqdm(total=len(done), desc="export", unit="image", file=sys.stderr, disable=None)

    def progress(_done: int, _path: Path) -> None:
        bar.update(1)

    try:
        return export_folder(items(), out, formats, min_score, None, info=info, root=folder, progress=progress,
                             category_ids=category_ids)
    finally:
        bar.close()


def _summary_line(summary: RunSummary, model: str, device: str, results: Path) -> str:
    done = summary.done
    rate = f", {summary.seconds / summary.predicted:.2f} s/image" if summary.predicted else ""
    sources = []
    if summary.cached:
        sources.append(f"{summary.cached} from the cache")
    if summary.resumed:
        sources.append(f"{summary.resumed} from the interrupted run")
    origin = f" ({', '.join(sources)})" if sources else ""
    skipped = f"; skipped {len(summary.skipped)} unreadable file(s)" if summary.skipped else ""
    return (f"predicted {done} image(s){origin}, {summary.instances} instance(s) with {model} on {device}"
            f"{rate}{skipped}; wrote {results}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# --------------------------------------------------------------------------- partial results (resume)


class PartialResults:
    """``DIR/predictions[.shard-I-of-N].partial.jsonl``: one JSON line per finished image.

    The first line is a header (format, model key, folder). Each line after it is
    ``{"file_name", "stat": [size, mtime_ns], "prediction": ImagePrediction.to_dict()}``, written
    and flushed as soon as the image is done, so a killed run loses at most the line it was writing
    (that torn line is cut off when the file is opened again). An entry counts as done only while
    its file still has the same size and modification time; a header from another model or folder
    starts the file over. Only an index (file name -> byte offset) is kept in memory.

    The file is locked while open (where the platform supports it), so two runs cannot write the
    same results.
    """

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        self._offsets: dict[str, tuple[int, list[int] | None]] = {}
        self._writer: IO[bytes] | None = None
        self._reader: IO[bytes] | None = None

    def __enter__(self) -> "PartialResults":
        try:
            self._writer = open(self.path, "a+b")
        except OSError as exc:
            raise FashionViewerError(f"{self.path}: cannot write ({exc.strerror or exc})") from exc
        _lock(self._writer, self.path)
        self._load()
        return self

    def __exit__(self, *exc: object) -> None:
        for fh in (self._reader, self._writer):
            if fh is not None:
                fh.close()
        self._reader = self._writer = None

    def _load(self) -> None:
        assert self._writer is not None
        fh = self._writer
        fh.seek(0)
        first = fh.readline()
        header = _parse_line(first)
        if header != self.header:
            if first:
                log.warning("%s: results of another model, settings or folder; starting over", self.path)
            self._truncate(0)
            self._write_line(self.header)
            return
        offset = len(first)
        while True:
            line = fh.readline()
            entry = _parse_line(line)
            if entry is None or "file_name" not in entry:
                if line:  # a torn line from a killed run: cut it off, later lines would follow it
                    log.info("%s: dropping an incomplete last line", self.path)
                    self._truncate(offset)
                break
            self._offsets[entry["file_name"]] = (offset, entry.get("stat"))
            offset += len(line)
        fh.seek(0, os.SEEK_END)

    def _truncate(self, size: int) -> None:
        assert self._writer is not None
        self._writer.truncate(size)
        self._writer.seek(size)

    def _write_line(self, obj: dict[str, Any]) -> int:
        assert self._writer is not None
        self._writer.seek(0, os.SEEK_END)
        offset = self._writer.tell()
        self._writer.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
        self._writer.flush()  # in the OS's hands now: survives the process being killed
        return offset

    def holds(self, job: ImageJob) -> bool:
        entry = self._offsets.get(job.file_name)
        return entry is not None and entry[1] is not None and entry[1] == _stat(job.path)

    def append(self, file_name: str, stat: list[int] | None, prediction: ImagePrediction) -> None:
        offset = self._write_line({"file_name": file_name, "stat": stat, "prediction": prediction.to_dict()})
        self._offsets[file_name] = (offset, stat)

    def get(self, job: ImageJob) -> ImagePrediction | None:
        """The stored prediction of ``job`` (None when it is not done)."""
        if not self.holds(job):
            return None
        if self._reader is None:
            self._reader = open(self.path, "rb")
        self._reader.seek(self._offsets[job.file_name][0])
        entry = json.loads(self._reader.readline())
        return ImagePrediction.from_dict(entry["prediction"], source=f"{self.path}: {job.file_name}")

    def remove(self) -> None:
        """Delete the file (the final outputs are written)."""
        self.__exit__()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _parse_line(line: bytes) -> dict[str, Any] | None:
    if not line.endswith(b"\n"):
        return None
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _stat(path: Path) -> list[int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _lock(fh: IO[bytes], path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one run per output folder is on the user
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise FashionViewerError(f"{path}: another `fashionviewer predict` is writing these results; "
                                 "wait for it or choose another --out") from None


class JsonListWriter:
    """Write a JSON list one element at a time (one element per line): memory stays flat."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None
        self.count = 0

    def __enter__(self) -> "JsonListWriter":
        self._fh = open(self.path, "w", encoding="utf-8")
        self._fh.write("[")
        return self

    def add(self, obj: Any) -> None:
        assert self._fh is not None
        self._fh.write(("\n" if self.count == 0 else ",\n") + json.dumps(obj, ensure_ascii=False))
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        assert self._fh is not None
        self._fh.write("\n]\n" if self.count else "]\n")
        self._fh.close()


def _write_list(path: Path, items: Iterable[Any]) -> Path:
    with atomic_path(path) as tmp, JsonListWriter(tmp) as writer:
        for item in items:
            writer.add(item)
    return path


# --------------------------------------------------------------------------- shards and merge


def merge(out: Path) -> int:
    """Join ``out``'s shard results into one COCO results file, images index and run record.

    Image ids are global positions in the folder's sorted listing, so they need no renumbering:
    the merged files equal what one unsharded run writes. Returns the exit status (3 when any
    shard skipped files).
    """
    if not out.is_dir():
        raise FashionViewerError(f"--merge {out}: not a folder")
    metas: dict[int, dict[str, Any]] = {}
    counts: set[int] = set()
    for path in sorted(out.glob("run.shard-*-of-*.json")):
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            index, count = (int(v) for v in meta["shard"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FashionViewerError(f"{path}: unreadable shard record ({_first_line(exc)})") from exc
        counts.add(count)
        metas[index] = meta | {"_path": path}
    if not metas:
        raise FashionViewerError(f"{out}: no shard results to merge (run.shard-I-of-N.json); run "
                                 f"`fashionviewer predict FOLDER --out {out} --shard I/N` for every I first")
    if len(counts) > 1:
        splits = ", ".join(f"N={n}" for n in sorted(counts))
        raise FashionViewerError(f"{out}: shard results of different splits ({splits}); "
                                 "delete the stale run.shard-*.json files")
    count = counts.pop()
    missing = [i for i in range(count) if i not in metas]
    if missing:
        names = ", ".join(Shard(i, count).name(RUN_FILE) for i in missing)
        raise FashionViewerError(f"{out}: shard(s) {', '.join(f'{i}/{count}' for i in missing)} not finished "
                                 f"(no {names})")
    first = metas[0]
    for meta in metas.values():
        for key in ("model_key", "folder", "min_score", "limit"):
            if meta.get(key) != first.get(key):
                raise FashionViewerError(f"{meta['_path']}: {key} differs from shard 0's ({meta.get(key)!r} vs "
                                         f"{first.get(key)!r}); rerun that shard with the same arguments")

    records: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    for i in range(count):
        meta = metas[i]
        records += load_coco_results(out / meta["results"])
        index += _load_index(out / meta["index"])
    index.sort(key=lambda e: e["image_id"])
    records.sort(key=lambda r: r["image_id"])  # stable: each image keeps its score order
    ids = [e["image_id"] for e in index]
    if len(set(ids)) != len(ids):
        raise FashionViewerError(f"{out}: the shards overlap (an image id appears twice); rerun them with the same N")

    results_path = _write_list(out / RESULTS_FILE, records)
    _write_list(out / INDEX_FILE, index)
    skipped = [reason for i in range(count) for reason in metas[i].get("skipped", [])]
    merged = {k: v for k, v in first.items() if k not in ("_path", "shard", "results", "index", "seconds", "device")}
    merged.update(
        shards=count, results=RESULTS_FILE, index=INDEX_FILE, skipped=skipped,
        devices=sorted({str(metas[i].get("device")) for i in range(count)}),
        seconds=max(float(metas[i].get("seconds", 0)) for i in range(count)),
        **{key: sum(int(metas[i].get(key, 0)) for i in range(count))
           for key in ("images", "predicted", "from_cache", "resumed", "model_runs", "instances")},
    )
    if "coco" in first.get("export", []):
        info = provenance(model=first.get("model", ""), weights=first.get("weights"),
                          weights_sha256=first.get("weights_sha256"), min_score=float(first.get("min_score", 0)),
                          shards=count)
        export_folder(_grouped(index, records, Path(first["folder"])), out, ("coco",), float(first.get("min_score", 0)),
                      None, info=info, root=first["folder"])
    atomic_write_json(out / RUN_FILE, merged)
    print(f"merged {count} shard(s): {merged['predicted']} image(s), {len(records)} instance(s)"
          f"{f'; {len(skipped)} file(s) were skipped' if skipped else ''}; wrote {results_path}")
    return EXIT_SKIPPED if skipped else EXIT_OK


def _load_index(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FashionViewerError(f"{path}: unreadable images index ({_first_line(exc)})") from exc
    if not isinstance(data, list) or not all(isinstance(e, dict) and "image_id" in e for e in data):
        raise FashionViewerError(f"{path}: not an images index (a list of {{image_id, file_name, width, height}})")
    return data


def _grouped(index: list[dict[str, Any]], records: list[dict[str, Any]], folder: Path
             ) -> Iterator[tuple[ImagePrediction, None, Path]]:
    """(prediction, no image, source path) per indexed image, from sorted COCO results records."""
    from fashionviewer.core.data.predictions import from_coco_results

    by_id: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        by_id.setdefault(record["image_id"], []).append(record)
    for entry in index:
        found = from_coco_results(by_id.get(entry["image_id"], []))
        prediction = ImagePrediction(entry["file_name"], int(entry["width"]), int(entry["height"]),
                                     found[0].instances if found else [], image_id=entry["image_id"])
        yield prediction, None, folder / entry["file_name"]


def _torchrun_env() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when started by torchrun with more than one process."""
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except (KeyError, ValueError):
        return None
    return (rank, world, int(os.environ.get("LOCAL_RANK", rank))) if world > 1 else None


def _device_for(name: str, local_rank: int | None) -> str:
    """Under torchrun each process takes GPU LOCAL_RANK ('auto'/'cuda'); an explicit cuda:N is kept."""
    if local_rank is None or name not in ("auto", "cuda"):
        return name
    import torch

    return f"cuda:{local_rank}" if torch.cuda.is_available() else ("cpu" if name == "auto" else name)


def _merge_under_torchrun(out: Path, torchrun: tuple[int, int, int]) -> int:
    """Wait for every rank to finish its shard, then rank 0 merges. Every rank exits 0: torchrun
    would read 3 (skipped files) as a failed worker and stop the others."""
    import datetime as dt

    import torch.distributed as dist

    rank = torchrun[0]
    # gloo even on GPUs: only a barrier goes through it. Shards may finish hours apart.
    dist.init_process_group("gloo", init_method="env://", timeout=dt.timedelta(hours=48))
    try:
        dist.barrier()
        if rank == 0:
            merge(out)
        dist.barrier()  # the others wait so that torchrun sees the job end only when the merge is written
    finally:
        dist.destroy_process_group()
    return EXIT_OK


if __name__ == "__main__":
    from fashionviewer.cli import run_command

    sys.exit(run_command(main, sys.argv[1:]))
