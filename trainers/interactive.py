"""Train the interactive segmentation network from scratch: ``python -m trainers.interactive --out runs/interactive``.

:class:`~fashionviewer.core.models.interactive_net.InteractiveNet` learns box and/or clicks -> one object's
mask on the Clothing Co-Parsing training photos (``CCPDataset``'s seeded split: 700 train, the 100 val
photos never trained on). Objects: every garment region of the iMaterialist taxonomy (two shoes are one
region), and each connected part of >= ``--min-area`` px of a region with several (one shoe), class-agnostic.

Recipe (the field's usual one, kept cheap for a CPU): a square crop around the object's jittered box (box
mode) or around a click (clicks-only mode: a window of 0.3-0.6 of the photo's longer side, or one around the
object as the inference zoom-in makes), resized to 160 px, mirrored, colour-jittered; random extra clicks
(inside the object: positive, around it: negative); then iterative training: the network runs 0-3 times
(each view its own number) without gradients on the same cached encoder features, each time adding a click at
the centre of the largest error region (the benchmark's oracle rule) and feeding its mask back as the previous
mask; loss BCE + dice on the last pass. A share of the box views (``--box-only-share``, default
``BOX_ONLY_SHARE``) is the box alone, no click: the box tool's first answer, which the gradient-free passes
would never train.

Multi-process: ``torchrun --nproc_per_node=N -m trainers.interactive ...``; rank 0 validates and saves.
Files in ``--out``, written atomically every epoch: ``model.pt`` + ``model.json``, ``model_best.*`` (best
validation score: mean IoU from the box alone, after two oracle clicks, and from one click at the innermost
point, all at crop resolution on a fixed set of validation objects) and ``training_state.pt`` (``--resume
auto``). ``--export CHECKPOINT --out resources/models --name interactive`` writes the shipped model and card.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fashionviewer.core.base.atomic import ensure_writable_dir
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.base.events import EventWriter
from fashionviewer.core.data.datasets.ccp import CCPDataset
from fashionviewer.core.data.imageio import load_image
from fashionviewer.core.models.interactive_net import (
    CROP_SIZE,
    INTERACTIVE_ARCHITECTURES,
    CropWindow,
    box_map,
    build_interactive_net,
    click_disks,
    normalize_crop,
    save_interactive_checkpoint,
)
from fashionviewer.core.viewer.trainer_menu import TRAINER_MENUS

from . import checkpointing, distributed
from .common import (
    add_export_arguments,
    add_run_arguments,
    agreed_loss,
    end_event,
    fraction,
    install_cancel_handler,
    positive_int,
    resolve_device,
    run_cli,
    warmup_cosine,
)

log = logging.getLogger("trainers.interactive")

# What the viewer's Train menu offers, declared in the core (which never imports trainers) and checked
# against get_args_parser by tests/trainers/test_menu_options.py.
MENU = TRAINER_MENUS["interactive"]

STATE_FILE = checkpointing.STATE_FILE
# Share of box views trained on the box alone (no click, no previous mask): the box tool's first answer is
# the figure users judge first, and the gradient-free passes never train it.
BOX_ONLY_SHARE = 0.35


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train the from-scratch interactive segmentation network on CCP photos.",
        add_help=add_help,
    )
    p.add_argument("--data-path", default=None, help="CCP root (default ../shared/data/ccp)")
    p.add_argument(
        "--architecture", choices=INTERACTIVE_ARCHITECTURES, default=INTERACTIVE_ARCHITECTURES[0]
    )
    p.add_argument("--epochs", type=positive_int, default=20)
    p.add_argument(
        "--init-from",
        default=None,
        metavar="MODEL",
        help="start from trained weights: the bundled 'interactive' or a model.pt "
        "(the optimizer and learning-rate schedule start afresh)",
    )
    p.add_argument("--steps-per-epoch", type=positive_int, default=200)
    p.add_argument("--batch-size", type=positive_int, default=16, help="crops per process and step")
    p.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument(
        "--max-iterations", type=int, default=3, help="at most this many gradient-free click passes"
    )
    p.add_argument(
        "--box-only-share",
        type=fraction,
        default=BOX_ONLY_SHARE,
        help="share of the box views trained on the box alone, no click (the box tool's first answer)",
    )
    p.add_argument(
        "--min-area", type=positive_int, default=400, help="objects of at least this many pixels"
    )
    p.add_argument(
        "--val-size", type=int, default=100, help="validation photos (CCPDataset's seeded split)"
    )
    p.add_argument(
        "--val-objects", type=int, default=200, help="validation objects scored every epoch"
    )
    p.add_argument(
        "--limit", type=int, default=None, help="use only the first N training photos (tests)"
    )
    add_run_arguments(p, out="runs/interactive", device="cpu", threads=1, state_file=STATE_FILE)
    g = add_export_arguments(
        p, name="interactive", name_help="exported file stem (bundled name: interactive)"
    )
    g.add_argument(
        "--benchmark", default=None, help="a benchmarks/results JSON whose figures go into the card"
    )
    return p


# --------------------------------------------------------------------------- data


@dataclass
class Photo:
    image: np.ndarray  # uint8 H×W×3
    labels: np.ndarray  # uint8 H×W, iMaterialist label per pixel (0: none)


@dataclass
class TrainObject:
    photo: int
    label: int
    part: np.ndarray | None  # a connected part's bool mask, or None for the whole region
    box: tuple[int, int, int, int]


def load_photos(
    root: str | None, split: str, val_size: int, seed: int, limit: int | None = None
) -> list[Photo]:
    dataset = CCPDataset(
        root, split, val_size=val_size, seed=seed, limit=limit, taxonomy="imaterialist"
    )
    photos = []
    for index, entry in enumerate(dataset.images):
        labels = np.zeros((entry.height, entry.width), dtype=np.uint8)
        for ann in dataset._annotations(index):
            labels[ann["segmentation"]] = ann["label"]
        photos.append(Photo(load_image(entry.path), labels))
    return photos


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def find_objects(photos: Sequence[Photo], min_area: int, parts: bool = True) -> list[TrainObject]:
    """Every label region of >= ``min_area`` px, and (``parts``) each such connected part of a split region."""
    objects = []
    for i, photo in enumerate(photos):
        for label in np.unique(photo.labels):
            if label == 0:
                continue
            region = photo.labels == label
            if region.sum() < min_area:
                continue
            objects.append(TrainObject(i, int(label), None, tight_box(region)))
            if not parts:
                continue
            count, comp, stats, _ = cv2.connectedComponentsWithStats(
                region.astype(np.uint8), connectivity=8
            )
            big = [k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= min_area]
            if len(big) > 1:
                for k in big:
                    part = comp == k
                    objects.append(TrainObject(i, int(label), part, tight_box(part)))
    return objects


def object_mask(photos: Sequence[Photo], obj: TrainObject) -> np.ndarray:
    return obj.part if obj.part is not None else photos[obj.photo].labels == obj.label


def innermost_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel farthest from the mask's border (the benchmark's first click)."""
    distance = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return int(x), int(y)


