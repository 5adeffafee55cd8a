"""Annotation editing state (no Qt): accept predictions, draw, paint, relabel, delete; undo/redo; autosave.

``AnnotationEditor`` owns one folder's :class:`~fashionviewer.core.data.annotations.AnnotationSet` and its
project file. Every edit goes through a method here, is announced on ``events.changed`` (with the image's
file name), becomes one undo step (bounded history) and schedules a debounced atomic save on a
``threading.Timer``. The Qt layer only draws the annotations and forwards input.

Threading: edits are expected from one thread (the GUI's); ``events.saved`` and ``events.error`` may be
emitted from the autosave timer's thread, so a GUI must hand them over to its own thread (a queued signal).
A lock guards the set while the timer serialises it.

Opening never writes: the file is written by the first edit (or ``save()``), so a file with a bad record is
left as it is until the user changes something. When the file had problems, or another program wrote it,
that first save keeps the original beside it as ``NAME.bak`` (the skipped records are not lost). A file that
is not COCO instances at all (a labelme JSON at the project path) is reported in one line (``problems`` and
stderr) and the editor is ``read_only``: what the file holds is shown when ``core.data.formats`` recognises
it (``foreign_format``; read through that format's reader, images relative to the folder), every edit and
save raises that line, and nothing is written over it (``formats.import_annotations`` of the file itself
converts it, keeping the original as ``NAME.bak``).
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.annotation_file import load_annotations, save_annotations
from fashionviewer.core.data.annotations import (
    DEFAULT_FILE_NAME,
    FORMAT,
    SOURCES,
    Annotation,
    AnnotationSet,
    ImageAnnotations,
    categories_for,
)
from fashionviewer.core.data.formats import CCP, detect_format, read_format
from fashionviewer.core.data.formats.common import resolve_images
from fashionviewer.core.data.masks import decode_mask, encode_mask, polygon_mask
from fashionviewer.core.viewer.annotation_tools import stamp_segment
from fashionviewer.core.viewer.session import Signal

# polygon_mask: for the GUI's polygon tool
__all__ = ["AnnotationEditor", "AnnotationEvents", "polygon_mask"]


@dataclass
class AnnotationEvents:
    changed: Signal = field(default_factory=Signal)  # (file_name) an image's annotations changed
    # (path) the project file was written (maybe off-thread)
    saved: Signal = field(default_factory=Signal)
    error: Signal = field(default_factory=Signal)  # (message) a save failed (maybe off-thread)


@dataclass
class _Step:
    """One undo step: the affected images' records (None = absent) and the categories, before and after."""

    label: str
    before: dict[str, ImageAnnotations | None]
    after: dict[str, ImageAnnotations | None] = field(default_factory=dict)
    categories_before: list[dict] = field(default_factory=list)
    categories_after: list[dict] = field(default_factory=list)


