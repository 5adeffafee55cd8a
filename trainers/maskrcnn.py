"""Train a Mask R-CNN: ``python -m trainers.maskrcnn --dataset imaterialist --data-path DIR``.

The paper's setting (Treneska & Gievska 2020): torchvision's Mask R-CNN
ResNet-50-FPN fine-tuned from COCO weights on iMaterialist-Fashion 2019 at
512x512 (``--model maskrcnn_resnet50_fpn --weights coco --image-size 512``, the
defaults). ``--model maskrcnn_mobilenet_v3_light --weights none`` trains the
light model from scratch on a CPU.

Multi-process: ``torchrun --nproc_per_node=N -m trainers.maskrcnn ...`` (gloo
on CPU, NCCL on CUDA); rank 0 logs, evaluates the gathered results and saves.

Files in ``--out``, written atomically every epoch: ``model.pt`` + ``model.json``
(the last epoch: a plain state_dict and its model card, loadable with
:func:`fashionviewer.core.models.registry.load_checkpoint`), ``model_best.pt`` +
``model_best.json`` (the epoch with the best validation mask AP) and
``training_state.pt`` (model, optimizer, scheduler, epoch: what ``--resume``
reads). Progress: a tqdm bar on stderr and, with ``--events``, the JSON-lines
events of :mod:`fashionviewer.core.base.events`.

Before each evaluation the BatchNorm statistics are re-estimated on
``--bn-recalibration-steps`` training batches (see
:func:`trainers.engine.recalibrate_batchnorm`): without it a model trained from
scratch evaluates far worse than it trains.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from fashionviewer.core.base.atomic import ensure_writable_dir
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.base.events import EventWriter
from fashionviewer.core.data.datasets import DATASETS, build_dataset
from fashionviewer.core.models.registry import (
    check_weights,
    get_model,
    list_models,
    model_info,
    read_card,
    save_checkpoint,
)
from fashionviewer.core.viewer.trainer_menu import TRAINER_MENUS

from . import checkpointing, distributed
from .checkpointing import STATE_FILE
from .common import (
    add_run_arguments,
    end_event,
    install_cancel_handler,
    positive_int,
    resolve_device,
    run_cli,
)
from .engine import (
    StepControl,
    collate_fn,
    evaluate,
    freeze_backbone,
    recalibrate_batchnorm,
    train_one_epoch,
)
from .finetune import RemapLabels, annotation_summary, finetune_model, plan_finetune

log = logging.getLogger("trainers.maskrcnn")

# What the viewer's Train menu offers, declared in the core (which never imports trainers) and checked
# against get_args_parser by tests/trainers/test_menu_options.py.
MENU = TRAINER_MENUS["maskrcnn"]

_MAX_TO_MIN = 1333 / 800  # torchvision's longer/shorter side ratio, as in core.models


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train a Mask R-CNN (torchvision detection reference shape).", add_help=add_help
    )
    p.add_argument("--dataset", default="imaterialist", choices=sorted(DATASETS))
    p.add_argument(
        "--data-path", default=None, help="dataset root (ccp: default ../shared/data/ccp)"
    )
    p.add_argument(
        "--taxonomy",
        default="ccp",
        choices=["ccp", "imaterialist"],
        help="--dataset ccp only: its own 56 labels, or mapped into the 46 iMaterialist categories "
        "(fashionviewer.core.data.taxonomy)",
    )
    p.add_argument("--model", default="maskrcnn_resnet50_fpn", choices=list_models())
    p.add_argument(
        "--weights",
        default="coco",
        help="coco (torchvision's COCO weights from the torch hub cache), PATH (one of our checkpoints) "
        "or none (random initialisation)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        metavar="CHECKPOINT",
        help="fine-tune one of our Mask R-CNN checkpoints: its weights and class list; classes the "
        "dataset adds extend the heads (trainers.finetune); replaces --model/--weights",
    )
    p.add_argument(
        "--annotations",
        default=None,
        metavar="FILE",
        help="--dataset annotations: the annotation file (default: DATA_PATH/annotations.fashionviewer.json)",
    )
    p.add_argument(
        "--weights-backbone",
        default="none",
        choices=["imagenet", "none"],
        help="ImageNet weights for the trunk when --weights none (from the torch hub cache)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="shorter image side in pixels (default 512 as in the paper; --init-from: the checkpoint's)",
    )
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument(
        "--steps-per-epoch", type=int, default=0, help="at most this many steps per epoch (0: all)"
    )
    p.add_argument(
        "--val-steps",
        type=int,
        default=0,
        help="evaluate on the first N batches of the validation split (0: all, -1: skip)",
    )
    p.add_argument("--batch-size", type=int, default=2, help="images per process and step")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default: 0.02 x total batch / 16 for sgd, 1e-3 for adamw)",
    )
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"])
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument(
        "--lr-scheduler",
        default="cosine",
        choices=["cosine", "multistep"],
        help="per-step schedule after warm-up; multistep divides by 10 at 2/3 and 8/9 of training",
    )
    p.add_argument("--warmup-steps", type=int, default=200, help="linear warm-up steps")
    p.add_argument(
        "--clip-grad-norm", type=float, default=0.0, help="clip the gradient norm (0: off)"
    )
    p.add_argument(
        "--bn-recalibration-steps",
        type=int,
        default=None,
        help="before evaluating and saving, re-estimate BatchNorm statistics on this many training "
        "batches (models trained from scratch need it; 0: off; default 50, 0 with --init-from)",
    )
    p.add_argument(
        "--box-batch-size-per-image",
        type=positive_int,
        default=None,
        help="RoIs sampled per image for the box and mask heads (default: the model's; torchvision: 512)",
    )
    p.add_argument(
        "--freeze-backbone",
        action="store_true",
        help="train only the RPN and RoI heads; the trunk and FPN keep their weights (their BatchNorm "
        "statistics are re-estimated once on --bn-recalibration-steps batches, then frozen)",
    )
    p.add_argument(
        "--hflip-prob", type=float, default=0.5, help="horizontal flip probability in training"
    )
    p.add_argument("--workers", type=int, default=2, help="data-loading worker processes per rank")
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    add_run_arguments(p, out="runs/maskrcnn", device="auto", threads=0, state_file=STATE_FILE)
    return p


# --------------------------------------------------------------------------- data


class HorizontalFlip(Dataset):
    """Flip image, masks and boxes of a detection dataset left-right with probability ``p``."""

    def __init__(self, dataset: Dataset, p: float = 0.5) -> None:
        self.dataset, self.p = dataset, p

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        image, target = self.dataset[index]
        if self.p <= 0 or float(torch.rand(())) >= self.p:
            return image, target
        width = image.shape[-1]
        target = dict(target)
        boxes = target["boxes"].clone()
        boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
        target["boxes"] = boxes
        target["masks"] = target["masks"].flip(-1)
        return image.flip(-1), target


def build_loaders(
    args: argparse.Namespace, info: distributed.DistributedInfo, wrap: Any = None
) -> tuple[DataLoader, DataLoader | None, list[str], dict[str, Any] | None, DistributedSampler]:
    """Train/val loaders, class names and the validation ground truth (None when not evaluating).
    ``wrap(dataset)`` (fine-tuning) replaces both splits by a wrapper with its own class list."""
    max_size = round(args.image_size * _MAX_TO_MIN)  # the model would shrink anything larger anyway
    taxonomy = getattr(args, "taxonomy", "ccp")
    if taxonomy != "ccp" and args.dataset != "ccp":
        raise FashionViewerError(
            f"--taxonomy {taxonomy}: only --dataset ccp is mapped between taxonomies"
        )
    options: dict[str, Any] = {"taxonomy": taxonomy} if args.dataset == "ccp" else {}
    if args.dataset == "annotations" and getattr(args, "annotations", None):
        options["ann_file"] = args.annotations
    train_set = build_dataset(args.dataset, args.data_path, "train", max_size=max_size, **options)
    if len(train_set) == 0:
        raise FashionViewerError(
            f"--data-path {args.data_path}: the train split of {args.dataset} is empty"
        )
    if wrap is not None:
        train_set = wrap(train_set)
    sampler = DistributedSampler(
        train_set,
        num_replicas=info.world_size,
        rank=info.rank,
        shuffle=True,
        seed=args.seed,
        drop_last=True,
    )
    train_loader = DataLoader(
        HorizontalFlip(train_set, args.hflip_prob),
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=args.workers,
        collate_fn=collate_fn,
        drop_last=True,
        persistent_workers=args.workers > 0,
    )
    if args.val_steps < 0:
        return train_loader, None, train_set.class_names, None, sampler
    limit = args.val_steps * args.batch_size * info.world_size if args.val_steps else None
    val_set = build_dataset(
        args.dataset, args.data_path, "val", max_size=max_size, limit=limit, **options
    )
    if wrap is not None:
        val_set = wrap(val_set)
    if list(val_set.class_names) != list(train_set.class_names):
        raise FashionViewerError(
            f"--data-path {args.data_path}: train and val splits name different classes"
        )
    # no padding: each image once
    shard = Subset(val_set, range(info.rank, len(val_set), info.world_size))
    val_loader = DataLoader(
        shard, batch_size=args.batch_size, num_workers=args.workers, collate_fn=collate_fn
    )
    ground_truth = val_set.coco_ground_truth() if info.rank == 0 else None
    return train_loader, val_loader, train_set.class_names, ground_truth, sampler


# --------------------------------------------------------------------------- optimisation


def build_optimizer(
    args: argparse.Namespace, model: nn.Module, world_size: int
) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if args.lr is None:
        args.lr = 0.02 * args.batch_size * world_size / 16 if args.optimizer == "sgd" else 1e-3
    if args.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
        )
    return torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, name: str, total_steps: int, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step factor: linear warm-up from 0.001, then cosine to 0 or x0.1 at 2/3 and x0.01 at 8/9."""
    total = max(total_steps, 1)
    warmup = min(warmup_steps, total // 2)

    def factor(step: int) -> float:
        if step < warmup:
            return 0.001 + (1 - 0.001) * step / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        if name == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return 0.1 ** ((progress >= 2 / 3) + (progress >= 8 / 9))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# --------------------------------------------------------------------------- checkpoints


def model_card(
    args: argparse.Namespace,
    class_names: Sequence[str],
    history: list[dict[str, Any]],
    n_train: int,
    n_val: int,
    seconds: float,
    world_size: int,
    init: str,
    category_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The model card of the current epoch (metrics: the last epoch's validation AP)."""
    last = history[-1]
    metrics = {key: last[key] for key in last if key.startswith(("bbox_", "segm_"))}
    if metrics:
        metrics["measured_by"] = (
            f"fashionviewer.core.data.evaluation (pycocotools COCOeval) on {n_val} val images"
        )
    return {
        "class_names": list(class_names),
        # the dataset's own id of each label: results and exports use these (core.models.checkpoint.card_category_ids)
        "category_ids": list(category_ids)
        if category_ids is not None
        else list(range(1, len(class_names) + 1)),
        "weights": "trained",
        "init": init,
        "dataset": {
            "name": args.dataset,
            "path": str(args.data_path),
            "train_images": n_train,
            "val_images": n_val,
        },
        **({"taxonomy": getattr(args, "taxonomy", "ccp")} if args.dataset == "ccp" else {}),
        "epochs": last["epoch"],
        "metrics": metrics,
        "training": {
            "optimizer": args.optimizer,
            "lr": args.lr,
            "lr_scheduler": args.lr_scheduler,
            "weight_decay": args.weight_decay,
            "batch_size": args.batch_size,
            "world_size": world_size,
            "steps_per_epoch": args.steps_per_epoch,
            "image_size": args.image_size,
            "amp": bool(args.amp),
            "hflip_prob": args.hflip_prob,
            "freeze_backbone": bool(args.freeze_backbone),
            "box_batch_size_per_image": args.box_batch_size_per_image,
            "bn_recalibration_steps": args.bn_recalibration_steps,
            "seed": args.seed,
            "seconds": round(seconds, 1),
        },
        "history": history,
    }


# --------------------------------------------------------------------------- main


@dataclass
class Progress:
    """What survives between epochs and across --resume."""

    init: str  # where the weights started: none, coco, imagenet-backbone, a checkpoint path
    history: list[dict[str, Any]] = field(default_factory=list)
    first_epoch: int = 1
    seconds: float = 0.0
    best_segm_ap: float = -1.0


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Train, evaluate and checkpoint every epoch; returns the last model card (rank 0; ``{}`` elsewhere)."""
    out = ensure_writable_dir(args.out)  # before any slow loading: a bad --out fails at once
    if args.threads:
        torch.set_num_threads(args.threads)
    info, device = distributed.init_distributed(resolve_device(args.device))
    torch.manual_seed(args.seed + info.rank)
    if info.rank != 0:
        logging.getLogger().setLevel(logging.WARNING)
    scaler = _grad_scaler(args, device)
    start = checkpointing.resume_file(args.resume, out / STATE_FILE)
    plan_for = _finetune_setup(args)  # before reading the dataset: a bad checkpoint fails at once
    if start is None and plan_for is None:
        check_weights(args.model, args.weights, args.weights_backbone)  # before reading the dataset

    train_loader, val_loader, class_names, ground_truth, sampler = build_loaders(
        args, info, plan_for
    )
    category_ids = train_loader.dataset.dataset.category_ids  # type: ignore[attr-defined]  # under HorizontalFlip
    weights = "none" if start else args.weights  # the resumed state replaces any initial weights
    head_options = (
        {"box_batch_size_per_image": args.box_batch_size_per_image}
        # training-only: checkpoints load without it
        if args.box_batch_size_per_image
        else {}
    )
    if plan_for is not None:
        model = finetune_model(
            plan_for.plan, args.image_size, round(args.image_size * _MAX_TO_MIN)
        ).to(device)
        if head_options:
            model.roi_heads.fg_bg_sampler.batch_size_per_image = args.box_batch_size_per_image
    else:
        model = get_model(
            args.model,
            len(class_names) + 1,
            weights,
            min_size=args.image_size,
            weights_backbone=args.weights_backbone,
            **head_options,
        ).to(device)
    if args.freeze_backbone:  # a resumed state already holds the frozen statistics
        used = freeze_backbone(
            model, train_loader, device, 0 if start else args.bn_recalibration_steps
        )
        log.info(
            "backbone frozen (BatchNorm statistics from %d batches); training the RPN and RoI heads",
            used,
        )
    steps = (
        min(len(train_loader), args.steps_per_epoch) if args.steps_per_epoch else len(train_loader)
    )
    optimizer = build_optimizer(args, model, info.world_size)
    scheduler = build_lr_scheduler(
        optimizer, args.lr_scheduler, steps * args.epochs, args.warmup_steps
    )
    progress = Progress(init=model_info(model).get("init", "none"))
    if start is not None:
        progress = _restore(start, args.model, model, optimizer, scheduler, scaler)
    model = distributed.wrap_model(model, info, device)

    last_path = out / f"{checkpointing.LAST_NAME}.pt"
    stop = install_cancel_handler()
    n_train = len(train_loader.dataset)  # type: ignore[arg-type]
    n_val = len(val_loader.dataset.dataset) if val_loader is not None else 0  # type: ignore[attr-defined]
    card: dict[str, Any] = {}
    extra_card = _finetune_card(args, plan_for)
    with EventWriter(args.events if info.rank == 0 else None) as events:
        events.emit(
            "start",
            trainer="maskrcnn",
            model=args.model,
            epochs=args.epochs,
            steps_per_epoch=steps,
            device=str(device),
            out=str(out),
            world_size=info.world_size,
        )
        with end_event(events, last_path):
            for epoch in range(progress.first_epoch, args.epochs + 1):
                t0 = time.perf_counter()
                sampler.set_epoch(epoch)
                control = StepControl(
                    max_steps=steps,
                    should_stop=lambda: stop["requested"],
                    clip_grad_norm=args.clip_grad_norm,
                    last_checkpoint=str(last_path) if last_path.exists() else None,
                    on_step=lambda step, total, loss, lr, e=epoch: events.emit(
                        "step", epoch=e, step=step, steps=total, loss=round(loss, 5), lr=lr
                    ),
                )
                train_loss = train_one_epoch(
                    model,
                    optimizer,
                    train_loader,
                    device,
                    epoch,
                    lr_scheduler=scheduler,
                    scaler=scaler,
                    control=control,
                )
                recalibrate_batchnorm(model, train_loader, device, args.bn_recalibration_steps)
                record: dict[str, Any] = {"epoch": epoch, "train_loss": round(train_loss, 5)}
                if val_loader is not None:
                    record.update(
                        _ap_fields(
                            evaluate(
                                model,
                                val_loader,
                                device,
                                class_names,
                                ground_truth or {},
                                category_ids=category_ids,
                            )
                        )
                    )
                seconds = time.perf_counter() - t0
                record["seconds"] = round(seconds, 1)
                progress.history.append(record)
                progress.seconds += seconds
                if info.rank == 0:
                    card = model_card(
                        args,
                        class_names,
                        progress.history,
                        n_train,
                        n_val,
                        progress.seconds,
                        info.world_size,
                        progress.init,
                        category_ids,
                    )
                    card["training"].update(extra_card)
                    card = _save_epoch(
                        out, model, card, optimizer, scheduler, scaler, args, progress
                    )
                    _log_epoch(record, args.epochs)
                    events.emit("epoch", epochs=args.epochs, checkpoint=str(last_path), **record)
                distributed.barrier()
    return card


class _PlanFor:
    """``wrap`` for build_loaders: plans the fine-tune from the train split's classes, then remaps both splits."""

    def __init__(self, checkpoint: str) -> None:
        self.checkpoint, self.plan = checkpoint, None

    def __call__(self, dataset: Any) -> RemapLabels:
        if self.plan is None:
            self.plan = plan_finetune(
                self.checkpoint, dataset.class_names, getattr(dataset, "category_ids", None)
            )
            if self.plan.added:
                log.info(
                    "fine-tuning %s: %d classes kept, %d added (%s)",
                    self.checkpoint,
                    len(self.plan.old_names),
                    len(self.plan.added),
                    ", ".join(self.plan.added),
                )
        return RemapLabels(dataset, self.plan)


def _finetune_setup(args: argparse.Namespace) -> _PlanFor | None:
    """Resolve the defaults that depend on --init-from (architecture, image size, BatchNorm re-estimation)."""
    card = read_card(Path(args.init_from).with_suffix(".pt")) if args.init_from else None
    if card is not None:
        args.model = card["architecture"]
    if args.image_size is None:
        args.image_size = int(card.get("min_size") or 512) if card is not None else 512
    # a trained model's statistics are kept when fine-tuning
    if args.bn_recalibration_steps is None:
        args.bn_recalibration_steps = 0 if card is not None else 50
    return _PlanFor(args.init_from) if card is not None else None


def _finetune_card(args: argparse.Namespace, plan_for: _PlanFor | None) -> dict[str, Any]:
    """What the model card adds about the start checkpoint and the annotation file trained on."""
    extra: dict[str, Any] = {}
    if plan_for is not None and plan_for.plan is not None:
        extra["fine_tuned_from"] = plan_for.plan.card_entry()
    if args.dataset == "annotations":
        extra["annotations"] = annotation_summary(args.data_path, args.annotations)
    return extra


def _restore(
    path: Path,
    model_name: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
) -> Progress:
    """Load a training state into the model/optimizer/scheduler/scaler; the progress it recorded."""

    def same_model(state: dict[str, Any]) -> str | None:
        saved = state.get("args", {}).get("model")
        return None if saved == model_name else f"holds a {saved} run, not --model {model_name}"

    state = checkpointing.restore(path, model, optimizer, scheduler, scaler, check=same_model)
    return Progress(
        init=state["init"],
        history=state["history"],
        first_epoch=state["epoch"] + 1,
        seconds=state["seconds"],
        best_segm_ap=state["best_segm_ap"],
    )


def _grad_scaler(args: argparse.Namespace, device: torch.device) -> torch.amp.GradScaler | None:
    if not args.amp:
        return None
    if device.type != "cuda":
        log.warning("--amp needs CUDA; training in float32 on %s", device)
        return None
    return torch.amp.GradScaler("cuda")


def _ap_fields(metrics: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``bbox_ap, bbox_ap50, bbox_ap75, segm_ap, ...`` from evaluate()'s output (empty off rank 0)."""
    return {
        f"{iou}_{key.lower()}": round(values[key], 4)
        for iou, values in metrics.items()
        for key in ("AP", "AP50", "AP75")
    }


def _save_epoch(
    out: Path,
    model: nn.Module,
    card: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
    args: argparse.Namespace,
    progress: Progress,
) -> dict[str, Any]:
    """Write model.pt/.json, model_best.pt/.json when mask AP improved, and the training state;
    returns the model card as written."""
    segm_ap = progress.history[-1].get("segm_ap", -1.0)
    improved = segm_ap > progress.best_segm_ap
    progress.best_segm_ap = max(progress.best_segm_ap, segm_ap)
    return checkpointing.save_epoch(
        save_checkpoint,
        model,
        out,
        card,
        optimizer,
        scheduler,
        {
            "epoch": progress.history[-1]["epoch"],
            "history": progress.history,
            "seconds": progress.seconds,
            "best_segm_ap": progress.best_segm_ap,
            "init": progress.init,
            "args": vars(args),
        },
        improved=improved,
        scaler=scaler,
        with_scaler=True,
    )


def _log_epoch(record: dict[str, Any], epochs: int) -> None:
    ap = (
        f" | val bbox AP {record['bbox_ap']:.3f} segm AP {record['segm_ap']:.3f} (AP50 {record['segm_ap50']:.3f})"
        if "segm_ap" in record
        else ""
    )
    log.info(
        "epoch %d/%d train loss %.4f%s | %.0fs",
        record["epoch"],
        epochs,
        record["train_loss"],
        ap,
        record["seconds"],
    )


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli(main, get_args_parser(), argv, cleanup=distributed.cleanup)


if __name__ == "__main__":
    sys.exit(cli())
