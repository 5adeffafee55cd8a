"""Annotation file formats, one module each with ``detect(path)``, ``read(path) -> (AnnotationSet, problems)``
and ``write_steps(aset, out_dir, folder, category_ids)`` (a generator: one step per image, returning the
files written): :mod:`.coco`, :mod:`.labelme`, :mod:`.yolo` (Ultralytics segmentation), :mod:`.voc` (class
and object PNGs), :mod:`.cvat` (CVAT for images 1.1 XML), :mod:`.imaterialist` (``train.csv``).
:func:`detect_format` is the one place that tells them apart; :func:`import_annotations` and
:func:`export_annotations` (:func:`export_steps` with progress and cancel) are what the command line and the
viewer call. Importing the project file itself converts another tool's file found at the project path (it
is kept as ``NAME.bak``). ``datumaro:FORMAT`` is any format Datumaro reads or writes
(:mod:`.datumaro_bridge`, the optional ``datumaro`` extra).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path
from types import ModuleType

from fashionviewer.core.base.atomic import atomic_path
from fashionviewer.core.base.errors import DataError
from fashionviewer.core.base.steps import drain
from fashionviewer.core.data.annotation_file import load_annotations, save_annotations
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME, FORMAT, AnnotationSet
from fashionviewer.core.data.formats import (
    coco,
    cvat,
    datumaro_bridge,
    imaterialist,
    labelme,
    voc,
    yolo,
)
from fashionviewer.core.data.formats.common import check_category_ids, resolve_images

MODULES: dict[str, ModuleType] = {m.NAME: m for m in (coco, labelme, yolo, voc, cvat, imaterialist)}
FORMATS: tuple[str, ...] = tuple(MODULES)
IMPORT_FORMATS: tuple[str, ...] = FORMATS
# formats read via read_ground_truth
OTHER_TOOLS: tuple[str, ...] = (labelme.NAME, yolo.NAME, voc.NAME, cvat.NAME)
# a Clothing Co-Parsing folder (photos/ + annotations/pixel-level/): ground truth, not imported
CCP = "ccp"


def detect_format(path: str | os.PathLike[str]) -> str | None:
    """The format of a file or folder (``coco``, ``labelme``, ``yolo``, ``voc``, ``cvat``, ``imaterialist``,
    ``ccp``), or None. Folders are told apart by their layout before their files are looked at."""
    path = Path(path)
    if path.is_dir():
        if (path / "photos").is_dir() and (path / "annotations" / "pixel-level").is_dir():
            return CCP
        if (path / DEFAULT_FILE_NAME).is_file() and coco.detect(path / DEFAULT_FILE_NAME):
            return coco.NAME
        for module in (yolo, voc, imaterialist, cvat, coco, labelme):
            if module.detect(path):
                return module.NAME
        return None
    for module in (coco, labelme, cvat, imaterialist):
        if module.detect(path):
            return module.NAME
    return None


def _module(name: str, export: bool = False) -> ModuleType:
    if datumaro_bridge.is_datumaro(name):
        return datumaro_bridge.module_for(name, export)  # type: ignore[return-value]
    if name not in MODULES:
        raise DataError(f"unknown annotation format {name!r} (use one of {', '.join(FORMATS)})")
    return MODULES[name]


def read_format(
    source: str | os.PathLike[str], fmt: str | None = None
) -> tuple[AnnotationSet, list[str], str]:
    """(the set, problems, the format) of a file or folder in ``fmt`` (detected when None)."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: no such file or folder")
    fmt = fmt or detect_format(source)
    if fmt is None or fmt == CCP:
        raise DataError(f"{source}: not a known annotation format (name it: {', '.join(FORMATS)})")
    aset, problems = _module(fmt).read(source)
    return aset, problems, fmt


def load_project(folder: Path) -> AnnotationSet | None:
    """The folder's project file (None when there is none); a file that is not the project's COCO is an
    error, so nothing is written over another program's file."""
    path = folder / DEFAULT_FILE_NAME
    if not path.is_file():
        return None
    aset, problems = load_annotations(path)
    if problems:
        raise DataError(f"{problems[0]} (fix {path.name} first: importing would drop that record)")
    return aset


