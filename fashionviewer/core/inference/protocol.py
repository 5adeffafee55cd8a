"""What the app needs of a garment model, whatever its family: :class:`InstancePredictor`.

``fashionviewer predict``, the prediction cache, the per-image step, the viewer and the annotation
mode read predictors only through this protocol. What a family can do beyond predicting is declared
in ``capabilities`` (set from its :class:`~fashionviewer.core.inference.families.ModelFamily`), never
probed with ``getattr``/``isinstance``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from fashionviewer.core.data.predictions import ImagePrediction


class Capability(str, Enum):
    """Optional abilities of a model family, declared in the family registry."""

    # its mask head segments a given box (the annotation box tool's prior)
    BOX_PROMPT = "box-prompt"
    FINE_TUNE = "fine-tune"  # its trainer starts from one of its checkpoints (--init-from)
    RESCORING = "rescoring"  # a Fashion-MNIST CNN may re-score its detections (card "rescorer")
    TEST_TIME_VIEWS = "test-time-views"  # the card may ask for several views of each photo


class Views(Protocol):
    """Test-time views of one photo, as the cache key and run.json record them."""

    @property
    def view_count(self) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class InstancePredictor(Protocol):
    """A loaded garment model: photos in, :class:`ImagePrediction` (instances with masks) out.

    ``class_names[k-1]`` names label k and ``category_ids[k-1]`` is its id in files; ``card`` is the
    model card (``{}`` for a model built in memory); ``weights_path`` where the weights came from
    (None: built in memory); ``random_weights``: untrained, its outputs mean nothing."""

    family: str
    capabilities: frozenset[Capability]
    model_name: str
    class_names: list[str]
    category_ids: list[int]
    card: dict[str, Any]
    device: torch.device
    weights_path: Path | None
    score_floor: float
    tta: Views | None
    random_weights: bool

    @property
    def taxonomy(self) -> str | None:
        """The card's label space (``imaterialist``, ``ccp``...), None when it names none."""
        ...

    def settings(self) -> dict[str, Any]:
        """Everything besides the weights that changes the output: the cache key and run.json's record."""
        ...

    def describe(self) -> str:
        """What runs, in a few words (predict's summary line, the viewer's model bar)."""
        ...

    def weights_sha256(self) -> str | None:
        """The weights' SHA-256 (the card's, else of the state_dict); None: unknown, do not cache."""
        ...

    def rescoring(self) -> dict[str, Any] | None:
        """What re-scores the detections, as run.json records it (None: nothing)."""
        ...

    def predict(
        self, image: np.ndarray, file_name: str = "", image_id: int = 0
    ) -> ImagePrediction: ...

    def predict_batch(
        self,
        images: Sequence[np.ndarray],
        file_names: Sequence[str] | None = None,
        image_ids: Sequence[int] | None = None,
    ) -> list[ImagePrediction]: ...

    def predict_tensors(
        self,
        images: Sequence[Tensor],
        file_names: Sequence[str] | None = None,
        image_ids: Sequence[int] | None = None,
    ) -> list[ImagePrediction]: ...


def card_taxonomy(card: dict[str, Any]) -> str | None:
    """The label space a card names (``taxonomy``), None when it names none."""
    value = card.get("taxonomy")
    return str(value) if value else None


class ArrayInputs:
    """``predict`` and ``predict_batch`` on RGB uint8 arrays for a predictor that implements
    ``predict_tensors``: the check and the conversion every family shares."""

    def predict_tensors(
        self,
        images: Sequence[Tensor],
        file_names: Sequence[str] | None = None,
        image_ids: Sequence[int] | None = None,
    ) -> list[ImagePrediction]:
        raise NotImplementedError

    def predict(self, image: np.ndarray, file_name: str = "", image_id: int = 0) -> ImagePrediction:
        """Instances found in one RGB uint8 H×W×3 image (boxes and masks in its pixels)."""
        return self.predict_batch([image], [file_name], [image_id])[0]

    def predict_batch(
        self,
        images: Sequence[np.ndarray],
        file_names: Sequence[str] | None = None,
        image_ids: Sequence[int] | None = None,
    ) -> list[ImagePrediction]:
        """:meth:`predict` for several images (sizes may differ)."""
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(
                    f"expected RGB uint8 H×W×3 images, got {image.dtype} {image.shape}"
                )
        # Converted to float on the device: uint8 is 4x less to copy than float32.
        tensors = [
            torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1) for image in images
        ]
        return self.predict_tensors(tensors, file_names, image_ids)


@dataclass(frozen=True)
class PredictorOptions:
    """How :func:`~fashionviewer.core.inference.families.load_predictor` was asked to run a model."""

    device: torch.device
    score_floor: float
    rescore: bool = True  # use the card's re-scoring classifier when the family has one
    tta: bool = True  # use the card's test-time views


@dataclass(frozen=True)
class ModelFamily:
    """One kind of garment model: how its cards look, how its network is built, saved and run.

    The registry (``core.inference.families.FAMILIES``) maps a card's ``architecture`` to its family;
    loading, saving, the cache, predict and the viewer go through these fields only."""

    name: str  # "maskrcnn", "parsing"
    title: str  # what the menus call it
    card_format: str  # the card's "format"
    architectures: tuple[str, ...]  # the card's "architecture" values this family builds
    build: Callable[[dict[str, Any]], nn.Module]  # an untrained network for a card
    # the card as saved (format filled in)
    complete_card: Callable[[nn.Module, dict[str, Any]], dict[str, Any]]
    make_predictor: Callable[[nn.Module, dict[str, Any], Path, PredictorOptions], InstancePredictor]
    capabilities: frozenset[Capability] = frozenset()
    # ``python -m trainers.X`` that trains (and with FINE_TUNE fine-tunes) it
    trainer: str | None = None
    bundled_prefix: str = ""  # resources/models/PREFIX + NAME.json is the bundled model NAME
