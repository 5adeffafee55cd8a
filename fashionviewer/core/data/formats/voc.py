"""Pascal VOC segmentation masks, as CVAT and Datumaro write them: ``SegmentationClass/STEM.png`` (palette
PNG, value k = the k-th line of ``labelmap.txt``, 0 background), ``SegmentationObject/STEM.png`` (value i
= instance i, 0 background, 255 void), ``labelmap.txt`` (``# label:color_rgb:parts:actions`` lines,
background first), ``JPEGImages/`` and ``ImageSets/Segmentation/default.txt``.

Where instances overlap the smaller one is painted on top (as the viewer shows them), so the mask of the
larger loses the overlap: the formats hold one value per pixel. Reading takes each object's class as
the most frequent class value under it; without ``SegmentationObject/`` each class is one instance.
"""

from __future__ import annotations

import io
import os
from collections.abc import Generator
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from fashionviewer.core.base.atomic import atomic_write_bytes, atomic_write_text
from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.annotations import (
    Annotation,
    AnnotationSet,
    ImageAnnotations,
    categories_for,
)
from fashionviewer.core.data.formats.yolo import link_or_copy
from fashionviewer.core.data.imageio import IMAGE_EXTENSIONS
from fashionviewer.core.data.masks import decode_masks, encode_mask, mask_area

NAME = "voc"
LABELMAP = "labelmap.txt"
VOID = 255


def voc_colormap(count: int = 256) -> np.ndarray:
    """The VOC palette: bits of the index spread over R, G and B."""
    cmap = np.zeros((count, 3), dtype=np.uint8)
    for i in range(count):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def detect(path: Path) -> bool:
    return path.is_dir() and (path / "SegmentationClass").is_dir()


def _png(array: np.ndarray) -> bytes:
    img = Image.fromarray(array.astype(np.uint8), mode="P")
    img.putpalette(voc_colormap().ravel().tolist())
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_steps(
    aset: AnnotationSet, out_dir: Path, folder: Path, category_ids: str = "dataset"
) -> Generator[str, None, list[Path]]:
    cats = sorted(aset.categories, key=lambda c: int(c["id"]))
    if len(cats) > 254:
        raise DataError(
            f"VOC export: {len(cats)} categories do not fit 8-bit class PNGs (at most 254)"
        )
    value = {int(c["id"]): k for k, c in enumerate(cats, start=1)}
    cmap = voc_colormap()
    written, stems = [], []
    for name in sorted(aset.images):
        yield name  # progress, and a cancel point
        rec = aset.images[name]
        if len(rec.annotations) > 254:
            raise DataError(
                f"VOC export: {name} has {len(rec.annotations)} instances (8-bit object PNGs hold 254)"
            )
        anns = sorted(rec.annotations, key=lambda a: -mask_area(a.rle))
        classes = np.zeros((rec.height, rec.width), np.uint8)
        objects = np.zeros((rec.height, rec.width), np.uint8)
        for number, (ann, mask) in enumerate(
            zip(anns, decode_masks([a.rle for a in anns], rec.height, rec.width), strict=False),
            start=1,
        ):
            classes[mask != 0] = value[ann.category_id]
            objects[mask != 0] = number
        stem = PurePosixPath(name).with_suffix("")
        stems.append(stem.as_posix())
        written.append(
            atomic_write_bytes(out_dir / "SegmentationClass" / f"{stem}.png", _png(classes))
        )
        written.append(
            atomic_write_bytes(out_dir / "SegmentationObject" / f"{stem}.png", _png(objects))
        )
        link_or_copy(folder / name, out_dir / "JPEGImages" / name)
        written.append(out_dir / "JPEGImages" / name)
    lines = ["# label:color_rgb:parts:actions", "background:0,0,0::"]
    lines += [
        f"{c['name']}:{','.join(str(int(v)) for v in cmap[k])}::"
        for k, c in enumerate(cats, start=1)
    ]
    written.append(atomic_write_text(out_dir / LABELMAP, "\n".join(lines) + "\n"))
    written.append(
        atomic_write_text(
            out_dir / "ImageSets" / "Segmentation" / "default.txt", "".join(f"{s}\n" for s in stems)
        )
    )
    return written


