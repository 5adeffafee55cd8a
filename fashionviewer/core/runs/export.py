"""Export predicted masks as PNG files and COCO results (pure: no Qt), shared by the GUI and the CLI.

Per image ``STEM`` (sub-folders of the input are mirrored under ``out_dir``):

``instances``  ``STEM_NNN_CLASS.png``  one binary mask (0/255) per instance, NNN = 1-based index
``index``      ``STEM_instances.png``  0 background, i = instance i (8-bit, 16-bit when > 255 instances)
``class``      ``STEM_classes.png``    category id per pixel (the COCO file's ids), "P" mode with the viewer's
               class palette; background 0, or 255 when a category has id 0 (65535 in 16-bit PNGs);
               ``labels.json`` at the top of the export names each value and the background
``overlay``    ``STEM_overlay.png``    the image with coloured masks, outlines, boxes and captions
``coco``       ``predictions.coco.json`` for the whole export: valid COCO instances (``iscrowd`` 0, ``area``,
               every category of the model) with an ``info`` block (model, weights SHA-256, threshold, classes
               shown, date); its ``annotations`` also carry ``score``, so ``json.load(f)["annotations"]``
               feeds pycocotools' ``loadRes`` and the file itself serves as a ground truth for ``COCOeval``.
               Image ids are the predictions' own (``predict``: the run's, or the ground truth's with --gt).

Only instances with ``score >= min_score`` and (when given) a class in ``classes`` are exported, and the
instance numbering is the order of the kept instances. Every file is written atomically.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Generator, Iterable, Sequence

import numpy as np
from PIL import Image

from fashionviewer.core.base.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    ensure_writable_dir,
)
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.annotations import CLASS_LABELS_FILE
from fashionviewer.core.data.masks import mask_area
from fashionviewer.core.data.overlay import (
    PredictionRasters,
    blend,
    composite,
    draw_boxes_and_labels,
    palette_bytes,
)
from fashionviewer.core.data.predictions import category_id_of

PNG_FORMATS: tuple[str, ...] = ("instances", "index", "class", "overlay")
FORMATS: tuple[str, ...] = PNG_FORMATS + ("coco",)
COCO_FILE = "predictions.coco.json"


def parse_formats(spec: str | Iterable[str]) -> tuple[str, ...]:
    """``"png,coco"`` -> the formats; ``png`` means all four PNG kinds. Unknown names are a user error."""
    names = [
        s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()
    ]
    out: list[str] = []
    for name in names:
        expanded = PNG_FORMATS if name == "png" else (name,)
        for item in expanded:
            if item not in FORMATS:
                raise FashionViewerError(
                    f"--export {name}: unknown format (use png, coco, or any of {', '.join(FORMATS)})"
                )
            if item not in out:
                out.append(item)
    if not out:
        raise FashionViewerError(
            "--export: no format given (use png, coco, or any of " + ", ".join(FORMATS) + ")"
        )
    return tuple(out)


def selected_indices(
    prediction: Any, min_score: float = 0.0, classes: Sequence[str] | None = None
) -> list[int]:
    """Indices of the instances that pass the threshold and class filter (as the viewer shows them)."""
    keep = {id(inst) for inst in prediction.filter(min_score=min_score, classes=classes)}
    return [i for i, inst in enumerate(prediction.instances) if id(inst) in keep]


def safe_name(text: str) -> str:
    """A file-name-safe version of a class name ("shirt, blouse" -> "shirt_blouse")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "class"


def _png_bytes(array: np.ndarray, palette: list[int] | None = None) -> bytes:
    img = Image.fromarray(np.ascontiguousarray(array))  # uint8 -> L/RGB, uint16 -> I;16
    if palette is not None:
        img.putpalette(palette)  # L -> P
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _write_png(path: Path, array: np.ndarray, palette: list[int] | None = None) -> Path:
    return atomic_write_bytes(path, _png_bytes(array, palette))


