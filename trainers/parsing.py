"""Train the real-photo garment model from scratch: ``python -m trainers.parsing --out runs/fashion``.

A :class:`~fashionviewer.core.models.parsing.ParsingNet` learns per-pixel classes on the
Clothing Co-Parsing training photos, in the iMaterialist taxonomy (plus skin and hair as
training-only classes); at prediction time each class region becomes an instance
(``fashionviewer.core.models.parsing``). The split is ``CCPDataset``'s: the same seeded
100-photo validation split of 0001-0800 as ``maskrcnn_ccp``, never trained on.

Recipe (why): photos shrunk to ``--image-width`` (224 px) so that an epoch of 700 photos
takes about two minutes on one CPU thread; random scale 0.75-1.25, crops, mirror images and
colour jitter because 700 photos are few; class-weighted cross-entropy (weights
``(median frequency / frequency) ** 0.5``) so that belts, glasses and bags count beside
background and skin; AdamW with warm-up and a cosine schedule. ``--tagged DIR --tag-weight W``
adds image-level supervision from the tag-only photos: the most confident pixel of each
tagged class should say that class, and no pixel should say an untagged one.

Multi-process: ``torchrun --nproc_per_node=N -m trainers.parsing ...`` (gloo on CPU, NCCL on
CUDA); each rank takes its share of every epoch, gradients are averaged, rank 0 validates
and saves. Files in ``--out``, written atomically every epoch: ``model.pt`` + ``model.json``
(a plain state_dict and its model card: load it with ``fashionviewer predict --model
OUT/model.pt``), ``model_best.*`` (best validation mean IoU) and ``training_state.pt``
(``--resume auto`` continues from it, across sessions). Progress: the JSON-lines events of
:mod:`fashionviewer.core.base.events` with ``--events``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fashionviewer.core.base.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    ensure_writable_dir,
)
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.base.events import EventWriter
from fashionviewer.core.data.taxonomy import IMATERIALIST, imaterialist_names
from fashionviewer.core.models.checkpoint import read_card
from fashionviewer.core.models.parsing import (
    IMAGE_MEAN,
    IMAGE_STD,
    INSTANCE_RULES,
    build_parsing_model,
    parsing_channels,
    save_parsing_checkpoint,
)
from fashionviewer.core.viewer.trainer_menu import TRAINER_MENUS

from . import checkpointing, distributed
from .checkpointing import STATE_FILE
from .common import (
    add_export_arguments,
    add_run_arguments,
    agreed_loss,
    end_event,
    install_cancel_handler,
    positive_int,
    resolve_device,
    run_cli,
    warmup_cosine,
)
from .parsing_data import (
    IGNORE,
    Sample,
    augment,
    class_weights,
    load_split,
    load_tagged,
    normalize,
    pad_to,
)
from .parsing_finetune import DEFAULT_INIT, FinetuneSetup, epoch_order, prepare_finetune
from .parsing_items import ITEMS_INIT, check_items_init, item_refiner_entry, item_rescorer

log = logging.getLogger("trainers.parsing")

# What the viewer's Train menu offers, declared in the core (which never imports trainers) and checked
# against get_args_parser by tests/trainers/test_menu_options.py.
MENU = TRAINER_MENUS["parsing"]

# Fine-tuning starts from a trained model: a short schedule at a quarter of the peak learning rate
# (100 photos + replay: about 4 minutes on 2 CPU threads).
SCRATCH_DEFAULTS = {"epochs": 30, "lr": 2e-3, "warmup_steps": 100}
FINETUNE_DEFAULTS = {"epochs": 8, "lr": 5e-4, "warmup_steps": 10}
# the fine-tune's default when the folder adds classes: their head rows start from nothing (on 100 scenes of
# another seed than benchmarks/finetune_loop.py's, 24 epochs rather than 16: segm AP 0.094 -> 0.119, ~7 min)
NEW_CLASSES_EPOCHS = 24


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train the from-scratch garment parsing model on CCP photos.", add_help=add_help
    )
    p.add_argument(
        "--dataset",
        default="ccp",
        choices=["ccp", "annotations"],
        help="ccp: train from scratch on the CCP photos; annotations: fine-tune --init-from on a photo "
        "folder's annotation file (--data-path FOLDER)",
    )
    p.add_argument(
        "--data-path",
        default=None,
        help="CCP root (default ../shared/data/ccp), or the annotated photo folder with --dataset annotations",
    )
    p.add_argument(
        "--tagged",
        default=None,
        help="ccp-tagged root for image-level supervision (off by default)",
    )
    p.add_argument(
        "--tag-weight",
        type=float,
        default=0.2,
        help="weight of the tag loss when --tagged is given",
    )
    p.add_argument(
        "--tagged-batch",
        type=int,
        default=4,
        help="tag-only photos per step when --tagged is given",
    )
    p.add_argument("--architecture", default="parsing_resunet", choices=["parsing_resunet"])
    p.add_argument(
        "--image-width", type=positive_int, default=224, help="photos are resized to this width"
    )
    p.add_argument(
        "--crop-height",
        type=positive_int,
        default=320,
        help="training crop height (width: --image-width)",
    )
    f = p.add_argument_group("fine-tune on a folder's annotations (--dataset annotations)")
    f.add_argument(
        "--init-from",
        default=None,
        help=f"the model to start from: a bundled name or a model.pt (default {DEFAULT_INIT})",
    )
    f.add_argument(
        "--annotations",
        default=None,
        help="the annotation file (default FOLDER/annotations.fashionviewer.json)",
    )
    f.add_argument(
        "--replay-data",
        default=None,
        help="the start model's training photos, replayed so it does not forget (default "
        "../shared/data/ccp when present; 'none' turns replay off)",
    )
    f.add_argument(
        "--replay-share",
        type=float,
        default=0.4,
        help="share of each epoch's photos that are replayed",
    )
    f.add_argument(
        "--instances",
        choices=["auto", *INSTANCE_RULES],
        default="auto",
        help="what one predicted instance is: all pixels of a class (per_class, as in CCP), each "
        "connected part (components), or each item as item borders learnt from the folder's masks cut it "
        "out (borders: touching items stay apart); auto: borders when the folder's images often show a "
        "class twice",
    )
    f.add_argument(
        "--items-init",
        default=ITEMS_INIT,
        metavar="auto|scratch|CLASSIFIER",
        help="where the item classifier of a fine-tune on items (--instances borders) starts: auto, the "
        "first bundled Fashion-MNIST classifier that knows one of the folder's classes by name (else "
        "from scratch); scratch; or a bundled classifier's name or a checkpoint path",
    )
    f.add_argument(
        "--new-classes",
        choices=["extend", "branch"],
        default="extend",
        help="how classes the model lacks are learnt: rows added to its head, the whole network learning "
        "(extend), or a decoder branch of their own with the start model frozen, so its classes predict "
        "exactly as before (branch)",
    )
    f.add_argument(
        "--annotations-val", type=float, default=0.1, help="share of the folder's images held out"
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help=f"default {SCRATCH_DEFAULTS['epochs']} from scratch, {FINETUNE_DEFAULTS['epochs']} fine-tuning "
        f"({NEW_CLASSES_EPOCHS} when the folder adds classes)",
    )
    p.add_argument(
        "--steps-per-epoch", type=int, default=0, help="at most this many steps per epoch (0: all)"
    )
    p.add_argument("--batch-size", type=positive_int, default=8, help="photos per process and step")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"peak AdamW learning rate (default {SCRATCH_DEFAULTS['lr']:g} from scratch, "
        f"{FINETUNE_DEFAULTS['lr']:g} fine-tuning)",
    )
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument(
        "--warmup-steps",
        type=int,
        default=None,
        help=f"default {SCRATCH_DEFAULTS['warmup_steps']} from scratch, {FINETUNE_DEFAULTS['warmup_steps']} "
        "fine-tuning",
    )
    p.add_argument(
        "--val-size", type=int, default=100, help="validation photos (CCPDataset's seeded split)"
    )
    p.add_argument(
        "--limit", type=int, default=None, help="use only the first N training photos (tests)"
    )
    add_run_arguments(p, out="runs/fashion", device="cpu", threads=1, state_file=STATE_FILE)
    g = add_export_arguments(
        p,
        name="fashion",
        name_help="exported file stem (resources/models/fashion: bundled name fashion)",
    )
    g.add_argument(
        "--prior-correction",
        type=float,
        default=0.0,
        help="subtract this share of log(class weight) from the logits (folded into the weights)",
    )
    g.add_argument(
        "--hflip", action="store_true", help="the card asks for the mirror test-time view"
    )
    return p


# --------------------------------------------------------------------------- validation


def confusion(model: nn.Module, samples: Sequence[Sample], num_categories: int) -> np.ndarray:
    """(K+1)×(K+1) pixel confusion (rows ground truth, columns prediction) at training resolution;
    channel 0 and the body channels count as background."""
    model.eval()
    size = num_categories + 1
    matrix = np.zeros((size, size), dtype=np.int64)
    with torch.inference_mode():
        for sample in samples:
            image = pad_to(normalize(sample.image.float() / 255.0))
            logits = model(image[None])[0, :, : sample.image.shape[-2], : sample.image.shape[-1]]
            pred = logits.argmax(0)
            pred[pred > num_categories] = 0
            truth = sample.labels.long().clone()
            truth[truth > num_categories] = 0
            matrix += np.bincount(
                (truth * size + pred).reshape(-1).numpy(), minlength=size * size
            ).reshape(size, size)
    return matrix


def pixel_scores(matrix: np.ndarray) -> dict[str, float]:
    """Pixel accuracy and mean IoU over the garment classes present in the ground truth."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - tp
    present = matrix.sum(1) > 0
    present[0] = False
    iou = tp[present] / np.maximum(union[present], 1)
    return {
        "pixel_accuracy": round(float(tp.sum() / max(matrix.sum(), 1)), 4),
        "miou": round(float(iou.mean()) if iou.size else 0.0, 4),
    }


