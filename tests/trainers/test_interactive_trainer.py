"""``python -m trainers.interactive``: a short run on real CCP photos learns (loss drops), logs events,
resumes, exports a shipped model + card that ``segment`` can use; bad files are one-line errors; two
processes under torchrun (gloo on CPU) train one model and resume it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fashionviewer.core.base.events import parse_event_line
from fashionviewer.core.base.paths import sha256_file
from fashionviewer.core.models.interactive_net import CropWindow, load_interactive_checkpoint
from trainers.interactive import (
    cli,
    error_click,
    find_objects,
    innermost_point,
    load_photos,
    make_sample,
)


@pytest.mark.slow
@pytest.mark.needs_ccp
def test_short_interactive_run_on_real_photos(ccp_root, tmp_path) -> None:
    out = tmp_path / "run"
    args = [
        "--data-path",
        str(ccp_root),
        "--out",
        str(out),
        "--limit",
        "12",
        "--batch-size",
        "6",
        "--steps-per-epoch",
        "6",
        "--warmup-steps",
        "1",
        "--val-objects",
        "12",
        "--max-iterations",
        "1",
        "--events",
        str(out / "events.jsonl"),
    ]
    assert cli([*args, "--epochs", "2"]) == 0
    events = [parse_event_line(line) for line in (out / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert (
        kinds[0] == "start"
        and kinds[-1] == "end"
        and kinds.count("epoch") == 2
        and kinds.count("step") == 12
    )
    steps = [e["loss"] for e in events if e["event"] == "step"]
    # BCE + dice of an untrained net falls
    assert np.mean(steps[-4:]) < np.mean(steps[:4]) - 0.1, steps
    epoch = [e for e in events if e["event"] == "epoch"][-1]
    assert 0.0 <= epoch["val_box_iou"] <= 1.0 and 0.0 <= epoch["val_click_iou"] <= 1.0
    card = json.loads((out / "model.json").read_text())
    assert (
        card["epochs"] == 2
        and card["dataset"]["train_images"] == 12
        and card["dataset"]["val_images"] == 100
    )
    assert card["weights_sha256"] == sha256_file(out / "model.pt")

    assert cli([*args, "--epochs", "3", "--resume", "auto"]) == 0  # continues at epoch 3 only
    events = [parse_event_line(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2, 3]

    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps(
            {
                "command": "python benchmarks/interactive_segmentation.py",
                "date": "today",
                "sample": {"garments": 3, "baseline_subset": [0]},
                "protocol": {},
                "tables": [["learned model", {"box": {"first_iou_mean": 0.5}}]],
            }
        )
    )
    assert (
        cli(
            [
                "--export",
                str(out / "model.pt"),
                "--out",
                str(tmp_path / "ship"),
                "--benchmark",
                str(bench),
            ]
        )
        == 0
    )
    model, shipped = load_interactive_checkpoint(tmp_path / "ship" / "interactive.pt")
    assert shipped["epochs"] == 3 and shipped["benchmark"]["sample"] == {"garments": 3}
    assert shipped["benchmark"]["results"] == {"learned model": {"box": {"first_iou_mean": 0.5}}}
    assert shipped["weights_sha256"] == sha256_file(tmp_path / "ship" / "interactive.pt")

    from fashionviewer.core.data.imageio import load_image
    from fashionviewer.core.inference.interactive import METHOD_LEARNED, InteractiveSession, segment

    image = load_image(ccp_root / "photos" / "0003.jpg")
    session = InteractiveSession()
    mask = segment(image, (100, 200, 300, 500), [(200, 350)], session=session, model=model)
    assert mask.shape == image.shape[:2] and mask[350, 200] and session.method == METHOD_LEARNED


@pytest.mark.needs_ccp
def test_init_from_the_bundled_model_starts_from_its_weights(ccp_root, tmp_path) -> None:
    """--init-from copies the trained weights (at lr 0 they come out as they went in) and the card
    names the start model by its SHA-256."""
    from fashionviewer.core.inference.interactive_model import bundled_model_path

    out = tmp_path / "run"
    args = ["--data-path", str(ccp_root), "--out", str(out), "--limit", "2", "--batch-size", "2"]
    args += ["--steps-per-epoch", "1", "--epochs", "1", "--val-objects", "2", "--lr", "0"]
    assert cli([*args, "--init-from", "interactive"]) == 0
    start, start_card = load_interactive_checkpoint(bundled_model_path())
    trained, card = load_interactive_checkpoint(out / "model.pt")
    start_params = dict(start.named_parameters())
    for name, value in trained.named_parameters():
        assert torch.equal(value, start_params[name]), name
    assert card["init"] == {
        "from": "interactive",
        "weights_sha256": start_card["weights_sha256"],
        "epochs": start_card["epochs"],
    }
    assert cli([*args, "--out", str(tmp_path / "bad"), "--init-from", str(tmp_path / "x.pt")]) == 2


def test_bad_resume_and_export_files_are_one_line_errors(tmp_path, capsys) -> None:
    broken = tmp_path / "training_state.pt"
    broken.write_bytes(b"not a checkpoint")
    assert cli(["--resume", str(broken), "--out", str(tmp_path / "out")]) == 2
    assert "cannot read the training state" in capsys.readouterr().err
    assert cli(["--resume", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "out")]) == 2
    assert "file not found" in capsys.readouterr().err
    (tmp_path / "w.pt").write_bytes(b"junk")
    (tmp_path / "w.json").write_text(
        '{"format": "fashionviewer.interactive/1", "architecture": "interactive_unet"}'
    )
    assert cli(["--export", str(tmp_path / "w.pt"), "--out", str(tmp_path / "ship")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "w.pt" in err[0]


@pytest.mark.needs_ccp
def test_training_views_hold_the_object_and_clicks_say_what_is_under_them(ccp_root) -> None:
    photos = load_photos(str(ccp_root), "train", 100, 0, limit=4)
    objects = find_objects(photos, 400)
    # split regions (two shoes) also give one part each
    assert any(o.part is not None for o in objects)
    rng = np.random.default_rng(0)
    for k in range(24):
        obj = objects[k % len(objects)]
        sample = make_sample(photos, obj, rng)
        assert sample.crop.shape == (160, 160, 3) and sample.truth.any()
        if sample.box.any():  # box mode: the box covers (nearly) all of the object
            assert (sample.truth & (sample.box > 0)).sum() >= 0.9 * sample.truth.sum()
        for x, y in sample.positive:
            assert sample.truth[min(159, int(y)), min(159, int(x))]
        for x, y in sample.negative:
            assert not sample.truth[min(159, int(y)), min(159, int(x))]
    # --box-only-share: every box view is the box alone at 1; at 0, most have clicks or click passes
    for share in (1.0, 0.0):
        rng = np.random.default_rng(1)
        views = [make_sample(photos, o, rng, box_only_share=share) for o in objects[:12] * 4]
        boxed = [v for v in views if v.box.any()]
        guided = sum(bool(v.passes or v.positive or v.negative) for v in boxed)
        assert boxed and (guided == 0 if share == 1.0 else guided > len(boxed) / 2)
    # the oracle's click: in the missed part when that is the larger error
    truth = np.zeros((40, 40), bool)
    truth[5:35, 5:35] = True
    pred = truth.copy()
    pred[5:35, 20:35] = False
    positive, (x, y) = error_click(truth, pred)
    assert (
        positive
        and 20 <= x < 35
        and truth[y, x]
        and innermost_point(truth) in {(19, 19), (20, 20), (19, 20), (20, 19)}
    )


def test_crop_window_round_trip_on_a_real_mask(tmp_path) -> None:
    """A mask sampled into a window and pasted back covers the same pixels (up to the resampling band)."""
    mask = np.zeros((300, 200), bool)
    mask[40:260, 50:150] = True
    mask[100:140, 60:90] = False
    for window in (
        CropWindow.around(45, 35, 155, 265, margin=0.2),
        CropWindow(-50, -20, 120),
        CropWindow.around(50, 40, 60, 50, margin=0.3),
    ):
        logits = window.crop_mask(mask) - 0.5
        up, (x0, y0, x1, y1) = window.paste(logits, 300, 200)
        part = mask[y0:y1, x0:x1]
        assert up.shape == part.shape
        iou = (up & part).sum() / max(1, (up | part).sum())
        assert iou > 0.9, (window, iou)


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.needs_ccp
def test_torchrun_two_processes_gloo(ccp_root, tmp_path) -> None:
    out, events_file = tmp_path / "ddp", tmp_path / "ddp.jsonl"

    def torchrun(*extra: str) -> None:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "trainers.interactive",
            "--data-path",
            str(ccp_root),
            "--out",
            str(out),
            "--limit",
            "4",
            "--steps-per-epoch",
            "2",
            "--batch-size",
            "2",
            "--val-objects",
            "4",
            "--max-iterations",
            "1",
            "--events",
            str(events_file),
            *extra,
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        result = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stderr[-2000:]

    torchrun("--epochs", "1")
    events = [parse_event_line(line) for line in events_file.read_text().splitlines()]
    assert events[0]["world_size"] == 2 and events[0]["steps_per_epoch"] == 2  # rank 0 alone writes
    assert [e["event"] for e in events].count("step") == 2 and events[-1]["status"] == "completed"
    epoch = [e for e in events if e["event"] == "epoch"][0]
    assert 0.0 <= epoch["val_box_iou"] <= 1.0 and epoch["checkpoint"] == str(out / "model.pt")
    card = json.loads((out / "model.json").read_text())
    # 2 steps of 2 crops on each of the 2 processes
    assert card["training"]["world_size"] == 2 and card["training"]["samples_seen"] == 8
    assert card["weights_sha256"] == sha256_file(out / "model.pt")

    torchrun("--epochs", "2", "--resume", "auto")  # both processes continue from the saved state
    events = [parse_event_line(line) for line in events_file.read_text().splitlines()]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2]  # appended: epoch 2 only
    card = json.loads((out / "model.json").read_text())
    assert card["epochs"] == 2 and card["training"]["samples_seen"] == 16
    assert [row["epoch"] for row in card["history"]] == [1, 2]
    load_interactive_checkpoint(out / "model.pt")  # the weights read back against the card