def export_image(
    prediction: Any,
    image: np.ndarray | None,
    out_dir: str | os.PathLike[str],
    formats: str | Iterable[str] = ("png",),
    min_score: float = 0.0,
    classes: Sequence[str] | None = None,
    stem: str | None = None,
    rasters: PredictionRasters | None = None,
    opacity: float = 0.5,
    category_ids: Sequence[int] | None = None,
) -> list[Path]:
    """Write one image's PNG exports into ``out_dir``; return the files written.

    ``image`` (RGB uint8) is needed only for the ``overlay`` format. ``stem`` defaults to the
    prediction's file name without extension; ``rasters`` reuses masks the viewer already decoded.
    ``coco`` is ignored here (it is one file per export: see ``FolderExporter``).
    """
    wanted = parse_formats(formats)
    out = Path(out_dir)
    stem = stem or Path(prediction.file_name).stem or "image"
    indices = selected_indices(prediction, min_score, classes)
    if rasters is None:
        rasters = PredictionRasters(prediction.instances, prediction.height, prediction.width)
    h, w = int(prediction.height), int(prediction.width)
    written: list[Path] = []
    if any(f in wanted for f in PNG_FORMATS):
        ensure_writable_dir(out)
    if "instances" in wanted:
        for number, idx in enumerate(indices, start=1):
            inst = prediction.instances[idx]
            mask = rasters[idx].full_mask(h, w) * np.uint8(255)
            written.append(
                _write_png(out / f"{stem}_{number:03d}_{safe_name(inst.class_name)}.png", mask)
            )
    if "index" in wanted:
        dtype = np.uint8 if len(indices) <= 255 else np.uint16
        written.append(_write_png(out / f"{stem}_instances.png", rasters.index_map(indices, dtype)))
    if "class" in wanted:
        index_map = rasters.index_map(indices, np.int32)
        ids = [category_id_of(int(prediction.instances[i].label), category_ids) for i in indices]
        background = class_png_background(list(category_ids) if category_ids is not None else ids)
        class_map = np.array([background] + ids, np.int64)[index_map]
        if background <= 255:
            written.append(
                _write_png(out / f"{stem}_classes.png", class_map.astype(np.uint8), palette_bytes())
            )
        else:  # more categories than a palette holds: plain 16-bit ids
            written.append(_write_png(out / f"{stem}_classes.png", class_map.astype(np.uint16)))
    if "overlay" in wanted:
        if image is None:
            raise FashionViewerError(f"{prediction.file_name}: the overlay export needs the image")
        layer = composite(rasters, indices, opacity=opacity)
        picture = draw_boxes_and_labels(blend(image, layer), prediction.instances, indices)
        written.append(_write_png(out / f"{stem}_overlay.png", picture))
    return written


def class_png_background(category_ids: Sequence[int]) -> int:
    """The class PNGs' background value: 0, or 255 when a category has id 0 (65535 past 254)."""
    if 0 not in category_ids:
        return 0
    return 255 if max(category_ids, default=0) < 255 else 65535


