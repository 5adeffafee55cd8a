"""A folder run, as ``fashionviewer predict`` does it (no printing here: the command line passes
``report`` and ``progress`` callbacks).

* Image ids are 1-based positions in the folder's sorted listing (:func:`list_jobs`), so they stay
  the same when a file is skipped and when the folder is split into shards (:class:`Shard`).
* :func:`run_jobs` sends every image the journal (:mod:`.journal`) does not hold yet through the
  per-image step (:mod:`.step`), reading and decoding a few images ahead on threads, and appends
  each result to the journal as soon as it is done.
* :func:`write_results` streams the journal, in image-id order, into the COCO results file and the
  images index; :func:`export_partial` does ``--export``.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from fashionviewer.core.base.atomic import atomic_path
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME as ANNOTATIONS_FILE
from fashionviewer.core.data.imageio import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    list_images,
    list_other_files,
    load_image,
)
from fashionviewer.core.data.predictions import ImagePrediction
from fashionviewer.core.runs.export import export_folder
from fashionviewer.core.runs.journal import PARTIAL_FILE, ImageJob, PartialResults
from fashionviewer.core.runs.pipeline import prefetch
from fashionviewer.core.runs.step import PerImageStep

RESULTS_FILE = "predictions.json"
INDEX_FILE = "images.json"
RUN_FILE = "run.json"
RUN_FORMAT = "fashionviewer.predict/1"


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
    # not images by extension, so not predicted
    other_files: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.resumed + self.cached + self.predicted

    def line(self, model: str, device: str, results: Path) -> str:
        """The one-line summary ``fashionviewer predict`` prints at the end."""
        rate = f", {self.seconds / self.predicted:.2f} s/image" if self.predicted else ""
        sources = []
        if self.cached:
            sources.append(f"{self.cached} from the cache")
        if self.resumed:
            sources.append(f"{self.resumed} from the interrupted run")
        origin = f" ({', '.join(sources)})" if sources else ""
        skipped = f"; skipped {len(self.skipped)} unreadable file(s)" if self.skipped else ""
        others = f"; {len(self.other_files)} other file(s) ignored" if self.other_files else ""
        return (
            f"predicted {self.done} image(s){origin}, {self.instances} instance(s) with {model} on {device}"
            f"{rate}{skipped}{others}; wrote {results}"
        )


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
        raise FashionViewerError(
            f"{folder}: no images found ({', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    return [
        ImageJob(i, path, path.relative_to(folder).as_posix())
        for i, path in enumerate(paths, start=1)
    ]


def list_ignored_files(folder: Path, out: Path | None = None) -> list[str]:
    """Files under ``folder`` that are not predicted because they are no image by their extension,
    relative, sorted. The project's own files are not counted: the annotation file, and anything in
    ``out`` or in an earlier run's output folder (one holding a run file or a journal)."""
    root = folder.resolve()
    inside = out.resolve() if out is not None else None
    files = list_other_files(
        root, skip_names={ANNOTATIONS_FILE}, skip_folders_holding={RUN_FILE, PARTIAL_FILE}
    )
    return [
        p.relative_to(root).as_posix() for p in files if inside is None or inside not in p.parents
    ]


@contextlib.contextmanager
def os_errors_as_user_errors(out: Path) -> Iterator[None]:
    """A full disk or a vanished output folder mid-run: one line, not a traceback (the partial
    results stay, so the run resumes once there is room)."""
    try:
        yield
    except OSError as exc:
        raise FashionViewerError(
            f"{exc.filename or out}: cannot write ({exc.strerror or exc}); run again to resume"
        ) from exc


def run_jobs(
    step: PerImageStep,
    jobs: Sequence[ImageJob],
    partial: PartialResults,
    summary: RunSummary,
    workers: int = 2,
    ahead: int = 4,
    report: Callable[[str], None] = print,
    progress: Callable[[int], None] | None = None,
    on_image: Callable[[int], None] | None = None,
) -> None:
    """Send every job ``partial`` does not hold yet through ``step``, appending each result to it.

    The step's stat, cache look-up and decoding run ``ahead`` images in advance on ``workers``
    threads; the model runs here. Unreadable files are reported (``report("skipped: ...")``) and
    counted in ``summary``. ``progress(n)`` advances a progress bar by n; ``on_image(count)`` is
    called after each image of this run.
    """
    todo = [job for job in jobs if not partial.holds(job)]
    summary.resumed = len(jobs) - len(todo)
    if progress is not None and summary.resumed:
        progress(summary.resumed)
    count = 0
    for prepared in prefetch(
        todo,
        lambda job: step.prepare(job.path, job.file_name, job.image_id),
        workers=workers,
        ahead=ahead,
    ):
        result = step.finish(prepared)
        if result.prediction is None:
            summary.skipped.append(str(result.error))
            report(f"skipped: {result.error}")
        else:
            if result.cached:
                summary.cached += 1
            else:
                summary.predicted += 1
            partial.append(result.file_name, result.stat, result.prediction)
        count += 1
        if progress is not None:
            progress(1)
        if on_image is not None:
            on_image(count)


def write_results(
    out: Path,
    shard: Shard,
    jobs: Sequence[ImageJob],
    partial: PartialResults,
    min_score: float,
    summary: RunSummary,
    category_ids: Sequence[int] | None = None,
) -> tuple[Path, Path]:
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
            kept = replace(
                prediction, instances=prediction.filter(min_score), file_name=job.file_name
            )
            summary.instances += len(kept.instances)
            entry = {
                "image_id": job.image_id,
                "file_name": job.file_name,
                "width": prediction.width,
                "height": prediction.height,
            }
            yield entry, kept.to_coco_results(image_id=job.image_id, category_ids=category_ids)

    with (
        atomic_path(results_path) as tmp_results,
        atomic_path(index_path) as tmp_index,
        JsonListWriter(tmp_results) as results,
        JsonListWriter(tmp_index) as index,
    ):
        for entry, recs in records():
            index.add(entry)
            for record in recs:
                results.add(record)
    return results_path, index_path


def export_partial(
    partial: PartialResults,
    jobs: Sequence[ImageJob],
    out: Path,
    formats: Sequence[str],
    min_score: float,
    folder: Path,
    info: dict[str, Any],
    workers: int = 2,
    category_ids: Sequence[int] | None = None,
    report: Callable[[str], None] = print,
    progress: Callable[[int], None] | None = None,
    class_names: Sequence[str] | None = None,
) -> list[Path]:
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
                report(f"not exported: {problem}")
                continue
            prediction = partial.get(job)
            if prediction is not None:
                yield (
                    replace(prediction, file_name=job.file_name, image_id=job.image_id),
                    image,
                    job.path,
                )

    def advance(_done: int, _path: Path) -> None:
        if progress is not None:
            progress(1)

    return export_folder(
        items(),
        out,
        formats,
        min_score,
        None,
        info=info,
        root=folder,
        progress=advance,
        category_ids=category_ids,
        class_names=class_names,
    )


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


def write_list(path: Path, items: Iterable[Any]) -> Path:
    """``items`` as a JSON list in ``path``, written atomically and one element at a time."""
    with atomic_path(path) as tmp, JsonListWriter(tmp) as writer:
        for item in items:
            writer.add(item)
    return path