def import_annotations(
    source: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    fmt: str | None = None,
    replace: bool = False,
) -> tuple[Path, int, int, list[str]]:
    """Read ``source`` and add its instances to ``folder``'s project file (categories matched by name, new
    ones added; ``replace`` drops the existing annotations of the images it describes). Every image must be
    in ``folder``. Returns (project file, images, instances, problems). Nothing is written on an error; the
    first write over a file another program wrote keeps it as ``NAME.bak``. ``source`` may be the project
    file itself when another tool wrote it (a labelme JSON there): it is converted, the original kept as
    ``NAME.bak`` before the project file is written (temp file + rename)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    path = folder / DEFAULT_FILE_NAME
    converting = Path(source).resolve() == path.resolve()
    incoming, problems, fmt = read_format(source, fmt)
    if converting and fmt == coco.NAME:
        raise DataError(f"{path.name} is already a COCO file: nothing to convert (just open it)")
    incoming = resolve_images(incoming, folder, str(source))
    project = None if converting else load_project(folder)
    target = project if project is not None else AnnotationSet(categories=[])
    if project is None:
        # a new project takes the file's own ids
        target.categories = [dict(c) for c in incoming.categories]
    if fmt == coco.NAME and project is None:
        target.info, target.extra = dict(incoming.info), dict(incoming.extra)
    # The source's own image and annotation ids are kept where they are free (a COCO ground truth's ids
    # stay its ids); the others get new ones.
    used_images = {r.image_id for r in target.images.values() if r.image_id > 0}
    used_anns = {a.id for r in target.images.values() for a in r.annotations}
    next_id = (
        max(used_anns | {a.id for r in incoming.images.values() for a in r.annotations}, default=0)
        + 1
    )
    count = 0
    for name, rec in incoming.images.items():
        new_image = name not in target.images
        mine = target.image(name, rec.width, rec.height)
        if new_image and rec.image_id > 0 and rec.image_id not in used_images:
            mine.image_id = rec.image_id
            used_images.add(rec.image_id)
        if replace:
            mine.annotations = []
        if fmt == coco.NAME and not mine.extra:
            mine.extra = dict(rec.extra)
        mine.done = mine.done or rec.done
        for ann in rec.annotations:
            ann.category_id = _category_in(target, incoming, ann.category_id)
            if ann.id <= 0 or ann.id in used_anns:
                ann.id = next_id
                next_id += 1
            used_anns.add(ann.id)
            mine.annotations.append(ann)
            count += 1
    target.provenance.setdefault("imported", []).append(
        {
            "format": fmt,
            "source": str(Path(source).resolve()),
            "images": len(incoming.images),
            "instances": count,
        }
    )
    if converting or (project is not None and project.written_by != FORMAT):
        keep_backup(path)
    save_annotations(path, target)
    return path, len(incoming.images), count, problems


def keep_backup(path: Path) -> Path:
    """Copy ``path`` to ``NAME.bak`` (temp file + rename) before it is written over; an older ``.bak``
    with other content is not replaced: the copy goes to ``NAME.bak.2``, ``.3``, ... instead."""
    backup = backup_path(path)
    with atomic_path(backup) as tmp:
        shutil.copy2(path, tmp)
    return backup


def backup_path(path: Path) -> Path:
    """Where :func:`keep_backup` copies ``path``: ``NAME.bak`` unless that holds other bytes, then the first
    ``NAME.bak.N`` (N = 2, 3, ...) that is free or holds the same bytes."""
    data = path.read_bytes()
    backup, number = path.with_name(path.name + ".bak"), 1
    while backup.exists() and backup.read_bytes() != data:
        number += 1
        backup = path.with_name(f"{path.name}.bak.{number}")
    return backup


def _category_in(target: AnnotationSet, incoming: AnnotationSet, category_id: int) -> int:
    """The target's id of an incoming category, matched by name; a new one keeps its own id (and keys) when
    that id is free, so iMaterialist ClassIds stay ClassIds."""
    name = incoming.category_name(category_id)
    for cat in target.categories:
        if cat["name"] == name:
            return int(cat["id"])
    used = {int(c["id"]) for c in target.categories}
    new_id = category_id if category_id not in used else max(used, default=0) + 1
    source = next(c for c in incoming.categories if int(c["id"]) == category_id)
    target.categories.append({**source, "id": new_id})
    return new_id


def export_annotations(
    folder: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    fmt: str,
    category_ids: str = "dataset",
    annotation_set: AnnotationSet | None = None,
) -> list[Path]:
    """Write ``folder``'s annotations (its project file, or ``annotation_set``) in ``fmt`` under ``out_dir``
    (:func:`export_steps` run to its end); returns the files written."""
    return drain(export_steps(folder, out_dir, fmt, category_ids, annotation_set))


def export_steps(
    folder: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    fmt: str,
    category_ids: str = "dataset",
    annotation_set: AnnotationSet | None = None,
) -> Generator[tuple[int, int], None, list[Path]]:
    """:func:`export_annotations` yielding ``(images done, images)`` before each image and once at the end;
    returns the files written. The files are written into a temporary folder beside ``out_dir`` and moved
    in after the last yield: closing the generator (a cancel) removes that folder, so ``out_dir`` gets
    every file of the export or none of them."""
    folder, out_dir = Path(folder), Path(out_dir)
    module = _module(fmt, export=True)
    check_category_ids(category_ids)
    aset = annotation_set if annotation_set is not None else load_project(folder)
    if aset is None:
        raise DataError(f"{folder}: no {DEFAULT_FILE_NAME} to export")
    if out_dir.resolve() == folder.resolve():
        raise DataError(f"--out {out_dir}: choose a folder other than the annotated folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    total = len(aset.images) + getattr(module, "EXTRA_STEPS", 0)
    try:
        steps = module.write_steps(aset, staging, folder, category_ids=category_ids)
        done = 0
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                written = stop.value
                break
            yield done, total
            done += 1
        yield total, total  # the last cancel point: after it the files are only moved in
        out_dir.mkdir(exist_ok=True)
        moved = []
        for file in written:
            target = out_dir / file.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, target)
            moved.append(target)
        return moved
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_ground_truth(source: str | os.PathLike[str], fmt: str) -> dict:
    """A labelme, YOLO, VOC or CVAT file or folder as a plain COCO instances dict (for evaluation and the
    viewer's ground-truth layer)."""
    aset, _problems, _fmt = read_format(source, fmt)
    return coco.to_plain_coco(aset)


def image_ids_from(path: str | os.PathLike[str]) -> dict[str, int]:
    """file name -> image id of a ground truth: a COCO instances file (or a folder holding one, the annotated
    folder's project file included) or a ``predict`` run's ``images.json``."""
    from fashionviewer.core.base.jsonio import read_json

    path = Path(path)
    if path.is_dir():
        path = (
            path / DEFAULT_FILE_NAME
            if (path / DEFAULT_FILE_NAME).is_file()
            else coco.coco_file(path)
        )
    data = read_json(path)
    records = data.get("images") if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise DataError(
            f"{path}: neither a COCO instances file nor an images index (no 'images' list)"
        )
    ids: dict[str, int] = {}
    for i, rec in enumerate(records):
        try:
            name, image_id = (
                str(rec["file_name"]).replace("\\", "/"),
                int(rec.get("id", rec.get("image_id"))),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DataError(f"{path}: image {i}: needs 'file_name' and 'id'") from None
        if name in ids:
            raise DataError(f"{path}: image {i}: {name} is listed twice")
        ids[name] = image_id
    return ids


def match_image_ids(
    file_names: list[str], ids: dict[str, int], source: str
) -> tuple[dict[str, int], list[str]]:
    """Each file name's id in ``ids`` (the same relative path, else the one entry with its base name); files
    the ground truth does not list get ids after its largest, in order, and are returned as the second item."""
    by_base: dict[str, list[str]] = {}
    for name in ids:
        by_base.setdefault(Path(name).name, []).append(name)
    out: dict[str, int] = {}
    missing: list[str] = []
    for name in file_names:
        if name in ids:
            out[name] = ids[name]
            continue
        found = by_base.get(Path(name).name, [])
        if len(found) > 1:
            raise DataError(
                f"{source}: {name} matches {len(found)} images ({', '.join(found[:3])})"
            )
        if found:
            out[name] = ids[found[0]]
        else:
            missing.append(name)
    next_id = max(list(ids.values()) + list(out.values()), default=0) + 1
    for offset, name in enumerate(missing):
        out[name] = next_id + offset
    return out, missing


__all__ = [
    "read_ground_truth",
    "image_ids_from",
    "match_image_ids",
    "FORMATS",
    "IMPORT_FORMATS",
    "MODULES",
    "detect_format",
    "read_format",
    "import_annotations",
    "export_annotations",
    "export_steps",
    "keep_backup",
    "backup_path",
    "load_project",
]
