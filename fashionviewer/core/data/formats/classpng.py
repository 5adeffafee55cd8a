"""Per-pixel class PNGs (one per image, value k = the k-th category, 0 = background, as Clothing Co-Parsing
stores its labels) with ``labels.json`` naming each value; :func:`read_class_png` reads one back."""

from __future__ import annotations

import io
import os
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from fashionviewer.core.base.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    ensure_writable_dir,
)
from fashionviewer.core.base.errors import DataError
from fashionviewer.core.base.jsonio import read_json
from fashionviewer.core.data.annotations import CLASS_LABELS_FILE, AnnotationSet
from fashionviewer.core.data.masks import decode_masks, mask_area
from fashionviewer.core.data.overlay import palette_bytes


def class_values(aset: AnnotationSet) -> dict[int, int]:
    """Category id -> pixel value of the class PNGs (1..K in increasing id order; 0 is background)."""
    return {
        int(c["id"]): k
        for k, c in enumerate(sorted(aset.categories, key=lambda c: int(c["id"])), start=1)
    }


def class_map(aset: AnnotationSet, file_name: str) -> np.ndarray:
    """uint8/uint16 H×W pixel values of one image: larger instances painted first, so a small one on top of
    a large one stays visible (as the viewer paints them)."""
    rec = aset.images[file_name]
    values = class_values(aset)
    dtype = np.uint8 if len(values) <= 255 else np.uint16
    out = np.zeros((rec.height, rec.width), dtype=dtype)
    anns = sorted(rec.annotations, key=lambda a: -mask_area(a.rle))
    masks = decode_masks([a.rle for a in anns], rec.height, rec.width)
    for ann, mask in zip(anns, masks, strict=False):
        out[mask != 0] = values[ann.category_id]
    return out


def write_class_pngs(aset: AnnotationSet, out_dir: str | os.PathLike[str]) -> list[Path]:
    """One per-pixel class PNG per annotated image (``STEM.png``, sub-folders mirrored; "P" mode with the
    viewer's palette), value k = the k-th category, 0 = background, as Clothing Co-Parsing stores its labels;
    ``labels.json`` lists ``{"value", "id", "name"}``. Returns the files written."""
    out = ensure_writable_dir(out_dir)
    values = class_values(aset)
    names = {int(c["id"]): str(c["name"]) for c in aset.categories}
    written = []
    for name in sorted(aset.images):
        rec = aset.images[name]
        if not rec.annotations and not rec.done:
            continue
        array = class_map(aset, name)
        img = Image.fromarray(array)
        if array.dtype == np.uint8:
            img.putpalette(palette_bytes())
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        target = out / PurePosixPath(name).with_suffix(".png")
        written.append(atomic_write_bytes(target, buf.getvalue()))
    labels = [
        {"value": v, "id": cid, "name": names[cid]}
        for cid, v in sorted(values.items(), key=lambda t: t[1])
    ]
    written.append(atomic_write_json(out / CLASS_LABELS_FILE, {"background": 0, "labels": labels}))
    return written


def read_class_png(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[int, int]]:
    """(H×W pixel values, value -> category id) of one exported class PNG (``labels.json`` beside it,
    or in a parent folder when sub-folders were mirrored)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            array = np.array(img)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the class PNG ({exc})") from exc
    folder = path.parent
    while not (folder / CLASS_LABELS_FILE).is_file() and folder != folder.parent:
        folder = folder.parent
    labels_file = folder / CLASS_LABELS_FILE
    data = read_json(labels_file)
    try:
        lookup = {int(item["value"]): int(item["id"]) for item in data["labels"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{labels_file}: malformed label list ({exc})") from exc
    return array, lookup
