"""One epoch of detection training and COCO evaluation (shape of torchvision's detection reference).

``train_one_epoch`` runs at most ``max_steps`` optimizer steps, with autocast and
a gradient scaler on CUDA when asked, and stops with a FashionViewerError the
moment the loss stops being finite. ``evaluate`` predicts the validation split
with the same fast path as the app (:class:`~fashionviewer.core.inference.predictor.Predictor`),
gathers the COCO results from all ranks and scores them with
:mod:`fashionviewer.core.data.evaluation` (pycocotools).
"""

from __future__ import annotations

import itertools
import logging
import math
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor, nn
from tqdm import tqdm

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.evaluation import evaluate_coco
from fashionviewer.core.inference.defaults import SCORE_FLOOR
from fashionviewer.core.inference.predictor import Predictor
from fashionviewer.core.models.registry import unwrap

from . import distributed
from .common import agreed_loss

log = logging.getLogger(__name__)

Batch = tuple[Sequence[Tensor], Sequence[dict[str, Any]]]
StepCallback = Callable[[int, int, float, float], None]  # (step, steps, loss, lr)


@dataclass
class StepControl:
    """What the epoch loop needs besides the model: limits, callbacks and where the last checkpoint is."""

    max_steps: int | None = None
    on_step: StepCallback | None = None
    should_stop: Callable[[], bool] | None = None
    last_checkpoint: str | None = None  # named in the NaN error
    clip_grad_norm: float = 0.0


def collate_fn(batch: Iterable[tuple[Tensor, dict[str, Any]]]) -> Batch:
    """Keep images and targets as lists: detection images differ in size."""
    return tuple(zip(*batch, strict=False))  # type: ignore[return-value]


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable[Batch],
    device: torch.device,
    epoch: int,
    *,
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    control: StepControl | None = None,
) -> float:
    """Train for one pass over ``loader`` (at most ``control.max_steps`` steps); mean loss.

    The scheduler, if any, is stepped every iteration. Raises FashionViewerError
    when the loss becomes NaN/inf (on any rank) and Cancelled when
    ``control.should_stop()`` turns true.
    """
    control = control or StepControl()
    model.train()
    total = _length(loader, control.max_steps)
    batches = itertools.islice(loader, control.max_steps) if control.max_steps else loader
    bar = tqdm(
        batches,
        total=total,
        desc=f"epoch {epoch}",
        unit="step",
        leave=False,
        file=sys.stderr,
        disable=not distributed.is_main_process(),
    )
    loss_sum, count = 0.0, 0
    for step, (images, targets) in enumerate(bar, start=1):
        images, targets = _to_device(images, targets, device)
        with torch.autocast(device.type, enabled=scaler is not None):
            loss_dict = model(images, targets)
        loss = sum(loss_dict.values())
        # all ranks see the same value and stop at the same step
        logged = agreed_loss(loss, control.should_stop is not None and control.should_stop())
        if not math.isfinite(logged):
            kept = control.last_checkpoint or "none yet (no epoch finished)"
            raise FashionViewerError(
                f"loss became {float(logged)} at epoch {epoch} step {step}; last good checkpoint kept at {kept} "
                "(try a lower --lr)"
            )
        _backward_step(loss, optimizer, model, scaler, control.clip_grad_norm)
        if lr_scheduler is not None:
            lr_scheduler.step()
        value, lr = float(logged), optimizer.param_groups[0]["lr"]
        loss_sum, count = loss_sum + value, count + 1
        bar.set_postfix(loss=f"{value:.3f}", lr=f"{lr:.2g}")
        if control.on_step is not None:
            control.on_step(step, total, value, lr)
    bar.close()
    return loss_sum / max(count, 1)


