"""Every format Datumaro knows, as ``datumaro:FORMAT`` (``datumaro:cityscapes``, ``datumaro:kitti_segmentation``,
``datumaro:ade20k2020``, ...), through Datumaro's own readers and writers (``pip install
'fashionviewer[datumaro]'``). The project's COCO is the hand-over both ways, so nothing is converted twice by
hand: export writes the set with the lossless COCO writer into a temporary folder, Datumaro imports it as
``coco_instances`` and exports it as FORMAT (images copied as Datumaro does); import lets Datumaro read
FORMAT and write ``coco_instances``, which the COCO reader then reads.

Datumaro is imported only when such a format is used, never with the package.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.base.steps import drain
from fashionviewer.core.data.annotations import AnnotationSet
from fashionviewer.core.data.formats import coco

PREFIX = "datumaro:"
NOT_INSTALLED = "Datumaro is not installed: pip install 'fashionviewer[datumaro]'"
# Export stages after the per-image ones: Datumaro reads the COCO, Datumaro writes FORMAT.
EXTRA_STEPS = 2
_HAND_OVER = "coco_instances"
# an attribute that carries Datumaro's own crowd flag through its COCO writer
_CROWD = "fashionviewer_is_crowd"
_LABEL_0_IS_BACKGROUND = ("kitti", "kitti_segmentation")


def is_datumaro(fmt: str | None) -> bool:
    return bool(fmt) and str(fmt).startswith(PREFIX)


def datumaro() -> ModuleType:
    """The ``datumaro`` package; a one-line DataError when it is not installed."""
    try:
        import datumaro as dm
    except ImportError:
        raise DataError(NOT_INSTALLED) from None
    return dm


def available() -> bool:
    try:
        datumaro()
    except DataError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    return datumaro().Environment()


def formats(export: bool) -> tuple[str, ...]:
    """``datumaro:NAME`` of every format Datumaro writes (``export``) or reads; () without Datumaro."""
    if not available():
        return ()
    env = _environment()
    names = env.exporters if export else env.importers
    return tuple(PREFIX + name for name in sorted(names))


def check_format(fmt: str, export: bool) -> str:
    """Datumaro's name of ``datumaro:NAME``; a one-line DataError when Datumaro is missing or does not
    know it (listing a few it does)."""
    name = fmt[len(PREFIX) :]
    datumaro()  # not installed: that is the one line to report
    env = _environment()
    known = sorted(env.exporters if export else env.importers)
    if name not in known:
        examples = ["cityscapes", "voc_segmentation", "kitti_segmentation", "cvat", "ade20k2020"]
        examples = [n for n in examples if n in known] or known[:6]
        raise DataError(
            f"unknown Datumaro format {name!r} to {'write' if export else 'read'} "
            f"(for example {', '.join(PREFIX + n for n in examples)}; "
            f"{len(known)} in all)"
        )
    return name


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def write_steps(
    aset: AnnotationSet, out_dir: Path, folder: Path, fmt: str, category_ids: str = "dataset"
) -> Generator[str, None, list[Path]]:
    """One step per image (the COCO hand-over, images linked), then one per Datumaro stage; the files
    Datumaro wrote under ``out_dir``. ``category_ids`` is not used: Datumaro numbers labels itself, and
    the hand-over is 1-based because Datumaro reads COCO category 0 as "no class"."""
    name = check_format(fmt, export=True)
    dm = datumaro()
    hand_over = Path(tempfile.mkdtemp(prefix=".datumaro-coco.", dir=out_dir.parent))
    try:
        steps = coco.write_steps(aset, hand_over, folder, category_ids="1-based")
        while True:
            try:
                yield next(steps)
            except StopIteration:
                break
        yield "datumaro: read the COCO hand-over"
        try:
            dataset = dm.Dataset.import_from(str(hand_over), _HAND_OVER)
            dataset = _for_export(dataset, name)
        except Exception as exc:  # Datumaro's own errors, one line
            raise DataError(
                f"Datumaro could not read the COCO hand-over: {_one_line(exc)}"
            ) from exc
        yield f"datumaro: write {name}"
        try:
            dataset.export(str(out_dir), name, save_media=True)
        except Exception as exc:
            raise DataError(f"Datumaro could not write {name}: {_one_line(exc)}") from exc
    finally:
        shutil.rmtree(hand_over, ignore_errors=True)
    return sorted(p for p in out_dir.rglob("*") if p.is_file())


def _for_export(dataset: Any, name: str) -> Any:
    """The hand-over as Datumaro's writers want it: read now (the folder goes), label 0 a "background"
    with no instances for the writers that take label 0 as the background (KITTI's: its first class
    would be lost), and no ``is_crowd`` False attributes (CVAT's writer warns about each one)."""
    from datumaro.components.annotation import AnnotationType

    names = [label.name for label in dataset.categories()[AnnotationType.label]]
    if name in _LABEL_0_IS_BACKGROUND and "background" not in names:
        dataset = dataset.transform("project_labels", dst_labels=["background"] + names)
    dataset.init_cache()
    for item in list(dataset):
        annotations = [
            ann.wrap(attributes={k: v for k, v in ann.attributes.items() if k != "is_crowd"})
            if ann.attributes.get("is_crowd") is False
            else ann
            for ann in item.annotations
        ]
        dataset.put(item.wrap(annotations=annotations))
    return dataset


def _shapes_for_coco(dm: ModuleType, dataset: Any) -> Any:
    """Before Datumaro writes the COCO hand-over: an item's masks and polygons are its instances (its
    boxes, when it has them too, are theirs: VOC's), each carries its true crowd flag (Datumaro's COCO
    writer marks every mask ``iscrowd`` 1), and a label 0 named "background" is no class (KITTI's and
    CamVid's readers give its pixels as a mask)."""
    from datumaro.components.annotation import AnnotationType, Mask, Polygon

    labels = [label.name for label in dataset.categories().get(AnnotationType.label, [])]
    if labels and labels[0].lower() == "background":
        dataset = dataset.transform("project_labels", dst_labels=labels[1:])
    dataset.init_cache()
    for item in list(dataset):
        shapes = [ann for ann in item.annotations if isinstance(ann, (Mask, Polygon))]
        annotations = [
            ann.wrap(attributes={**ann.attributes, _CROWD: ann.attributes.get("is_crowd") is True})
            for ann in (shapes or item.annotations)
        ]
        dataset.put(item.wrap(annotations=annotations))
    return dataset


def read(source: Path, fmt: str) -> tuple[AnnotationSet, list[str]]:
    """``source`` read by Datumaro as FORMAT, handed over as COCO instances and read by the COCO reader."""
    return drain(read_steps(source, fmt))


def read_steps(source: Path, fmt: str) -> Generator[str, None, tuple[AnnotationSet, list[str]]]:
    """:func:`read` yielding before each stage (Datumaro reads, Datumaro writes COCO, the project reads)."""
    name = check_format(fmt, export=False)
    dm = datumaro()
    with tempfile.TemporaryDirectory(prefix="fashionviewer-datumaro.") as tmp:
        yield f"datumaro: read {name}"
        try:
            dataset = dm.Dataset.import_from(str(source), name)
            yield "datumaro: write the COCO hand-over"
            dataset = _shapes_for_coco(dm, dataset)
            # reindex: Datumaro keeps per-image instance ids (cityscapes), COCO needs unique ones;
            # masks stay masks (Datumaro's default traces non-crowd masks into polygons, IoU ~0.95)
            dataset.export(
                tmp, _HAND_OVER, save_media=False, reindex=True, segmentation_mode="mask"
            )
        except Exception as exc:  # Datumaro's own errors, one line
            raise DataError(
                f"{source}: Datumaro could not read it as {name}: {_one_line(exc)}"
            ) from exc
        yield "read the COCO hand-over"
        files = sorted(Path(tmp).rglob("*.json"))
        if not files:
            raise DataError(f"{source}: Datumaro found no annotated images in it as {name}")
        aset, problems = coco.read(files[0])
        for extra in files[1:]:  # one file per subset (train, val, ...)
            more, more_problems = coco.read(extra)
            _merge(aset, more)
            problems += more_problems
    for rec in aset.images.values():
        for ann in rec.annotations:
            attributes = ann.extra.get("attributes")
            if isinstance(attributes, dict) and _CROWD in attributes:
                ann.iscrowd = int(bool(attributes.pop(_CROWD)))
                if not attributes:
                    del ann.extra["attributes"]
    return aset, problems


def _merge(aset: AnnotationSet, more: AnnotationSet) -> None:
    """Add another subset's images; categories are matched by name (each subset numbers its own)."""
    by_name = {c["name"]: int(c["id"]) for c in aset.categories}
    for cat in more.categories:
        if cat["name"] not in by_name:
            new_id = max(by_name.values(), default=0) + 1
            aset.categories.append({**cat, "id": new_id})
            by_name[cat["name"]] = new_id
    for name, rec in more.images.items():
        for ann in rec.annotations:
            ann.category_id = by_name[more.category_name(ann.category_id)]
        mine = aset.image(name, rec.width, rec.height)
        mine.annotations.extend(rec.annotations)


def module_for(fmt: str, export: bool) -> SimpleNamespace:
    """The format-module interface (``NAME``, ``read``, ``write_steps``) of ``datumaro:NAME``; checked
    first (Datumaro installed, the format known), so a wrong name fails before anything is written."""
    check_format(fmt, export)
    return SimpleNamespace(
        NAME=fmt,
        EXTRA_STEPS=EXTRA_STEPS,
        read=lambda source: read(Path(source), fmt),
        write_steps=lambda aset, out_dir, folder, category_ids="dataset": write_steps(
            aset, out_dir, folder, fmt, category_ids
        ),
    )
