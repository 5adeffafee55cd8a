"""Dataset loaders on fixtures written in each dataset's own format, CCP on the real shared photos,
and the Fashion-MNIST scene generator on the real Debian Fashion-MNIST."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fashionviewer.core.data.datasets.fmnist_scenes as scenes_module
from fashionviewer.core.base.errors import DataError, FashionViewerError
from fashionviewer.core.base.paths import ccp_dir
from fashionviewer.core.data.datasets import build_dataset
from fashionviewer.core.data.datasets.ccp import read_groundtruth, read_label_list
from fashionviewer.core.data.fmnist import FashionMNIST, load_fashion_mnist
from fashionviewer.core.data.masks import (
    decode_mask,
    encode_mask,
    kaggle_rle_decode,
    kaggle_rle_encode,
)

# --------------------------------------------------------------------------- iMaterialist

IMH, IMW = 12, 10
HEADER = ["ImageId", "EncodedPixels", "Height", "Width", "ClassId"]


def rect(h, w, y1, y2, x1, x2):
    mask = np.zeros((h, w), np.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def write_csv(path: Path, rows, header=HEADER):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def make_imaterialist(root: Path, n_images: int = 6) -> list[list]:
    """Kaggle FGVC6 layout; returns the CSV rows (row number = index + 2)."""
    (root / "train").mkdir(parents=True)
    rows = []
    for i in range(n_images):
        name = f"img{i}.jpg" if i < n_images - 1 else f"img{i}"  # the last ImageId has no extension
        file_name = name if name.endswith(".jpg") else name + ".png"
        Image.new("RGB", (IMW, IMH), (40 * i % 255, 90, 120)).save(root / "train" / file_name)
        encoded = kaggle_rle_encode(rect(IMH, IMW, 1, 5, 2, 6 + i % 3))
        rows.append([name, encoded, IMH, IMW, f"{i % 46}_{100 + i}_{200 + i}"])
        if i == 0:
            rows.append([name, kaggle_rle_encode(rect(IMH, IMW, 6, 11, 0, 9)), IMH, IMW, "33"])
        if i == 2:  # disagrees with the photo's size: must be reported and skipped
            rows.append([name, "1 5", IMH + 1, IMW, "4"])
    write_csv(root / "train.csv", rows)
    labels = {
        "info": {},
        "categories": json.loads(
            (
                Path(__file__).resolve().parents[3]
                / "resources/labels/imaterialist2019_categories.json"
            ).read_text()
        )["categories"],
        "attributes": [{"id": 100, "name": "attr-a"}],
    }
    (root / "label_descriptions.json").write_text(json.dumps(labels))
    return rows


def test_imaterialist_loads_targets(tmp_path, caplog):
    rows = make_imaterialist(tmp_path)
    with caplog.at_level(logging.WARNING):
        ds = build_dataset("imaterialist", tmp_path, "all")
    assert (
        len(ds.class_names) == 46
        and ds.class_names[0] == "shirt, blouse"
        and ds.class_names[45] == "tassel"
    )
    assert ds.attribute_names[100] == "attr-a"
    assert len(ds) == 6
    # the Height-mismatch row (CSV row 6: header is row 1) is skipped and reported
    assert ds.skipped_rows == [
        f"row 6: Height {IMH + 1}, Width {IMW} disagree with image img2.jpg (Height {IMH}, Width {IMW})"
    ]
    assert "skipped 1 row" in caplog.text

    image, target = ds[0]
    assert (
        image.shape == (3, IMH, IMW)
        and image.dtype == torch.float32
        and 0 <= image.min() <= image.max() <= 1
    )
    assert target["labels"].tolist() == [1, 34]  # category + 1
    assert target["attributes"] == [[100, 200], []]
    np.testing.assert_array_equal(
        target["masks"][0].numpy(), kaggle_rle_decode(rows[0][1], IMH, IMW)
    )
    assert target["boxes"][0].tolist() == [2, 1, 6, 5]
    assert target["area"].tolist() == [16, 45] and target["iscrowd"].tolist() == [0, 0]
    assert target["masks"].dtype == torch.uint8 and target["boxes"].dtype == torch.float32
    # the image without extension resolves to its .png; the skipped row is not used
    by_name = {e.file_name: i for i, e in enumerate(ds.images)}
    assert "img5.png" in by_name
    assert ds[by_name["img2.jpg"]][1]["labels"].tolist() == [3]

    gt = ds.coco_ground_truth()
    assert len(gt["images"]) == 6 and len(gt["annotations"]) == 7
    # ClassId 0..45, as in label_descriptions.json
    assert {c["id"] for c in gt["categories"]} == set(range(46))


def test_imaterialist_split_is_seeded_and_disjoint(tmp_path):
    make_imaterialist(tmp_path, n_images=10)
    train = build_dataset("imaterialist", tmp_path, "train", val_fraction=0.3, seed=1)
    val = build_dataset("imaterialist", tmp_path, "val", val_fraction=0.3, seed=1)
    train_ids = {e.image_id for e in train.images}
    val_ids = {e.image_id for e in val.images}
    assert len(val_ids) == 3 and len(train_ids) == 7 and not train_ids & val_ids
    again = build_dataset("imaterialist", tmp_path, "val", val_fraction=0.3, seed=1)
    assert [e.image_id for e in again.images] == [e.image_id for e in val.images]
    other = {
        frozenset(
            e.image_id
            for e in build_dataset("imaterialist", tmp_path, "val", val_fraction=0.3, seed=s).images
        )
        for s in range(2, 6)
    }
    assert len(other | {frozenset(val_ids)}) > 1  # the seed matters
    assert val.coco_ground_truth()["images"][0]["id"] in val_ids


@pytest.mark.parametrize(
    "bad_row, fragment",
    [
        (["img0.jpg", "1 3", "abc", IMW, "3"], "train.csv: row 3: Height: 'abc' is not an integer"),
        (["img0.jpg", "1 3", IMH, "", "3"], "train.csv: row 3: Width: missing value"),
        (
            ["img0.jpg", "1 3", IMH, IMW, "46"],
            "train.csv: row 3: ClassId: category 46 out of range 0-45",
        ),
        (
            ["img0.jpg", "1 3", IMH, IMW, "3_x"],
            "train.csv: row 3: ClassId attribute: 'x' is not an integer",
        ),
        (
            ["img0.jpg", "1 3 5", IMH, IMW, "3"],
            "train.csv: row 3: EncodedPixels: odd number of values (3)",
        ),
        (
            ["img0.jpg", "100 30", IMH, IMW, "3"],
            "train.csv: row 3: EncodedPixels: run 1 (100 30) runs past",
        ),
        (
            ["img0.jpg", "9 3 1 2", IMH, IMW, "3"],
            "train.csv: row 3: EncodedPixels: run 2 (start 1) overlaps",
        ),
        (["img0.jpg", "", IMH, IMW, "3"], "train.csv: row 3: EncodedPixels: missing value"),
        (["img0.jpg", "1 3", IMH], "train.csv: row 3: Width: missing value"),
    ],
)
def test_imaterialist_malformed_rows(tmp_path, bad_row, fragment):
    make_imaterialist(tmp_path, n_images=2)
    write_csv(tmp_path / "train.csv", [["img0.jpg", "1 3", IMH, IMW, "3"], bad_row])
    with pytest.raises(DataError) as info:
        build_dataset("imaterialist", tmp_path, "all")
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_imaterialist_missing_column_and_folder(tmp_path):
    make_imaterialist(tmp_path, n_images=2)
    write_csv(tmp_path / "train.csv", [["img0.jpg", "1 3", IMH, IMW]], header=HEADER[:4])
    with pytest.raises(DataError, match="missing column.*ClassId"):
        build_dataset("imaterialist", tmp_path, "all")
    with pytest.raises(DataError, match="train.csv: not found"):
        build_dataset("imaterialist", tmp_path / "nowhere", "all")


# --------------------------------------------------------------------------- COCO

CH, CW = 20, 30


def make_coco(root: Path) -> dict:
    (root / "train").mkdir(parents=True)
    (root / "annotations").mkdir()
    for i in range(3):
        Image.new("RGB", (CW, CH), (10, 20 * i, 30)).save(root / "train" / f"p{i}.png")
    crowd = rect(CH, CW, 12, 18, 2, 10)
    data = {
        "images": [
            {"id": 7 + i, "file_name": f"p{i}.png", "width": CW, "height": CH} for i in range(3)
        ],
        "categories": [
            {"id": 9, "name": "shoe"},
            {"id": 0, "name": "hat"},
            {"id": 5, "name": "bag"},
        ],
        "annotations": [
            {
                "id": 10,
                "image_id": 7,
                "category_id": 5,
                "iscrowd": 0,
                "segmentation": [[2, 2, 12, 2, 12, 8, 2, 8]],
                "bbox": [2, 2, 10, 6],
                "area": 60,
            },
            {
                "id": 11,
                "image_id": 7,
                "category_id": 0,
                "iscrowd": 0,
                "segmentation": encode_mask(rect(CH, CW, 1, 4, 20, 28)),
            },
            {
                "id": 12,
                "image_id": 7,
                "category_id": 9,
                "iscrowd": 1,
                "segmentation": {"size": [CH, CW], "counts": _uncompressed(crowd)},
            },
            {
                "id": 13,
                "image_id": 8,
                "category_id": 9,
                "iscrowd": 0,
                "segmentation": [[5, 5, 25, 5, 25, 15, 5, 15]],
            },
        ],
    }
    (root / "annotations" / "instances_train.json").write_text(json.dumps(data))
    return data


def _uncompressed(mask: np.ndarray) -> list[int]:
    flat = mask.reshape(-1, order="F")
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return np.diff(np.concatenate([[0], changes])).tolist()


def test_coco_loader(tmp_path):
    make_coco(tmp_path)
    ds = build_dataset("coco", tmp_path, "train")
    assert ds.class_names == ["hat", "bag", "shoe"] and ds.category_ids == [0, 5, 9]
    assert len(ds) == 3
    image, target = ds[0]
    assert image.shape == (3, CH, CW)
    assert target["labels"].tolist() == [2, 1]  # crowd left out of training targets by default
    assert target["image_id"].item() == 7
    assert target["boxes"][1].tolist() == [20, 1, 28, 4]
    np.testing.assert_array_equal(target["masks"][1].numpy(), rect(CH, CW, 1, 4, 20, 28))
    with_crowd = build_dataset("coco", tmp_path, "train", include_crowd=True)[0][1]
    assert with_crowd["iscrowd"].tolist() == [0, 0, 1]
    np.testing.assert_array_equal(with_crowd["masks"][2].numpy(), rect(CH, CW, 12, 18, 2, 10))
    assert ds[2][1]["boxes"].shape == (0, 4)  # an image without annotations is a negative

    gt = ds.coco_ground_truth()
    assert [c["id"] for c in gt["categories"]] == [0, 5, 9]  # the file's own ids
    assert sorted((a["category_id"], a["iscrowd"]) for a in gt["annotations"]) == [
        (0, 0),
        (5, 0),
        (9, 0),
        (9, 1),
    ]
    assert len(gt["images"]) == 3


def test_coco_max_size_downscales(tmp_path):
    make_coco(tmp_path)
    ds = build_dataset("coco", tmp_path, "train", max_size=15)
    image, target = ds[1]
    assert image.shape == (3, 10, 15) and target["masks"].shape == (1, 10, 15)
    assert target["boxes"][0].tolist() == pytest.approx([2.5, 2.5, 12.5, 7.5], abs=1)
    gt = ds.coco_ground_truth()
    assert gt["images"][1]["width"] == 15 and decode_mask(
        gt["annotations"][-1]["segmentation"]
    ).shape == (10, 15)


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (
            lambda d: d["annotations"][1].pop("segmentation"),
            "annotation 1 (id 11): missing 'segmentation'",
        ),
        (
            lambda d: d["annotations"][0].update(category_id=4),
            "annotation 0 (id 10): unknown category_id 4",
        ),
        (
            lambda d: d["annotations"][3].update(image_id=99),
            "annotation 3 (id 13): unknown image_id 99",
        ),
        (lambda d: d["annotations"][2].pop("id"), "annotation 2: missing 'id'"),
        (lambda d: d["images"][1].pop("width"), "image 1 (id 8): missing 'width'"),
        (lambda d: d.pop("categories"), "missing 'categories'"),
        (
            lambda d: d["annotations"][1].update(segmentation={"size": [5, 5], "counts": "abc"}),
            "annotation 1 (id 11): segmentation: RLE size [5, 5] does not match",
        ),
        (
            lambda d: d["annotations"][1].update(segmentation={"size": [CH, CW], "counts": [1, 2]}),
            "annotation 1 (id 11): segmentation: uncompressed RLE counts sum to 3",
        ),
    ],
)
def test_coco_malformed(tmp_path, mutate, fragment):
    data = make_coco(tmp_path)
    mutate(data)
    (tmp_path / "annotations" / "instances_train.json").write_text(json.dumps(data))
    with pytest.raises(DataError) as info:
        build_dataset("coco", tmp_path, "train")
    assert "instances_train.json: " in str(info.value) and fragment in str(info.value)


def test_coco_bad_json_and_unknown_dataset(tmp_path):
    make_coco(tmp_path)
    (tmp_path / "annotations" / "instances_train.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        build_dataset("coco", tmp_path, "train")
    with pytest.raises(DataError, match="no annotation file for split 'val'"):
        build_dataset("coco", tmp_path, "val")
    with pytest.raises(FashionViewerError, match="unknown dataset 'nope'"):
        build_dataset("nope", tmp_path, "train")


# --------------------------------------------------------------------------- CCP (real photos)


@pytest.mark.needs_ccp
@pytest.mark.skipif(
    ccp_dir() is None, reason="Clothing Co-Parsing data not found in ../shared/data/ccp"
)
def test_ccp_real_photos():
    root = ccp_dir()
    train = build_dataset("ccp", None, "train")
    val = build_dataset("ccp", root, "val", max_size=200)
    assert len(train) == 700 and len(val) == 100
    assert not {e.image_id for e in train.images} & {e.image_id for e in val.images}
    assert [e.image_id for e in build_dataset("ccp", None, "val").images] == [
        e.image_id for e in val.images
    ]
    names = read_label_list(root / "label_list.mat")
    assert len(names) == 59
    assert train.class_names == [n for n in names if n not in ("null", "skin", "hair")]
    body = build_dataset("ccp", None, "val", include_body=True, limit=2)
    assert "skin" in body.class_names and "hair" in body.class_names and len(body) == 2

    entry = val.images[0]
    gt = read_groundtruth(root / "annotations" / "pixel-level" / f"{entry.image_id:04d}.mat")
    present = sorted({names[v] for v in np.unique(gt)} - {"null", "skin", "hair"})
    full = build_dataset("ccp", None, "val", limit=1)
    image, target = full[0]
    assert image.shape[1:] == gt.shape
    assert sorted(full.class_names[k - 1] for k in target["labels"].tolist()) == present
    for label, mask in zip(target["labels"].tolist(), target["masks"].numpy(), strict=False):
        np.testing.assert_array_equal(mask, gt == names.index(full.class_names[label - 1]))
    assert target["masks"].sum(dim=0).max().item() <= 1  # one instance per class: no overlaps

    small_image, small = val[0]  # downscaled: tiny parts may vanish, nothing new appears
    assert max(small_image.shape[1:]) == 200 and small["masks"].shape[1:] == small_image.shape[1:]
    assert set(small["labels"].tolist()) <= set(target["labels"].tolist())


# --------------------------------------------------------------------------- Fashion-MNIST scenes


def _fmnist_or_skip() -> FashionMNIST:
    try:
        return load_fashion_mnist()
    except DataError as exc:
        pytest.skip(f"real Fashion-MNIST not available ({exc})")


@pytest.fixture(scope="module")
def fmnist() -> FashionMNIST:
    return _fmnist_or_skip()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, fmnist) -> Path:
    out = tmp_path_factory.mktemp("scenes")
    scenes_module.generate_scenes(out, n_train=16, n_val=8, seed=3)
    return out


def test_scenes_layout_and_occlusion(scenes, fmnist):
    for split, n, source, labels in (
        ("train", 16, "train", fmnist.train_labels),
        ("val", 8, "test", fmnist.test_labels),
    ):
        data = json.loads((scenes / "annotations" / f"instances_{split}.json").read_text())
        assert len(data["images"]) == n and len(list((scenes / split).glob("*.png"))) == n
        assert [c["name"] for c in data["categories"]][:2] == ["T-shirt/top", "Trouser"]
        per_image: dict[int, list] = {}
        for ann in data["annotations"]:
            per_image.setdefault(ann["image_id"], []).append(ann)
            assert isinstance(ann["segmentation"]["counts"], str)
            # the recorded source item really is from this Fashion-MNIST split, with this class
            assert ann["fmnist_split"] == source
            assert ann["category_id"] == labels[ann["fmnist_index"]] + 1
        assert set(per_image) == {img["id"] for img in data["images"]}  # every scene has an item
        for anns in per_image.values():
            assert 1 <= len(anns) <= 6
            masks = np.stack([decode_mask(a["segmentation"]) for a in anns])
            assert masks.sum(axis=0).max() <= 1  # occlusion resolved: disjoint masks
            assert masks.reshape(len(anns), -1).sum(axis=1).min() >= scenes_module.MIN_PIXELS


def test_scenes_items_come_from_disjoint_splits(tmp_path, monkeypatch, fmnist):
    # Train items restricted to classes 0-4, test items to 5-9: any cross-over shows in the labels.
    train_keep = fmnist.train_labels < 5
    test_keep = fmnist.test_labels >= 5
    fake = FashionMNIST(
        fmnist.train_images[train_keep][:500],
        fmnist.train_labels[train_keep][:500],
        fmnist.test_images[test_keep][:500],
        fmnist.test_labels[test_keep][:500],
        fmnist.source,
    )
    monkeypatch.setattr(scenes_module, "load_fashion_mnist", lambda data_dir=None: fake)
    scenes_module.generate_scenes(tmp_path, n_train=10, n_val=10, seed=0)
    train = json.loads((tmp_path / "annotations" / "instances_train.json").read_text())
    val = json.loads((tmp_path / "annotations" / "instances_val.json").read_text())
    assert {a["category_id"] for a in train["annotations"]} <= {1, 2, 3, 4, 5}
    assert {a["category_id"] for a in val["annotations"]} <= {6, 7, 8, 9, 10}


def test_scenes_deterministic(tmp_path, scenes):
    scenes_module.generate_scenes(tmp_path / "again", n_train=4, n_val=2, seed=3)
    scenes_module.generate_scenes(tmp_path / "other", n_train=4, n_val=0, seed=4)
    first = json.loads((scenes / "annotations" / "instances_train.json").read_text())
    again = json.loads((tmp_path / "again" / "annotations" / "instances_train.json").read_text())
    other = json.loads((tmp_path / "other" / "annotations" / "instances_train.json").read_text())
    n_again = len(again["annotations"])
    assert again["annotations"] == first["annotations"][:n_again]  # same seed: same first scenes
    for name in ("000000.png", "000003.png"):
        np.testing.assert_array_equal(
            np.asarray(Image.open(scenes / "train" / name)),
            np.asarray(Image.open(tmp_path / "again" / "train" / name)),
        )
    assert [a["segmentation"] for a in other["annotations"]] != [
        a["segmentation"] for a in again["annotations"]
    ]


def test_scenes_dataset(scenes):
    ds = build_dataset("fmnist-scenes", scenes, "val")
    assert len(ds) == 8 and len(ds.class_names) == 10
    image, target = ds[0]
    assert image.shape == (3, 256, 256)
    assert target["labels"].min() >= 1 and target["labels"].max() <= 10
    assert target["masks"].sum(dim=0).max() <= 1
    with pytest.raises(DataError, match="generate the scenes"):
        build_dataset("fmnist-scenes", scenes / "missing", "val")