def provenance(
    model: str = "",
    weights: str | os.PathLike[str] | None = None,
    weights_sha256: str | None = None,
    min_score: float = 0.0,
    classes: Sequence[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The ``info`` block of the COCO export: what made these masks, and when."""
    if weights_sha256 is None and weights is not None and Path(weights).is_file():
        from fashionviewer.core.base.paths import sha256_file

        weights_sha256 = sha256_file(weights)
    return {
        "description": "FashionViewer mask export",
        "model": model,
        "weights": str(weights) if weights is not None else None,
        "weights_sha256": weights_sha256,
        "threshold": float(min_score),
        "classes": list(classes) if classes is not None else "all",
        "date_created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


@dataclass
class FolderExporter:
    """Export many images into one folder: ``add`` each, then ``finish`` writes the COCO file.

    ``root`` (the input folder) lets nested images keep their sub-folders, so equal names never clash.
    """

    out_dir: Path
    formats: tuple[str, ...]
    min_score: float = 0.0
    classes: Sequence[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    root: Path | None = None
    images: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    categories: dict[int, str] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    category_ids: Sequence[int] | None = None  # the model's (its card's); None: labels are the ids
    class_names: Sequence[str] | None = None  # the model's: every category is listed, found or not

    def __post_init__(self) -> None:
        self.out_dir = ensure_writable_dir(self.out_dir)
        self.formats = parse_formats(self.formats)
        if self.class_names is not None:
            for label, name in enumerate(self.class_names, start=1):
                self.categories[category_id_of(label, self.category_ids)] = str(name)

    def add(
        self,
        prediction: Any,
        image: np.ndarray | None = None,
        path: str | os.PathLike[str] | None = None,
        rasters: PredictionRasters | None = None,
    ) -> list[Path]:
        source = Path(path) if path is not None else Path(prediction.file_name)
        relative = _relative(source, self.root)
        folder = self.out_dir / relative.parent
        files = (
            export_image(
                prediction,
                image,
                folder,
                [f for f in self.formats if f != "coco"] or ["png"],
                self.min_score,
                self.classes,
                stem=relative.stem,
                rasters=rasters,
                category_ids=self._png_category_ids(),
            )
            if any(f in self.formats for f in PNG_FORMATS)
            else []
        )
        own_id = int(getattr(prediction, "image_id", 0) or 0)
        used = {img["id"] for img in self.images}
        image_id = own_id if own_id > 0 and own_id not in used else max(used, default=0) + 1
        self.images.append(
            {
                "id": image_id,
                "file_name": str(relative),
                "width": int(prediction.width),
                "height": int(prediction.height),
            }
        )
        keep = set(selected_indices(prediction, self.min_score, self.classes))
        kept = [inst for i, inst in enumerate(prediction.instances) if i in keep]
        for inst in kept:
            self.categories.setdefault(
                category_id_of(inst.label, self.category_ids), inst.class_name
            )
        results = replace(prediction, instances=kept, file_name=str(relative)).to_coco_results(
            image_id=image_id, category_ids=self.category_ids
        )
        for number, (result, inst) in enumerate(
            zip(results, kept, strict=True), start=len(self.annotations) + 1
        ):
            result.setdefault("id", number)
            result["iscrowd"] = 0
            x, y, w, h = result["bbox"]
            result["area"] = float(mask_area(inst.rle)) if inst.rle is not None else round(w * h, 2)
        self.annotations.extend(results)
        self.written.extend(files)
        return files

    def _png_category_ids(self) -> list[int] | None:
        """Every category id the export may hold (for the class PNGs' background value)."""
        if self.class_names is not None:
            return [
                category_id_of(k, self.category_ids) for k in range(1, len(self.class_names) + 1)
            ]
        return list(self.category_ids) if self.category_ids is not None else None

    def finish(self) -> list[Path]:
        if "class" in self.formats and self.images:
            ids = self._png_category_ids() or sorted(self.categories)
            labels = [
                {"value": cid, "id": cid, "name": self.categories.get(cid, "")}
                for cid in sorted(ids)
            ]
            self.written.append(
                atomic_write_json(
                    self.out_dir / CLASS_LABELS_FILE,
                    {"background": class_png_background(ids), "labels": labels},
                )
            )
        if "coco" in self.formats:
            document = {
                "info": self.info,
                "images": self.images,
                "categories": [{"id": k, "name": v} for k, v in sorted(self.categories.items())],
                "annotations": self.annotations,
            }
            self.written.append(atomic_write_json(self.out_dir / COCO_FILE, document, indent=None))
        return self.written


def _relative(source: Path, root: Path | None) -> Path:
    if root is not None:
        try:
            return source.relative_to(root)
        except ValueError:
            pass
    return Path(source.name)


def export_folder(
    items: Iterable[
        tuple[Any, np.ndarray | None] | tuple[Any, np.ndarray | None, str | os.PathLike[str]]
    ],
    out_dir: str | os.PathLike[str],
    formats: str | Iterable[str] = ("png", "coco"),
    min_score: float = 0.0,
    classes: Sequence[str] | None = None,
    info: dict[str, Any] | None = None,
    root: str | os.PathLike[str] | None = None,
    progress: Callable[[int, Path], bool | None] | None = None,
    category_ids: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
) -> list[Path]:
    """Export ``(prediction, image[, source path])`` items; ``progress(n_done, path)`` returning
    ``False`` stops early (the COCO file then holds the images done so far). Returns the files written."""
    exporter = FolderExporter(
        Path(out_dir),
        parse_formats(formats),
        min_score,
        classes,
        info if info is not None else provenance(min_score=min_score, classes=classes),
        Path(root) if root is not None else None,
        category_ids=category_ids,
        class_names=class_names,
    )
    for n, item in enumerate(items, start=1):
        prediction, image = item[0], item[1]
        path = item[2] if len(item) > 2 else None
        exporter.add(prediction, image, path)
        if progress is not None and progress(n, Path(path or prediction.file_name)) is False:
            break
    return exporter.finish()


def export_paths(
    paths: Sequence[Path],
    obtain: Callable[[Path], tuple[Any, np.ndarray | None, PredictionRasters | None]],
    out_dir: str | os.PathLike[str],
    formats: str | Iterable[str],
    min_score: float = 0.0,
    classes: Sequence[str] | None = None,
    info: dict[str, Any] | None = None,
    root: str | os.PathLike[str] | None = None,
    category_ids: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
) -> Generator[tuple[int, int, Path, str | None], None, list[Path]]:
    """Export images one by one (a generator, for a worker with progress and cancel).

    ``obtain(path) -> (prediction, image, rasters)`` gets a cached prediction or predicts now. Yields
    ``(done, total, path, problem)``: an unreadable image is skipped with its one-line ``problem``.
    Closing the generator early (cancel) still writes the COCO file for the images done so far.
    Returns the files written.
    """
    exporter = FolderExporter(
        Path(out_dir),
        parse_formats(formats),
        min_score,
        classes,
        info if info is not None else provenance(min_score=min_score, classes=classes),
        Path(root) if root is not None else None,
        category_ids=category_ids,
        class_names=class_names,
    )
    try:
        for n, path in enumerate(paths, start=1):
            problem = None
            try:
                prediction, image, rasters = obtain(path)
                exporter.add(prediction, image, path, rasters)
            except FashionViewerError as exc:
                problem = str(exc)
            yield n, len(paths), path, problem
    finally:
        written = exporter.finish()
    return written