def error_click(truth: np.ndarray, pred: np.ndarray) -> tuple[bool, tuple[int, int]] | None:
    """(positive?, (x, y)): the point farthest inside the largest error region (the oracle's rule)."""
    best = None
    for positive, error in ((True, truth & ~pred), (False, pred & ~truth)):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            error.astype(np.uint8), connectivity=8
        )
        if count > 1:
            k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            if best is None or stats[k, cv2.CC_STAT_AREA] > best[0]:
                best = (int(stats[k, cv2.CC_STAT_AREA]), positive, labels == k)
    if best is None:
        return None
    return best[1], innermost_point(best[2])


@dataclass
class Sample:
    crop: np.ndarray  # uint8 S×S×3
    truth: np.ndarray  # bool S×S
    box: np.ndarray  # float32 S×S
    inside: np.ndarray  # float32 S×S
    positive: list[tuple[float, float]] = field(default_factory=list)  # crop coordinates
    negative: list[tuple[float, float]] = field(default_factory=list)
    passes: int = 0  # gradient-free error-click passes before the one that is trained


def _random_point(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    k = int(rng.integers(len(xs)))
    return float(xs[k]) + 0.5, float(ys[k]) + 0.5


def make_sample(
    photos: Sequence[Photo],
    obj: TrainObject,
    rng: np.random.Generator,
    max_passes: int = 3,
    box_only_share: float = BOX_ONLY_SHARE,
) -> Sample:
    """One random training view of ``obj`` (see the module docstring)."""
    photo = photos[obj.photo]
    height, width = photo.labels.shape
    mask = object_mask(photos, obj)
    x0, y0, x1, y1 = obj.box
    bw, bh = x1 - x0, y1 - y0
    box = None
    if rng.random() < 0.6:  # box mode: the user's box, a few px loose or tight
        jitter = lambda side: float(rng.uniform(-2, 10) + rng.normal(0, 0.03 * side))  # noqa: E731
        box = (x0 - jitter(bw), y0 - jitter(bh), x1 + jitter(bw), y1 + jitter(bh))
        box = (
            max(0.0, box[0]),
            max(0.0, box[1]),
            min(float(width), box[2]),
            min(float(height), box[3]),
        )
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            box = (float(x0), float(y0), float(x1), float(y1))
        window = CropWindow.around(*box, margin=float(rng.uniform(0.1, 0.3)))
        first = None
    # clicks only: a first click inside, a window around it (first pass) or the object (zoom-in
    # pass)
    else:
        if rng.random() < 0.5:
            first = innermost_point(mask)
        else:
            distance = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[
                1:-1, 1:-1
            ]
            first = _random_point(distance >= 0.4 * distance.max(), rng)
        fx, fy = first
        if rng.random() < 0.5:
            side = float(rng.uniform(0.3, 0.6)) * max(height, width)
            shift = rng.uniform(-0.25, 0.25, size=2) * side
            window = CropWindow(fx - side / 2 + shift[0], fy - side / 2 + shift[1], side)
        else:
            window = CropWindow.around(x0, y0, x1, y1, margin=float(rng.uniform(0.1, 0.4)))
    crop = window.crop_image(photo.image)
    truth = window.crop_mask(mask) >= 0.5
    sample = Sample(crop, truth, box_map(window, box), window.inside_map(height, width))
    if first is not None:
        sample.positive.append(window.to_crop(*first))
    # the box alone, no click yet: the first answer
    if box is not None and rng.random() < box_only_share:
        return _flip_and_jitter(sample, rng)
    sample.passes = int(rng.integers(0, max_passes + 1))
    # random extra clicks, as users click: inside the object, and on nearby non-object pixels
    for _ in range(int(rng.choice([0, 0, 1, 2]))):
        point = _random_point(cv2.erode(truth.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0, rng)
        if point is not None:
            sample.positive.append(point)
    near = cv2.dilate(truth.astype(np.uint8), np.ones((31, 31), np.uint8)) > 0
    for _ in range(int(rng.choice([0, 0, 0, 1, 2]))):
        point = _random_point(
            near & ~(cv2.dilate(truth.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0), rng
        )
        if point is not None:
            sample.negative.append(point)
    return _flip_and_jitter(sample, rng)


def _flip_and_jitter(sample: Sample, rng: np.random.Generator) -> Sample:
    if rng.random() < 0.5:  # mirror
        size = CROP_SIZE
        sample.crop, sample.truth = sample.crop[:, ::-1].copy(), sample.truth[:, ::-1].copy()
        sample.box, sample.inside = sample.box[:, ::-1].copy(), sample.inside[:, ::-1].copy()
        sample.positive = [(size - x, y) for x, y in sample.positive]
        sample.negative = [(size - x, y) for x, y in sample.negative]
    # colour jitter: brightness, contrast, saturation
    image = sample.crop.astype(np.float32)
    grey = image.mean(2, keepdims=True)
    image = grey + (image - grey) * float(rng.uniform(0.6, 1.4))
    image = (image - image.mean()) * float(rng.uniform(0.7, 1.3)) + image.mean() * float(
        rng.uniform(0.7, 1.3)
    )
    sample.crop = np.clip(image, 0, 255).astype(np.uint8)
    return sample


def guidance(samples: Sequence[Sample], previous: Tensor | None) -> Tensor:
    """N×5×S×S guidance maps of ``samples`` (see interactive_net); ``previous``: N×1×S×S probabilities."""
    maps = np.stack(
        [
            np.stack(
                [
                    s.box,
                    s.inside,
                    click_disks(s.positive),
                    click_disks(s.negative),
                    np.zeros_like(s.box),
                ]
            )
            for s in samples
        ]
    )
    out = torch.from_numpy(maps)
    if previous is not None:
        out[:, 4] = previous[:, 0]
    return out


def add_error_clicks(samples: Sequence[Sample], probabilities: Tensor) -> None:
    for sample, prob in zip(samples, probabilities[:, 0].numpy(), strict=False):
        click = error_click(sample.truth, prob >= 0.5)
        if click is not None:
            positive, (x, y) = click
            (sample.positive if positive else sample.negative).append((x + 0.5, y + 0.5))


def loss_fn(logits: Tensor, truth: Tensor) -> Tensor:
    """BCE + soft dice (per crop, averaged)."""
    bce = F.binary_cross_entropy_with_logits(logits, truth)
    prob = logits.sigmoid().flatten(1)
    target = truth.flatten(1)
    dice = 1 - (2 * (prob * target).sum(1) + 1) / (prob.sum(1) + target.sum(1) + 1)
    return bce + dice.mean()


# --------------------------------------------------------------------------- validation


def validation_views(
    photos: Sequence[Photo], objects: Sequence[TrainObject]
) -> list[tuple[Sample, Sample]]:
    """(box view, clicks-only view) of each object: the benchmark's box (5 px loose) and innermost click."""
    views = []
    for obj in objects:
        photo = photos[obj.photo]
        height, width = photo.labels.shape
        mask = object_mask(photos, obj)
        x0, y0, x1, y1 = obj.box
        box = (max(0, x0 - 5), max(0, y0 - 5), min(width, x1 + 5), min(height, y1 + 5))
        window = CropWindow.around(*box, margin=0.2)
        boxed = Sample(
            window.crop_image(photo.image),
            window.crop_mask(mask) >= 0.5,
            box_map(window, box),
            window.inside_map(height, width),
        )
        fx, fy = innermost_point(mask)
        side = 0.4 * max(height, width)
        window = CropWindow(fx - side / 2, fy - side / 2, side)
        clicked = Sample(
            window.crop_image(photo.image),
            window.crop_mask(mask) >= 0.5,
            box_map(window, None),
            window.inside_map(height, width),
            positive=[window.to_crop(fx, fy)],
        )
        views.append((boxed, clicked))
    return views


def _iou(pred: np.ndarray, truth: np.ndarray) -> float:
    return float((pred & truth).sum() / max(1, (pred | truth).sum()))


def validate(
    model: nn.Module, views: Sequence[tuple[Sample, Sample]], batch: int = 50
) -> dict[str, float]:
    """Mean IoU (crop resolution): box alone, box + 2 oracle clicks, one innermost click."""
    model.eval()
    scores: dict[str, list[float]] = {
        "val_box_iou": [],
        "val_box_2clicks_iou": [],
        "val_click_iou": [],
    }
    with torch.inference_mode():
        for start in range(0, len(views), batch):
            chunk = views[start : start + batch]
            for kind, samples in (("box", [v[0] for v in chunk]), ("click", [v[1] for v in chunk])):
                samples = [
                    Sample(s.crop, s.truth, s.box, s.inside, list(s.positive), list(s.negative))
                    for s in samples
                ]
                features = model.encode(torch.stack([normalize_crop(s.crop) for s in samples]))
                prob = model.decide(features, guidance(samples, None)).sigmoid()
                first = [
                    _iou(p >= 0.5, s.truth)
                    for p, s in zip(prob[:, 0].numpy(), samples, strict=False)
                ]
                if kind == "click":
                    scores["val_click_iou"] += first
                    continue
                scores["val_box_iou"] += first
                for _ in range(2):
                    add_error_clicks(samples, prob)
                    prob = model.decide(features, guidance(samples, prob)).sigmoid()
                scores["val_box_2clicks_iou"] += [
                    _iou(p >= 0.5, s.truth)
                    for p, s in zip(prob[:, 0].numpy(), samples, strict=False)
                ]
    out = {key: round(float(np.mean(v)), 4) for key, v in scores.items()}
    out["val_score"] = round(float(np.mean(list(out.values()))), 4)
    return out


# --------------------------------------------------------------------------- main


@dataclass
class Progress:
    history: list[dict[str, Any]] = field(default_factory=list)
    first_epoch: int = 1
    seconds: float = 0.0
    best_score: float = -1.0
    samples: int = 0
    # --init-from: the start weights (name, SHA-256, their epochs); kept across --resume
    init: dict[str, Any] | None = None


def _initial_weights(args: argparse.Namespace, model: nn.Module) -> dict[str, Any] | None:
    """``--init-from``: copy a trained network's weights into ``model`` (the optimizer and schedule
    start afresh); returns what the card records of it."""
    if not args.init_from:
        return None
    from fashionviewer.core.inference.interactive_model import BUNDLED_NAME, bundled_model_path
    from fashionviewer.core.models.interactive_net import load_interactive_checkpoint

    path = bundled_model_path() if args.init_from == BUNDLED_NAME else Path(args.init_from)
    trained, card = load_interactive_checkpoint(path)
    if card.get("architecture") != args.architecture:
        raise FashionViewerError(
            f"{path}: a {card.get('architecture')} network, not --architecture {args.architecture}"
        )
    model.load_state_dict(trained.state_dict())
    return {
        "from": args.init_from,
        "weights_sha256": card.get("weights_sha256"),
        "epochs": card.get("epochs"),
    }


def model_card(
    args: argparse.Namespace,
    progress: Progress,
    n_train: int,
    n_objects: int,
    n_val: int,
    world_size: int,
) -> dict[str, Any]:
    last = progress.history[-1] if progress.history else {}
    return {
        "task": "interactive segmentation: a box and/or positive/negative clicks -> one object's mask, class-agnostic",
        "weights": "trained",
        "init": progress.init or "none",
        "domain": "photos",
        "dataset": {
            "name": "ccp",
            "train_images": n_train,
            "train_objects": n_objects,
            "val_images": n_val,
            "split": f"CCPDataset seeded split: seed {args.seed}, val_size {args.val_size} "
            "(validation photos never trained on)",
            "objects": f"iMaterialist garment regions >= {args.min_area} px and their connected parts",
        },
        "epochs": last.get("epoch", 0),
        "metrics": {key: value for key, value in last.items() if key.startswith("val_")},
        "training": {
            "optimizer": "adamw",
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "batch_size": args.batch_size,
            "steps_per_epoch": args.steps_per_epoch,
            "world_size": world_size,
            "warmup_steps": args.warmup_steps,
            "max_iterations": args.max_iterations,
            "box_only_share": args.box_only_share,
            "seed": args.seed,
            "seconds": round(progress.seconds, 1),
            "samples_seen": progress.samples,
            "threads": args.threads,
            "loss": "BCE + dice",
        },
        "history": progress.history,
    }


def export(args: argparse.Namespace) -> dict[str, Any]:
    """Write ``--out/--name.pt`` + card from a trained checkpoint; ``--benchmark`` figures go into the card."""
    from fashionviewer.core.models.interactive_net import load_interactive_checkpoint

    out = ensure_writable_dir(args.out)
    model, card = load_interactive_checkpoint(args.export)
    card = {k: v for k, v in card.items() if k not in ("date", "weights_file", "weights_sha256")}
    card["exported_from"] = str(args.export)
    card.setdefault("domain", "photos")  # trained on CCP's street photos
    if args.benchmark:
        try:
            record = json.loads(Path(args.benchmark).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FashionViewerError(
                f"--benchmark {args.benchmark}: not a readable JSON file ({exc})"
            ) from None
        if not isinstance(record, dict) or "tables" not in record:
            raise FashionViewerError(
                f"--benchmark {args.benchmark}: not a benchmarks/interactive_segmentation.py "
                "result (no 'tables')"
            )
        sample = {k: v for k, v in (record.get("sample") or {}).items() if k != "baseline_subset"}
        card["benchmark"] = {
            "command": record.get("command"),
            "date": record.get("date"),
            "sample": sample,
            "protocol": record.get("protocol"),
            "results": {label: figures for label, figures in record["tables"]},
        }
    written = save_interactive_checkpoint(model, out / f"{args.name}.pt", card)
    log.info("wrote %s (+ %s)", out / f"{args.name}.pt", f"{args.name}.json")
    return written


def train_step(model: nn.Module, samples: list[Sample], device: torch.device) -> Tensor:
    """Encoder once with gradients; each sample's click passes without (``Sample.passes``); the last pass's loss."""
    images = torch.stack([normalize_crop(s.crop) for s in samples]).to(device)
    truth = torch.from_numpy(np.stack([s.truth for s in samples])[:, None].astype(np.float32)).to(
        device
    )
    core = getattr(model, "module", model)
    features = (
        core.encode(images) if not isinstance(model, nn.parallel.DistributedDataParallel) else None
    )
    previous = None
    iterations = max(s.passes for s in samples)
    if iterations:
        previous = torch.zeros(len(samples), 1, CROP_SIZE, CROP_SIZE)
        with torch.no_grad():
            frozen = [f.detach() for f in (features or core.encode(images))]
            for k in range(iterations):
                # each sample its own number of passes
                todo = [i for i, s in enumerate(samples) if s.passes > k]
                prob = (
                    core.decide(
                        [f[todo] for f in frozen],
                        guidance([samples[i] for i in todo], previous[todo]).to(device),
                    )
                    .sigmoid()
                    .cpu()
                )
                previous[todo] = prob
                add_error_clicks([samples[i] for i in todo], prob)
    maps = guidance(samples, previous).to(device)
    logits = core.decide(features, maps) if features is not None else model(images, maps)
    return loss_fn(logits, truth)


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Train, validate and checkpoint every epoch; returns the last model card (rank 0; ``{}`` elsewhere)."""
    if args.export:
        return export(args)
    out = ensure_writable_dir(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    info, device = distributed.init_distributed(resolve_device(args.device))
    torch.manual_seed(args.seed + info.rank)
    start = checkpointing.resume_file(args.resume, out / STATE_FILE)

    train = load_photos(args.data_path, "train", args.val_size, args.seed, args.limit)
    objects = find_objects(train, args.min_area)
    if not objects:
        raise FashionViewerError(f"no object of >= {args.min_area} px in the training photos")
    views: list[tuple[Sample, Sample]] = []
    n_val = 0
    if info.rank == 0 and args.val_objects > 0:
        val = load_photos(args.data_path, "val", args.val_size, args.seed)
        n_val = len(val)
        val_objects = find_objects(val, args.min_area, parts=False)
        step = max(1, len(val_objects) // args.val_objects)
        views = validation_views(val, val_objects[::step][: args.val_objects])
    model = build_interactive_net(args.architecture).to(device)
    init = _initial_weights(args, model) if start is None else None
    total = args.steps_per_epoch * args.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = warmup_cosine(optimizer, args.warmup_steps, total)
    progress = Progress(init=init)
    if start is not None:
        progress = _restore(start, model, optimizer, scheduler)
    core = model
    model = distributed.wrap_model(model, info, device)

    stop = install_cancel_handler()
    last_path = out / f"{checkpointing.LAST_NAME}.pt"
    card: dict[str, Any] = {}
    with EventWriter(args.events if info.rank == 0 else None) as events:
        events.emit(
            "start",
            trainer="interactive",
            model=args.architecture,
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            device=str(device),
            out=str(out),
            world_size=info.world_size,
        )
        with end_event(events, last_path):
            for epoch in range(progress.first_epoch, args.epochs + 1):
                t0 = time.perf_counter()
                rng = np.random.default_rng([args.seed, epoch, info.rank])
                model.train()
                running = 0.0
                for step in range(args.steps_per_epoch):
                    chosen = rng.integers(0, len(objects), size=args.batch_size)
                    samples = [
                        make_sample(
                            train, objects[int(i)], rng, args.max_iterations, args.box_only_share
                        )
                        for i in chosen
                    ]
                    loss = train_step(model, samples, device)
                    value = agreed_loss(loss, stop["requested"])
                    if not math.isfinite(value):
                        raise FashionViewerError(
                            f"epoch {epoch} step {step + 1}: the loss is {value}; "
                            "lower --lr and start again"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    running += value
                    progress.samples += args.batch_size * info.world_size
                    events.emit(
                        "step",
                        epoch=epoch,
                        step=step + 1,
                        steps=args.steps_per_epoch,
                        loss=round(value, 5),
                        lr=optimizer.param_groups[0]["lr"],
                    )
                record: dict[str, Any] = {
                    "epoch": epoch,
                    "train_loss": round(running / args.steps_per_epoch, 5),
                }
                if info.rank == 0 and views:
                    record.update(validate(core, views))
                seconds = time.perf_counter() - t0
                record["seconds"] = round(seconds, 1)
                progress.history.append(record)
                progress.seconds += seconds
                if info.rank == 0:
                    card = model_card(
                        args, progress, len(train), len(objects), n_val, info.world_size
                    )
                    card = _save_epoch(out, core, card, optimizer, scheduler, args, progress)
                    log.info(
                        "epoch %d/%d loss %.4f | %s | %.0fs",
                        epoch,
                        args.epochs,
                        record["train_loss"],
                        " ".join(f"{k} {v}" for k, v in record.items() if k.startswith("val_")),
                        seconds,
                    )
                    events.emit("epoch", epochs=args.epochs, checkpoint=str(last_path), **record)
                distributed.barrier()
    return card


def _restore(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> Progress:
    def check(state: dict) -> str | None:
        if state.get("trainer") == "interactive":
            return None
        return "not a trainers.interactive training state"

    state = checkpointing.restore(path, model, optimizer, scheduler, check=check)
    return Progress(
        history=state["history"],
        first_epoch=state["epoch"] + 1,
        seconds=state["seconds"],
        best_score=state["best_score"],
        samples=state.get("samples", 0),
        init=state.get("init"),
    )


def _save_epoch(
    out: Path,
    model: nn.Module,
    card: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    args: argparse.Namespace,
    progress: Progress,
) -> dict[str, Any]:
    score = progress.history[-1].get("val_score", -1.0)
    improved = score > progress.best_score
    if improved:
        progress.best_score = score
    return checkpointing.save_epoch(
        save_interactive_checkpoint,
        model,
        out,
        card,
        optimizer,
        scheduler,
        {
            "trainer": "interactive",
            "epoch": progress.history[-1]["epoch"],
            "history": progress.history,
            "seconds": progress.seconds,
            "best_score": progress.best_score,
            "samples": progress.samples,
            "init": progress.init,
            "args": vars(args),
        },
        improved=improved,
    )


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli(main, get_args_parser(), argv, cleanup=distributed.cleanup)


if __name__ == "__main__":
    sys.exit(cli())