class AnnotationEditor:
    """Editing state of one folder's annotations (see the module docstring)."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        classes: Sequence[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        autosave_delay: float = 0.5,
        history: int = 200,
    ) -> None:
        self.folder = Path(folder)
        self.path = Path(path) if path is not None else self.folder / DEFAULT_FILE_NAME
        self.events = AnnotationEvents()
        self.autosave_delay = float(autosave_delay)
        self.problems: list[str] = []
        self.read_only = False  # the file is not the project's COCO: shown, never written over
        self.foreign_format: str | None = None  # a read-only file's format when it was recognised
        if self.path.is_file():
            try:
                self.aset, self.problems = load_annotations(self.path)
            except FashionViewerError as exc:
                self.read_only = True
                self.aset, self.foreign_format, line = read_foreign(self.path, self.folder, exc)
                self.problems = [line]
                print(f"warning: {line}", file=sys.stderr)
        else:
            self.aset = AnnotationSet()
        if not self.aset.categories and classes:
            # the file's own categories win when it has them
            self.aset.categories = categories_for(classes)
        # A file with skipped records, or one another program wrote, is kept as NAME.bak by the first save.
        self._backup_pending = bool(self.problems) or (
            self.path.is_file() and self.aset.written_by != FORMAT
        )
        self.dirty = False
        self._undo: deque[_Step] = deque(maxlen=max(1, int(history)))
        self._redo: list[_Step] = []
        self._group: _Step | None = None
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        # bumped by every edit; a save writes only what is newer than the last write
        self._version = 0
        self._saved_version = 0

    # ----- reading
    def annotations(self, file_name: str) -> list[Annotation]:
        rec = self.aset.images.get(file_name)
        return list(rec.annotations) if rec is not None else []

    def image(self, file_name: str) -> ImageAnnotations | None:
        return self.aset.images.get(file_name)

    def annotation(self, file_name: str, annotation_id: int) -> Annotation:
        rec = self.aset.images.get(file_name)
        if rec is None:
            raise FashionViewerError(f"{file_name}: no annotations")
        return rec.find(annotation_id)

    @property
    def class_names(self) -> list[str]:
        return [str(c["name"]) for c in sorted(self.aset.categories, key=lambda c: int(c["id"]))]

    # ----- edits
    def accept_prediction(
        self, file_name: str, width: int, height: int, instance: Any, model: str
    ) -> int:
        """Add a predicted instance (``core.data.predictions.Instance``) as an annotation; returns its id."""
        return self.accept_predictions(file_name, width, height, [instance], model)[0]

    def accept_predictions(
        self, file_name: str, width: int, height: int, instances: Sequence[Any], model: str
    ) -> list[int]:
        """Add several predicted instances as one undo step; returns their ids in order."""
        ids: list[int] = []
        with self._edit(f"accept {len(instances)} prediction(s)", file_name, width, height) as rec:
            for inst in instances:
                if inst.rle is not None:
                    rle = inst.rle
                else:  # a box-only prediction: its box is the mask
                    x0, y0, x1, y1 = (int(round(v)) for v in inst.box)
                    box_mask = np.zeros((rec.height, rec.width), dtype=np.uint8)
                    box_mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = 1
                    rle = encode_mask(box_mask)
                self._check_size(rec, rle)
                category = self.aset.ensure_category(inst.class_name)
                ann = Annotation(
                    self.aset.next_annotation_id(),
                    category,
                    dict(rle),
                    "predicted",
                    tuple(float(v) for v in inst.box),
                    {"model": str(model), "score": float(inst.score)},
                )
                rec.annotations.append(ann)
                ids.append(ann.id)
            if model and model not in self.aset.provenance.setdefault("models", []):
                self.aset.provenance["models"].append(model)
        return ids

    def add(
        self,
        file_name: str,
        width: int,
        height: int,
        mask: np.ndarray,
        class_name: str,
        source: str = "drawn",
        origin: dict | None = None,
    ) -> int:
        """Add a new instance from a mask; returns its id."""
        if source not in SOURCES:
            raise FashionViewerError(f"source {source!r} is not one of {', '.join(SOURCES)}")
        with self._edit(f"add {class_name}", file_name, width, height) as rec:
            rle = self._encode(rec, mask)
            ann = Annotation(
                self.aset.next_annotation_id(),
                self.aset.ensure_category(class_name),
                rle,
                source,
                None,
                dict(origin) if origin else None,
            )
            rec.annotations.append(ann)
        return ann.id

    def set_mask(self, file_name: str, annotation_id: int, mask: np.ndarray) -> None:
        """Replace an instance's mask; a predicted instance becomes ``edited`` (its box is then the mask's)."""
        with self._edit("edit mask", file_name) as rec:
            ann = rec.find(annotation_id)
            ann.rle = self._encode(rec, mask)
            ann.box = None
            if ann.source != "drawn":
                ann.source = "edited"

    def paint(
        self,
        file_name: str,
        annotation_id: int,
        center_xy: tuple[float, float],
        radius: float,
        erase: bool = False,
    ) -> None:
        """Brush (or, with ``erase``, eraser) a disc of ``radius`` pixels into an instance's mask."""
        rec = self._record(file_name)
        mask = decode_mask(rec.find(annotation_id).rle).astype(bool)
        # the brush's own disc
        if stamp_segment(mask, center_xy, center_xy, radius, not erase) is not None:
            self.set_mask(file_name, annotation_id, mask)

    def relabel(self, file_name: str, annotation_id: int, class_name: str) -> None:
        with self._edit(f"relabel as {class_name}", file_name) as rec:
            ann = rec.find(annotation_id)
            ann.category_id = self.aset.ensure_category(class_name)
            if ann.source == "predicted":
                ann.source = "edited"

    def delete(self, file_name: str, annotation_id: int) -> None:
        with self._edit("delete", file_name) as rec:
            ann = rec.find(annotation_id)
            rec.annotations.remove(ann)

    def set_done(
        self, file_name: str, done: bool = True, width: int | None = None, height: int | None = None
    ) -> None:
        """Mark an image finished (an image with no instance and ``done`` is a true negative for training)."""
        with self._edit("mark done" if done else "mark not done", file_name, width, height) as rec:
            rec.done = bool(done)

    @contextlib.contextmanager
    def group(self, label: str = "stroke") -> Iterator[None]:
        """Make every edit inside one undo step (a brush stroke of many dabs)."""
        if self._group is not None:  # nested: the outer group collects everything
            yield
            return
        self._group = _Step(label, {}, categories_before=copy.deepcopy(self.aset.categories))
        try:
            yield
        finally:
            step, self._group = self._group, None
            if step.before:
                step.after = {
                    name: copy.deepcopy(self.aset.images.get(name)) for name in step.before
                }
                step.categories_after = copy.deepcopy(self.aset.categories)
                self._push(step)

    # ----- undo / redo
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        if not self._undo:
            return False
        step = self._undo.pop()
        self._apply(step.before, step.categories_before)
        self._redo.append(step)
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        step = self._redo.pop()
        self._apply(step.after, step.categories_after)
        self._undo.append(step)
        return True

    # ----- saving
    def save(self) -> Path:
        """Write the file now (atomically), whether or not anything changed."""
        self._cancel_timer()
        with self._lock:
            self._write()
        return self.path

    def flush(self) -> None:
        """Save now if there are unsaved edits (on close or when the folder changes)."""
        self._cancel_timer()
        with self._lock:
            if self.dirty and not self.read_only:
                self._write()

    def close(self) -> None:
        self.flush()

    # ----- internals
    def _record(
        self, file_name: str, width: int | None = None, height: int | None = None
    ) -> ImageAnnotations:
        if width is None or height is None:
            rec = self.aset.images.get(file_name)
            if rec is None:
                raise FashionViewerError(
                    f"{file_name}: no annotations yet (pass the image's width and height)"
                )
            return rec
        return self.aset.image(file_name, width, height)

    @contextlib.contextmanager
    def _edit(
        self, label: str, file_name: str, width: int | None = None, height: int | None = None
    ) -> Iterator[ImageAnnotations]:
        self._check_writable()
        with self._lock:
            before_rec = copy.deepcopy(self.aset.images.get(file_name))
            before_cats = copy.deepcopy(self.aset.categories)
            rec = self._record(file_name, width, height)
            try:
                yield rec
            except BaseException:
                self._restore(file_name, before_rec)  # a failed edit changes nothing
                self.aset.categories = before_cats
                raise
            if self._group is not None:
                self._group.before.setdefault(file_name, before_rec)
            else:
                self._push(
                    _Step(
                        label,
                        {file_name: before_rec},
                        {file_name: copy.deepcopy(rec)},
                        before_cats,
                        copy.deepcopy(self.aset.categories),
                    )
                )
            self._changed_locked()
        self.events.changed.emit(file_name)

    def _push(self, step: _Step) -> None:
        self._undo.append(step)  # the deque drops the oldest step past ``history``
        self._redo.clear()

    def _check_writable(self) -> None:
        if self.read_only:
            raise FashionViewerError(self.problems[0])

    def _apply(self, records: dict[str, ImageAnnotations | None], categories: list[dict]) -> None:
        self._check_writable()
        with self._lock:
            for name, rec in records.items():
                self._restore(name, copy.deepcopy(rec))
            self.aset.categories = copy.deepcopy(categories)
            self._changed_locked()
        for name in records:
            self.events.changed.emit(name)

    def _restore(self, file_name: str, rec: ImageAnnotations | None) -> None:
        if rec is None:
            self.aset.images.pop(file_name, None)
        else:
            self.aset.images[file_name] = rec

    def _changed_locked(self) -> None:
        self._version += 1
        self.dirty = True
        self._schedule()

    def _schedule(self) -> None:
        self._cancel_timer()
        if self.autosave_delay < 0:  # autosave off (tests, scripts that save themselves)
            return
        timer = threading.Timer(self.autosave_delay, self._autosave)
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _autosave(self) -> None:
        with self._lock:
            if self.dirty and self._version > self._saved_version:
                try:
                    self._write()
                except (FashionViewerError, OSError) as exc:
                    self.events.error.emit(f"{self.path}: autosave failed ({exc})")

    def _write(self) -> None:
        """Write under the lock; keep a file that had problems (or another program wrote) as NAME.bak first."""
        self._check_writable()
        if self._backup_pending and self.path.is_file():
            backup = self.path.with_name(self.path.name + ".bak")
            shutil.copy2(self.path, backup)
            self._backup_pending = False
        save_annotations(self.path, self.aset)
        self._saved_version = self._version
        self.dirty = False
        self.events.saved.emit(self.path)

    def _encode(self, rec: ImageAnnotations, mask: np.ndarray) -> dict:
        mask = np.asarray(mask)
        if mask.shape != (rec.height, rec.width):
            raise FashionViewerError(
                f"{rec.file_name}: mask is {mask.shape[1]}x{mask.shape[0]}, the image is "
                f"{rec.width}x{rec.height}"
            )
        return encode_mask(mask)

    @staticmethod
    def _check_size(rec: ImageAnnotations, rle: dict) -> None:
        if [int(v) for v in rle["size"]] != [rec.height, rec.width]:
            raise FashionViewerError(
                f"{rec.file_name}: a predicted mask is {rle['size'][1]}x{rle['size'][0]}, the "
                f"image is {rec.width}x{rec.height}"
            )


