"""The Mask R-CNN family: architectures, ``get_model``, and its checkpoints and model cards.

A registry as small as torchvision's ``get_model``::

    model = get_model("maskrcnn_resnet50_fpn", num_classes=47, weights="coco")
    save_checkpoint(model, "runs/x/model.pt", {"class_names": names, "weights": "trained"})
    model, card = load_checkpoint("runs/x/model.pt")

``num_classes`` always counts the background (label 0), as in torchvision.

Checkpoints are two files side by side (written and read by :mod:`.checkpoint`, as
for every family): ``NAME.pt``, a plain ``state_dict`` that plain torchvision loads
with no project code (for the ResNet-50 models), and ``NAME.json``, the model card (architecture,
classes, image size, data, epochs, measured AP, date, ``weights_sha256``). The card's ``weights`` field says whether
the outputs mean anything: ``"random"`` (untrained, or pretrained trunk with new
random heads), ``"coco"`` (torchvision's COCO model, 91 classes) or
``"trained"``. Loaders refuse ``"random"`` unless ``allow_random=True`` so that an
untrained model is never presented as a real one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights, mobilenet_v3_large
from torchvision.models._api import WeightsEnum
from torchvision.models.detection import (
    MaskRCNN,
    MaskRCNN_ResNet50_FPN_V2_Weights,
    MaskRCNN_ResNet50_FPN_Weights,
    maskrcnn_resnet50_fpn,
    maskrcnn_resnet50_fpn_v2,
)
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.models import checkpoint
from fashionviewer.core.models.checkpoint import card_path

log = logging.getLogger(__name__)

CARD_FORMAT = "fashionviewer.maskrcnn/1"
COCO_NUM_CLASSES = 91  # torchvision's COCO label space, background included
_MAX_TO_MIN = 1333 / 800  # torchvision's default max_size / min_size ratio


@dataclass(frozen=True)
class _Architecture:
    builder: Callable[..., MaskRCNN]
    default_min_size: int
    coco_weights: WeightsEnum | None
    backbone_weights: WeightsEnum


def maskrcnn_mobilenet_v3_light(
    *,
    num_classes: int,
    weights_backbone: MobileNet_V3_Large_Weights | None = None,
    min_size: int = 320,
    max_size: int | None = None,
    **kwargs: Any,
) -> MaskRCNN:
    """A CPU-friendly Mask R-CNN: MobileNetV3-Large + a 128-channel FPN, light heads.

    Differences from ``maskrcnn_resnet50_fpn`` and why:

    * MobileNetV3-Large trunk (as in torchvision's ``fasterrcnn_mobilenet_v3_large_fpn``)
      but the FPN reads strides 8, 16 and 32 (blocks 6, 12, 15) instead of two
      stride-32 maps: masks of small garments need the stride-8 level. Two
      anchor sizes per level (16-256 px) over 4 levels.
    * FPN and heads 128 channels wide; box head one 3x3 conv + a 256-wide FC
      (instead of two 1024-wide FCs); mask head two 3x3 convs instead of four
      256-wide ones; BatchNorm in the heads.
    * Fewer RPN proposals (300/150 after NMS in training/test instead of
      2000/1000), 64 sampled RoIs per image instead of 512, at most 50
      detections per image; default shorter side 320 px.
    * BatchNorm stays trainable: the model is meant to be trained from scratch
      (re-estimate its statistics before evaluating, see
      ``trainers.engine.recalibrate_batchnorm``).

    Its parameter count and seconds per photo beside ``maskrcnn_resnet50_fpn`` are measured by
    ``benchmarks/model_comparison.py`` (``benchmarks/results/model_comparison.md``); the demo
    model's speed by ``benchmarks/predict_speed.py`` (``benchmarks/results/predict_speed_*.md``).
    """
    trunk = mobilenet_v3_large(weights=weights_backbone).features
    # strides 8, 16, 32; block 16 (1x1 to 960) is for classification
    returned = {"6": "0", "12": "1", "15": "2"}
    in_channels = [trunk[int(index)].out_channels for index in returned]
    width = 128
    backbone = BackboneWithFPN(trunk, returned, in_channels, width, extra_blocks=LastLevelMaxPool())
    # Two sizes per level so that every object size has a close anchor at 4 levels.
    anchors = AnchorGenerator(
        sizes=((16, 32), (48, 64), (96, 128), (192, 256)),
        aspect_ratios=((0.5, 1.0, 2.0),) * 4,
    )
    feature_names = ["0", "1", "2"]
    representation = 256
    options: dict[str, Any] = {
        "rpn_pre_nms_top_n_train": 600,
        "rpn_pre_nms_top_n_test": 300,
        "rpn_post_nms_top_n_train": 300,
        "rpn_post_nms_top_n_test": 150,
        "box_batch_size_per_image": 64,
        "box_detections_per_img": 50,
    }
    options.update(kwargs)
    return MaskRCNN(
        backbone,
        num_classes=None,
        min_size=min_size,
        max_size=max_size or round(min_size * _MAX_TO_MIN),
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(feature_names, output_size=7, sampling_ratio=2),
        box_head=FastRCNNConvFCHead(
            (width, 7, 7), [width], [representation], norm_layer=nn.BatchNorm2d
        ),
        box_predictor=FastRCNNPredictor(representation, num_classes),
        mask_roi_pool=MultiScaleRoIAlign(feature_names, output_size=14, sampling_ratio=2),
        mask_head=MaskRCNNHeads(width, [width, width], dilation=1, norm_layer=nn.BatchNorm2d),
        mask_predictor=MaskRCNNPredictor(width, width, num_classes),
        **options,
    )


_ARCHITECTURES: dict[str, _Architecture] = {
    "maskrcnn_resnet50_fpn": _Architecture(
        maskrcnn_resnet50_fpn,
        512,
        MaskRCNN_ResNet50_FPN_Weights.COCO_V1,
        ResNet50_Weights.IMAGENET1K_V1,
    ),
    "maskrcnn_resnet50_fpn_v2": _Architecture(
        maskrcnn_resnet50_fpn_v2,
        512,
        MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
        ResNet50_Weights.IMAGENET1K_V1,
    ),
    "maskrcnn_mobilenet_v3_light": _Architecture(
        maskrcnn_mobilenet_v3_light, 320, None, MobileNet_V3_Large_Weights.IMAGENET1K_V1
    ),
}


def list_models() -> list[str]:
    """Names accepted by :func:`get_model`."""
    return sorted(_ARCHITECTURES)


def get_model(
    name: str,
    num_classes: int,
    weights: str | os.PathLike[str] | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    *,
    weights_backbone: str | None = None,
    **kwargs: Any,
) -> MaskRCNN:
    """Build Mask R-CNN ``name`` for ``num_classes`` classes (background included).

    Args:
        weights: ``None``/``"none"``: random initialisation (the model is flagged
            random); ``"coco"``: torchvision's COCO weights read from the torch hub
            cache (box and mask predictors replaced when ``num_classes != 91``);
            a path: one of our checkpoints (predictors replaced when the class
            count differs).
        min_size, max_size: shorter/longer image side after resizing; ``None``
            means the architecture's default (512 for the ResNet-50 models as in
            Treneska & Gievska 2020, 320 for the light model) and
            ``min_size * 1333 / 800`` respectively.
        weights_backbone: ``"imagenet"`` starts the trunk from torchvision's
            ImageNet weights (from the cache); ``None`` leaves it random.
        kwargs: passed on to torchvision's ``MaskRCNN`` (e.g. ``box_score_thresh``).

    Raises:
        WeightsError: unknown name, weights not cached, unreadable checkpoint.
    """
    arch = _architecture(name)
    if num_classes < 2:
        raise ValueError(
            f"num_classes counts the background and must be at least 2, got {num_classes}"
        )
    min_size = min_size or arch.default_min_size
    kwargs.update(min_size=min_size, max_size=max_size or round(min_size * _MAX_TO_MIN))
    choice = _weights_choice(weights)
    if choice == "checkpoint":
        return _from_checkpoint(name, Path(weights), num_classes, kwargs)  # type: ignore[arg-type]

    if choice == "coco":
        model, init = _coco_model(name, arch, num_classes, kwargs), "coco"
    else:
        backbone = _backbone_weights(name, arch, weights_backbone)
        model = arch.builder(num_classes=num_classes, weights_backbone=backbone, **kwargs)
        init = "imagenet-backbone" if backbone is not None else "none"
    usable = choice == "coco" and num_classes == COCO_NUM_CLASSES
    _set_info(model, name, num_classes, weights="coco" if usable else "random", init=init)
    if not usable:
        start = (
            "random initialisation" if init == "none" else f"{init} weights with new random heads"
        )
        log.info("%s: %s; predictions are meaningless until trained", name, start)
    return model


def check_weights(
    name: str, weights: str | os.PathLike[str] | None = None, weights_backbone: str | None = None
) -> None:
    """Raise the WeightsError that :func:`get_model` would raise for missing weights, without building
    anything (trainers call it before reading a large dataset)."""
    arch = _architecture(name)
    choice = _weights_choice(weights)
    if choice == "coco":
        _coco_weights(name, arch)
    elif choice == "checkpoint":
        weights_file = Path(weights).with_suffix(".pt")  # type: ignore[arg-type]
        card = read_card(weights_file)
        if not weights_file.is_file():
            raise WeightsError(
                f"{weights_file}: weights file missing (its card {card_path(weights_file).name} is there)"
            )
        if card["architecture"] != name:
            raise WeightsError(f"{weights_file}: holds {card['architecture']} weights, not {name}")
    else:
        _backbone_weights(name, arch, weights_backbone)


def replace_predictors(model: MaskRCNN, num_classes: int) -> None:
    """Give ``model`` new, randomly initialised box and mask predictors for ``num_classes``."""
    heads = model.roi_heads
    heads.box_predictor = FastRCNNPredictor(heads.box_predictor.cls_score.in_features, num_classes)
    conv = heads.mask_predictor.conv5_mask
    heads.mask_predictor = MaskRCNNPredictor(conv.in_channels, conv.out_channels, num_classes)


def model_info(model: nn.Module) -> dict[str, Any]:
    """What the registry knows about ``model``: architecture, num_classes, weights, init, image size."""
    model = unwrap(model)
    info = dict(getattr(model, "registry_info", {}))
    transform = getattr(model, "transform", None)
    if transform is not None:
        info.update(min_size=int(transform.min_size[0]), max_size=int(transform.max_size))
    return info


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel/DataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike[str], card: dict[str, Any]
) -> dict[str, Any]:
    """Write ``path`` (plain state_dict) and its model card beside it, both atomically.

    ``card`` must hold ``class_names`` (K-1 names, label k is ``class_names[k-1]``);
    architecture, num_classes, image size and ``weights`` are filled from the
    model when missing; ``date``, ``weights_file`` and ``weights_sha256`` are
    always set here. Returns the card written.
    """
    return checkpoint.write_checkpoint(model, path, complete_card(model, card))


def complete_card(model: nn.Module, card: dict[str, Any]) -> dict[str, Any]:
    """``card`` with the format and what the model knows (architecture, num_classes, weights, image size)
    filled in where missing; ValueError when the class names do not match ``num_classes``."""
    info = model_info(unwrap(model))
    if "class_names" not in card:
        raise ValueError("save_checkpoint: the card needs class_names")
    full: dict[str, Any] = {"format": CARD_FORMAT}
    full.update(
        {
            k: info[k]
            for k in ("architecture", "num_classes", "weights", "init", "min_size", "max_size")
            if k in info
        }
    )
    full.update(card)
    if full.get("num_classes") != len(full["class_names"]) + 1:
        raise ValueError(
            f"save_checkpoint: {len(full['class_names'])} class names for num_classes={full.get('num_classes')}"
        )
    return full


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The model card of checkpoint ``path`` (``NAME.pt`` or ``NAME.json``), validated."""
    card = checkpoint.read_card(path)
    _architecture(card["architecture"], where=str(card_path(path)))
    return card


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", allow_random: bool = False
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the card's architecture and load ``NAME.pt`` into it; returns ``(model, card)`` in eval mode.

    Mask R-CNN checkpoints only: any family's loads through the family registry
    (``core.inference.families.load_model``).

    Raises WeightsError for a missing/corrupt file, a card that does not match
    the file (sha256), weights that do not fit the architecture, or random
    weights when ``allow_random`` is false.
    """
    weights_file = Path(path).with_suffix(".pt")
    card = read_card(weights_file)
    checkpoint.refuse_random(card, weights_file, allow_random)
    state = checkpoint.read_state_dict(weights_file, card)
    model = build_from_card(card)
    checkpoint.load_state(model, state, weights_file)
    _set_info(
        model,
        card["architecture"],
        card["num_classes"],
        weights=card.get("weights", "trained"),
        init="checkpoint",
    )
    return model.to(device).eval(), card


def build_from_card(card: dict[str, Any]) -> MaskRCNN:
    """An untrained Mask R-CNN of the card's architecture, classes and image size (the registry info set
    from the card: a loaded checkpoint's weights are what the card says)."""
    arch = _architecture(card["architecture"])
    min_size = int(card.get("min_size") or arch.default_min_size)
    max_size = int(card.get("max_size") or round(min_size * _MAX_TO_MIN))
    model = arch.builder(
        num_classes=int(card["num_classes"]),
        weights_backbone=None,
        min_size=min_size,
        max_size=max_size,
    )
    _set_info(
        model,
        card["architecture"],
        card["num_classes"],
        weights=card.get("weights", "trained"),
        init="checkpoint",
    )
    return model


