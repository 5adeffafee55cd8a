"""The model-family registry and the model loader: ``load_predictor(name_or_path) -> InstancePredictor``.

:data:`FAMILIES` maps a family's name to its :class:`~fashionviewer.core.inference.protocol.ModelFamily`;
a card's ``architecture`` picks its family (:func:`family_for_card`), which builds the network
(:func:`load_model`) and makes its predictor. This module imports the family modules
(:mod:`.predictor` for Mask R-CNN, :mod:`.parsing`) and they never import it, so there is no cycle.
Bundled model names (``"demo"``) resolve in ``resources/models`` and ``"coco"`` is torchvision's
COCO Mask R-CNN from the torch cache.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.base.paths import MODELS_DIR
from fashionviewer.core.inference.defaults import COCO_MODEL, SCORE_FLOOR
from fashionviewer.core.inference.devices import resolve_device
from fashionviewer.core.inference.parsing import PARSING_FAMILY
from fashionviewer.core.inference.predictor import MASKRCNN_FAMILY, Predictor
from fashionviewer.core.inference.protocol import InstancePredictor, ModelFamily, PredictorOptions
from fashionviewer.core.models import checkpoint, registry

# The registry: a card's architecture -> its family. A new family is one module (network, predictor and its
# ModelFamily), imported above, plus one entry here; tests and plug-ins may add one with register_family().
FAMILIES: dict[str, ModelFamily] = {
    family.name: family for family in (MASKRCNN_FAMILY, PARSING_FAMILY)
}


def register_family(family: ModelFamily) -> ModelFamily:
    """Add ``family`` to the registry (ValueError when its name or an architecture is taken)."""
    taken = {arch for known in FAMILIES.values() for arch in known.architectures}
    if family.name in FAMILIES or taken.intersection(family.architectures):
        raise ValueError(
            f"model family {family.name!r}: its name or an architecture is already registered"
        )
    FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Remove a family that :func:`register_family` added (tests)."""
    FAMILIES.pop(name, None)


def family_for_card(card: dict[str, Any], where: str = "") -> ModelFamily:
    """The family whose network the card's ``architecture`` names (WeightsError naming ``where`` otherwise)."""
    architecture = card.get("architecture")
    for family in FAMILIES.values():
        if architecture in family.architectures:
            return family
    known = ", ".join(arch for family in FAMILIES.values() for arch in family.architectures)
    raise WeightsError(
        f"{where + ': ' if where else ''}unknown model {architecture!r}; choose one of {known}"
    )


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", allow_random: bool = False
) -> tuple[nn.Module, dict[str, Any]]:
    """Any family's checkpoint ``NAME.pt`` (+ ``NAME.json``): ``(network in eval mode, card)``; the card's
    family is :func:`family_for_card`.

    WeightsError for a missing or corrupt file, a card that does not match the file, an unknown
    architecture, weights that do not fit it, or random weights when ``allow_random`` is false."""
    weights_file = Path(path).with_suffix(".pt")
    card = checkpoint.read_card(weights_file)
    family = family_for_card(card, str(checkpoint.card_path(weights_file)))
    checkpoint.refuse_random(card, weights_file, allow_random)
    state = checkpoint.read_state_dict(weights_file, card)
    model = family.build(card)
    checkpoint.load_state(model, state, weights_file)
    return model.to(device).eval(), card


def bundled_models() -> list[str]:
    """Names of the instance models shipped in ``resources/models`` (e.g. ``["ccp", "demo", "fashion"]``):
    each family's cards there, less the family's prefix (``maskrcnn_demo.json`` is ``demo``)."""
    formats = {family.card_format: family.bundled_prefix for family in FAMILIES.values()}
    names = []
    for card_file in sorted(MODELS_DIR.glob("*.json")):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            prefix = formats.get(json.loads(card_file.read_text(encoding="utf-8")).get("format"))
            if prefix is not None and card_file.stem.startswith(prefix):
                names.append(card_file.stem[len(prefix) :])
    return sorted(names)


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """The ``.pt`` file of a bundled model name or of a checkpoint path (``.pt`` or ``.json``)."""
    text = str(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.suffix in (".pt", ".json") or path.is_file():
        return path.with_suffix(".pt")
    prefixes = [family.bundled_prefix for family in FAMILIES.values() if family.bundled_prefix]
    for stem in [prefix + text for prefix in prefixes] + [text]:
        if (MODELS_DIR / f"{stem}.json").is_file():
            return MODELS_DIR / f"{stem}.pt"
    available = ", ".join(bundled_models()) or "none installed"
    raise WeightsError(f"{text}: no such checkpoint file or bundled model (bundled: {available})")


def load_predictor(
    name_or_path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    allow_random: bool = False,
    score_floor: float = SCORE_FLOOR,
    rescore: bool = True,
    tta: bool = True,
) -> InstancePredictor:
    """The predictor of a bundled model (``"demo"``), torchvision's COCO model (``"coco"``, from the
    torch cache: WeightsError naming the file when it is not there) or a checkpoint ``NAME.pt``/``NAME.json``,
    made by the card's family (:data:`FAMILIES`).

    ``device="auto"`` picks :func:`.devices.best_device`. Random-weight checkpoints are
    refused unless ``allow_random``. When the model card names a re-scoring
    classifier (:mod:`.rescoring`) it is used unless ``rescore=False``; when it
    asks for test-time augmentation (:mod:`.tta`) that is used unless ``tta=False``.
    """
    resolved = resolve_device(device)
    if str(name_or_path) == COCO_MODEL:
        return _coco_predictor(resolved, score_floor)
    path = resolve_model_path(name_or_path)
    model, card = load_model(path, allow_random=allow_random)
    family = family_for_card(card)
    return family.make_predictor(
        model, card, path, PredictorOptions(resolved, score_floor, rescore, tta)
    )


def _coco_predictor(device: torch.device, score_floor: float) -> Predictor:
    """torchvision's COCO Mask R-CNN (ResNet-50 FPN) from the torch cache, named with COCO's classes
    (label k is COCO category id k), prepared for the CPU as load_predictor prepares every model."""
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

    weights = MaskRCNN_ResNet50_FPN_Weights.COCO_V1
    # WeightsError naming the file and folder when absent
    path = registry.cached_weights_file(weights)
    model = registry.get_model("maskrcnn_resnet50_fpn", 91, weights=COCO_MODEL)
    names = list(weights.meta["categories"])[1:]  # drop __background__
    return Predictor(
        model,
        names,
        device,
        score_floor,
        model_name=COCO_MODEL,
        channels_last=device.type == "cpu",
        fold_batch_norm=True,
        weights_path=path,
    )
