"""What every trainer does with its files between epochs: find the state to resume from, restore it,
and write each epoch's checkpoint (+ model card, via ``core.models.checkpoint``) and training state.

A training state (``training_state.pt``) is our own pickle: the model, optimizer, scheduler (and AMP
scaler) state_dicts plus the trainer's bookkeeping (epoch, history, seconds, best score, arguments).
Every file is written atomically, so a run stopped at any moment leaves the last epoch's files whole.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from fashionviewer.core.base.atomic import atomic_torch_save
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.models.checkpoint import plain_state_dict

log = logging.getLogger("trainers")

STATE_FILE = "training_state.pt"
LAST_NAME = "model"  # OUT/model.pt + card, every epoch
BEST_NAME = "model_best"  # OUT/model_best.pt + card, at the best validation score


def resume_file(resume: str | None, default: Path) -> Path | None:
    """The training state ``--resume`` names (None: start fresh). ``auto`` is ``default`` when it exists;
    a folder means its ``default.name``; any other missing path is a one-line error."""
    if not resume:
        return None
    path = default if resume == "auto" else Path(resume)
    if path.is_dir():
        path = path / default.name
    if path.is_file():
        return path
    if resume == "auto":
        log.info("no %s in %s: starting from scratch", default.name, default.parent)
        return None
    raise FashionViewerError(f"--resume {resume}: file not found (pass a {default.name} or 'auto')")


def read_training_state(
    path: Path, check: Callable[[dict[str, Any]], str | None] | None = None
) -> dict[str, Any]:
    """The state saved by :func:`save_training_state`; ``check`` returns a reason the state does not belong
    to this run (another trainer, another model), which becomes a one-line error naming the file."""
    try:
        # our own file: holds argparse values
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # any unpickling failure means a damaged file
        raise FashionViewerError(
            f"{path}: cannot read the training state ({type(exc).__name__}); "
            "start again without --resume"
        ) from exc
    if not isinstance(state, dict):
        raise FashionViewerError(f"{path}: not a training state")
    problem = check(state) if check is not None else None
    if problem:
        raise FashionViewerError(f"{path}: {problem}")
    return state


def restore(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None = None,
    scaler: torch.amp.GradScaler | None = None,
    *,
    scheduler_key: str = "lr_scheduler",
    check: Callable[[dict[str, Any]], str | None] | None = None,
) -> dict[str, Any]:
    """Load a training state into the model, optimizer, scheduler and scaler; returns the whole state
    (the trainer reads its bookkeeping from it)."""
    state = read_training_state(path, check)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get(scheduler_key):
        scheduler.load_state_dict(state[scheduler_key])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    log.info("resumed from %s at epoch %d", path, state["epoch"] + 1)
    return state


def save_training_state(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    fields: Mapping[str, Any],
    *,
    scheduler_key: str = "lr_scheduler",
    scaler: torch.amp.GradScaler | None = None,
    with_scaler: bool = False,
) -> None:
    """Write the model, optimizer, scheduler (and scaler) states plus the trainer's ``fields`` atomically."""
    state: dict[str, Any] = {
        "model": plain_state_dict(model),
        "optimizer": optimizer.state_dict(),
        scheduler_key: scheduler.state_dict() if scheduler is not None else None,
    }
    if with_scaler:
        state["scaler"] = scaler.state_dict() if scaler is not None else None
    state.update(fields)
    atomic_torch_save(state, path)


def save_epoch_checkpoints(
    write: Callable[[nn.Module, Path, dict[str, Any]], dict[str, Any]],
    model: nn.Module,
    out: Path,
    card: dict[str, Any],
    *,
    improved: bool = False,
) -> dict[str, Any]:
    """``out/model.pt`` + card every epoch, and ``out/model_best.pt`` + card when the score improved; returns
    the card written. ``write`` is the family's saver (it completes the card: format, classes...)."""
    written = write(model, out / f"{LAST_NAME}.pt", card)
    if improved:
        write(model, out / f"{BEST_NAME}.pt", card)
    return written


def save_epoch(
    write: Callable[[nn.Module, Path, dict[str, Any]], dict[str, Any]],
    model: nn.Module,
    out: Path,
    card: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    fields: Mapping[str, Any],
    *,
    improved: bool,
    scaler: torch.amp.GradScaler | None = None,
    with_scaler: bool = False,
) -> dict[str, Any]:
    """An epoch's end: ``model.pt`` (and ``model_best.pt`` when ``improved``) with their cards, then the
    training state ``--resume`` continues from; returns the card written."""
    written = save_epoch_checkpoints(write, model, out, card, improved=improved)
    save_training_state(
        out / STATE_FILE,
        model,
        optimizer,
        scheduler,
        fields,
        scaler=scaler,
        with_scaler=with_scaler,
    )
    return written