# --------------------------------------------------------------------------- helpers


def _architecture(name: str, where: str = "") -> _Architecture:
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        prefix = f"{where}: " if where else ""
        raise WeightsError(
            f"{prefix}unknown model {name!r}; choose one of {', '.join(list_models())}"
        ) from None


def _weights_choice(weights: str | os.PathLike[str] | None) -> str:
    if weights is None or str(weights).lower() in ("", "none", "random"):
        return "none"
    if str(weights).lower() == "coco":
        return "coco"
    return "checkpoint"


def _backbone_weights(name: str, arch: _Architecture, choice: str | None) -> WeightsEnum | None:
    if choice is None or choice.lower() == "none":
        return None
    if choice.lower() != "imagenet":
        raise WeightsError(f"{name}: unknown backbone weights {choice!r}; use imagenet or none")
    cached_weights_file(arch.backbone_weights)
    return arch.backbone_weights


def cached_weights_file(weights: WeightsEnum) -> Path:
    """The torch hub cache file of torchvision ``weights``; WeightsError naming file and folder when absent.

    Checked before torchvision sees the enum: offline, it would try to download
    and fail with a long network traceback.
    """
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    file = folder / Path(urlparse(weights.url).path).name
    if not file.is_file():
        raise WeightsError(
            f"{type(weights).__name__}.{weights.name} not available offline: place {file.name} "
            f"(from {weights.url}) in {folder}"
        )
    return file


