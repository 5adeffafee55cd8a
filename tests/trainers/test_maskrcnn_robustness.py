"""trainers.maskrcnn when things go wrong: SIGKILL mid-epoch then ``--resume auto``, a NaN loss in a
real run (stops with a clear message, the last good checkpoint stays), and a bad ``--out``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fashionviewer.core.base.events import parse_event_line
from fashionviewer.core.models.registry import load_checkpoint
from tests.fixtures.scenes import maskrcnn_argv, scene_dataset
from trainers import maskrcnn

REPO = Path(__file__).resolve().parents[2]
STEPS = 4


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return scene_dataset(tmp_path_factory.mktemp("scenes"), n_train=STEPS, n_val=1, image_size=96)


def _argv(scenes: Path, out: Path, *extra: str) -> list[str]:
    """Four one-image steps per epoch, no evaluation: only the checkpoint bookkeeping matters here."""
    return maskrcnn_argv(
        scenes,
        out,
        *extra,
        batch_size=1,
        steps_per_epoch=STEPS,
        val_steps=-1,
        bn_recalibration_steps=1,
    )


def _events(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [e for e in map(parse_event_line, path.read_text().splitlines()) if e is not None]


def test_sigkill_mid_epoch_resumes_from_the_last_checkpoint(scenes, tmp_path):
    out, events_file = tmp_path / "run", tmp_path / "events.jsonl"
    command = [
        sys.executable,
        "-m",
        "trainers.maskrcnn",
        *_argv(scenes, out, "--epochs", "3", "--threads", "1", "--events", str(events_file)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if any(e["event"] == "step" and e["epoch"] == 2 for e in _events(events_file)):
            break  # epoch 1 is saved and epoch 2 has started
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-2000:]
    state = torch.load(out / "training_state.pt", weights_only=False)
    assert state["epoch"] == 1  # epoch 2 never finished
    _, card = load_checkpoint(out / "model.pt")  # the last checkpoint is whole
    assert card["epochs"] == 1

    resumed_events = tmp_path / "resumed.jsonl"
    card = maskrcnn.main(
        maskrcnn.get_args_parser().parse_args(
            _argv(scenes, out, "--epochs", "2", "--resume", "auto", "--events", str(resumed_events))
        )
    )
    events = _events(resumed_events)
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [2]  # epoch 1 was not redone
    assert events[-1]["status"] == "completed"
    assert card["epochs"] == 2 and [h["epoch"] for h in card["history"]] == [1, 2]
    state = torch.load(out / "training_state.pt", weights_only=False)
    # schedule continued
    assert state["epoch"] == 2 and state["lr_scheduler"]["last_epoch"] == 2 * STEPS


def test_nan_loss_in_a_run_stops_and_keeps_the_last_good_checkpoint(
    scenes, tmp_path, monkeypatch, capsys
):
    """Epoch 1 trains normally; from epoch 2 the model's losses are NaN (as after a diverging --lr)."""
    poisoned = {"on": False}
    real_get_model, real_train = maskrcnn.get_model, maskrcnn.train_one_epoch

    def get_model(*args, **kwargs):
        model = real_get_model(*args, **kwargs)
        forward = model.forward

        def nan_forward(images, targets=None):
            output = forward(images, targets)
            if poisoned["on"] and isinstance(output, dict):
                output = {name: value * float("nan") for name, value in output.items()}
            return output

        model.forward = nan_forward
        return model

    def train_one_epoch(model, optimizer, loader, device, epoch, **kwargs):
        poisoned["on"] = epoch >= 2
        try:
            return real_train(model, optimizer, loader, device, epoch, **kwargs)
        finally:
            poisoned["on"] = False

    monkeypatch.setattr(maskrcnn, "get_model", get_model)
    monkeypatch.setattr(maskrcnn, "train_one_epoch", train_one_epoch)
    out, events_file = tmp_path / "run", tmp_path / "events.jsonl"
    before = torch.get_num_threads()
    try:
        code = maskrcnn.cli(_argv(scenes, out, "--epochs", "3", "--events", str(events_file)))
    finally:
        torch.set_num_threads(before)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == (
        f"error: loss became nan at epoch 2 step 1; last good checkpoint kept at {out / 'model.pt'} "
        "(try a lower --lr)"
    )
    model, card = load_checkpoint(out / "model.pt")  # epoch 1's weights, finite and loadable
    assert card["epochs"] == 1 and all(torch.isfinite(p).all() for p in model.state_dict().values())
    assert torch.load(out / "training_state.pt", weights_only=False)["epoch"] == 1
    end = _events(events_file)[-1]
    assert (
        end["event"] == "end" and end["status"] == "failed" and "loss became nan" in end["message"]
    )


def test_out_that_is_a_file_or_unwritable_is_reported_before_training(scenes, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("a file, not a folder")
    assert maskrcnn.cli(_argv(scenes, target, "--epochs", "1")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {target}: output folder is not writable")
    assert target.read_text() == "a file, not a folder"
    if os.geteuid() != 0:  # root writes anywhere: a read-only folder only stops other users
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert maskrcnn.cli(_argv(scenes, locked / "run", "--epochs", "1")) == 2
        assert "not writable" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_bad_roi_count_is_one_usage_line(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        maskrcnn.get_args_parser().parse_args(["--box-batch-size-per-image", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        f"argument --box-batch-size-per-image: {value!r} is not a whole number"
        if value == "many"
        else f"argument --box-batch-size-per-image: {value} is not >= 1"
    )
