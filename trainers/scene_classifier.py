"""Fine-tune a Fashion-MNIST CNN on the items of a detection dataset, as a re-scorer for its Mask R-CNN.

    python -m trainers.scene_classifier --data-path runs/scenes12k --init fvnet --epochs 1 --out runs/fvnet_scenes

The dataset is a COCO instance dataset laid out as ``fashionviewer.core.data.datasets.fmnist_scenes``
writes it (``ROOT/annotations/instances_{train,val}.json``, images in ``ROOT/{train,val}/``), with
category names among the classifier's classes. Every ground-truth item is cut out exactly as the
viewer and the re-scorer cut a predicted one (``fashionviewer.core.models.classifier.cnn_input``: its box plus
a margin, its mask, ``preprocess_crop``), so the CNN learns the items as it will see them: tinted,
scaled, partly covered. Training starts from a bundled classifier (``--init``), with ±2 px shifts and
flips, label smoothing and AdamW; accuracy on the val items is measured each epoch.

Writes ``OUT/NAME.pt`` (state_dict, loadable with ``fashionviewer.core.models.classifier.load_classifier``) and
``OUT/NAME.json`` (model card: init, data, epochs, seconds, val item accuracy per class and overall,
weights SHA-256) atomically after every epoch. Name the classifier in a Mask R-CNN card's
``"rescorer"`` to use it (``fashionviewer.core.inference.rescoring``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fashionviewer.core.base.atomic import ensure_writable_dir
from fashionviewer.core.base.errors import DataError, FashionViewerError
from fashionviewer.core.data.datasets.coco import find_annotation_file, read_coco_ground_truth
from fashionviewer.core.data.imageio import load_image
from fashionviewer.core.data.masks import decode_mask
from fashionviewer.core.data.overlay import rasterize_mask
from fashionviewer.core.models import cnn
from fashionviewer.core.models.checkpoint import write_checkpoint
from fashionviewer.core.models.classifier import cnn_input, load_classifier, preprocess_crop

from .common import install_cancel_handler, positive_int, run_cli
from .fmnist import augment, evaluate

log = logging.getLogger(__name__)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data-path", required=True, help="COCO instance dataset root (fmnist-scenes layout)"
    )
    p.add_argument(
        "--init", default="fvnet", help="bundled classifier name or checkpoint path to start from"
    )
    p.add_argument("--name", default=None, help="output name (default: INIT_scenes)")
    p.add_argument("--epochs", type=positive_int, default=4)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument(
        "--limit", type=int, default=0, help="use the first N train images only (0: all)"
    )
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", default="runs/scene_classifier", help="output folder (checked writable first)"
    )
    return p


def item_crops(
    root: Path, split: str, classes: Sequence[str], limit: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N×28×28 CNN inputs of every ground-truth item in ``split``, and their class indices."""
    gt = read_coco_ground_truth(find_annotation_file(root, split))
    names = {c["id"]: c["name"] for c in gt["categories"]}
    unknown = sorted(set(names.values()) - set(classes))
    if unknown:
        raise DataError(
            f"{root}: categories {', '.join(unknown)} are not classes of the classifier "
            f"({', '.join(classes)})"
        )
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in gt["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    records = gt["images"][:limit] if limit > 0 else gt["images"]
    inputs, labels = [], []
    for record in tqdm(records, desc=f"{split} items", unit="image", file=sys.stderr, disable=None):
        anns = by_image.get(record["id"], [])
        if not anns:
            continue
        image = load_image(root / split / record["file_name"])
        for ann in anns:
            raster = rasterize_mask(decode_mask(ann["segmentation"]))
            if raster.mask.any():
                inputs.append(cnn_input(image, raster, preprocess_crop))
                labels.append(classes.index(names[ann["category_id"]]))
    if not inputs:
        raise DataError(f"{root}: no items with masks in split '{split}'")
    return np.stack(inputs), np.asarray(labels, np.int64)


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Fine-tune and save every epoch; returns the final model card."""
    out = ensure_writable_dir(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    root = Path(args.data_path)
    if not root.is_dir():
        raise FashionViewerError(f"--data-path {root}: no such folder")
    classifier = load_classifier(args.init)
    classes = list(classifier.classes)
    name = args.name or f"{Path(str(args.init)).stem}_scenes"
    start = time.perf_counter()
    train_x, train_y = (torch.from_numpy(a) for a in item_crops(root, "train", classes, args.limit))
    val_x, val_y = (torch.from_numpy(a) for a in item_crops(root, "val", classes))
    model, device = classifier.model, torch.device("cpu")
    log.info(
        "%d train items, %d val items; %s before fine-tuning: val item accuracy %.4f",
        len(train_x),
        len(val_x),
        args.init,
        _accuracy(model, val_x, val_y, device),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    stop = install_cancel_handler()
    history: list[dict[str, Any]] = []
    card: dict[str, Any] = {}
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        for first in tqdm(
            range(0, len(order), args.batch_size),
            desc=f"epoch {epoch}/{args.epochs}",
            unit="batch",
            file=sys.stderr,
            disable=None,
        ):
            batch = order[first : first + args.batch_size]
            x = cnn.normalise(augment(train_x[batch], generator))
            loss = F.cross_entropy(model(x), train_y[batch], label_smoothing=args.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if stop["requested"]:
                break
        history.append(
            {
                "epoch": epoch,
                "val_item_accuracy": round(_accuracy(model, val_x, val_y, device), 4),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        log.info("epoch %d: val item accuracy %.4f", epoch, history[-1]["val_item_accuracy"])
        card = _save(
            model, out, name, args, classifier.card, classes, history, val_x, val_y, len(train_x)
        )
        if stop["requested"]:
            log.warning("stopped after epoch %d; %s holds it", epoch, out / f"{name}.pt")
            break
    return card


def _accuracy(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device
) -> float:
    _, predicted = evaluate(model, x, y, device)
    return float((predicted == y.numpy()).mean())


def _save(
    model: torch.nn.Module,
    out: Path,
    name: str,
    args: argparse.Namespace,
    init_card: dict[str, Any],
    classes: list[str],
    history: list[dict[str, Any]],
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    n_train: int,
) -> dict[str, Any]:
    weights = out / f"{name}.pt"
    _, predicted = evaluate(model, val_x, val_y, torch.device("cpu"))
    truth = val_y.numpy()
    per_class = {
        c: round(float((predicted[truth == k] == k).mean()), 4)
        for k, c in enumerate(classes)
        if (truth == k).any()
    }
    card = {
        key: init_card[key]
        for key in ("architecture", "parameters", "classes", "input")
        if key in init_card
    }
    card.update(
        {
            "name": name,
            "task": "classification",
            "training": {
                "init": str(args.init),
                "data": str(args.data_path),
                "items": n_train,
                "epochs": len(history),
                "batch_size": args.batch_size,
                "optimizer": "AdamW",
                "lr": args.lr,
                "label_smoothing": args.label_smoothing,
                "augmentation": "±2 px shifts, horizontal flips",
                "seconds": history[-1]["seconds"],
                "device": "cpu",
                "torch_threads": torch.get_num_threads(),
                "command": (
                    f"python -m trainers.scene_classifier --data-path {args.data_path} --init {args.init} "
                    f"--epochs {args.epochs} --batch-size {args.batch_size} --lr {args.lr} "
                    f"--seed {args.seed} --out {args.out}"
                ),
            },
            "metrics": {
                "val_item_accuracy": history[-1]["val_item_accuracy"],
                "val_items": len(val_x),
                "per_class_accuracy": per_class,
                "measured_by": "trainers.scene_classifier on the val split's ground-truth items, cut out as "
                "fashionviewer.core.models.classifier.cnn_input cuts predicted ones",
            },
            "history": history,
        }
    )
    # adds weights_file and weights_sha256
    return write_checkpoint(model, weights, card, stamp_date=False)


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli(main, get_args_parser(), argv)


if __name__ == "__main__":
    sys.exit(cli())