# --------------------------------------------------------------------------- main


@dataclass
class Progress:
    history: list[dict[str, Any]] = field(default_factory=list)
    first_epoch: int = 1
    seconds: float = 0.0
    best_miou: float = -1.0


def model_card(
    args: argparse.Namespace,
    progress: Progress,
    n_train: int,
    n_val: int,
    world_size: int,
    weights: Tensor,
    tagged: int,
    finetune: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card of a checkpoint; a fine-tune's (``finetune``: classes, start model, annotation file) overrides
    the from-scratch entries."""
    last = progress.history[-1] if progress.history else {}
    card = {
        "architecture": args.architecture,
        "class_names": imaterialist_names(),
        "taxonomy": IMATERIALIST,
        "category_ids": list(range(len(imaterialist_names()))),
        "parsing_channels": parsing_channels(),
        "domain": "photos",
        "weights": "trained",
        "init": "none",
        "input": {
            "width": args.image_width,
            "pad_multiple": 32,
            "mean": list(IMAGE_MEAN),
            "std": list(IMAGE_STD),
        },
        "dataset": {
            "name": "ccp",
            "taxonomy": IMATERIALIST,
            "train_images": n_train,
            "val_images": n_val,
            "split": f"CCPDataset seeded split: seed {args.seed}, val_size {args.val_size}",
            "tagged_images": tagged,
        },
        "epochs": last.get("epoch", 0),
        "metrics": {key: last[key] for key in ("pixel_accuracy", "miou") if key in last},
        "training": {
            "optimizer": "adamw",
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "batch_size": args.batch_size,
            "world_size": world_size,
            "image_width": args.image_width,
            "crop_height": args.crop_height,
            "warmup_steps": args.warmup_steps,
            "seed": args.seed,
            "tag_weight": args.tag_weight if tagged else 0.0,
            "class_weights": [round(float(w), 4) for w in weights],
            "seconds": round(progress.seconds, 1),
            "threads": args.threads,
        },
        "history": progress.history,
    }
    if finetune is not None:
        card.update(finetune)
        card["init"] = finetune["fine_tuned_from"]["checkpoint"]
        card["training"]["dataset"] = "annotations"
    return card


def export(args: argparse.Namespace) -> dict[str, Any]:
    """Write ``--out/--name.pt`` + card from a trained checkpoint: prior correction folded in, test-time views
    named in the card, the training card's history and settings kept."""
    from fashionviewer.core.inference.families import load_model
    from fashionviewer.core.models.parsing import apply_prior_correction

    out = ensure_writable_dir(args.out)
    model, card = load_model(args.export)
    if args.prior_correction:
        apply_prior_correction(model, card["training"]["class_weights"], args.prior_correction)
    card = {
        k: v
        for k, v in card.items()
        if k not in ("format", "date", "weights_file", "weights_sha256")
    }
    card.update(
        prior_correction=args.prior_correction,
        exported_from=str(args.export),
        test_time_augmentation={"hflip": True} if args.hflip else None,
    )
    if card.get("rescorer"):  # the item classifier travels with it, named after it
        card["rescorer"] = _export_item_classifier(
            Path(args.export), card["rescorer"], out, f"{args.name}_items"
        )
    written = save_parsing_checkpoint(model, out / f"{args.name}.pt", card)
    log.info("wrote %s (+ %s)", out / f"{args.name}.pt", f"{args.name}.json")
    return written


def _export_item_classifier(
    checkpoint: Path, spec: dict[str, Any], out: Path, name: str
) -> dict[str, Any]:
    """Copy the re-scoring classifier beside ``checkpoint`` to ``out/name`` (.pt and card); the new spec."""
    source = checkpoint.parent / f"{spec['classifier']}.pt"
    if not source.is_file():
        raise FashionViewerError(
            f"{source}: the item classifier {checkpoint.name} names is missing"
        )
    card = read_card(source, required=("classes",))
    atomic_write_bytes(out / f"{name}.pt", source.read_bytes())
    atomic_write_json(out / f"{name}.json", {**card, "name": name, "weights_file": f"{name}.pt"})
    return {**spec, "classifier": name}


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Train, validate and checkpoint every epoch; returns the last model card (rank 0; ``{}`` elsewhere)."""
    if args.export:
        return export(args)
    default_epochs = _fill_defaults(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    # its errors come before --out exists
    setup = prepare_finetune(args) if args.dataset == "annotations" else None
    if setup is not None:
        check_items_init(args.items_init)
    if setup is not None and setup.plan.added and default_epochs:
        args.epochs = NEW_CLASSES_EPOCHS
    out = ensure_writable_dir(args.out)
    info, device = distributed.init_distributed(resolve_device(args.device))
    if setup is not None and setup.card_extra["instances"] == "borders" and info.rank == 0:
        # items are what the folder annotates: a classifier of cut-out items names them (trainers.parsing_items)
        setup.card_extra["rescorer"] = item_rescorer(
            setup, args.data_path, out, args.seed, args.items_init
        )
        # and each item the network finds is redrawn from its box by the interactive network
        setup.card_extra["refine_items"] = item_refiner_entry()
    torch.manual_seed(args.seed + info.rank)
    rng = np.random.default_rng(args.seed + 1000 * info.rank)
    start = checkpointing.resume_file(args.resume, out / STATE_FILE)

    tagged_images, tagged_targets = (
        load_tagged(args.tagged, args.image_width) if args.tagged else ([], torch.zeros(0))
    )
    data = _training_data(args, setup, info.rank, device)
    model = data.model
    steps = _steps_per_epoch(len(data.order_of(1)), info.world_size, args)
    total = steps * args.epochs
    groups = setup.parameter_groups(args.lr) if setup is not None else model.parameters()
    optimizer = torch.optim.AdamW(groups, lr=args.lr, weight_decay=args.weight_decay)
    scheduler = warmup_cosine(optimizer, args.warmup_steps, total)
    progress = Progress()
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
            trainer="parsing",
            model=args.architecture,
            epochs=args.epochs,
            steps_per_epoch=steps,
            device=str(device),
            out=str(out),
            world_size=info.world_size,
        )
        with end_event(events, last_path):
            for epoch in range(progress.first_epoch, args.epochs + 1):
                t0 = time.perf_counter()
                model.train()
                mine = np.asarray(data.order_of(epoch))[info.rank :: info.world_size]
                running = 0.0
                for step in range(steps):
                    batch = [data.train[i] for i in _step_indices(mine, step, args.batch_size)]
                    loss = _batch_loss(
                        model,
                        batch,
                        data.weights,
                        (tagged_images, tagged_targets),
                        args,
                        rng,
                        device,
                    )
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
                    events.emit(
                        "step",
                        epoch=epoch,
                        step=step + 1,
                        steps=steps,
                        loss=round(value, 5),
                        lr=optimizer.param_groups[0]["lr"],
                    )
                record: dict[str, Any] = {"epoch": epoch, "train_loss": round(running / steps, 5)}
                if info.rank == 0 and data.val:
                    record.update(pixel_scores(confusion(core, data.val, data.num_categories)))
                seconds = time.perf_counter() - t0
                record["seconds"] = round(seconds, 1)
                progress.history.append(record)
                progress.seconds += seconds
                if info.rank == 0:
                    card = model_card(
                        args,
                        progress,
                        len(data.train),
                        len(data.val),
                        info.world_size,
                        data.weights.cpu(),
                        len(tagged_images),
                        setup.card_extra if setup is not None else None,
                    )
                    card = _save_epoch(out, core, card, optimizer, scheduler, args, progress)
                    log.info(
                        "epoch %d/%d loss %.4f | val pixel accuracy %s mIoU %s | %.0fs",
                        epoch,
                        args.epochs,
                        record["train_loss"],
                        record.get("pixel_accuracy"),
                        record.get("miou"),
                        seconds,
                    )
                    events.emit("epoch", epochs=args.epochs, checkpoint=str(last_path), **record)
                distributed.barrier()
    return card


def _fill_defaults(args: argparse.Namespace) -> bool:
    """Give ``--epochs``, ``--lr`` and ``--warmup-steps`` left unset the from-scratch or the
    fine-tune default; True when ``--epochs`` was unset (a fine-tune adding classes then trains longer)."""
    defaults = FINETUNE_DEFAULTS if args.dataset == "annotations" else SCRATCH_DEFAULTS
    default_epochs = args.epochs is None
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return default_epochs


@dataclass
class TrainingData:
    """What the epochs train on: the photos (validation photos on rank 0 only), the classes scored,
    the loss's class weights, the model, and each epoch's photo order."""

    train: list[Sample]
    val: list[Sample]
    num_categories: int
    weights: Tensor
    model: nn.Module
    order_of: Callable[[int], list[int]]


def _training_data(
    args: argparse.Namespace, setup: FinetuneSetup | None, rank: int, device: torch.device
) -> TrainingData:
    """The CCP training split and a new model from scratch, or the fine-tune's folder, replay photos
    and start model (``setup``)."""
    if setup is None:
        train = load_split(
            args.data_path, "train", args.image_width, args.val_size, args.seed, args.limit
        )
        val = (
            load_split(args.data_path, "val", args.image_width, args.val_size, args.seed)
            if rank == 0
            else []
        )
        channels = parsing_channels()
        return TrainingData(
            train,
            val,
            len(imaterialist_names()),
            class_weights(train, len(channels)).to(device),
            build_parsing_model(args.architecture, len(channels)).to(device),
            partial(_shuffled, len(train), args.seed),
        )
    return TrainingData(
        setup.train,
        setup.user.val if rank == 0 else [],
        setup.plan.num_categories,
        setup.weights.to(device),
        setup.model.to(device),
        partial(
            epoch_order, len(setup.user.train), len(setup.replay), args.replay_share, seed=args.seed
        ),
    )


def _steps_per_epoch(photos: int, world_size: int, args: argparse.Namespace) -> int:
    """Steps that cover one process's share of an epoch's photos, at most ``--steps-per-epoch``."""
    per_rank = math.ceil(photos / world_size)
    steps = max(1, math.ceil(per_rank / args.batch_size))
    if args.steps_per_epoch:
        steps = min(steps, args.steps_per_epoch)
    return steps


def _step_indices(mine: np.ndarray, step: int, batch_size: int) -> np.ndarray:
    """This process's photos for ``step``; the first batch again when its share runs out."""
    chosen = mine[step * batch_size : (step + 1) * batch_size]
    if len(chosen) == 0:
        chosen = mine[:batch_size]
    return chosen


def _batch_loss(
    model: nn.Module,
    batch: list[Sample],
    weights: Tensor,
    tagged: tuple[list[Tensor], Tensor],
    args: argparse.Namespace,
    rng: np.random.Generator,
    device: torch.device,
) -> Tensor:
    """Class-weighted cross-entropy on augmented crops of ``batch``, plus ``--tag-weight`` times the
    tag loss when there are tag-only photos (``tagged``: their images and tag targets)."""
    crop = (args.crop_height, args.image_width)
    views = [augment(sample, crop, rng) for sample in batch]
    images = torch.stack([v[0] for v in views]).to(device)
    targets = torch.stack([v[1] for v in views]).to(device)
    loss = F.cross_entropy(model(images), targets, weight=weights, ignore_index=IGNORE)
    tagged_images, tagged_targets = tagged
    if tagged_images:
        loss = loss + args.tag_weight * _tag_loss(
            model, tagged_images, tagged_targets, crop, rng, args.tagged_batch, device
        )
    return loss


def _shuffled(count: int, seed: int, epoch: int) -> list[int]:
    """The training photos of one epoch in a seeded order (the same after a resume)."""
    return np.random.default_rng(seed * 7919 + epoch).permutation(count).tolist()


def _tag_loss(
    model: nn.Module,
    images: list[Tensor],
    targets: Tensor,
    crop: tuple[int, int],
    rng: np.random.Generator,
    count: int,
    device: torch.device,
) -> Tensor:
    """Image-level loss on tag-only photos: BCE between each channel's largest pixel probability
    and whether the photo is tagged with it."""
    chosen = rng.choice(len(images), size=min(count, len(images)), replace=False)
    views = [
        augment(
            Sample(images[i], torch.zeros(images[i].shape[-2:], dtype=torch.uint8), 0), crop, rng
        )
        for i in chosen
    ]
    batch = torch.stack([v[0] for v in views]).to(device)
    probs = model(batch).softmax(1).flatten(2)
    # a smooth max: the mean of the 32 most confident pixels, robust to one stray pixel
    top = probs.topk(32, dim=2).values.mean(2).clamp(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(top, targets[torch.as_tensor(chosen)].to(device))


def _restore(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> Progress:
    def ours(state: dict[str, Any]) -> str | None:
        return (
            None if state.get("trainer") == "parsing" else "not a trainers.parsing training state"
        )

    state = checkpointing.restore(path, model, optimizer, scheduler, check=ours)
    return Progress(
        history=state["history"],
        first_epoch=state["epoch"] + 1,
        seconds=state["seconds"],
        best_miou=state["best_miou"],
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
    miou = progress.history[-1].get("miou", -1.0)
    improved = miou > progress.best_miou
    progress.best_miou = max(progress.best_miou, miou)
    return checkpointing.save_epoch(
        save_parsing_checkpoint,
        model,
        out,
        card,
        optimizer,
        scheduler,
        {
            "trainer": "parsing",
            "epoch": progress.history[-1]["epoch"],
            "history": progress.history,
            "seconds": progress.seconds,
            "best_miou": progress.best_miou,
            "args": vars(args),
        },
        improved=improved,
    )


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli(main, get_args_parser(), argv, cleanup=distributed.cleanup)


if __name__ == "__main__":
    sys.exit(cli())
