"""trainers.maskrcnn on a tiny generated Fashion-MNIST scenes dataset (CPU, 96 px, a few steps)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.base.events import parse_event_line
from fashionviewer.core.models.registry import load_checkpoint
from tests.fixtures.scenes import maskrcnn_argv, scene_dataset
from trainers import engine, maskrcnn

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return scene_dataset(tmp_path_factory.mktemp("scenes"), n_train=4, n_val=2, image_size=96)


def _argv(scenes: Path, out: Path, *extra: str) -> list[str]:
    return maskrcnn_argv(
        scenes,
        out,
        *extra,
        batch_size=2,
        steps_per_epoch=2,
        bn_recalibration_steps=2,
        threads=1,
    )


def _events(path: Path) -> list[dict]:
    return [e for e in map(parse_event_line, path.read_text().splitlines()) if e is not None]


def test_train_checkpoint_events_and_resume(scenes, tmp_path):
    out = tmp_path / "run"
    events_file = tmp_path / "events.jsonl"
    args = maskrcnn.get_args_parser().parse_args(
        _argv(scenes, out, "--epochs", "1", "--events", str(events_file))
    )
    card = maskrcnn.main(args)

    events = _events(events_file)
    assert [e["event"] for e in events] == ["start", "step", "step", "epoch", "end"]
    assert events[0]["trainer"] == "maskrcnn" and events[0]["steps_per_epoch"] == 2
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2]
    assert all(math.isfinite(e["loss"]) for e in events if e["event"] == "step")
    # the cosine schedule ends at 0 after the last step
    assert events[1]["lr"] > 0 and events[2]["lr"] == 0.0
    epoch = events[3]
    assert epoch["epoch"] == 1 and 0.0 <= epoch["segm_ap"] <= 1.0 and 0.0 <= epoch["bbox_ap"] <= 1.0
    assert events[-1]["status"] == "completed" and Path(epoch["checkpoint"]) == out / "model.pt"

    # trained weights: loadable without allow_random
    model, saved = load_checkpoint(out / "model.pt")
    assert saved == card and saved["weights"] == "trained" and saved["epochs"] == 1
    assert (
        saved["class_names"][0] == "T-shirt/top"
        and saved["num_classes"] == 11
        and saved["min_size"] == 96
    )
    assert {"bbox_ap", "segm_ap", "segm_ap50", "segm_ap75"} <= set(saved["metrics"])
    assert (out / "model_best.pt").is_file() and (out / "training_state.pt").is_file()

    resumed = maskrcnn.get_args_parser().parse_args(
        _argv(scenes, out, "--epochs", "2", "--resume", "auto", "--events", str(events_file))
    )
    card = maskrcnn.main(resumed)
    new_events = _events(events_file)[len(events) :]
    assert [e["epoch"] for e in new_events if e["event"] == "epoch"] == [2]
    assert card["epochs"] == 2 and [h["epoch"] for h in card["history"]] == [1, 2]
    state = torch.load(out / "training_state.pt", weights_only=False)
    # schedule continued, not restarted
    assert state["epoch"] == 2 and state["lr_scheduler"]["last_epoch"] == 4


def test_freeze_backbone_trains_only_the_heads_and_resumes(scenes, tmp_path):
    from fashionviewer.core.models.registry import get_model

    out = tmp_path / "run"
    card = maskrcnn.main(
        maskrcnn.get_args_parser().parse_args(
            _argv(
                scenes,
                out,
                "--epochs",
                "1",
                "--freeze-backbone",
                "--lr",
                "0.01",
                "--box-batch-size-per-image",
                "16",
            )
        )
    )
    assert (
        card["training"]["freeze_backbone"] is True
        and card["training"]["box_batch_size_per_image"] == 16
    )

    torch.manual_seed(0)  # the trainer's seed: the same random start
    start = get_model("maskrcnn_mobilenet_v3_light", 11, "none", min_size=96)
    trained, _ = load_checkpoint(out / "model.pt")
    before, after = start.state_dict(), trained.state_dict()
    conv_weights = [k for k, v in before.items() if k.startswith("backbone.") and v.dim() == 4]
    head_weights = [
        k for k, v in before.items() if k.startswith(("rpn.", "roi_heads.")) and v.dim() >= 2
    ]
    assert conv_weights and head_weights
    assert all(torch.equal(before[k], after[k]) for k in conv_weights)
    assert all(not torch.equal(before[k], after[k]) for k in head_weights)
    # statistics were re-estimated once (random init: mean 0, var 1) and then kept
    stats = [k for k in before if k.startswith("backbone.") and k.endswith("running_var")]
    assert stats and not any(torch.equal(before[k], after[k]) for k in stats)

    resumed = maskrcnn.main(
        maskrcnn.get_args_parser().parse_args(
            _argv(
                scenes,
                out,
                "--epochs",
                "2",
                "--freeze-backbone",
                "--lr",
                "0.01",
                "--resume",
                "auto",
            )
        )
    )
    again, _ = load_checkpoint(out / "model.pt")
    assert resumed["epochs"] == 2
    assert all(torch.equal(after[k], again.state_dict()[k]) for k in stats + conv_weights)


def test_unwritable_out_is_reported_before_any_data_is_read(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = _argv(tmp_path / "no-such-dataset", blocker / "run")
    with pytest.raises(FashionViewerError, match="output folder is not writable"):
        maskrcnn.main(maskrcnn.get_args_parser().parse_args(argv))
    assert maskrcnn.cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(blocker / "run") in err[0]


def test_missing_resume_file_and_bad_device(scenes, tmp_path):
    with pytest.raises(FashionViewerError, match="--resume .*file not found"):
        maskrcnn.main(
            maskrcnn.get_args_parser().parse_args(
                _argv(scenes, tmp_path / "out", "--resume", str(tmp_path / "none.pt"))
            )
        )
    with pytest.raises(FashionViewerError, match="--device cuda:7"):
        maskrcnn.resolve_device("cuda:7")


class _NaNAfterOneStep(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.calls = 0

    def forward(self, images, targets):
        self.calls += 1
        value = self.weight * (1.0 if self.calls == 1 else float("nan"))
        return {"loss": value}


def test_nan_loss_stops_with_the_last_good_checkpoint():
    model = _NaNAfterOneStep()
    batches = [([torch.zeros(3, 4, 4)], [{"labels": torch.zeros(0)}])] * 3
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    control = engine.StepControl(last_checkpoint="runs/x/model.pt")
    with pytest.raises(
        FashionViewerError,
        match=r"loss became nan at epoch 3 step 2; last good checkpoint kept at "
        r"runs/x/model.pt",
    ):
        engine.train_one_epoch(model, optimizer, batches, torch.device("cpu"), 3, control=control)


def test_horizontal_flip_moves_boxes_with_masks():
    masks = torch.zeros(1, 4, 10, dtype=torch.uint8)
    masks[0, :, 1:3] = 1
    target = {"boxes": torch.tensor([[1.0, 0.0, 3.0, 4.0]]), "masks": masks}
    image, flipped = maskrcnn.HorizontalFlip(
        [(torch.arange(40.0).reshape(1, 4, 10), target)], p=1.0
    )[0]
    assert flipped["boxes"].tolist() == [[7.0, 0.0, 9.0, 4.0]]
    assert flipped["masks"][0, 0].nonzero().flatten().tolist() == [7, 8]
    assert image[0, 0, 0] == 9.0 and target["boxes"][0, 0] == 1.0  # the source sample is untouched


def test_torchrun_two_processes_gloo(scenes, tmp_path):
    out = tmp_path / "ddp"
    events_file = tmp_path / "ddp.jsonl"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "trainers.maskrcnn",
        *_argv(scenes, out, "--epochs", "1", "--batch-size", "1", "--events", str(events_file)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    events = _events(events_file)  # rank 0 only writes events
    assert events[0]["world_size"] == 2 and events[0]["steps_per_epoch"] == 2
    assert [e["event"] for e in events].count("epoch") == 1 and events[-1]["status"] == "completed"
    card = json.loads((out / "model.json").read_text())
    assert card["training"]["world_size"] == 2 and card["dataset"]["val_images"] == 2
