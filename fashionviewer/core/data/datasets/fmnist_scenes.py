"""Synthetic instance-segmentation scenes built from real Fashion-MNIST items.

Each scene (default 256×256 RGB) holds 1–6 Fashion-MNIST items, each scaled to
48–160 px, randomly flipped, tinted with a random colour (shaded by the item's
own intensities) and placed on a plain, gradient, noise or striped background.
An item's silhouette is its upscaled 28×28 intensity above ``ITEM_THRESHOLD``;
inside it the item is opaque, so the mask is exactly what is seen. Later items
cover earlier ones and the earlier masks lose the covered pixels; a placement
that would leave an earlier item with less than ``MIN_VISIBLE`` of its area (or
fewer than ``MIN_PIXELS`` pixels) is retried elsewhere, and the item is dropped
when no place works, so every visible item is labelled and masks are disjoint.

Labels are the 10 Fashion-MNIST classes as ids 1..10. Train scenes use only
items of Fashion-MNIST's training split, val scenes only its test split, and
the two use independent random streams derived from ``seed``, so the train set
does not change with ``n_val``. Output is a COCO dataset (compressed RLE)::

    OUT/train/000000.png ...   OUT/annotations/instances_train.json
    OUT/val/000000.png ...     OUT/annotations/instances_val.json

Each annotation also records ``fmnist_split`` and ``fmnist_index`` (its source
item). CLI: ``python -m fashionviewer.core.data.datasets.fmnist_scenes --out DIR
--train N --val N --seed S``.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from fashionviewer.core.base.atomic import atomic_write_json, ensure_writable_dir
from fashionviewer.core.base.errors import DataError, FashionViewerError
from fashionviewer.core.data.datasets.coco import CocoDataset
from fashionviewer.core.data.fmnist import CLASSES, load_fashion_mnist
from fashionviewer.core.data.masks import encode_masks, mask_bbox

ITEM_THRESHOLD = 30  # 0-255 intensity; Fashion-MNIST backgrounds are 0, item edges fade in
MIN_VISIBLE = 0.4  # fraction of an item's own area that must stay visible
MIN_PIXELS = 64
MIN_ITEM, MAX_ITEM = 48, 160
MAX_ITEMS = 6
PLACEMENT_TRIES = 8


@dataclass
class Scene:
    image: np.ndarray  # H×W×3 uint8 RGB
    masks: np.ndarray  # N×H×W uint8, pairwise disjoint
    labels: np.ndarray  # int64 N, 1..10
    sources: np.ndarray  # int64 N, index into the Fashion-MNIST split the items came from


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:  # plain
        return np.broadcast_to(_random_colour(rng), (size, size, 3)).copy()
    axis = np.linspace(0.0, 1.0, size, dtype=np.float32)
    if kind == 1:  # linear gradient in a random direction
        angle = rng.uniform(0, 2 * np.pi)
        t = np.cos(angle) * axis[None, :] + np.sin(angle) * axis[:, None]
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        a, b = _random_colour(rng), _random_colour(rng)
        return a + t[..., None] * (b - a)
    if kind == 2:  # smooth colour noise plus grain
        cells = int(rng.integers(3, 17))
        coarse = rng.uniform(0, 255, size=(cells, cells, 3)).astype(np.float32)
        smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        return smooth + rng.normal(0, 12, size=(size, size, 1)).astype(np.float32)
    # stripes
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(6, 48)
    phase = (np.cos(angle) * axis[None, :] + np.sin(angle) * axis[:, None]) * size / period
    t = (np.sin(2 * np.pi * phase) > 0).astype(np.float32)
    a, b = _random_colour(rng), _random_colour(rng)
    return a + t[..., None] * (b - a)


def render_scene(
    rng: np.random.Generator,
    items: np.ndarray,
    item_labels: np.ndarray,
    image_size: int = 256,
    max_items: int = MAX_ITEMS,
) -> Scene:
    """One scene from ``items`` (N×28×28 uint8) with Fashion-MNIST class indices ``item_labels`` (0..9)."""
    canvas = _background(rng, image_size)
    # which instance shows at each pixel
    owner = np.full((image_size, image_size), -1, dtype=np.int16)
    full_area: list[int] = []
    labels: list[int] = []
    sources: list[int] = []
    wanted = int(rng.integers(1, max_items + 1))
    attempts = 0
    while len(labels) < wanted and attempts < wanted * 3:
        attempts += 1
        index = int(rng.integers(len(items)))
        side = int(rng.integers(MIN_ITEM, min(MAX_ITEM, image_size) + 1))
        item = items[index][:, ::-1] if rng.random() < 0.5 else items[index]
        intensity = cv2.resize(
            np.ascontiguousarray(item), (side, side), interpolation=cv2.INTER_LINEAR
        )
        silhouette = intensity > ITEM_THRESHOLD
        area = int(silhouette.sum())
        if area < MIN_PIXELS:
            continue
        for _ in range(PLACEMENT_TRIES if labels else 1):
            y, x = (int(v) for v in rng.integers(0, image_size - side + 1, size=2))
            region = owner[y : y + side, x : x + side]
            covered = np.bincount(
                region[silhouette].astype(np.int64) + 1, minlength=len(labels) + 1
            )[1:]
            visible = (
                np.bincount(owner.reshape(-1).astype(np.int64) + 1, minlength=len(labels) + 1)[1:]
                - covered
            )
            if all(
                v >= max(MIN_VISIBLE * a, MIN_PIXELS)
                for v, a in zip(visible, full_area, strict=False)
            ):
                break
        else:
            continue  # no place leaves the earlier items recognisable: drop this item
        shade = 0.35 + 0.65 * intensity.astype(np.float32) / 255.0
        colour = _random_colour(rng)
        patch = canvas[y : y + side, x : x + side]
        patch[silhouette] = shade[silhouette, None] * colour
        region[silhouette] = len(labels)
        full_area.append(area)
        labels.append(int(item_labels[index]) + 1)
        sources.append(index)
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    masks = (owner[None] == np.arange(len(labels), dtype=np.int16)[:, None, None]).astype(np.uint8)
    return Scene(
        image, masks, np.asarray(labels, dtype=np.int64), np.asarray(sources, dtype=np.int64)
    )


def _categories() -> list[dict[str, Any]]:
    return [
        {"id": k, "name": name, "supercategory": "fashion-mnist"}
        for k, name in enumerate(CLASSES, start=1)
    ]


def _write_split(
    out_dir: Path,
    split: str,
    count: int,
    rng: np.random.Generator,
    items: np.ndarray,
    item_labels: np.ndarray,
    source_split: str,
    image_size: int,
    seed: int,
) -> Path:
    image_dir = out_dir / split
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        scene = render_scene(rng, items, item_labels, image_size)
        file_name = f"{i:06d}.png"
        if not cv2.imwrite(
            str(image_dir / file_name), scene.image[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1]
        ):
            raise FashionViewerError(f"{image_dir / file_name}: cannot write image")
        images.append(
            {"id": i + 1, "file_name": file_name, "width": image_size, "height": image_size}
        )
        for rle, mask, label, source in zip(
            encode_masks(scene.masks), scene.masks, scene.labels, scene.sources, strict=False
        ):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(label),
                    "segmentation": rle,
                    "area": float(mask.sum()),
                    "bbox": mask_bbox(rle),
                    "iscrowd": 0,
                    "fmnist_split": source_split,
                    "fmnist_index": int(source),
                }
            )
    coco = {
        "info": {
            "description": f"Fashion-MNIST scenes ({split}), items from the Fashion-MNIST {source_split} split",
            "seed": seed,
            "image_size": image_size,
        },
        "images": images,
        "annotations": annotations,
        "categories": _categories(),
    }
    return atomic_write_json(out_dir / "annotations" / f"instances_{split}.json", coco, indent=None)


def generate_scenes(
    out_dir: str | os.PathLike[str],
    n_train: int,
    n_val: int,
    seed: int = 0,
    image_size: int = 256,
    data_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Write the train and val scene sets to ``out_dir`` (see the module docstring).

    Returns ``{"train": annotation path, "val": annotation path, "n_train", "n_val"}``.
    """
    if n_train < 0 or n_val < 0:
        raise FashionViewerError(f"scene counts must be >= 0 (got train={n_train}, val={n_val})")
    if image_size < MIN_ITEM:
        raise FashionViewerError(
            f"image size {image_size} is smaller than the smallest item ({MIN_ITEM} px)"
        )
    out = ensure_writable_dir(out_dir)
    data = load_fashion_mnist(data_dir)
    result: dict[str, Any] = {"n_train": n_train, "n_val": n_val}
    for stream, (split, count, items, item_labels, source) in enumerate(
        (
            ("train", n_train, data.train_images, data.train_labels, "train"),
            ("val", n_val, data.test_images, data.test_labels, "test"),
        )
    ):
        rng = np.random.default_rng([seed, stream])
        result[split] = _write_split(
            out, split, count, rng, items, item_labels, source, image_size, seed
        )
    return result


