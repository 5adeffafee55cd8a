"""Ultralytics YOLO segmentation: ``images/``, ``labels/*.txt`` (one instance per line: class index, then
the polygon's x y pairs normalised to 0-1), ``data.yaml`` (``path``, ``train``, ``val``, ``names``).

Class index k is the k-th category in increasing id order. An instance of several parts is written as one
polygon whose parts are joined by zero-width bridges at their nearest points, as Ultralytics' own COCO
converter does, so it stays one instance. Images are hard-linked (copied across file systems) into
``images/``. Reading accepts the same layout (``images/<split>/`` and ``labels/<split>/`` too) and box lines
(class cx cy w h).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Generator
from pathlib import Path, PurePosixPath

import numpy as np

from fashionviewer.core.base.atomic import atomic_write_text
from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.annotations import (
    Annotation,
    AnnotationSet,
    ImageAnnotations,
    categories_for,
)
from fashionviewer.core.data.formats.common import image_size, mask_to_polygons, polygons_rle
from fashionviewer.core.data.imageio import IMAGE_EXTENSIONS

NAME = "yolo"
DATA_FILE = "data.yaml"


def detect(path: Path) -> bool:
    return path.is_dir() and (path / DATA_FILE).is_file() and (path / "labels").is_dir()


def link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` (a copy across file systems)."""
    if not source.is_file():
        raise DataError(f"{source}: the image the annotations describe is missing")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def joined_polygon(polygons: list[list[float]]) -> np.ndarray:
    """One N×2 outline for several parts: each later part hangs off the first at their nearest points."""
    first = np.asarray(polygons[0]).reshape(-1, 2)
    attached: dict[int, list[np.ndarray]] = {}
    for poly in polygons[1:]:
        part = np.asarray(poly).reshape(-1, 2)
        d = ((first[:, None, :] - part[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        attached.setdefault(int(i), []).append(np.roll(part, -int(j), axis=0))
    out: list[np.ndarray] = []
    for i, point in enumerate(first):
        out.append(point[None])
        for part in attached.get(i, []):
            out += [part, part[:1], point[None]]
    return np.concatenate(out)


def write_steps(
    aset: AnnotationSet, out_dir: Path, folder: Path, category_ids: str = "dataset"
) -> Generator[str, None, list[Path]]:
    cats = sorted(aset.categories, key=lambda c: int(c["id"]))
    index = {int(c["id"]): k for k, c in enumerate(cats)}
    written = []
    for name in sorted(aset.images):
        yield name  # progress, and a cancel point
        rec = aset.images[name]
        lines = []
        for ann in rec.annotations:
            polygons = mask_to_polygons(ann.mask())
            if not polygons:
                continue
            points = joined_polygon(polygons) / np.array([rec.width, rec.height])
            coords = " ".join(f"{v:.6f}" for v in np.clip(points, 0.0, 1.0).ravel())
            lines.append(f"{index[ann.category_id]} {coords}")
        rel = PurePosixPath(name)
        written.append(
            atomic_write_text(
                out_dir / "labels" / rel.with_suffix(".txt"), "".join(f"{x}\n" for x in lines)
            )
        )
        link_or_copy(folder / name, out_dir / "images" / rel)
        written.append(out_dir / "images" / rel)
    names = "\n".join(f"  {k}: {_quote(str(c['name']))}" for k, c in enumerate(cats))
    yaml_text = f"path: .\ntrain: images\nval: images\nnc: {len(cats)}\nnames:\n{names}\n"
    written.append(atomic_write_text(out_dir / DATA_FILE, yaml_text))
    return written


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_names(path: Path) -> list[str]:
    """``names`` of a data.yaml: a mapping ``k: name``, a block list or an inline list."""
    text = path.read_text(encoding="utf-8")
    try:
        import yaml  # PyYAML when installed; the plain layouts below otherwise

        data = yaml.safe_load(text)
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict):
            return [str(names[k]) for k in sorted(names)]
        if isinstance(names, list):
            return [str(n) for n in names]
        raise DataError(f"{path}: no 'names' list or mapping")
    except ImportError:
        pass
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    match = re.search(r"^names:\s*(.*)$", text, re.M)
    if match is None:
        raise DataError(f"{path}: no 'names' list or mapping")
    if match.group(1).strip().startswith("["):
        return [_unquote(n) for n in match.group(1).strip()[1:-1].split(",") if n.strip()]
    names: list[str] = []
    for line in text[match.end() :].splitlines():
        if not line.startswith((" ", "\t")):
            break
        item = re.match(r"\s*(?:-|\d+\s*:)\s*(.*)$", line)
        if item:
            names.append(_unquote(item.group(1)))
    return names


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].replace("''", "'") if text[0] == "'" else text[1:-1]
    return text


def read(path: str | os.PathLike[str]) -> tuple[AnnotationSet, list[str]]:
    root = Path(path)
    if not detect(root):
        raise DataError(f"{root}: not a YOLO folder (needs {DATA_FILE} and labels/)")
    names = read_names(root / DATA_FILE)
    aset = AnnotationSet(categories=categories_for(names))
    ids = [int(c["id"]) for c in aset.categories]
    images = {
        p.relative_to(root / "images").with_suffix("").as_posix(): p
        for p in sorted((root / "images").rglob("*"))
        if p.suffix.lower() in IMAGE_EXTENSIONS
    }
    next_id = 1
    for label_file in sorted((root / "labels").rglob("*.txt")):
        stem = label_file.relative_to(root / "labels").with_suffix("").as_posix()
        image = images.get(stem)
        if image is None:
            raise DataError(f"{label_file}: no image images/{stem}.* for it")
        name = image.relative_to(root / "images").as_posix()
        width, height = image_size(root / "images", name, str(label_file))
        rec = ImageAnnotations(name, width, height)
        for row, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            rle, k = _line_mask(line, f"{label_file}: line {row}", len(names), width, height)
            rec.annotations.append(Annotation(next_id, ids[k], rle, "imported"))
            next_id += 1
        aset.images[name] = rec
    return aset, []


def _line_mask(line: str, where: str, classes: int, width: int, height: int) -> tuple[dict, int]:
    parts = line.split()
    try:
        k = int(parts[0])
        values = [float(v) for v in parts[1:]]
    except ValueError:
        raise DataError(f"{where}: expected a class index and numbers") from None
    if not 0 <= k < classes:
        raise DataError(
            f"{where}: class index {k} out of range 0-{classes - 1} (data.yaml names {classes})"
        )
    if any(not 0.0 <= v <= 1.0 for v in values):
        raise DataError(f"{where}: coordinates must be normalised to 0-1")
    if len(values) == 4:  # a box line: cx cy w h
        cx, cy, w, h = values[0] * width, values[1] * height, values[2] * width, values[3] * height
        polygon = [
            cx - w / 2,
            cy - h / 2,
            cx + w / 2,
            cy - h / 2,
            cx + w / 2,
            cy + h / 2,
            cx - w / 2,
            cy + h / 2,
        ]
    else:
        scale = np.resize(np.array([width, height], dtype=np.float64), len(values))
        # an odd count or < 3 points fails just below
        polygon = (np.asarray(values) * scale).tolist()
    return polygons_rle([polygon], height, width, where), k
