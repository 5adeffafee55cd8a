"""The journal of a folder run: ``DIR/predictions[.shard-I-of-N].partial.jsonl``, one JSON line per
finished image, so a killed or interrupted ``fashionviewer predict`` resumes where it stopped and the
final files can be streamed from it (memory stays flat)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.predictions import ImagePrediction

log = logging.getLogger(__name__)

PARTIAL_FILE = "predictions.partial.jsonl"
PARTIAL_FORMAT = "fashionviewer.predict.partial/1"


@dataclass(frozen=True)
class ImageJob:
    """One image of a folder run: its id (1-based position in the sorted listing) and where it is."""

    image_id: int
    path: Path
    file_name: str  # relative to the input folder, with forward slashes


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
                log.warning(
                    "%s: results of another model, settings or folder; starting over", self.path
                )
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
        self._writer.write(
            json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        )
        self._writer.flush()  # in the OS's hands now: survives the process being killed
        return offset

    def holds(self, job: ImageJob) -> bool:
        """Whether ``job``'s result is here and its file is unchanged since."""
        entry = self._offsets.get(job.file_name)
        return entry is not None and entry[1] is not None and entry[1] == _stat(job.path)

    def append(self, file_name: str, stat: list[int] | None, prediction: ImagePrediction) -> None:
        offset = self._write_line(
            {"file_name": file_name, "stat": stat, "prediction": prediction.to_dict()}
        )
        self._offsets[file_name] = (offset, stat)

    def get(self, job: ImageJob) -> ImagePrediction | None:
        """The stored prediction of ``job`` (None when it is not done)."""
        if not self.holds(job):
            return None
        if self._reader is None:
            self._reader = open(self.path, "rb")
        self._reader.seek(self._offsets[job.file_name][0])
        entry = json.loads(self._reader.readline())
        return ImagePrediction.from_dict(
            entry["prediction"], source=f"{self.path}: {job.file_name}"
        )

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
        raise FashionViewerError(
            f"{path}: another `fashionviewer predict` is writing these results; "
            "wait for it or choose another --out"
        ) from None
