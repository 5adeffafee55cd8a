"""Train a Fashion-MNIST classifier: ``python -m trainers.fmnist --model cnn3``.

The paper's protocol: 48,000 train / 12,000 validation (a seeded split of the
60,000 training images) / 10,000 test; Adam; (sparse) categorical
cross-entropy. ``--recipe paper`` is that plain recipe; ``--recipe improved``
(the default) adds light augmentation (±2 px shifts, horizontal flips),
label smoothing and a one-cycle learning-rate schedule. ``--teacher`` adds
knowledge distillation (Hinton et al. 2015) from trained classifiers: their
averaged probabilities for each training image and its mirror are computed once
and the student also matches them at a temperature.

Files written to ``--out`` (atomically, every epoch): ``MODEL.pt`` (state_dict),
``MODEL.json`` (model card) and ``MODEL.state.pt`` (optimizer/schedule/history,
for ``--resume``). Progress: a tqdm bar on stderr and, with ``--events``, the
JSON-lines events documented in ``fashionviewer.core.base.events``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import sys
import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fashionviewer.core.base.atomic import ensure_writable_dir
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.base.events import EventWriter
from fashionviewer.core.base.paths import sha256_file
from fashionviewer.core.data.fmnist import CLASSES, load_fashion_mnist
from fashionviewer.core.data.metrics import classification_report
from fashionviewer.core.models import cnn
from fashionviewer.core.models.checkpoint import write_checkpoint
from fashionviewer.core.models.classifier import load_classifier, resolve_classifier_path
from fashionviewer.core.models.domain import FASHION_MNIST
from fashionviewer.core.viewer.trainer_menu import TRAINER_MENUS

from . import checkpointing
from .common import Cancelled, install_cancel_handler, resolve_device, run_cli

log = logging.getLogger("trainers.fmnist")

# What the viewer's Train menu offers, declared in the core (which never imports trainers) and checked
# against get_args_parser by tests/trainers/test_menu_options.py.
MENU = TRAINER_MENUS["fmnist"]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train a Fashion-MNIST CNN (Treneska & Gievska 2020 protocol)."
    )
    p.add_argument("--model", default="cnn3", choices=sorted(cnn.ARCHITECTURES))
    p.add_argument(
        "--recipe",
        default="improved",
        choices=["paper", "improved"],
        help="paper: plain Adam, constant LR, no augmentation; improved: +shift/flip, label smoothing, one-cycle LR",
    )
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument(
        "--lr",
        type=float,
        default=1e-3,
        help="Adam learning rate (peak LR for the one-cycle schedule)",
    )
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument(
        "--dropout", type=float, default=None, help="dropout rate (default: the architecture's)"
    )
    p.add_argument(
        "--label-smoothing",
        type=float,
        default=None,
        help="cross-entropy label smoothing (default: 0.1 with --recipe improved, 0 with paper)",
    )
    p.add_argument(
        "--no-flip", action="store_true", help="improved recipe without horizontal flips"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seeds the train/validation split and the training"
    )
    p.add_argument(
        "--val-size",
        type=int,
        default=12_000,
        help="validation images held out of the 60,000 (0: train on all of them, no validation)",
    )
    p.add_argument(
        "--limit-train",
        type=int,
        default=0,
        help="use only the first N training images (quick runs)",
    )
    p.add_argument(
        "--limit-test",
        type=int,
        default=0,
        help="evaluate on only the first N test images (quick runs)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with the four idx.gz files (default: $FASHION_MNIST_DIR, then Debian's)",
    )
    p.add_argument(
        "--out", default="runs/fmnist", help="output folder for the checkpoint and model card"
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="resume from OUT/MODEL.state.pt (or the given state file)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument(
        "--events", default=None, help="write JSON-lines progress events to PATH, or '-' for stdout"
    )
    p.add_argument("--name", default=None, help="checkpoint name (default: the model name)")
    p.add_argument(
        "--optimizer",
        default="adam",
        choices=["adam", "sgd"],
        help="adam (AdamW with --weight-decay) or sgd (Nesterov momentum 0.9, weight decay on weights only)",
    )
    p.add_argument(
        "--shift", type=int, default=2, help="improved recipe: random shifts of up to ±N px"
    )
    p.add_argument(
        "--erasing",
        type=float,
        default=0.0,
        help="improved recipe: random-erasing probability per image",
    )
    p.add_argument(
        "--tta-flip",
        action="store_true",
        help="average the prediction of each image and its mirror (recorded in the card; load_classifier applies it)",
    )
    p.add_argument(
        "--init",
        default=None,
        help="start from these weights (a bundled classifier name or NAME.pt) instead of random ones",
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 autocast for training (fast on CPUs with AVX512-BF16/AMX)",
    )
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="channels-last memory format (faster oneDNN convolutions)",
    )
    p.add_argument(
        "--teacher",
        nargs="+",
        default=None,
        metavar="CLASSIFIER",
        help="distil from these Fashion-MNIST classifiers (bundled names or .pt paths; probabilities averaged)",
    )
    p.add_argument(
        "--distill-alpha",
        type=float,
        default=0.9,
        help="weight of the teacher's soft targets in the loss (the labels get 1 - alpha)",
    )
    p.add_argument(
        "--distill-temperature",
        type=float,
        default=4.0,
        help="softmax temperature of the distillation",
    )
    return p


def augment(
    x: torch.Tensor,
    generator: torch.Generator,
    flip: bool = True,
    shift: int = 2,
    erasing: float = 0.0,
) -> torch.Tensor:
    """Random ±``shift`` px shifts, optional horizontal flips and random erasing of a uint8
    N×28×28 batch (vectorised)."""
    return augment_with_flips(x, generator, flip, shift, erasing)[0]


def augment_with_flips(
    x: torch.Tensor,
    generator: torch.Generator,
    flip: bool = True,
    shift: int = 2,
    erasing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``augment`` that also returns which images were mirrored (bool N), to pick their teacher targets."""
    n = x.shape[0]
    flipped = torch.zeros(n, dtype=torch.bool)
    padded = F.pad(x, (shift, shift, shift, shift))
    oy, ox = torch.randint(0, 2 * shift + 1, (2, n), generator=generator)
    ar = torch.arange(28)
    rows = (oy[:, None] + ar)[:, :, None]
    cols = (ox[:, None] + ar)[:, None, :]
    if flip:
        flipped = torch.rand(n, generator=generator) < 0.5
        cols = torch.where(flipped[:, None, None], cols.flip(-1), cols)
    out = padded[torch.arange(n)[:, None, None], rows, cols]
    if erasing > 0:
        out = random_erase(out, generator, erasing)
    return out, flipped


