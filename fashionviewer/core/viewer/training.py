"""Training runs started from the viewer (no Qt): the trainer command line, and progress bookkeeping
from the trainers' JSON-lines events (``core.base.events``): fraction done, ETA, curves, plain-words outcome."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from fashionviewer.core.viewer.trainer_menu import TRAINER_MENUS

# every trainer the Train menu offers
TRAINERS = {name: menu.title for name, menu in TRAINER_MENUS.items()}


@dataclass
class TrainingRequest:
    trainer: str  # a TRAINER_MENUS key: "fmnist" | "maskrcnn" | "parsing" | "interactive"
    model: str
    out: str
    epochs: int = 1
    device: str = "cpu"
    # maskrcnn: dataset name (imaterialist, coco, ccp, fmnist_scenes, annotations)
    dataset: str = ""
    # fmnist: --data-dir; maskrcnn: the dataset's root folder; parsing: the CCP folder
    data_path: str = ""
    # maskrcnn: shorter side in px; parsing: image width (0: the trainer's default)
    image_size: int = 0
    batch_size: int = 0  # 0: the trainer's default
    # fmnist: first N training images; maskrcnn, parsing: at most N steps per epoch
    limit_train: int = 0
    weights: str = ""  # maskrcnn: coco | none | PATH (the trainer's --weights)
    init_from: str = ""  # fine-tune this checkpoint (its classes; new ones extend the heads)
    threads: int = 1  # interactive: torch CPU threads per process (0: torch's default)
    resume: str = "no"  # interactive: "auto" continues from OUT/training_state.pt, "no" starts over
    # parsing fine-tune: how classes the model lacks are learnt (extend | branch), what one instance is,
    # where the item classifier starts (auto | scratch)
    new_classes: str = "extend"
    instances: str = "auto"
    items_init: str = "auto"
    extra: list[str] = field(default_factory=list)

    def arguments(self) -> list[str]:
        """Arguments after ``python``: ``-m trainers.X``, the flags the trainer's menu declares
        (``core.viewer.trainer_menu``), then ``--events -`` (events on stdout)."""
        if self.trainer not in TRAINER_MENUS:
            raise ValueError(f"unknown trainer {self.trainer!r}")
        return (
            TRAINER_MENUS[self.trainer].command_line(vars(self))
            + list(self.extra)
            + ["--events", "-"]
        )

    def command(self) -> list[str]:
        return [sys.executable, *self.arguments()]


def fine_tune_checkpoint(
    trainer: str, family: str, capabilities: frozenset[Any], weights_path: Any
) -> str:
    """The loaded model's checkpoint when ``trainer`` can fine-tune it: its family declares the capability
    (``Capability.FINE_TUNE``) and is the one this trainer trains; "" otherwise."""
    fine_tunable = fine_tune_trainer(family, capabilities) == trainer
    path = str(weights_path or "")
    return path if fine_tunable and path.endswith(".pt") else ""


def fine_tune_trainer(family: str, capabilities: frozenset[Any]) -> str | None:
    """The trainer that fine-tunes a loaded model of ``family`` (None: its family declares no fine-tuning)."""
    from fashionviewer.core.inference.protocol import Capability

    if Capability.FINE_TUNE not in capabilities:
        return None
    return next((name for name, menu in TRAINER_MENUS.items() if menu.family == family), None)


@dataclass
class TrainingProgress:
    """Folds trainer events into what the training panel shows."""

    epochs: int = 0
    steps_per_epoch: int = 0
    epoch: int = 0
    step: int = 0
    started: float | None = None
    status: str = "starting"  # starting | running | completed | cancelled | failed
    checkpoint: str | None = None
    message: str = ""
    step_loss: list[tuple[float, float]] = field(default_factory=list)  # (epoch progress, loss)
    epoch_rows: list[dict[str, Any]] = field(default_factory=list)
    test_metrics: dict[str, Any] | None = None
    _first_step_time: float | None = None
    _first_step_done: float = 0.0
    _last_time: float | None = None

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        now = float(event.get("time", time.time()))
        if kind == "start":
            self.epochs = int(event.get("epochs", 0))
            self.steps_per_epoch = int(event.get("steps_per_epoch", 0))
            self.started = now
            self.status = "running"
        elif kind == "step":
            self.epoch, self.step = int(event.get("epoch", self.epoch)), int(event.get("step", 0))
            steps = int(event.get("steps", self.steps_per_epoch) or 1)
            self.steps_per_epoch = steps
            if "loss" in event:
                self.step_loss.append((self.epoch - 1 + self.step / steps, float(event["loss"])))
            # measure speed from the first step: skips data loading
            if self._first_step_time is None:
                self._first_step_time, self._first_step_done = now, self.fraction
            self._last_time = now
        elif kind == "epoch":
            self.epoch = int(event.get("epoch", self.epoch))
            self.step = self.steps_per_epoch
            self.epoch_rows.append({k: v for k, v in event.items() if k not in ("event", "time")})
            if event.get("checkpoint"):
                self.checkpoint = str(event["checkpoint"])
            self._last_time = now
        elif kind == "test":
            self.test_metrics = dict(event.get("metrics") or {})
        elif kind == "end":
            self.status = str(event.get("status", "completed"))
            self.checkpoint = event.get("checkpoint") or self.checkpoint
            self.message = str(event.get("message") or "")

    @property
    def fraction(self) -> float:
        if not self.epochs or not self.steps_per_epoch:
            return 0.0
        done = (self.epoch - 1) * self.steps_per_epoch + self.step if self.epoch else 0
        return min(max(done / (self.epochs * self.steps_per_epoch), 0.0), 1.0)

    def eta_seconds(self) -> float | None:
        """Remaining time at the speed measured since the first step (None until measurable)."""
        if self._first_step_time is None or self._last_time is None:
            return None
        elapsed, done = (
            self._last_time - self._first_step_time,
            self.fraction - self._first_step_done,
        )
        if elapsed <= 0 or done <= 0:
            return None
        return elapsed / done * (1.0 - self.fraction)

    def curves(self) -> dict[str, list[tuple[float, float]]]:
        """Named (epoch, value) series: step loss, and per-epoch train/val loss and accuracy (or AP)."""
        out: dict[str, list[tuple[float, float]]] = {"step loss": list(self.step_loss)}
        for key in (
            "train_loss",
            "val_loss",
            "train_acc",
            "val_acc",
            "bbox_ap",
            "segm_ap",
            "pixel_accuracy",
            "miou",
            "val_box_iou",
            "val_box_2clicks_iou",
            "val_click_iou",
        ):
            series = [
                (float(r["epoch"]), float(r[key]))
                for r in self.epoch_rows
                if r.get(key) is not None
            ]
            if series:
                out[key.replace("_", " ")] = series
        return out

    def summary(self) -> str:
        last = self.epoch_rows[-1] if self.epoch_rows else {}
        parts = [f"epoch {self.epoch}/{self.epochs}" if self.epochs else "starting"]
        for key, name in (
            ("train_loss", "loss"),
            ("val_acc", "val acc"),
            ("segm_ap", "mask AP"),
            ("miou", "val mIoU"),
            ("val_box_iou", "val box IoU"),
            ("val_click_iou", "val click IoU"),
        ):
            if last.get(key) is not None:
                parts.append(f"{name} {float(last[key]):.4f}")
        if self.test_metrics and "accuracy" in self.test_metrics:
            parts.append(f"test accuracy {float(self.test_metrics['accuracy']):.4f}")
        return ", ".join(parts)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA —"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"ETA {seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"ETA {seconds // 60} min {seconds % 60:02d} s"
    return f"ETA {seconds} s"


def explain_failure(exit_code: int | None, progress: TrainingProgress, stderr_tail: str) -> str:
    """A plain-words explanation of a run that did not complete, with the fix where we know it."""
    lines = [ln.strip() for ln in stderr_tail.splitlines() if ln.strip()]
    error = next(
        (ln[len("error:") :].strip() for ln in reversed(lines) if ln.startswith("error:")), ""
    )
    reason = progress.message or error
    if not reason and lines:
        reason = lines[-1]
    low = reason.lower()
    if "fashion-mnist not found" in low or "dataset-fashion-mnist" in low:
        fix = (
            "Install the data (apt-get install dataset-fashion-mnist) "
            "or choose the folder with the four idx.gz files."
        )
    elif "not found" in low or "no such file" in low or "missing" in low:
        fix = "Check the dataset path in the training dialog."
    elif "cuda" in low or "mps" in low:
        fix = "Choose the CPU device, or a device this machine has."
    elif "out of memory" in low:
        fix = "Lower the batch size or the image size."
    elif "not writable" in low or "permission" in low:
        fix = "Choose an output folder you can write to."
    elif "no module named" in low:
        fix = "The trainer is not installed with this copy of FashionViewer."
    else:
        fix = "See the log below for details."
    kept = (
        f" The last checkpoint ({progress.checkpoint}) is still valid."
        if progress.checkpoint
        else ""
    )
    code = f" (exit status {exit_code})" if exit_code not in (None, 0) else ""
    return (
        f"Training failed{code}: {reason or 'the trainer stopped without saying why'}. {fix}{kept}"
    )
