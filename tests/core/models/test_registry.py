"""Mask R-CNN registry, checkpoints and model cards (CPU, tiny images)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torchvision

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.base.paths import sha256_file
from fashionviewer.core.models import registry as models
from fashionviewer.core.models.registry import (
    get_model,
    list_models,
    load_checkpoint,
    save_checkpoint,
)

SIZE = 128
CLASS_NAMES = ["top", "trouser"]  # num_classes = 3 with the background


def synthetic_batch(seed: int = 0) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Two images with bright rectangles on noise, and their targets."""
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for rects in ([(10, 20, 60, 90, 1)], [(30, 10, 110, 50, 2), (5, 70, 50, 120, 1)]):
        image = torch.rand(3, SIZE, SIZE, generator=g) * 0.3
        masks, boxes, labels = [], [], []
        for x1, y1, x2, y2, label in rects:
            mask = torch.zeros(SIZE, SIZE, dtype=torch.uint8)
            mask[y1:y2, x1:x2] = 1
            image[:, y1:y2, x1:x2] = torch.tensor([0.9, 0.6 * label, 0.2])[:, None, None]
            masks.append(mask)
            boxes.append([x1, y1, x2, y2])
            labels.append(label)
        images.append(image)
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "labels": torch.tensor(labels),
                "masks": torch.stack(masks),
            }
        )
    return images, targets


def test_registry_lists_the_three_architectures():
    assert list_models() == [
        "maskrcnn_mobilenet_v3_light",
        "maskrcnn_resnet50_fpn",
        "maskrcnn_resnet50_fpn_v2",
    ]


@pytest.mark.parametrize("name", list_models())
def test_each_model_trains_two_steps_and_predicts(name):
    torch.manual_seed(0)
    model = get_model(name, num_classes=3, min_size=SIZE, max_size=SIZE)
    assert models.model_info(model)["weights"] == "random"
    images, targets = synthetic_batch()
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.005, momentum=0.9
    )
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    model.train()
    losses = []
    for _ in range(2):
        loss_dict = model(images, targets)
        assert {
            "loss_classifier",
            "loss_box_reg",
            "loss_mask",
            "loss_objectness",
            "loss_rpn_box_reg",
        } <= set(loss_dict)
        loss = sum(loss_dict.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach().item())
    assert all(math.isfinite(v) for v in losses), losses
    changed = [
        k for k, v in model.state_dict().items() if k in before and not torch.equal(v, before[k])
    ]
    assert any("mask_predictor" in k for k in changed) and any("backbone" in k for k in changed)

    model.eval()
    with torch.inference_mode():
        out = model([images[0], images[1][:, :96, :]])
    assert len(out) == 2
    for det, (h, w) in zip(out, [(SIZE, SIZE), (96, SIZE)], strict=False):
        n = det["boxes"].shape[0]
        assert (
            det["boxes"].shape == (n, 4)
            and det["labels"].shape == (n,)
            and det["scores"].shape == (n,)
        )
        assert det["masks"].shape == (n, 1, h, w)
        assert n == 0 or int(det["labels"].max()) <= 2


def test_light_model_is_smaller_than_resnet50():
    light = sum(p.numel() for p in get_model("maskrcnn_mobilenet_v3_light", 11).parameters())
    r50 = sum(p.numel() for p in get_model("maskrcnn_resnet50_fpn", 11).parameters())
    assert light < 7_000_000 < 40_000_000 < r50


def test_default_image_sizes():
    assert get_model("maskrcnn_resnet50_fpn", 3).transform.min_size == (512,)  # the paper's 512
    light = get_model("maskrcnn_mobilenet_v3_light", 3)
    assert light.transform.min_size == (320,) and light.transform.max_size == 533