class FmnistScenesDataset(CocoDataset):
    """The generated scenes (``root`` = the generator's ``--out``) as a COCO dataset."""

    def __init__(self, root: str | os.PathLike[str], split: str = "train", **options: Any) -> None:
        ann = Path(root) / "annotations" / f"instances_{split}.json"
        if not ann.is_file():
            raise DataError(
                f"{ann}: not found; generate the scenes with "
                f"python -m fashionviewer.core.data.datasets.fmnist_scenes --out {root} --train N --val N"
            )
        options.setdefault("image_dir", Path(root) / split)
        super().__init__(root, split, ann_file=ann, **options)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fashionviewer.core.data.datasets.fmnist_scenes",
        description="Generate Fashion-MNIST instance-segmentation scenes (COCO format).",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--train", type=int, default=1000, help="number of training scenes (default 1000)"
    )
    parser.add_argument(
        "--val", type=int, default=200, help="number of validation scenes (default 200)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument(
        "--data-dir", default=None, help="Fashion-MNIST folder (default: Debian's location)"
    )
    args = parser.parse_args(argv)
    try:
        result = generate_scenes(
            args.out, args.train, args.val, args.seed, args.image_size, args.data_dir
        )
    except FashionViewerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {result['n_train']} train scenes ({result['train']}) "
        f"and {result['n_val']} val scenes ({result['val']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
