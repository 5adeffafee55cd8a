"""``python -m trainers.parsing``: a short run on real CCP photos learns (loss floor), logs the GUI's events,
resumes, and its checkpoint predicts through ``load_predictor``."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fashionviewer.core.base.events import parse_event_line
from fashionviewer.core.inference.families import load_predictor
from fashionviewer.core.inference.parsing import ParsingPredictor
from trainers.parsing import cli

# An untrained network's weighted cross-entropy over its 49 channels is about ln(49) = 3.89; eight steps on
# 16 photos bring the second epoch's mean below 3.5 (3.37 measured).
LOSS_FLOOR = 3.5


@pytest.mark.slow
@pytest.mark.needs_ccp
def test_short_parsing_run_on_real_photos(ccp_root, tmp_path) -> None:
    out = tmp_path / "run"
    args = [
        "--data-path",
        str(ccp_root),
        "--out",
        str(out),
        "--limit",
        "16",
        "--batch-size",
        "4",
        "--steps-per-epoch",
        "4",
        "--warmup-steps",
        "1",
        "--lr",
        "3e-3",
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
        and kinds.count("step") == 8
    )
    steps = [e for e in events if e["event"] == "step"]
    epochs = [e for e in events if e["event"] == "epoch"]
    assert steps[0]["loss"] > math.log(49) - 0.5  # starts untrained
    assert (
        epochs[-1]["train_loss"] < LOSS_FLOOR and epochs[-1]["train_loss"] < steps[0]["loss"] - 0.3
    ), epochs
    # background at least
    assert 0.0 <= epochs[-1]["miou"] <= 1.0 and epochs[-1]["pixel_accuracy"] > 0.5

    card = json.loads((out / "model.json").read_text())
    assert card["domain"] == "photos" and card["taxonomy"] == "imaterialist" and card["epochs"] == 2
    assert card["dataset"]["val_images"] == 100 and card["dataset"]["train_images"] == 16

    assert cli([*args, "--epochs", "3", "--resume", "auto"]) == 0  # continues at epoch 3 only
    events = [parse_event_line(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2, 3]

    predictor = load_predictor(out / "model.pt")
    assert isinstance(predictor, ParsingPredictor)
    from fashionviewer.core.data.imageio import load_image

    prediction = predictor.predict(load_image(ccp_root / "photos" / "0003.jpg"), "0003.jpg")
    assert (prediction.width, prediction.height) == (550, 831)

    # export for shipping: the prior correction is folded into the head's bias, the card names the mirror view
    assert (
        cli(
            [
                "--export",
                str(out / "model.pt"),
                "--out",
                str(tmp_path / "ship"),
                "--prior-correction",
                "1",
                "--hflip",
            ]
        )
        == 0
    )
    shipped = load_predictor(tmp_path / "ship" / "fashion.pt")
    assert shipped.tta is not None and shipped.card["prior_correction"] == 1.0
    weights = torch.tensor(card["training"]["class_weights"])
    assert torch.allclose(
        shipped.model.head.bias, predictor.model.head.bias - weights.log(), atol=1e-5
    )


def test_bad_resume_file_is_one_line(tmp_path, capsys) -> None:
    assert cli(["--out", str(tmp_path), "--resume", str(tmp_path / "nothing.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: --resume {tmp_path / 'nothing.pt'}: file not found (pass a training_state.pt or 'auto')"
    ]