def test_r50_checkpoint_loads_in_plain_torchvision(tmp_path):
    torch.manual_seed(1)
    model = get_model("maskrcnn_resnet50_fpn", num_classes=3, min_size=SIZE, max_size=SIZE)
    path = tmp_path / "r50.pt"
    card = save_checkpoint(
        model, path, {"class_names": CLASS_NAMES, "dataset": {"name": "synthetic"}}
    )

    written = json.loads((tmp_path / "r50.json").read_text())
    assert written == card
    assert written["architecture"] == "maskrcnn_resnet50_fpn" and written["num_classes"] == 3
    assert written["weights"] == "random" and written["weights_sha256"] == sha256_file(path)
    assert written["min_size"] == SIZE and written["date"]

    # Exactly what a user without this project would write (no downloads: both weights None).
    plain = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=3
    )
    plain.load_state_dict(torch.load(path))
    for key, value in model.state_dict().items():
        assert torch.equal(plain.state_dict()[key], value), key


def test_checkpoint_round_trip_and_random_refusal(tmp_path):
    torch.manual_seed(2)
    model = get_model("maskrcnn_mobilenet_v3_light", num_classes=3, min_size=SIZE)
    save_checkpoint(model, tmp_path / "light.pt", {"class_names": CLASS_NAMES})
    with pytest.raises(WeightsError, match="random"):
        load_checkpoint(tmp_path / "light.pt")
    loaded, card = load_checkpoint(tmp_path / "light.json", allow_random=True)
    assert card["class_names"] == CLASS_NAMES and not loaded.training
    assert loaded.transform.min_size == (SIZE,)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    save_checkpoint(
        model, tmp_path / "trained.pt", {"class_names": CLASS_NAMES, "weights": "trained"}
    )
    _, card = load_checkpoint(tmp_path / "trained.pt")
    assert card["weights"] == "trained"


def test_broken_checkpoints_give_one_line_weights_errors(tmp_path):
    model = get_model("maskrcnn_mobilenet_v3_light", num_classes=3, min_size=SIZE)
    path = tmp_path / "m.pt"
    save_checkpoint(model, path, {"class_names": CLASS_NAMES, "weights": "trained"})

    with pytest.raises(WeightsError, match="missing.json: model card missing"):
        load_checkpoint(tmp_path / "missing.pt")

    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated copy
    with pytest.raises(WeightsError, match="sha256"):
        load_checkpoint(path)

    card = json.loads(path.with_suffix(".json").read_text())
    del card["weights_sha256"]  # without the hash the damage is found when reading
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="corrupt weights file"):
        load_checkpoint(path)

    path.write_bytes(data)
    card["num_classes"], card["class_names"] = 5, ["a", "b", "c", "d"]
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="do not fit"):
        load_checkpoint(path)

    card["architecture"] = "maskrcnn_resnet9000"
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="unknown model 'maskrcnn_resnet9000'"):
        load_checkpoint(path)


def test_coco_weights_not_cached_name_the_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsError) as info:
        get_model("maskrcnn_resnet50_fpn", num_classes=47, weights="coco")
    message = str(info.value)
    assert (
        "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth" in message
        and str(tmp_path / "hub" / "checkpoints") in message
    )
    assert "\n" not in message
    with pytest.raises(WeightsError, match="no COCO weights"):
        get_model("maskrcnn_mobilenet_v3_light", num_classes=11, weights="coco")


def test_cached_coco_weights_are_loaded_and_heads_replaced(tmp_path, monkeypatch):
    """A stand-in COCO file in the cache is what get_model loads (no network involved)."""
    torch.manual_seed(3)
    coco_like = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None
    )
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(coco_like.state_dict(), cache / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    model = get_model("maskrcnn_resnet50_fpn", num_classes=5, weights="coco", min_size=SIZE)
    assert model.roi_heads.box_predictor.cls_score.out_features == 5
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 5
    key = "backbone.fpn.layer_blocks.0.0.weight"
    assert torch.equal(model.state_dict()[key], coco_like.state_dict()[key])
    assert models.model_info(model)["weights"] == "random"  # new heads: not usable before training

    full = get_model("maskrcnn_resnet50_fpn", num_classes=91, weights="coco")
    assert models.model_info(full)["weights"] == "coco"


def test_unknown_model_and_bad_num_classes():
    with pytest.raises(WeightsError, match="choose one of maskrcnn_mobilenet_v3_light"):
        get_model("maskrcnn_vit", 3)
    with pytest.raises(ValueError, match="background"):
        get_model("maskrcnn_mobilenet_v3_light", 1)
