"""trainers.checkpointing, the resume / restore / save-epoch code every trainer shares: a state saved after an
epoch restores the model, optimizer and scheduler exactly; a state from another run is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.models.checkpoint import read_card, read_state_dict, write_checkpoint
from trainers import checkpointing


def _run(
    seed: int,
) -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return model, optimizer, scheduler


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler) -> None:
    loss = model(torch.randn(8, 4)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()


def test_resume_file_auto_folder_and_missing(tmp_path: Path) -> None:
    default = tmp_path / checkpointing.STATE_FILE
    assert checkpointing.resume_file(None, default) is None
    assert checkpointing.resume_file("auto", default) is None  # nothing yet: start fresh
    default.write_bytes(b"x")
    assert checkpointing.resume_file("auto", default) == default
    # a folder means its state file
    assert checkpointing.resume_file(str(tmp_path), default) == default
    with pytest.raises(
        FashionViewerError,
        match=r"^--resume .*nothing.pt: file not found \(pass a training_state.pt",
    ):
        checkpointing.resume_file(str(tmp_path / "nothing.pt"), default)


def test_a_saved_epoch_restores_exactly_and_its_checkpoints_read_back(tmp_path: Path) -> None:
    model, optimizer, scheduler = _run(0)
    _step(model, optimizer, scheduler)
    card = {"architecture": "tiny", "num_classes": 3, "class_names": ["a", "b"]}
    written = checkpointing.save_epoch(  # what every trainer calls at an epoch's end
        write_checkpoint,
        model,
        tmp_path,
        card,
        optimizer,
        scheduler,
        {"trainer": "tiny", "epoch": 1, "history": [{"epoch": 1}]},
        improved=True,
    )
    assert read_card(tmp_path / "model.pt") == written
    for name in ("model", "model_best"):
        # sha256 checked
        state = read_state_dict(tmp_path / f"{name}.pt", read_card(tmp_path / f"{name}.pt"))
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())

    again, optimizer2, scheduler2 = _run(1)  # other weights until restored
    state = checkpointing.restore(
        tmp_path / checkpointing.STATE_FILE,
        again,
        optimizer2,
        scheduler2,
        check=lambda s: None if s.get("trainer") == "tiny" else "not ours",
    )
    assert state["epoch"] == 1 and scheduler2.get_last_lr() == scheduler.get_last_lr()
    torch.manual_seed(5)
    _step(model, optimizer, scheduler)
    torch.manual_seed(5)
    # the same next step: the optimizer's moments came back too
    _step(again, optimizer2, scheduler2)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=False)
    )

    with pytest.raises(
        FashionViewerError, match="training_state.pt: not a trainers.parsing state$"
    ):
        checkpointing.restore(
            tmp_path / checkpointing.STATE_FILE,
            again,
            optimizer2,
            scheduler2,
            check=lambda s: "not a trainers.parsing state",
        )
    (tmp_path / "broken.pt").write_bytes(b"not a pickle")
    with pytest.raises(FashionViewerError, match="broken.pt: cannot read the training state"):
        checkpointing.restore(tmp_path / "broken.pt", again, optimizer2, scheduler2)


def test_best_is_written_only_when_the_score_improved(tmp_path: Path) -> None:
    model, _, _ = _run(0)
    card = {"architecture": "tiny", "num_classes": 3, "class_names": ["a", "b"]}
    checkpointing.save_epoch_checkpoints(write_checkpoint, model, tmp_path, card, improved=False)
    assert (tmp_path / "model.pt").is_file() and not (tmp_path / "model_best.pt").exists()
