"""Pure pieces behind the viewer: trainer command lines and progress, the class correspondence used for
the "models disagree" flag, ground-truth matching, and the overlay compositor."""

from __future__ import annotations

import sys

import numpy as np

from fashionviewer.core.data.classmap import disagreement, fmnist_classes_for
from fashionviewer.core.data.groundtruth import GTInstance, match_image
from fashionviewer.core.data.masks import encode_mask
from fashionviewer.core.data.overlay import PredictionRasters, class_color, composite
from fashionviewer.core.data.predictions import ImagePrediction, Instance
from fashionviewer.core.viewer.training import (
    TrainingProgress,
    TrainingRequest,
    explain_failure,
    format_eta,
)


def test_trainer_command_lines() -> None:
    fm = TrainingRequest("fmnist", "cnn3", "/tmp/out", epochs=2, limit_train=500, data_path="/data")
    assert fm.command()[:3] == [sys.executable, "-m", "trainers.fmnist"]
    args = fm.arguments()
    assert (
        args[-2:] == ["--events", "-"]
        and "--limit-train" in args
        and args[args.index("--data-dir") + 1] == "/data"
    )
    mr = TrainingRequest(
        "maskrcnn",
        "maskrcnn_mobilenet_v3_light",
        "/o",
        dataset="ccp",
        image_size=320,
        limit_train=5,
        weights="none",
    ).arguments()
    assert mr[mr.index("--dataset") + 1] == "ccp" and mr[mr.index("--steps-per-epoch") + 1] == "5"
    assert mr[mr.index("--weights") + 1] == "none" and "--limit-train" not in mr


def test_training_progress_eta_curves() -> None:
    p = TrainingProgress()
    p.feed({"event": "start", "time": 100.0, "epochs": 2, "steps_per_epoch": 10})
    assert p.eta_seconds() is None and p.status == "running"
    for step in range(1, 11):
        p.feed(
            {
                "event": "step",
                "time": 100.0 + step,
                "epoch": 1,
                "step": step,
                "steps": 10,
                "loss": 1.0 / step,
            }
        )
    p.feed(
        {
            "event": "epoch",
            "time": 111.0,
            "epoch": 1,
            "epochs": 2,
            "train_loss": 0.5,
            "val_acc": 0.8,
            "checkpoint": "/o/cnn3.pt",
        }
    )
    assert p.fraction == 0.5 and abs(p.eta_seconds() - 11.0) < 1.5
    assert (
        set(p.curves()) >= {"step loss", "train loss", "val acc"}
        and format_eta(75) == "ETA 1 min 15 s"
    )
    p.feed({"event": "end", "time": 112.0, "status": "cancelled", "checkpoint": "/o/cnn3.pt"})
    assert p.status == "cancelled" and p.checkpoint == "/o/cnn3.pt"


def test_failure_explained_in_plain_words() -> None:
    p = TrainingProgress(checkpoint="/o/cnn3.pt")
    text = explain_failure(
        2,
        p,
        "loading\nerror: Fashion-MNIST not found in /x: install Debian's dataset-fashion-mnist\n",
    )
    assert (
        text.startswith("Training failed (exit status 2): Fashion-MNIST not found")
        and "apt-get install" in text
    )
    assert "/o/cnn3.pt" in text


def test_class_correspondence() -> None:
    assert fmnist_classes_for("Dress") == ("Dress",)
    assert fmnist_classes_for("jeans") == ("Trouser",) and "Sneaker" in fmnist_classes_for("shoe")
    assert fmnist_classes_for("hair") == ()
    assert disagreement("pants", "Bag") is True and disagreement("pants", "Trouser") is False
    assert disagreement("belt", "Bag") is None


def _rle(box: tuple[int, int, int, int], h: int = 50, w: int = 50) -> dict:
    m = np.zeros((h, w), np.uint8)
    m[box[1] : box[3], box[0] : box[2]] = 1
    return encode_mask(m)


def test_match_image_tp_fp_missed_and_ap() -> None:
    pred = ImagePrediction(
        "a.jpg",
        50,
        50,
        [
            Instance((0, 0, 20, 20), 1, "dress", 0.9, _rle((0, 0, 20, 20))),  # TP
            # FP: wrong class there
            Instance((30, 30, 45, 45), 2, "pants", 0.8, _rle((30, 30, 45, 45))),
            Instance((0, 30, 10, 40), 1, "dress", 0.7, _rle((0, 30, 10, 40))),  # FP: nothing there
        ],
    )
    gt = [
        GTInstance(1, "dress", _rle((0, 0, 20, 19)), (0, 0, 20, 19)),
        GTInstance(3, "bag", _rle((30, 30, 45, 45)), (30, 30, 45, 45)),
    ]
    m = match_image(
        pred, [0, 1, 2], gt, model_classes=["dress", "pants"], gt_classes=["dress", "pants", "bag"]
    )
    assert (
        [p[:2] for p in m.pairs] == [(0, 0)]
        and sorted(m.false_positives) == [1, 2]
        and m.missed == [1]
    )
    assert m.ap is not None and 0.0 <= m.ap <= 1.0
    other = match_image(pred, [0], gt, model_classes=["T-shirt"], gt_classes=["dress"])
    assert other.ap is None and "share classes" in other.ap_note


def test_composite_paints_top_score_last_and_outlines() -> None:
    insts = [
        Instance((0, 0, 20, 20), 1, "a", 0.5, _rle((0, 0, 20, 20))),
        Instance((10, 10, 30, 30), 2, "b", 0.9, _rle((10, 10, 30, 30))),
    ]
    rasters = PredictionRasters(insts, 50, 50)
    rgba = composite(rasters, [0, 1], opacity=0.5, outlines=False)
    assert tuple(rgba[15, 15, :3]) == class_color(2) and rgba[15, 15, 3] == 128
    assert tuple(rgba[5, 5, :3]) == class_color(1) and rgba[40, 40, 3] == 0
    edged = composite(rasters, [0], opacity=0.0, masks=False, outlines=True)
    assert edged[0, 5, 3] == 255 and edged[5, 5, 3] == 0  # border pixel vs inside
    assert rasters.index_map([1, 0])[15, 15] == 1  # instance 1 is the first listed and on top