def read_foreign(
    path: Path, folder: Path, error: FashionViewerError
) -> tuple[AnnotationSet, str | None, str]:
    """(what it holds, its format or None, the one line saying so) of a project file that is not COCO
    instances (``error``: why not): read through its format's reader when ``detect_format`` knows it."""
    name, fmt = path.name, detect_format(path)
    tail = "shown read-only, nothing is saved over it"
    if fmt is None or fmt in ("coco", CCP):
        why = str(error).removeprefix(f"{path}: ").removeprefix(f"{name}: ")
        why = why.split("; it is left as it is")[0]
        looks = "not a COCO instances file ("
        if why.startswith(looks) and why.endswith(
            ")"
        ):  # what it is instead: a COCO results list, ...
            return (
                AnnotationSet(),
                None,
                f"{name} is {why[len(looks) : -1]}, not COCO instances: {tail}",
            )
        return AnnotationSet(), None, f"{name} is not a COCO instances file ({why}): {tail}"
    convert = f"Annotate ▸ Import… converts it (the original is kept as {name}.bak)"
    try:
        aset, _problems, fmt = read_format(path, fmt)
        aset = resolve_images(aset, folder, name)
    except FashionViewerError as exc:
        why = str(exc).removeprefix(f"{name}: ").removeprefix(f"{path}: ")
        return AnnotationSet(), fmt, f"{name} is a {fmt} file that cannot be shown ({why}): {tail}"
    return aset, fmt, f"{name} is a {fmt} file: {tail} — {convert}"
