"""Which models the viewer runs (no Qt): the choice (bundled demo, torchvision COCO, a checkpoint file),
devices, and loading the detector plus the Fashion-MNIST CNN (called from a worker thread)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generator

from fashionviewer.core.models.classifier import BUNDLED_CLASSIFIERS
from fashionviewer.core.models.domain import DEMO_MODEL, PHOTO_MODEL

if TYPE_CHECKING:  # torch is imported only when models load
    from fashionviewer.core.inference.protocol import InstancePredictor

CLASSIFIER_NAMES = BUNDLED_CLASSIFIERS  # the best measured bundled CNN first


@dataclass
class ModelChoice:
    source: str  # a bundled name ("demo", "coco") or a checkpoint path
    device: str = "cpu"
    allow_random: bool = False
    classifier: str | None = None  # a name/path; None: the first bundled one found
    tta: bool = True  # test-time augmentation when the model card asks for it (core.inference.tta)

    @property
    def title(self) -> str:
        return (
            Path(self.source).name if ("/" in self.source or "\\" in self.source) else self.source
        )


@dataclass
class LoadedModels:
    choice: ModelChoice
    predictor: InstancePredictor
    key: str  # cache key of this detector's predictions
    label: str  # what the UI shows, e.g. "demo (cpu)" or "x.pt (RANDOM WEIGHTS)"
    random: bool
    classifier: Any | None
    classifier_note: str = ""
    details: str = ""  # the model card in a few lines (the model bar's tooltip): see card_summary


def available_devices() -> list[str]:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += (
            ["cuda"]
            if torch.cuda.device_count() == 1
            else [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        )
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def default_device() -> str:
    try:
        from fashionviewer.core.inference.devices import best_device

        return str(best_device())
    except ImportError:
        return available_devices()[-1] if "cuda" in available_devices()[-1] else "cpu"


def coco_weights_available() -> bool:
    """torchvision's COCO Mask R-CNN only when its weights are already in the torch cache (no downloads)."""
    try:
        from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

        from fashionviewer.core.models.registry import cached_weights_file

        cached_weights_file(MaskRCNN_ResNet50_FPN_Weights.COCO_V1)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not available here"
        return False


def demo_available() -> bool:
    from fashionviewer.core.inference.families import bundled_models

    return DEMO_MODEL in bundled_models()


def photo_model_available() -> bool:
    """Whether the bundled real-photo model (``fashion``) is installed."""
    from fashionviewer.core.inference.families import bundled_models

    return PHOTO_MODEL in bundled_models()


def load_models(choice: ModelChoice) -> Generator[str, None, LoadedModels]:
    """Worker body: yields status lines, returns the loaded models (errors propagate as WeightsError)."""
    from fashionviewer.core.base.errors import FashionViewerError
    from fashionviewer.core.inference.families import load_predictor
    from fashionviewer.core.models.classifier import load_classifier

    yield f"Loading {choice.title} on {choice.device}…"
    # The same resolution as `fashionviewer predict --model` (bundled names, "coco", checkpoint files).
    predictor = load_predictor(
        choice.source, device=choice.device, allow_random=choice.allow_random, tta=choice.tta
    )
    random = predictor.random_weights
    tta = predictor.tta
    label = f"{predictor.describe() or choice.title} on {choice.device}" + (
        " — RANDOM WEIGHTS, predictions are meaningless" if random else ""
    )
    yield "Loading the Fashion-MNIST CNN…"
    classifier, note = None, ""
    for candidate in [choice.classifier] if choice.classifier else list(CLASSIFIER_NAMES):
        try:
            classifier = load_classifier(candidate)
            break
        except FashionViewerError as exc:
            note = str(exc)
    key = f"{choice.source}|{'random' if random else 'weights'}|{'views' if tta is not None else 'single'}"
    return LoadedModels(
        choice,
        predictor,
        key,
        label,
        random,
        classifier,
        "" if classifier else note,
        card_summary(predictor.card, predictor.weights_path),
    )


def card_summary(card: dict[str, Any], weights_path: Any = None) -> str:
    """What a model card says about where the weights came from, in a few plain lines: the file, when it
    was trained, on what, and what it was fine-tuned from (with the SHA-256s that identify them)."""
    if not card:
        return f"{weights_path or 'built in memory'}: no model card"
    lines = [
        f"{weights_path or card.get('weights_file', '')}: {card.get('architecture', '?')}, "
        f"{len(card.get('class_names', []))} classes, {card.get('epochs', '?')} epochs, trained {card.get('date', '?')}"
    ]
    annotations = card.get("annotations") or card.get("training", {}).get("annotations")
    if annotations:
        lines.append(
            f"trained on {annotations.get('file')} (SHA-256 {str(annotations.get('sha256', ''))[:12]}…, "
            f"{annotations.get('images')} images, {annotations.get('instances')} instances)"
        )
    start = card.get("fine_tuned_from") or card.get("training", {}).get("fine_tuned_from")
    if start:
        added = start.get("classes_added") or []
        lines.append(
            f"fine-tuned from {start.get('checkpoint')} (SHA-256 {str(start.get('sha256', ''))[:12]}…)"
            + (f"; classes added: {', '.join(added)}" if added else "")
        )
    metrics = card.get("metrics") or {}
    if metrics:
        lines.append(
            "measured: "
            + ", ".join(f"{k} {v}" for k, v in metrics.items() if isinstance(v, (int, float)))
        )
    if card.get("weights_sha256"):
        lines.append(f"weights SHA-256 {card['weights_sha256']}")
    return "\n".join(lines)