def _coco_weights(name: str, arch: _Architecture) -> WeightsEnum:
    if arch.coco_weights is None:
        raise WeightsError(
            f"{name}: torchvision has no COCO weights for this architecture; use --weights none "
            "(with --weights-backbone imagenet to start from ImageNet features)"
        )
    cached_weights_file(arch.coco_weights)
    return arch.coco_weights


def _coco_model(
    name: str, arch: _Architecture, num_classes: int, kwargs: dict[str, Any]
) -> MaskRCNN:
    """torchvision's COCO model from the hub cache, with new predictors when ``num_classes`` differs."""
    model = arch.builder(weights=_coco_weights(name, arch), progress=False, **kwargs)
    if num_classes != COCO_NUM_CLASSES:
        replace_predictors(model, num_classes)
    return model


def _from_checkpoint(name: str, path: Path, num_classes: int, kwargs: dict[str, Any]) -> MaskRCNN:
    model, card = load_checkpoint(path, allow_random=True)
    if card["architecture"] != name:
        raise WeightsError(f"{path}: holds {card['architecture']} weights, not {name}")
    model.transform.min_size = (kwargs["min_size"],)
    model.transform.max_size = kwargs["max_size"]
    if card["num_classes"] != num_classes:
        replace_predictors(model, num_classes)
    weights = card.get("weights", "trained") if card["num_classes"] == num_classes else "random"
    _set_info(model, name, num_classes, weights=weights, init=str(path))
    return model.train()


def _set_info(model: nn.Module, name: str, num_classes: int, *, weights: str, init: str) -> None:
    model.registry_info = {
        "architecture": name,
        "num_classes": int(num_classes),
        "weights": weights,
        "init": init,
    }