def _backward_step(
    loss: Tensor,
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    scaler: torch.amp.GradScaler | None,
    clip_grad_norm: float,
) -> None:
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        if clip_grad_norm:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        return
    scaler.scale(loss).backward()
    if clip_grad_norm:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    scaler.step(optimizer)
    scaler.update()


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    loader: Iterable[Batch],
    device: torch.device,
    steps: int,
    scope: nn.Module | None = None,
) -> int:
    """Re-estimate BatchNorm running statistics for the current weights ("precise BN"); returns batches used.

    Trained from scratch, weights move faster than BatchNorm's running averages
    follow (MobileNetV3 uses momentum 0.01), so the eval-mode network drifts far
    from the train-mode one: the light model found nothing at all after its
    first epoch until this was done. Here the weights are fixed and the
    statistics are plain averages over ``steps`` training batches (then over
    ranks). Models without trainable BatchNorm (FrozenBatchNorm2d after COCO or
    ImageNet initialisation) are left alone. ``scope``: only the BatchNorm
    layers inside this submodule (default: the whole model).
    """
    norms = [
        m
        for m in (scope or unwrap(model)).modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    if not norms or steps <= 0:
        return 0
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average: every batch counts the same
    was_training = model.training
    model.train()
    used = 0
    for images, targets in itertools.islice(loader, steps):
        images, targets = _to_device(images, targets, device)
        unwrap(model)(images, targets)  # targets: the heads see sampled RoIs as in training
        used += 1
    for norm, momentum in zip(norms, momenta, strict=False):
        norm.momentum = momentum
    distributed.average_buffers([b for m in norms for b in (m.running_mean, m.running_var)])
    model.train(was_training)
    return used


def freeze_backbone(
    model: nn.Module, loader: Iterable[Batch], device: torch.device, calibration_steps: int
) -> int:
    """Train only the RPN and RoI heads: the backbone (trunk + FPN) stops learning.

    Its trainable BatchNorm layers (a randomly initialised backbone has them)
    first get statistics re-estimated on ``calibration_steps`` batches, then
    become ``FrozenBatchNorm2d`` as torchvision does for pretrained trunks, so
    ``model.train()`` cannot move them. The state_dict keeps its keys (minus
    ``num_batches_tracked``, which plain torchvision fills back in when loading).
    Returns the number of calibration batches used.
    """
    from torchvision.ops.misc import FrozenBatchNorm2d

    backbone = unwrap(model).backbone
    used = recalibrate_batchnorm(model, loader, device, calibration_steps, scope=backbone)

    def convert(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, nn.BatchNorm2d):
                frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps).to(
                    child.running_mean.device
                )
                frozen.load_state_dict(child.state_dict())  # drops num_batches_tracked itself
                setattr(module, name, frozen)
            else:
                convert(child)

    convert(backbone)
    backbone.requires_grad_(False)
    return used


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: Iterable[Batch],
    device: torch.device,
    class_names: Sequence[str],
    ground_truth: dict[str, Any],
    *,
    score_floor: float = SCORE_FLOOR,
    category_ids: Sequence[int] | None = None,
) -> dict[str, dict[str, Any]]:
    """COCO ``{"bbox": metrics, "segm": metrics}`` of ``model`` on ``loader``'s images.

    Each rank predicts its share; rank 0 gathers all results and scores them
    against ``ground_truth`` (a COCO dict with the dataset's own category ids; ``category_ids[k-1]`` is
    label k's, 1..K when None); other ranks return ``{}``.
    """
    predictor = Predictor(unwrap(model), class_names, device, score_floor=score_floor)
    results: list[dict[str, Any]] = []
    bar = tqdm(
        loader,
        desc="evaluate",
        unit="batch",
        leave=False,
        file=sys.stderr,
        disable=not distributed.is_main_process(),
    )
    for images, targets in bar:
        ids = [int(t["image_id"]) for t in targets]
        for prediction in predictor.predict_tensors(list(images), image_ids=ids):
            results.extend(prediction.to_coco_results(category_ids=category_ids))
    bar.close()
    gathered = distributed.all_gather_objects(results)
    if not distributed.is_main_process():
        return {}
    merged = [record for part in gathered for record in part]
    return {iou: evaluate_coco(ground_truth, merged, iou) for iou in ("bbox", "segm")}


def _to_device(
    images: Sequence[Tensor], targets: Sequence[dict[str, Any]], device: torch.device
) -> tuple[list[Tensor], list[dict[str, Any]]]:
    moved = [
        {k: v.to(device) if isinstance(v, Tensor) else v for k, v in t.items()} for t in targets
    ]
    return [image.to(device, non_blocking=True) for image in images], moved


def _length(loader: Iterable[Batch], max_steps: int | None) -> int | None:
    try:
        size = len(loader)  # type: ignore[arg-type]
    except TypeError:
        return max_steps
    return min(size, max_steps) if max_steps else size