def random_erase(x: torch.Tensor, generator: torch.Generator, p: float) -> torch.Tensor:
    """Zhong et al.'s random erasing: with probability ``p`` a rectangle (2-40 % of the image, aspect 0.3-3.3)
    is filled with uniform noise; vectorised as a per-image box mask."""
    n, h, w = x.shape
    area = torch.empty(n).uniform_(0.02, 0.4, generator=generator) * h * w
    log_ratio = torch.empty(n).uniform_(math.log(0.3), math.log(1 / 0.3), generator=generator)
    eh = (area * log_ratio.exp()).sqrt().round().clamp(1, h).long()
    ew = (area / log_ratio.exp()).sqrt().round().clamp(1, w).long()
    top = (torch.rand(n, generator=generator) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=generator) * (w - ew + 1)).long()
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    box = ((ar_h[None] >= top[:, None]) & (ar_h[None] < (top + eh)[:, None]))[:, :, None] & (
        (ar_w[None] >= left[:, None]) & (ar_w[None] < (left + ew)[:, None])
    )[:, None, :]
    box &= (torch.rand(n, generator=generator) < p)[:, None, None]
    noise = torch.randint(0, 256, x.shape, generator=generator, dtype=torch.uint8)
    return torch.where(box, noise, x)


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    batch_size: int = 1000,
    tta_flip: bool = False,
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and the predicted classes for uint8 images (fp32, as ``load_classifier`` predicts).

    ``tta_flip`` averages the probabilities of each image and its mirror, exactly as ``Classifier.predict`` does.
    """
    model.eval()
    total, predictions = 0.0, []
    for start in range(0, len(images), batch_size):
        x = cnn.normalise(images[start : start + batch_size]).to(device)
        y = labels[start : start + batch_size].to(device)
        probs = cnn.predict_probabilities(model, x, tta_flip)
        total += float(F.nll_loss(probs.clamp_min(1e-12).log(), y, reduction="sum"))
        predictions.append(probs.argmax(1).cpu())
    return total / max(len(images), 1), torch.cat(predictions).numpy()


@torch.inference_mode()
def teacher_log_probabilities(
    teachers: Sequence[str], images: torch.Tensor, device: torch.device, batch_size: int = 1000
) -> torch.Tensor:
    """Log of the teachers' mean probabilities for uint8 images and their mirrors: float N×2×10 (index 1: mirrored).

    Shifts are not looked up: a ±2 px shift leaves a Fashion-MNIST item's class (and the teachers' view of it) as is.
    """
    total = torch.zeros(len(images), 2, len(CLASSES))
    for name in teachers:
        teacher = load_classifier(name, device)
        if teacher.card.get("domain", FASHION_MNIST) != FASHION_MNIST:
            raise FashionViewerError(
                f"--teacher {name}: a {teacher.card.get('domain')} classifier, "
                "not a Fashion-MNIST one"
            )
        for start in range(0, len(images), batch_size):
            x = cnn.normalise(images[start : start + batch_size]).to(device)
            plain = cnn.predict_probabilities(teacher.model, x, teacher.tta_flip).cpu()
            # A flip-TTA teacher already averages each image with its mirror: both views get that target.
            mirrored = (
                plain
                if teacher.tta_flip
                else cnn.predict_probabilities(teacher.model, x.flip(-1)).cpu()
            )
            total[start : start + batch_size, 0] += plain
            total[start : start + batch_size, 1] += mirrored
    return (total / len(teachers)).clamp_min(1e-8).log()


def distillation_loss(
    logits: torch.Tensor, teacher_log_probs: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Hinton et al.'s soft-target loss: T² · KL(teacher_T ‖ student_T), batch mean."""
    target = torch.log_softmax(teacher_log_probs / temperature, dim=1)
    student = torch.log_softmax(logits / temperature, dim=1)
    return F.kl_div(student, target, log_target=True, reduction="batchmean") * temperature**2


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Train, checkpoint each epoch, evaluate on the test set; return the model card."""
    if not 0 <= args.val_size < 60_000:
        raise FashionViewerError(
            f"--val-size {args.val_size}: must be from 0 to 59,999 of the 60,000 training images"
        )
    if not 0.0 <= args.distill_alpha <= 1.0 or args.distill_temperature <= 0:
        raise FashionViewerError(
            "--distill-alpha must be in [0, 1] and --distill-temperature above 0"
        )
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    out = ensure_writable_dir(args.out)
    name = args.name or args.model
    weights_path, card_path, state_path = (
        out / f"{name}.pt",
        out / f"{name}.json",
        out / f"{name}.state.pt",
    )

    data = load_fashion_mnist(args.data_dir)
    train_idx, val_idx = data.split_train_val(args.val_size, args.seed)
    if args.limit_train:
        train_idx = train_idx[: args.limit_train]
        val_idx = val_idx[: max(args.limit_train // 4, 100)]
    train_x, train_y = (
        torch.from_numpy(data.train_images[train_idx]),
        torch.from_numpy(data.train_labels[train_idx]),
    )
    val_x, val_y = (
        torch.from_numpy(data.train_images[val_idx]),
        torch.from_numpy(data.train_labels[val_idx]),
    )
    test_count = args.limit_test or len(data.test_labels)
    test_x = torch.from_numpy(data.test_images[:test_count].copy())
    test_y = torch.from_numpy(data.test_labels[:test_count])

    teacher_targets, distillation = None, None
    if args.teacher:
        log.info(
            "computing the soft targets of %s on %d training images and their mirrors",
            ", ".join(args.teacher),
            len(train_x),
        )
        t0 = time.perf_counter()
        teacher_targets = teacher_log_probabilities(args.teacher, train_x, device)
        distillation = {
            "teachers": list(args.teacher),
            "alpha": args.distill_alpha,
            "temperature": args.distill_temperature,
            "teacher_weights_sha256": [
                sha256_file(resolve_classifier_path(t)[0]) for t in args.teacher
            ],
            "targets": "the teachers' mean probabilities for each training image and its mirror",
            # computed once before training, not in "seconds"
            "targets_seconds": round(time.perf_counter() - t0, 1),
        }
    model = cnn.build_classifier(args.model, args.dropout).to(device)
    if args.init:
        model.load_state_dict(_init_weights(args.init, args.model))
    improved = args.recipe == "improved"
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(model, args)
    steps_per_epoch = math.ceil(len(train_x) / args.batch_size)
    scheduler = (
        torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=args.lr,
            epochs=args.epochs,
            steps_per_epoch=steps_per_epoch,
            pct_start=0.25,
        )
        # one-cycle needs a few steps
        if improved and args.epochs * steps_per_epoch >= 20
        else None
    )
    history: list[dict[str, float]] = []
    start_epoch, seconds_total = 1, 0.0
    resume_path = checkpointing.resume_file(args.resume, state_path)
    if resume_path is not None:
        state = checkpointing.restore(
            resume_path, model, optimizer, scheduler, scheduler_key="scheduler"
        )
        history, start_epoch, seconds_total = state["history"], state["epoch"] + 1, state["seconds"]

    generator = torch.Generator().manual_seed(args.seed * 1000 + start_epoch)
    card: dict[str, Any] = {}

    def save(epoch: int, report: dict[str, Any] | None = None) -> dict[str, Any]:
        """The card (with the test report once there is one), weights and training state, as of now."""
        card = _model_card(
            args,
            name,
            model,
            history,
            seconds_total,
            len(train_x),
            len(val_x),
            report,
            distillation,
        )
        _save(
            model,
            card,
            optimizer,
            scheduler,
            history,
            epoch,
            seconds_total,
            weights_path,
            card_path,
            state_path,
        )
        return card

    stop = install_cancel_handler()
    with EventWriter(args.events) as events:
        events.emit(
            "start",
            trainer="fmnist",
            model=args.model,
            epochs=args.epochs,
            steps_per_epoch=steps_per_epoch,
            device=str(device),
            out=str(out),
        )
        try:
            for epoch in range(start_epoch, args.epochs + 1):
                t0, c0 = time.perf_counter(), time.process_time()
                train_loss, train_acc = _train_one_epoch(
                    model,
                    optimizer,
                    scheduler,
                    train_x,
                    train_y,
                    device,
                    args,
                    improved,
                    generator,
                    epoch,
                    steps_per_epoch,
                    events,
                    stop,
                    teacher_targets,
                )
                record: dict[str, Any] = {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "train_acc": train_acc,
                }
                # --val-size 0 trains on all 60,000 images and has nothing to validate on
                if len(val_x):
                    val_loss, val_pred = evaluate(model, val_x, val_y, device)
                    record.update(
                        val_loss=val_loss, val_acc=float((val_pred == val_y.numpy()).mean())
                    )
                seconds = time.perf_counter() - t0
                # this process's CPU time: what contention does not inflate
                cpu_seconds = time.process_time() - c0
                seconds_total += seconds
                record.update(seconds=round(seconds, 2), cpu_seconds=round(cpu_seconds, 2))
                history.append(record)
                card = save(epoch)
                log.info(
                    "epoch %d/%d train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.1fs",
                    epoch,
                    args.epochs,
                    train_loss,
                    train_acc,
                    record.get("val_loss", math.nan),
                    record.get("val_acc", math.nan),
                    seconds,
                )
                events.emit("epoch", epochs=args.epochs, checkpoint=str(weights_path), **record)
            test_loss, test_pred = evaluate(model, test_x, test_y, device, tta_flip=args.tta_flip)
            report = classification_report(test_y.numpy(), test_pred, len(CLASSES))
            report["loss"] = test_loss
            card = save(args.epochs, report)
            log.info(
                "test accuracy %.4f, micro F1 %.4f, macro F1 %.4f",
                report["accuracy"],
                report["micro_f1"],
                report["macro_f1"],
            )
            log.info(
                "confusion matrix (rows true, columns predicted):\n%s",
                np.array(report["confusion"]),
            )
            events.emit("test", metrics=report)
            events.emit("end", status="completed", checkpoint=str(weights_path))
        except Cancelled:
            events.emit(
                "end",
                status="cancelled",
                checkpoint=str(weights_path) if weights_path.exists() else None,
            )
            raise
        except FashionViewerError as exc:
            events.emit("end", status="failed", message=str(exc))
            raise
    return card


def _train_one_epoch(
    model,
    optimizer,
    scheduler,
    train_x,
    train_y,
    device,
    args,
    improved,
    generator,
    epoch,
    steps_per_epoch,
    events,
    stop,
    teacher_targets=None,
) -> tuple[float, float]:
    model.train()
    order = torch.randperm(len(train_x), generator=generator)
    loss_sum, correct, seen = 0.0, 0, 0
    bar = tqdm(
        range(steps_per_epoch),
        desc=f"epoch {epoch}/{args.epochs}",
        unit="step",
        leave=False,
        file=sys.stderr,
    )
    for step in bar:
        if stop["requested"]:
            raise Cancelled()
        idx = order[step * args.batch_size : (step + 1) * args.batch_size]
        x, y = train_x[idx], train_y[idx]
        flipped = torch.zeros(len(idx), dtype=torch.bool)
        if improved:
            x, flipped = augment_with_flips(
                x, generator, flip=not args.no_flip, shift=args.shift, erasing=args.erasing
            )
        x, y = cnn.normalise(x).to(device), y.to(device)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=_label_smoothing(args))
        if teacher_targets is not None:
            soft = teacher_targets[idx, flipped.long()].to(device)
            loss = (1 - args.distill_alpha) * loss + args.distill_alpha * distillation_loss(
                logits.float(), soft, args.distill_temperature
            )
        batch_loss = float(loss.detach())
        if not math.isfinite(batch_loss):
            raise FashionViewerError(
                f"loss became {batch_loss} at epoch {epoch} step {step + 1}; "
                f"the last good checkpoint is kept in {args.out} (try a lower --lr)"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum += batch_loss * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        bar.set_postfix(loss=f"{batch_loss:.3f}")
        events.emit(
            "step",
            epoch=epoch,
            step=step + 1,
            steps=steps_per_epoch,
            loss=round(batch_loss, 5),
            lr=optimizer.param_groups[0]["lr"],
        )
    return loss_sum / seen, correct / seen


def _init_weights(name_or_path: str, architecture: str) -> dict[str, torch.Tensor]:
    """The state_dict to fine-tune from, checked to be the same architecture."""
    weights, card_path = resolve_classifier_path(name_or_path)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if card.get("architecture") != architecture:
        raise FashionViewerError(
            f"{card_path}: --init is a {card.get('architecture')} model, not {architecture}"
        )
    return torch.load(weights, map_location="cpu", weights_only=True)


def _optimizer(model: torch.nn.Module, args: argparse.Namespace) -> torch.optim.Optimizer:
    if args.optimizer == "adam":
        return (torch.optim.AdamW if args.weight_decay else torch.optim.Adam)(
            model.parameters(), lr=args.lr, weight_decay=args.weight_decay
        )
    # SGD: no weight decay on biases and batch-norm parameters (standard ResNet practice).
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.SGD(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=args.lr,
        momentum=0.9,
        nesterov=True,
    )


def _augmentation_text(args: argparse.Namespace) -> str:
    if args.recipe != "improved":
        return "none"
    parts = [f"±{args.shift} px shifts"] + ([] if args.no_flip else ["horizontal flips"])
    if args.erasing:
        parts.append(f"random erasing p={args.erasing}")
    return ", ".join(parts)


def _label_smoothing(args: argparse.Namespace) -> float:
    if args.label_smoothing is not None:
        return args.label_smoothing
    return 0.1 if args.recipe == "improved" else 0.0


def _model_card(
    args, name, model, history, seconds, n_train, n_val, test=None, distillation=None
) -> dict[str, Any]:
    n_test = args.limit_test or 10_000
    card: dict[str, Any] = {
        "name": name,
        "task": "classification",
        "architecture": args.model,
        "domain": FASHION_MNIST,
        "parameters": cnn.count_parameters(model),
        "classes": list(CLASSES),
        "input": {
            "size": [28, 28],
            "channels": 1,
            "dtype": "uint8",
            "convention": "Fashion-MNIST: light item on black background",
            "normalisation": {"scale": 1 / 255, "mean": cnn.MEAN, "std": cnn.STD},
        },
        "training": {
            "data": "Fashion-MNIST",
            "split": (
                f"{n_train} train / {n_val} validation (seeded split of the 60,000 training images, "
                f"seed {args.seed}) / {n_test} test"
                if n_val
                else f"{n_train} train (the training images, no validation split) / {n_test} test"
            ),
            "recipe": args.recipe,
            "augmentation": _augmentation_text(args),
            "init": args.init or "random",
            "schedule": "one-cycle" if args.recipe == "improved" else "constant",
            "label_smoothing": _label_smoothing(args),
            "dropout": args.dropout,
            "epochs": len(history),
            "batch_size": args.batch_size,
            "optimizer": (
                "SGD (Nesterov, momentum 0.9)"
                if args.optimizer == "sgd"
                else "AdamW"
                if args.weight_decay
                else "Adam"
            ),
            "precision": "bfloat16 autocast" if args.bf16 else "float32",
            "channels_last": bool(args.channels_last),
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "seconds": round(seconds, 1),
            "cpu_seconds": round(sum(h.get("cpu_seconds", 0.0) for h in history), 1),
            "device": str(resolve_device(args.device)),
            "torch_threads": torch.get_num_threads(),
        },
        "test_time_augmentation": {"hflip": bool(args.tta_flip)},
        "history": history,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if distillation:
        card["training"]["distillation"] = distillation
    if test is not None:
        card["metrics"] = {
            "test_accuracy": round(test["accuracy"], 4),
            "micro_f1": round(test["micro_f1"], 4),
            "macro_f1": round(test["macro_f1"], 4),
            "test_loss": round(test["loss"], 4),
            "per_class_f1": test["per_class_f1"],
            "confusion": test["confusion"],
            "measured_by": f"trainers.fmnist evaluate() on {n_test} Fashion-MNIST test images",
        }
    return card


def _save(
    model, card, optimizer, scheduler, history, epoch, seconds, weights_path, card_path, state_path
) -> None:
    """The weights + card (the card carries its own date) and the training state, each written atomically."""
    write_checkpoint(model, weights_path, card, stamp_date=False)
    checkpointing.save_training_state(
        state_path,
        model,
        optimizer,
        scheduler,
        {"history": history, "epoch": epoch, "seconds": seconds},
        scheduler_key="scheduler",
    )


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli(main, get_args_parser(), argv)


if __name__ == "__main__":
    sys.exit(cli())
