"""Fashion-MNIST: the four idx.gz files, read with clear errors.

Looked up in ``--data-dir``, else ``$FASHION_MNIST_DIR``, else Debian's
``dataset-fashion-mnist`` location; torchvision's ``FashionMNIST/raw`` layout
(and plain, un-gzipped idx files) are accepted too.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.base.paths import DEFAULT_FASHION_MNIST_DIR

CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
HOW_TO_GET = (
    "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist), "
    "or pass --data-dir / set FASHION_MNIST_DIR to a folder with the four idx.gz files"
)
_IDX_DTYPE = {0x08: np.uint8}


@dataclass(frozen=True)
class FashionMNIST:
    """The whole dataset in memory: uint8 images (N×28×28, light item on black) and int64 labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: Path

    def split_train_val(
        self, val_size: int = 12_000, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """The paper's seeded split of the 60,000 training images: index arrays (train, val)."""
        order = np.random.default_rng(seed).permutation(len(self.train_labels))
        return np.sort(order[val_size:]), np.sort(order[:val_size])


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The first folder that holds the dataset (checked in documented order)."""
    candidates: list[Path] = []
    if data_dir is not None:
        candidates.append(Path(data_dir))
    elif os.environ.get("FASHION_MNIST_DIR"):
        candidates.append(Path(os.environ["FASHION_MNIST_DIR"]))
    else:
        candidates.append(DEFAULT_FASHION_MNIST_DIR)
    for base in list(candidates):
        candidates += [base / "FashionMNIST" / "raw", base / "raw"]
    for folder in candidates:
        if _find(folder, FILES["train_images"]) is not None:
            return folder
    raise DataError(f"Fashion-MNIST not found in {candidates[0]}: {HOW_TO_GET}")


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one idx file (gzipped or plain); raise DataError naming the file when it is corrupt."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc}); {HOW_TO_GET}") from exc
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPE:
        raise DataError(f"{path}: not an idx file (bad magic number); {HOW_TO_GET}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated header; {HOW_TO_GET}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise DataError(
            f"{path}: truncated or corrupt (header says {expected} values, file has {len(data) - header}); {HOW_TO_GET}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(data_dir: str | os.PathLike[str] | None = None) -> FashionMNIST:
    folder = resolve_data_dir(data_dir)
    arrays: dict[str, np.ndarray] = {}
    for key, stem in FILES.items():
        path = _find(folder, stem)
        if path is None:
            raise DataError(f"{folder / (stem + '.gz')}: missing; {HOW_TO_GET}")
        arrays[key] = read_idx(path)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if (
            images.ndim != 3
            or images.shape[1:] != (28, 28)
            or labels.ndim != 1
            or len(images) != len(labels)
        ):
            raise DataError(
                f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match"
            )
        if labels.size and labels.max() >= len(CLASSES):
            raise DataError(f"{folder}: {split} labels hold class {labels.max()}, expected 0-9")
    return FashionMNIST(
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=arrays["test_images"],
        test_labels=arrays["test_labels"].astype(np.int64),
        source=folder,
    )
