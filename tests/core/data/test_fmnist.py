import gzip
import shutil

import numpy as np
import pytest

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.fmnist import CLASSES, FILES, load_fashion_mnist, read_idx


def test_real_dataset_has_the_documented_shape(fmnist):
    assert fmnist.train_images.shape == (60_000, 28, 28) and fmnist.train_images.dtype == np.uint8
    assert fmnist.test_images.shape == (10_000, 28, 28)
    assert np.bincount(fmnist.test_labels).tolist() == [1000] * len(CLASSES)
    # Fashion-MNIST convention: light item on a black background.
    corners = fmnist.train_images[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert np.median(corners) == 0 and fmnist.train_images.mean() < 100


def test_split_is_seeded_disjoint_and_paper_sized(fmnist):
    train, val = fmnist.split_train_val(12_000, seed=0)
    assert len(train) == 48_000 and len(val) == 12_000
    assert not np.intersect1d(train, val).size
    again_train, _ = fmnist.split_train_val(12_000, seed=0)
    other_train, _ = fmnist.split_train_val(12_000, seed=1)
    assert np.array_equal(train, again_train) and not np.array_equal(train, other_train)


def _copy_dataset(src, dst, gunzip=False):
    dst.mkdir(parents=True)
    for stem in FILES.values():
        if gunzip:
            (dst / stem).write_bytes(gzip.decompress((src / f"{stem}.gz").read_bytes()))
        else:
            shutil.copy(src / f"{stem}.gz", dst / f"{stem}.gz")


def test_torchvision_raw_layout_and_plain_idx_are_accepted(fmnist, tmp_path):
    _copy_dataset(fmnist.source, tmp_path / "FashionMNIST" / "raw", gunzip=True)
    data = load_fashion_mnist(tmp_path)
    assert np.array_equal(data.test_labels, fmnist.test_labels)


def test_missing_dataset_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"not found in .*dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


def test_truncated_file_names_the_file(fmnist, tmp_path):
    _copy_dataset(fmnist.source, tmp_path / "data")
    tmp_path = tmp_path / "data"
    labels = tmp_path / f"{FILES['test_labels']}.gz"
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())[:-10]))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: truncated"):
        load_fashion_mnist(tmp_path)


def test_garbage_file_is_reported_not_parsed(tmp_path):
    bad = tmp_path / "x.gz"
    bad.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(DataError, match="x.gz: cannot read"):
        read_idx(bad)
    bad.write_bytes(b"hello world")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(bad)