def read_labelmap(path: Path) -> list[tuple[str, tuple[int, int, int] | None]]:
    entries = []
    for row, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        color = rest.split(":")[0]
        try:
            rgb = tuple(int(v) for v in color.split(",")) if color.strip() else None
        except ValueError:
            raise DataError(f"{path}: line {row}: colour {color!r} is not r,g,b") from None
        if rgb is not None and len(rgb) != 3:
            raise DataError(f"{path}: line {row}: colour {color!r} is not r,g,b")
        entries.append((name.strip(), rgb))
    return entries


def _class_values(png: Path, labelmap: list[tuple[str, tuple[int, int, int] | None]]) -> np.ndarray:
    try:
        with Image.open(png) as img:
            if img.mode in ("P", "L"):
                return np.asarray(img)
            rgb = np.asarray(img.convert("RGB"))
    except OSError as exc:
        raise DataError(f"{png}: cannot read the PNG ({exc})") from None
    out = np.full(rgb.shape[:2], VOID, np.uint8)
    for k, (_, color) in enumerate(labelmap):
        if color is not None:
            out[(rgb == np.array(color, np.uint8)).all(axis=2)] = k
    return out


def read(path: str | os.PathLike[str]) -> tuple[AnnotationSet, list[str]]:
    root = Path(path)
    if not detect(root):
        raise DataError(f"{root}: not a VOC folder (needs SegmentationClass/)")
    labelmap = (
        read_labelmap(root / LABELMAP)
        if (root / LABELMAP).is_file()
        else [("background", (0, 0, 0))]
        + [(f"class_{k}", tuple(int(v) for v in voc_colormap()[k])) for k in range(1, 255)]
    )
    if not labelmap or labelmap[0][0].lower() not in ("background", "_background_"):
        raise DataError(f"{root / LABELMAP}: the first label must be background")
    aset = AnnotationSet(categories=categories_for([n for n, _ in labelmap[1:]]))
    ids = [0] + [int(c["id"]) for c in aset.categories]
    problems: list[str] = []
    next_id = 1
    for png in sorted((root / "SegmentationClass").rglob("*.png")):
        stem = png.relative_to(root / "SegmentationClass").with_suffix("").as_posix()
        classes = _class_values(png, labelmap)
        if classes.max(initial=0) >= len(labelmap) and classes.max() != VOID:
            raise DataError(
                f"{png}: class value {int(classes.max())} is not in {LABELMAP} ({len(labelmap)} labels)"
            )
        objects_png = root / "SegmentationObject" / f"{stem}.png"
        if objects_png.is_file():
            with Image.open(objects_png) as img:
                objects = np.asarray(img if img.mode in ("P", "L") else img.convert("L"))
            if objects.shape != classes.shape:
                raise DataError(
                    f"{objects_png}: {objects.shape[1]}x{objects.shape[0]}, its class PNG is "
                    f"{classes.shape[1]}x{classes.shape[0]}"
                )
        else:
            objects = np.where(classes == VOID, 0, classes)
        images = [
            p
            for p in (root / "JPEGImages").glob(f"{stem}.*")
            if p.suffix.lower() in IMAGE_EXTENSIONS
        ]
        name = images[0].relative_to(root / "JPEGImages").as_posix() if images else stem
        rec = ImageAnnotations(name, classes.shape[1], classes.shape[0])
        for value in np.unique(objects):
            if value in (0, VOID):
                continue
            mask = objects == value
            under = classes[mask]
            under = under[(under != 0) & (under != VOID) & (under < len(labelmap))]
            if under.size == 0:
                problems.append(
                    f"{objects_png}: object {int(value)} has no class under it; skipped"
                )
                continue
            k = int(np.bincount(under).argmax())
            rec.annotations.append(Annotation(next_id, ids[k], encode_mask(mask), "imported"))
            next_id += 1
        aset.images[name] = rec
    return aset, problems
