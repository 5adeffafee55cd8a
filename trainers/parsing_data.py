"""The parsing trainer's data: CCP photos and labels at the training width, augmentation, class weights.

Shared by ``trainers.parsing`` (training from scratch) and ``trainers.parsing_finetune`` (a folder's
annotations plus replayed CCP photos); labels are parsing-channel indices, ``IGNORE`` teaches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.datasets.ccp import CCPDataset, read_groundtruth, read_label_list
from fashionviewer.core.data.imageio import load_image as read_image
from fashionviewer.core.data.taxonomy import BODY_LABELS, ccp_value_lut
from fashionviewer.core.models.parsing import IMAGE_MEAN, IMAGE_STD, parsing_channels

IGNORE = 255  # label of padding in training crops and of pixels that teach nothing


def resize_photo(image: np.ndarray, width: int) -> Tensor:
    """uint8 H×W×3 -> uint8 3×h×width tensor (antialiased), keeping the aspect ratio."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    out = F.interpolate(
        tensor, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return out[0].round_().clamp_(0, 255).to(torch.uint8)


def resize_labels(labels: np.ndarray, width: int) -> Tensor:
    height = max(1, round(labels.shape[0] * width / labels.shape[1]))
    tensor = torch.from_numpy(labels.astype(np.uint8))[None, None]
    return F.interpolate(tensor, size=(height, width), mode="nearest")[0, 0]


@dataclass
class Sample:
    image: Tensor  # uint8 3×h×w
    labels: Tensor  # uint8 h×w, parsing channel indices
    image_id: int


def load_split(
    root: str | None, split: str, width: int, val_size: int, seed: int, limit: int | None = None
) -> list[Sample]:
    """CCP photos of ``split`` at ``width``, their labels as parsing channels (see ``parsing_channels``)."""
    dataset = CCPDataset(root, split, val_size=val_size, seed=seed, limit=limit)
    lut = torch.from_numpy(
        ccp_value_lut(read_label_list(dataset.root / "label_list.mat"), body=True)
    )
    samples = []
    for entry in dataset.images:
        mat = dataset.root / "annotations" / "pixel-level" / (Path(entry.file_name).stem + ".mat")
        gt = read_groundtruth(mat)
        image = read_image(entry.path)
        if gt.shape != image.shape[:2]:
            raise DataError(
                f"{mat}: groundtruth is {gt.shape[1]}x{gt.shape[0]} but {entry.file_name} is "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        labels = lut[resize_labels(gt, width).long()].to(torch.uint8)
        samples.append(Sample(resize_photo(image, width), labels, entry.image_id))
    return samples


def load_tagged(root: str, width: int, limit: int | None = None) -> tuple[list[Tensor], Tensor]:
    """Tag-only photos at ``width`` and their N×C presence targets over the parsing channels."""
    from fashionviewer.core.data.datasets.ccp_tagged import CCPTagged

    tagged = CCPTagged(root, limit=limit)
    channels = parsing_channels()
    targets = torch.zeros(len(tagged), len(channels))
    images = []
    for i, photo in enumerate(tagged.photos):
        for class_id in tagged.class_ids(i):
            targets[i, class_id + 1] = 1
        for name in tagged.tags(i):
            if name in BODY_LABELS:
                targets[i, channels.index(name)] = 1
        targets[i, 0] = 1
        images.append(resize_photo(read_image(photo), width))
    return images, targets


_JITTER = None


def augment(
    sample: Sample, crop: tuple[int, int], rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    """A random view of one photo: scale 0.75-1.25, crop/pad to ``crop`` (h, w), mirror, colour jitter."""
    global _JITTER
    if _JITTER is None:
        from torchvision.transforms import v2

        _JITTER = v2.ColorJitter(brightness=0.35, contrast=0.35, saturation=0.4, hue=0.04)
    image = sample.image.float()[None] / 255.0
    labels = sample.labels[None, None]
    scale = float(rng.uniform(0.75, 1.25))
    height, width = round(image.shape[-2] * scale), round(image.shape[-1] * scale)
    image = F.interpolate(
        image, size=(height, width), mode="bilinear", align_corners=False, antialias=scale < 1
    )
    labels = F.interpolate(labels, size=(height, width), mode="nearest")
    crop_h, crop_w = crop
    out_image = torch.full((1, 3, crop_h, crop_w), 0.0)
    out_image += torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    out_labels = torch.full((crop_h, crop_w), IGNORE, dtype=torch.uint8)
    y0 = (
        int(rng.integers(0, height - crop_h + 1))
        if height > crop_h
        else -int(rng.integers(0, crop_h - height + 1))
    )
    x0 = (
        int(rng.integers(0, width - crop_w + 1))
        if width > crop_w
        else -int(rng.integers(0, crop_w - width + 1))
    )
    sy, sx = max(y0, 0), max(x0, 0)  # source
    dy, dx = max(-y0, 0), max(-x0, 0)  # destination
    h, w = min(height - sy, crop_h - dy), min(width - sx, crop_w - dx)
    out_image[..., dy : dy + h, dx : dx + w] = image[..., sy : sy + h, sx : sx + w]
    out_labels[dy : dy + h, dx : dx + w] = labels[0, 0, sy : sy + h, sx : sx + w]
    if rng.random() < 0.5:
        out_image, out_labels = out_image.flip(-1), out_labels.flip(-1)
    out_image = _JITTER(out_image[0])
    if rng.random() < 0.05:
        out_image = out_image.mean(0, keepdim=True).expand(3, -1, -1).clone()
    return normalize(out_image), out_labels.long()


def normalize(image: Tensor) -> Tensor:
    """float 0-1 3×H×W -> the network's input (ImageNet mean/std, a convention only: no ImageNet weights)."""
    return (image - torch.tensor(IMAGE_MEAN).view(3, 1, 1)) / torch.tensor(IMAGE_STD).view(3, 1, 1)


def pad_to(image: Tensor, multiple: int = 32) -> Tensor:
    """Pad a normalized 3×H×W image at the bottom/right to sides divisible by ``multiple`` (with zeros = mean)."""
    height, width = image.shape[-2:]
    return F.pad(image, (0, (-width) % multiple, 0, (-height) % multiple))


def class_weights(samples: Sequence[Sample], channels: int) -> Tensor:
    """``(median frequency / frequency) ** 0.5`` per channel, clipped to 0.1-10 (1 for unseen channels)."""
    counts = torch.zeros(channels, dtype=torch.float64)
    for sample in samples:
        counts += torch.bincount(sample.labels.reshape(-1).long(), minlength=channels)[
            :channels
        ].double()
    seen = counts > 0
    weights = torch.ones(channels, dtype=torch.float64)
    weights[seen] = (counts[seen].median() / counts[seen]).sqrt().clamp(0.1, 10.0)
    return weights.float()
