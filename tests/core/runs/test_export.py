"""core.export: the PNG kinds and the COCO file, thresholds and class filters, atomic/unwritable cases."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.masks import encode_mask
from fashionviewer.core.data.overlay import class_color
from fashionviewer.core.data.predictions import ImagePrediction, Instance
from fashionviewer.core.runs.export import (
    COCO_FILE,
    FolderExporter,
    export_folder,
    export_image,
    export_paths,
    parse_formats,
)


def _instance(
    label: int, name: str, score: float, box: tuple[int, int, int, int], h: int = 40, w: int = 60
) -> Instance:
    mask = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 1
    return Instance(box, label, name, score, encode_mask(mask))


def _prediction(n_extra: int = 0) -> ImagePrediction:
    insts = [
        _instance(1, "Dress", 0.9, (5, 5, 25, 30)),
        _instance(8, "Sneaker", 0.3, (30, 10, 50, 20)),
        _instance(9, "Bag, wallet", 0.7, (20, 20, 40, 35)),
    ]
    insts += [
        _instance(1, "Dress", 0.95, (i % 60, i // 60, i % 60 + 1, i // 60 + 1))
        for i in range(n_extra)
    ]
    return ImagePrediction("street.jpg", 60, 40, insts, model="demo")


def _image() -> np.ndarray:
    return np.full((40, 60, 3), 200, np.uint8)


def test_parse_formats() -> None:
    assert parse_formats("png,coco") == ("instances", "index", "class", "overlay", "coco")
    assert parse_formats(["index"]) == ("index",)
    with pytest.raises(FashionViewerError, match="unknown format"):
        parse_formats("png,jpeg")


def test_export_image_all_pngs(tmp_path: Path) -> None:
    files = export_image(_prediction(), _image(), tmp_path, "png", min_score=0.5)
    names = sorted(p.name for p in files)
    # the 0.3 sneaker is below the threshold; numbering follows the kept instances
    assert names == [
        "street_001_Dress.png",
        "street_002_Bag_wallet.png",
        "street_classes.png",
        "street_instances.png",
        "street_overlay.png",
    ]
    dress = np.asarray(Image.open(tmp_path / "street_001_Dress.png"))
    assert (
        dress.dtype == np.uint8
        and set(np.unique(dress)) == {0, 255}
        and (dress == 255).sum() == 20 * 25
    )
    index = np.asarray(Image.open(tmp_path / "street_instances.png"))
    assert index.dtype == np.uint8 and set(np.unique(index)) == {0, 1, 2}
    assert index[25, 22] == 1  # dress (0.9) is painted over the bag (0.7) where they overlap
    classes = Image.open(tmp_path / "street_classes.png")
    assert classes.mode == "P" and tuple(classes.getpalette()[3:6]) == class_color(1)
    assert set(np.unique(np.asarray(classes))) == {0, 1, 9}
    overlay = np.asarray(Image.open(tmp_path / "street_overlay.png"))
    assert overlay.shape == (40, 60, 3) and not np.array_equal(overlay, _image())
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_class_filter_and_16_bit_index(tmp_path: Path) -> None:
    files = export_image(
        _prediction(n_extra=300), None, tmp_path, ["index", "instances"], classes=["Dress"]
    )
    index = Image.open(tmp_path / "street_instances.png")
    assert np.asarray(index).max() > 255 and np.asarray(index).dtype in (np.uint16, np.int32)
    assert not any("Bag" in p.name for p in files)
    assert len([p for p in files if p.name.endswith("_Dress.png")]) == 301


def test_folder_export_coco_with_provenance(tmp_path: Path) -> None:
    sub = Path("/photos/a/street.jpg")
    written = export_folder(
        [(_prediction(), _image(), sub), (_prediction(), _image(), Path("/photos/b/street.jpg"))],
        tmp_path / "out",
        "index,coco",
        min_score=0.5,
        root="/photos",
        info={"model": "demo", "weights_sha256": "ab" * 32, "threshold": 0.5},
    )
    assert (tmp_path / "out/a/street_instances.png").is_file() and (
        tmp_path / "out/b/street_instances.png"
    ).is_file()
    doc = json.loads((tmp_path / "out" / COCO_FILE).read_text())
    assert doc["info"]["model"] == "demo" and doc["info"]["weights_sha256"] == "ab" * 32
    assert [im["file_name"] for im in doc["images"]] == ["a/street.jpg", "b/street.jpg"]
    assert len(doc["annotations"]) == 4 and all(a["score"] >= 0.5 for a in doc["annotations"])
    assert {c["name"] for c in doc["categories"]} == {"Dress", "Bag, wallet"}
    assert len(written) == 3
    from pycocotools.coco import COCO

    gt = COCO()
    gt.dataset = {"images": doc["images"], "categories": doc["categories"], "annotations": []}
    gt.createIndex()
    assert len(gt.loadRes(doc["annotations"]).anns) == 4  # usable as pycocotools results


def test_export_paths_generator_cancel_keeps_coco(tmp_path: Path) -> None:
    paths = [Path(f"/x/img{i}.jpg") for i in range(5)]

    def obtain(path: Path):
        if path.name == "img1.jpg":
            raise FashionViewerError(f"{path}: not an image file")
        return _prediction(), _image(), None

    gen = export_paths(paths, obtain, tmp_path, ["coco"], root="/x")
    first, second, third = next(gen), next(gen), next(gen)
    assert first[3] is None and "not an image" in second[3] and third[0] == 3
    gen.close()  # cancel
    doc = json.loads((tmp_path / COCO_FILE).read_text())
    assert [im["file_name"] for im in doc["images"]] == ["img0.jpg", "img2.jpg"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    with pytest.raises(FashionViewerError, match="not writable"):
        FolderExporter(locked / "out", ("png",))


def test_output_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(FashionViewerError, match="not writable|cannot write"):
        export_image(_prediction(), _image(), blocker / "out", "index")
