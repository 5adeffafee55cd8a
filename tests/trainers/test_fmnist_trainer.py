"""trainers.fmnist on the real Fashion-MNIST: short runs, checkpoints, resume, cancel, errors."""

import hashlib
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

QUICK = [
    "--model",
    "cnn1",
    "--limit-train",
    "8000",
    "--batch-size",
    "64",
    "--lr",
    "3e-3",
    "--recipe",
    "paper",
    "--threads",
    "1",
]


def run_main(tmp_path, *extra):
    return trainer.main(
        trainer.get_args_parser().parse_args([*QUICK, "--out", str(tmp_path), *extra])
    )


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
    assert (
        len(card["history"]) == 3
        and card["history"][-1]["val_acc"] > card["history"][0]["val_acc"] - 0.02
    )


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
    return subprocess.run(
        [sys.executable, "-m", "trainers.fmnist", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        **kwargs,
    )


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
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainers.fmnist",
            *QUICK,
            "--limit-train",
            "3000",
            "--epochs",
            "50",
            "--out",
            str(tmp_path),
            "--events",
            "-",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
    card = trainer.main(
        trainer.get_args_parser().parse_args(
            [
                "--model",
                "fvnet",
                "--limit-train",
                "3000",
                "--limit-test",
                "2000",
                "--epochs",
                "2",
                "--batch-size",
                "128",
                "--optimizer",
                "sgd",
                "--lr",
                "0.1",
                "--weight-decay",
                "5e-4",
                "--erasing",
                "0.3",
                "--bf16",
                "--channels-last",
                "--tta-flip",
                "--threads",
                "1",
                "--out",
                str(tmp_path),
            ]
        )
    )
    t = card["training"]
    assert (
        t["optimizer"].startswith("SGD")
        and t["precision"] == "bfloat16 autocast"
        and t["channels_last"]
    )
    assert "random erasing p=0.3" in t["augmentation"] and card["test_time_augmentation"] == {
        "hflip": True
    }
    assert t["cpu_seconds"] > 0 and all("cpu_seconds" in h for h in card["history"])
    # The card's figure is what load_classifier measures: it applies the same flip averaging.
    clf = load_classifier(tmp_path / "fvnet.pt")
    assert clf.tta_flip
    accuracy = float(
        (clf.predict(fmnist.test_images[:2000]).argmax(1) == fmnist.test_labels[:2000]).mean()
    )
    assert accuracy == pytest.approx(card["metrics"]["test_accuracy"], abs=0.002)
    assert accuracy > 0.6  # 3,000 images, 2 epochs; chance is 0.10


def _teacher_copy(tmp_path, name: str, hflip: bool):
    """The shipped cnn3 weights under a card that does (or does not) average each image with its mirror."""
    from fashionviewer.core.models.classifier import resolve_classifier_path

    weights, card_path = resolve_classifier_path("cnn3")
    card = {**json.loads(card_path.read_text()), "test_time_augmentation": {"hflip": hflip}}
    (tmp_path / f"{name}.json").write_text(json.dumps(card))
    (tmp_path / f"{name}.pt").write_bytes(weights.read_bytes())
    return str(tmp_path / f"{name}.pt")


def test_teacher_targets_are_the_mean_probabilities_for_each_image_and_its_mirror(fmnist, tmp_path):
    import torch

    x = fmnist.test_images[:300]
    mirrored = x[:, :, ::-1].copy()
    plain, flip = _teacher_copy(tmp_path, "plain", False), _teacher_copy(tmp_path, "flip", True)
    targets = trainer.teacher_log_probabilities(
        [plain], torch.from_numpy(x.copy()), torch.device("cpu")
    )
    assert targets.shape == (300, 2, 10)
    probs = targets.exp().numpy()
    assert np.allclose(probs.sum(-1), 1, atol=1e-4)
    teacher = load_classifier(plain)
    assert np.allclose(probs[:, 0], teacher.predict(x), atol=1e-5)
    assert np.allclose(probs[:, 1], teacher.predict(mirrored), atol=1e-5)
    assert not np.allclose(probs[:, 0], probs[:, 1], atol=1e-3)  # the mirror is another view
    # Two teachers average; a teacher that predicts with flip TTA gives an image and its mirror the same target.
    both = trainer.teacher_log_probabilities(
        [plain, flip], torch.from_numpy(x.copy()), torch.device("cpu")
    ).exp()
    flip_probs = load_classifier(flip).predict(x)
    assert np.allclose(both[:, 0].numpy(), (teacher.predict(x) + flip_probs) / 2, atol=1e-5)
    assert np.allclose(both[:, 1].numpy(), (teacher.predict(mirrored) + flip_probs) / 2, atol=1e-5)


def test_distillation_loss_is_zero_only_when_the_student_matches_the_teacher():
    import torch

    teacher = torch.log_softmax(
        torch.randn(16, 10, generator=torch.Generator().manual_seed(0)), dim=1
    )
    assert float(trainer.distillation_loss(teacher.clone(), teacher, 4.0)) == pytest.approx(
        0.0, abs=1e-6
    )
    # softmax shift
    assert float(trainer.distillation_loss(teacher + 3.0, teacher, 4.0)) == pytest.approx(
        0.0, abs=1e-6
    )
    other = torch.randn(16, 10, generator=torch.Generator().manual_seed(1))
    assert float(trainer.distillation_loss(other, teacher, 4.0)) > 0.01


def test_a_distilled_student_learns_what_its_teacher_says_not_the_labels(fmnist, tmp_path):
    import torch

    from fashionviewer.core.models.classifier import resolve_classifier_path

    # A teacher that calls every class the next one: the shipped cnn3 with its output rows rolled by one.
    weights, card_path = resolve_classifier_path("cnn3")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    last = [k for k in state if k.endswith(".weight")][-1].rsplit(".", 1)[0]
    for key in (f"{last}.weight", f"{last}.bias"):
        state[key] = state[key].roll(1, dims=0)
    torch.save(state, tmp_path / "next_class.pt")
    (tmp_path / "next_class.json").write_text(card_path.read_text())
    args = [
        "--limit-train",
        "2000",
        "--limit-test",
        "2000",
        "--epochs",
        "3",
        "--recipe",
        "improved",
    ]
    plain = run_main(tmp_path / "plain", *args)
    distilled = run_main(
        tmp_path / "distilled",
        *args,
        "--teacher",
        str(tmp_path / "next_class.pt"),
        "--distill-alpha",
        "1.0",
    )
    kd = distilled["training"]["distillation"]
    assert (
        kd["teachers"] == [str(tmp_path / "next_class.pt")]
        and kd["alpha"] == 1.0
        and kd["targets_seconds"] > 0
    )
    assert kd["teacher_weights_sha256"] == [
        hashlib.sha256((tmp_path / "next_class.pt").read_bytes()).hexdigest()
    ]
    assert "distillation" not in plain["training"]
    # With alpha 1 the labels carry no weight: the student learns the teacher's shifted classes, which only
    # happens if every training image is paired with its own soft target.
    labels = fmnist.test_labels[:2000]
    predicted = (
        load_classifier(tmp_path / "distilled" / "cnn1.pt")
        .predict(fmnist.test_images[:2000])
        .argmax(1)
    )
    assert float((predicted == (labels + 1) % 10).mean()) > 0.6
    # Measured: 0.72 of the student's answers are the teacher's next class; 0.01 accuracy vs 0.72 for the plain run.
    assert distilled["metrics"]["test_accuracy"] < 0.1 and plain["metrics"]["test_accuracy"] > 0.6


def test_val_size_zero_trains_on_every_image_and_validates_nothing(fmnist, tmp_path):
    card = run_main(
        tmp_path, "--val-size", "0", "--limit-train", "1000", "--limit-test", "500", "--epochs", "1"
    )
    assert "no validation" in card["training"]["split"]
    assert "val_acc" not in card["history"][0] and card["history"][0]["train_loss"] > 0
    assert card["metrics"]["test_accuracy"] > 0.3


def test_a_teacher_from_another_domain_is_one_clear_error(tmp_path):
    result = _cli("--teacher", "fvnet_scenes", "--epochs", "1", "--out", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        "fvnet_scenes: a synthetic-scenes classifier, not a Fashion-MNIST one"
        in result.stderr.strip().splitlines()[-1]
    )
