"""The item classifier a parsing fine-tune on items (``--instances borders``) trains beside the network.

The parsing network tells items apart well but names them poorly: it classifies pixels, and a pixel of a
shirt looks like a pixel of a coat. A small CNN that sees each item whole tells them apart much better
(the paper's Fashion-MNIST CNN, ``cnn1``, trained here from scratch on the folder's own items). Every
annotated item of the fine-tune's training images is cut out exactly as the re-scorer cuts a predicted one
(``fashionviewer.core.models.classifier.cnn_input``: box plus a margin, its mask, ``preprocess_crop``);
training uses shifts, flips, random erasing and label smoothing.

It is written as ``OUT/ITEMS_NAME.pt`` with its card, and the parsing card names it as its ``rescorer``
(``partial``: it knows the folder's classes only), so each predicted item's score under a class becomes
the network's score times the classifier's probability of that class
(``fashionviewer.core.inference.rescoring``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.base.paths import sha256_file
from fashionviewer.core.data.imageio import load_image
from fashionviewer.core.data.overlay import rasterize_mask
from fashionviewer.core.models import cnn
from fashionviewer.core.models.checkpoint import read_card, write_checkpoint
from fashionviewer.core.models.classifier import cnn_input, preprocess_crop

from .fmnist import augment

log = logging.getLogger("trainers.parsing")

ITEMS_NAME = "model_items"
ITEM_ARCHITECTURE = "cnn1"
ITEM_EPOCHS = 150
ITEM_BATCH = 64
ITEM_LR = 2e-3
MIN_ITEMS = 20  # fewer items than this teach a classifier nothing worth trusting


def folder_items(
    folder: str | Path, aset: Any, file_names: Sequence[str], classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N×28×28 cut-outs of every annotated item of ``file_names`` and their class indices."""
    name_of = {int(c["id"]): str(c["name"]) for c in aset.categories}
    inputs, labels = [], []
    for file_name in file_names:
        rec = aset.images[file_name]
        if not rec.annotations:
            continue
        image = load_image(Path(folder) / rec.file_name)
        for ann in rec.annotations:
            mask = ann.mask().astype(bool)
            if mask.any():
                inputs.append(cnn_input(image, rasterize_mask(mask), preprocess_crop))
                labels.append(list(classes).index(name_of[ann.category_id]))
    if not inputs:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)
    return np.stack(inputs), np.asarray(labels, np.int64)


def train_item_classifier(
    items: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    out: Path,
    seed: int,
    annotations_sha256: str = "",
    epochs: int = ITEM_EPOCHS,
) -> dict[str, Any]:
    """Train ``cnn1`` from scratch on the items and write ``out/ITEMS_NAME.pt`` with its card; returns the
    parsing card's ``rescorer`` entry."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = cnn.build_classifier(ITEM_ARCHITECTURE)
    x, y = torch.from_numpy(items), torch.from_numpy(labels)
    steps = epochs * ((len(x) + ITEM_BATCH - 1) // ITEM_BATCH)
    optimizer = torch.optim.AdamW(model.parameters(), lr=ITEM_LR, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, ITEM_LR, total_steps=steps)
    start = time.perf_counter()
    model.train()
    for _epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for first in range(0, len(x), ITEM_BATCH):
            batch = order[first : first + ITEM_BATCH]
            inputs = cnn.normalise(augment(x[batch], generator, shift=3, erasing=0.3))
            loss = F.cross_entropy(model(inputs), y[batch], label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    seconds = round(time.perf_counter() - start, 1)
    card = {
        "architecture": ITEM_ARCHITECTURE,
        "name": ITEMS_NAME,
        "task": "classification",
        "classes": list(classes),
        "test_time_augmentation": {"hflip": False},
        "annotations_sha256": annotations_sha256,  # a resumed fine-tune keeps it only for the same file
        "training": {
            "init": "random",
            "data": "the fine-tune's training images: every annotated item, cut out as cnn_input does",
            "items": len(x),
            "items_per_class": np.bincount(labels, minlength=len(classes)).tolist(),
            "epochs": epochs,
            "batch_size": ITEM_BATCH,
            "optimizer": "AdamW, one-cycle",
            "lr": ITEM_LR,
            "label_smoothing": 0.1,
            "augmentation": "±3 px shifts, horizontal flips, random erasing 0.3",
            "seconds": seconds,
            "seed": seed,
        },
    }
    written = write_checkpoint(model, out / f"{ITEMS_NAME}.pt", card, stamp_date=False)
    log.info("item classifier: %d items, %d epochs, %.0f s", len(x), epochs, seconds)
    return rescorer_entry(written["weights_sha256"])


def rescorer_entry(weights_sha256: str) -> dict[str, Any]:
    """The parsing card's ``rescorer`` naming the item classifier with these weights."""
    return {
        "classifier": ITEMS_NAME,
        "weights_sha256": weights_sha256,
        "hflip": True,
        "power": 1.0,
        "partial": True,
    }


def item_rescorer(setup: Any, data_path: str, out: Path, seed: int) -> dict[str, Any] | None:
    """The ``rescorer`` entry of a fine-tune on items: the classifier of ``out`` when a resumed run already
    trained it on the same annotation file, else one trained now; None (said in one line) when the
    folder's training images hold fewer than ``MIN_ITEMS`` items."""
    classes = [name for name in setup.plan.class_names if name in setup.folder_classes]
    existing = out / f"{ITEMS_NAME}.pt"
    if existing.is_file():
        try:
            card = read_card(existing, required=("classes",))
        except WeightsError:  # unreadable: trained again
            card = {}
        if card.get("annotations_sha256") == setup.card_extra["annotations"]["sha256"]:
            log.info("item classifier: kept from the earlier run (%s)", existing)
            return rescorer_entry(sha256_file(existing))
    by_id = {rec.image_id: name for name, rec in setup.aset.images.items()}
    train_files = [by_id[sample.image_id] for sample in setup.user.train]
    items, labels = folder_items(data_path, setup.aset, train_files, classes)
    if len(items) < MIN_ITEMS:
        log.info(
            "item classifier: not trained (%d items in the training images, fewer than %d)",
            len(items),
            MIN_ITEMS,
        )
        return None
    return train_item_classifier(
        items, labels, classes, out, seed, setup.card_extra["annotations"]["sha256"], ITEM_EPOCHS
    )
