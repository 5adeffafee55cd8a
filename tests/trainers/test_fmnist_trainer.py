"""trainers.fmnist on the real Fashion-MNIST: short runs, checkpoints, resume, cancel, errors."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from fashionviewer.core.base.events import parse_event_line
from fashionviewer.core.models.classifier import load_classifier
from trainers import fmnist as trainer

QUICK = ["--model", "cnn1", "--limit-train", "8000", "--batch-size", "64", "--lr", "3e-3", "--recipe", "paper", "--threads", "1"]


def run_main(tmp_path, *extra):
    return trainer.main(trainer.get_args_parser().parse_args([*QUICK, "--out", str(tmp_path), *extra]))


@pytest.fixture(scope="module")
def short_run(fmnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn1")
    card = run_main(out, "--epochs", "3", "--events", str(out / "events.jsonl"))
    return out, card


def test_short_run_on_a_subset_beats_the_stated_accuracy(short_run):
    _, card = short_run
    # 8,000 training images, 3 epochs: a working trainer measured 0.81; chance is 0.10.
    assert card["metrics"]["test_accuracy"] >= 0.78
    assert card["metrics"]["macro_f1"] >= 0.75
    assert len(card["history"]) == 3 and card["history"][-1]["val_acc"] > card["history"][0]["val_acc"] - 0.02


def test_checkpoint_round_trips_through_load_classifier(fmnist, short_run):
    out, card = short_run
    clf = load_classifier(out / "cnn1.pt")
    accuracy = float((clf.predict(fmnist.test_images).argmax(1) == fmnist.test_labels).mean())
    assert accuracy == pytest.approx(card["metrics"]["test_accuracy"], abs=1e-4)
    on_disk = json.loads((out / "cnn1.json").read_text())
    assert on_disk["parameters"] == 173_738 and on_disk["weights_sha256"]
    assert not list(out.glob(".*.tmp")), "atomic writes leave no temporary files"


def test_events_follow_the_documented_schema(short_run):
    out, _ = short_run
    events = [parse_event_line(line) for line in (out / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and events[-1]["status"] == "completed"
    assert kinds.count("epoch") == 3 and "test" in kinds
    step = next(e for e in events if e["event"] == "step")
    assert {"epoch", "step", "steps", "loss", "lr", "time"} <= set(step)


def test_resume_continues_where_the_run_stopped(fmnist, tmp_path):
    first = run_main(tmp_path, "--epochs", "2", "--limit-train", "2000")
    assert len(first["history"]) == 2
    resumed = run_main(tmp_path, "--epochs", "3", "--limit-train", "2000", "--resume")
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["history"][:2] == first["history"]


def _cli(*args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "trainers.fmnist", *args], capture_output=True, text=True,
                          timeout=120, env=env, **kwargs)


def test_missing_data_is_one_clear_line_not_a_traceback(tmp_path):
    result = _cli("--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: Fashion-MNIST not found")


def test_unwritable_output_is_reported_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = _cli("--out", str(blocker / "sub"), "--epochs", "1")
    assert result.returncode == 2 and "output folder is not writable" in result.stderr


def test_sigterm_cancels_and_keeps_the_last_checkpoint(fmnist, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "trainers.fmnist", *QUICK, "--limit-train", "3000",
                             "--epochs", "50", "--out", str(tmp_path), "--events", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        event = parse_event_line(line)
        if event and event["event"] == "epoch":
            proc.send_signal(signal.SIGTERM)
            break
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert json.loads(rest.strip().splitlines()[-1])["status"] == "cancelled"
    clf = load_classifier(tmp_path / "cnn1.pt")  # the epoch-1 checkpoint is intact
    assert clf.predict(fmnist.test_images[:10]).shape == (10, 10)
    assert len(json.loads((tmp_path / "cnn1.json").read_text())["history"]) >= 1


def test_augmentation_shifts_and_flips_but_keeps_content(fmnist):
    import torch

    batch = torch.from_numpy(fmnist.test_images[:64].copy())
    out = trainer.augment(batch, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and out.dtype == torch.uint8
    assert not torch.equal(out, batch)
    # A ±2 px shift moves at most a 2-px border out of frame.
    kept = out.float().sum((1, 2)) / batch.float().sum((1, 2))
    assert float(kept.min()) > 0.85 and float(kept.max()) <= 1.0 + 1e-6
    assert np.isfinite(kept.numpy()).all()


def test_random_erasing_fills_one_box_per_chosen_image_and_leaves_the_rest(fmnist):
    import torch

    batch = torch.from_numpy(fmnist.test_images[:256].copy())
    out = trainer.random_erase(batch, torch.Generator().manual_seed(1), p=0.5)
    changed = (out != batch).flatten(1).any(1)
    # About half the images are erased (binomial 256 × 0.5), the others are untouched.
    assert 90 < int(changed.sum()) < 166
    for i in torch.nonzero(changed).flatten()[:20].tolist():
        ys, xs = torch.nonzero(out[i] != batch[i], as_tuple=True)
        box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert int(box) <= 0.4 * 28 * 28 + 56  # at most 40 % of the image (rounding of the sides)


def test_sgd_bf16_channels_last_run_records_its_recipe_and_flip_tta(fmnist, tmp_path):
    card = trainer.main(trainer.get_args_parser().parse_args([
        "--model", "fvnet", "--limit-train", "3000", "--limit-test", "2000", "--epochs", "2", "--batch-size", "128",
        "--optimizer", "sgd", "--lr", "0.1", "--weight-decay", "5e-4", "--erasing", "0.3", "--bf16",
        "--channels-last", "--tta-flip", "--threads", "1", "--out", str(tmp_path)]))
    t = card["training"]
    assert t["optimizer"].startswith("SGD") and t["precision"] == "bfloat16 autocast" and t["channels_last"]
    assert "random erasing p=0.3" in t["augmentation"] and card["test_time_augmentation"] == {"hflip": True}
    assert t["cpu_seconds"] > 0 and all("cpu_seconds" in h for h in card["history"])
    # The card's figure is what load_classifier measures: it applies the same flip averaging.
    clf = load_classifier(tmp_path / "fvnet.pt")
    assert clf.tta_flip
    accuracy = float((clf.predict(fmnist.test_images[:2000]).argmax(1) == fmnist.test_labels[:2000]).mean())
    assert accuracy == pytest.approx(card["metrics"]["test_accuracy"], abs=0.002)
    assert accuracy > 0.6  # 3,000 images, 2 epochs; chance is 0.10
