"""The item classifier a parsing fine-tune on items (``--instances borders``) trains beside the network.

The parsing network tells items apart well but names them poorly: it classifies pixels, and a pixel of a
shirt looks like a pixel of a coat. A small CNN that sees each item whole tells them apart much better.
Every annotated item of the fine-tune's training images is cut out exactly as the re-scorer cuts a
predicted one (``fashionviewer.core.models.classifier.cnn_input``: box plus a margin, its mask,
``preprocess_crop``); training uses shifts, flips, random erasing and label smoothing.

Where it starts (``--items-init``):

* ``auto`` (default): the first bundled Fashion-MNIST classifier (``BUNDLED_CLASSIFIERS``, best first)
  that knows at least one of the folder's classes by name. Its rows for those classes are kept, the
  folder's other classes get new rows. The output layer alone is trained first (``PROBE_EPOCHS`` at
  ``PROBE_LR``: linear probing, so the new rows learn before the features may move), then the whole network
  gently (``START_EPOCHS`` at ``START_LR``): a few hundred items would otherwise overwrite what 60,000
  product images taught it. With no shared class it is trained from scratch;
* ``scratch``: ``cnn1`` trained from scratch (``ITEM_EPOCHS`` at ``ITEM_LR``);
* a bundled classifier's name or a checkpoint path: that classifier, as ``auto`` would use it.

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
from fashionviewer.core.inference.interactive_model import bundled_model_path
from fashionviewer.core.models import cnn
from fashionviewer.core.models.checkpoint import read_card, write_checkpoint
from fashionviewer.core.models.classifier import (
    BUNDLED_CLASSIFIERS,
    Classifier,
    cnn_input,
    load_classifier,
    preprocess_crop,
)

from .fmnist import augment

log = logging.getLogger("trainers.parsing")

ITEMS_NAME = "model_items"
ITEM_ARCHITECTURE = "cnn1"  # from scratch
ITEM_EPOCHS = 150
ITEM_BATCH = 64
ITEM_LR = 2e-3
ITEMS_INIT = "auto"
START_EPOCHS = 20  # from a bundled classifier
START_LR = 1e-4
PROBE_EPOCHS = 20  # first the output layer alone: a new class's row learns from a few items
PROBE_LR = 1e-2
# px round an item's mask: the margin the interactive network was benchmarked with
REFINE_MARGIN = 5
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


def check_items_init(choice: str) -> None:
    """``--items-init`` checked before anything is written: a classifier that cannot be loaded is a
    ``WeightsError`` naming it."""
    if choice not in ("auto", "scratch"):
        load_classifier(choice)


def item_refiner_entry() -> dict[str, Any] | None:
    """The parsing card's ``refine_items``: the bundled interactive network redraws each predicted item
    from its box (``core.inference.item_refiner.ItemRefiner``); None (said in one line) without it."""
    path = bundled_model_path()
    if not path.is_file():
        log.info("items are not redrawn: the interactive network %s is missing", path)
        return None
    return {"model": path.stem, "weights_sha256": sha256_file(path), "box_margin": REFINE_MARGIN}


def start_classifier(choice: str, classes: Sequence[str]) -> Classifier | None:
    """The classifier the item classifier starts from (see the module docstring); None: from scratch.
    A name or path that cannot be loaded is a ``WeightsError``."""
    if choice == "scratch":
        return None
    if choice != "auto":
        return load_classifier(choice)
    for name in BUNDLED_CLASSIFIERS:
        try:
            candidate = load_classifier(name)
        except WeightsError as exc:  # a missing bundled file: the next one
            log.info("item classifier: %s not used (%s)", name, exc)
            continue
        if set(candidate.classes) & set(classes):
            return candidate
    return None


def _started_model(start: Classifier | None, classes: Sequence[str]) -> torch.nn.Module:
    """A classifier with one output per class: ``start``'s weights and its rows of the classes it knows by
    name (the others new), or a fresh ``ITEM_ARCHITECTURE``."""
    if start is None:
        return cnn.build_classifier(ITEM_ARCHITECTURE, num_classes=len(classes))
    model = cnn.build_classifier(str(start.card["architecture"]), num_classes=len(classes))
    head, new_head = cnn.output_layer(model)
    _, old_head = cnn.output_layer(start.model)
    body = {
        key: value
        for key, value in start.model.state_dict().items()
        if key not in (f"{head}.weight", f"{head}.bias")
    }
    model.load_state_dict(body, strict=False)
    with torch.no_grad():
        for row, name in enumerate(classes):
            if name in start.classes:
                new_head.weight[row] = old_head.weight[start.classes.index(name)]
                new_head.bias[row] = old_head.bias[start.classes.index(name)]
    return model


def _fit(
    model: torch.nn.Module,
    parameters: list[torch.nn.Parameter],
    lr: float,
    epochs: int,
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
) -> None:
    """``epochs`` of one-cycle AdamW on ``parameters`` (the others stay as they are)."""
    steps = max(1, epochs * ((len(x) + ITEM_BATCH - 1) // ITEM_BATCH))
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps)
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


def train_item_classifier(
    items: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    out: Path,
    seed: int,
    annotations_sha256: str = "",
    epochs: int | None = None,
    start: Classifier | None = None,
    init_choice: str = ITEMS_INIT,
) -> dict[str, Any]:
    """Train the item classifier on the items (from ``start`` when given, else ``cnn1`` from scratch) and
    write ``out/ITEMS_NAME.pt`` with its card; returns the parsing card's ``rescorer`` entry."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = _started_model(start, classes)
    x, y = torch.from_numpy(items), torch.from_numpy(labels)
    start_time = time.perf_counter()
    if start is None:
        epochs = ITEM_EPOCHS if epochs is None else epochs
        lr = ITEM_LR
        _fit(model, list(model.parameters()), lr, epochs, x, y, generator)
    else:
        # linear probing, then fine-tuning (LP-FT): the new rows learn before the features may move, so
        # their random start does not pull the features away from what the start model knew
        epochs = START_EPOCHS if epochs is None else epochs
        lr = START_LR
        _fit(model, list(cnn.output_layer(model)[1].parameters()), PROBE_LR, PROBE_EPOCHS, x, y,
             generator)  # fmt: skip
        _fit(model, list(model.parameters()), lr, epochs, x, y, generator)
    model.eval()
    seconds = round(time.perf_counter() - start_time, 1)
    known = [c for c in classes if start is not None and c in start.classes]
    card = {
        "architecture": str(start.card["architecture"]) if start is not None else ITEM_ARCHITECTURE,
        "name": ITEMS_NAME,
        "task": "classification",
        "classes": list(classes),
        "test_time_augmentation": {"hflip": False},
        "annotations_sha256": annotations_sha256,  # a resumed fine-tune keeps it only for the same file
        "items_init": init_choice,  # and only for the same start
        "training": {
            "init": (
                f"{start.name} (weights SHA-256 {start.card.get('weights_sha256', '?')})"
                if start is not None
                else "random"
            ),
            "classes_from_init": known,
            "classes_added": [c for c in classes if c not in known],
            "data": "the fine-tune's training images: every annotated item, cut out as cnn_input does",
            "items": len(x),
            "items_per_class": np.bincount(labels, minlength=len(classes)).tolist(),
            "epochs": epochs,
            "batch_size": ITEM_BATCH,
            "optimizer": "AdamW, one-cycle",
            "lr": lr,
            "linear_probe": (
                {"epochs": PROBE_EPOCHS, "lr": PROBE_LR} if start is not None else None
            ),
            "label_smoothing": 0.1,
            "augmentation": "±3 px shifts, horizontal flips, random erasing 0.3",
            "seconds": seconds,
            "seed": seed,
        },
    }
    written = write_checkpoint(model, out / f"{ITEMS_NAME}.pt", card, stamp_date=False)
    log.info(
        "item classifier: %d items, %d epochs from %s, %.0f s",
        len(x),
        epochs,
        card["training"]["init"],
        seconds,
    )
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


def item_rescorer(
    setup: Any, data_path: str, out: Path, seed: int, init_choice: str = ITEMS_INIT
) -> dict[str, Any] | None:
    """The ``rescorer`` entry of a fine-tune on items: the classifier of ``out`` when a resumed run already
    trained it on the same annotation file from the same start, else one trained now; None (said in one
    line) when the folder's training images hold fewer than ``MIN_ITEMS`` items."""
    classes = [name for name in setup.plan.class_names if name in setup.folder_classes]
    existing = out / f"{ITEMS_NAME}.pt"
    if existing.is_file():
        try:
            card = read_card(existing, required=("classes",))
        except WeightsError:  # unreadable: trained again
            card = {}
        if (
            card.get("annotations_sha256") == setup.card_extra["annotations"]["sha256"]
            and card.get("items_init", ITEMS_INIT) == init_choice
        ):
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
    start = start_classifier(init_choice, classes)
    return train_item_classifier(
        items,
        labels,
        classes,
        out,
        seed,
        setup.card_extra["annotations"]["sha256"],
        start=start,
        init_choice=init_choice,
    )
