"""Run the garment parsing model on photos: ``ParsingPredictor.predict(image) -> ImagePrediction``.

An :class:`~fashionviewer.core.inference.protocol.InstancePredictor`, so ``fashionviewer predict``,
the viewer, the cache and ``evaluate`` use it as they use a Mask R-CNN;
:data:`PARSING_FAMILY` is its entry in the family registry
(``core.inference.families.FAMILIES``), so ``load_predictor`` returns one for a parsing card.

Each photo is shrunk to the card's input width (the network was trained at that scale),
padded to a multiple of 32, classified per pixel, and the class probabilities are resized
back to the photo's own pixels before the class regions become instances
(:func:`~fashionviewer.core.models.parsing.parsing_to_instances`), so masks follow the
photo's resolution rather than the network's.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.data.masks import encode_mask
from fashionviewer.core.data.predictions import ImagePrediction, Instance
from fashionviewer.core.inference.defaults import PIPELINE_VERSION, SCORE_FLOOR
from fashionviewer.core.inference.item_refiner import ItemRefiner, load_item_refiner
from fashionviewer.core.inference.protocol import (
    ArrayInputs,
    Capability,
    ModelFamily,
    PredictorOptions,
)
from fashionviewer.core.inference.rcnn_ops import as_uint8_hwc
from fashionviewer.core.inference.rescoring import Rescorer, load_rescorer
from fashionviewer.core.models import parsing
from fashionviewer.core.models.checkpoint import card_category_ids
from fashionviewer.core.models.parsing import (
    IMAGE_MEAN,
    IMAGE_STD,
    ParsingNet,
    parsing_to_instances,
)

log = logging.getLogger(__name__)

# input height in input widths at most: portraits are ~1.5, a 3x3000 strip 1000
MAX_INPUT_ASPECT = 8


@dataclass(frozen=True)
class MirrorView:
    """Test-time views of a parsing model: the photo and its mirror image, probabilities averaged.

    The protocol's ``Views`` (``view_count``, ``to_dict`` in the cache key and ``run.json``)."""

    hflip: bool = True

    @property
    def view_count(self) -> int:
        return 2 if self.hflip else 1

    def to_dict(self) -> dict[str, Any]:
        return {"hflip": self.hflip, "kind": "parsing-mirror"}


class ParsingPredictor(ArrayInputs):
    """A :class:`ParsingNet` in eval mode plus the card that names its classes.

    A card's ``"test_time_augmentation": {"hflip": true}`` averages the class probabilities of the
    photo and its mirror image (``tta=False`` turns it off, as for the Mask R-CNNs)."""

    family = "parsing"
    # trainers.parsing --init-from; a fine-tune on items (borders) trains a re-scoring classifier
    capabilities = frozenset(
        {Capability.TEST_TIME_VIEWS, Capability.FINE_TUNE, Capability.RESCORING}
    )

    def __init__(
        self,
        model: ParsingNet,
        card: dict[str, Any],
        device: str | torch.device = "cpu",
        score_floor: float = SCORE_FLOOR,
        model_name: str = "",
        tta: bool = True,
        weights_path: Path | None = None,
        rescorer: Rescorer | None = None,
        refiner: ItemRefiner | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.card = card
        self.class_names = list(card["class_names"])
        self.category_ids = card_category_ids(card)  # results use the taxonomy's own ids
        self.score_floor = float(score_floor)
        self.model_name = model_name
        spec = card.get("input", {})
        self.input_width = int(spec.get("width", 224))
        self.pad_multiple = int(spec.get("pad_multiple", 32))
        self._mean = torch.tensor(spec.get("mean", IMAGE_MEAN), device=self.device).view(3, 1, 1)
        self._std = torch.tensor(spec.get("std", IMAGE_STD), device=self.device).view(3, 1, 1)
        spec = card.get("test_time_augmentation") or {}
        self.tta = MirrorView() if tta and spec.get("hflip") else None
        self.random_weights = card.get("weights") == "random"
        # what one instance is (core.models.parsing.INSTANCE_RULES): a fine-tune on scenes says borders
        self.instance_rule = str(card.get("instances") or "per_class")
        channels = list(card.get("parsing_channels") or [])
        self.border_channel = (
            channels.index(parsing.ITEM_BORDER) if parsing.ITEM_BORDER in channels else None
        )
        # the classes it applies to (None: all): a fine-tune's folder classes, the others keep per_class
        named = card.get("instances_classes")
        self.instance_labels = (
            {self.class_names.index(n) + 1 for n in named if n in self.class_names}
            if named
            else None
        )
        # the card's classifier of cut-out items: scores x its probability of the class (core.inference.rescoring)
        self.rescorer = rescorer
        # the card's box -> mask network: each item's mask redrawn from its box (before re-scoring)
        self.refiner = refiner
        # eval-mode forward is thread-safe; the lock keeps peak memory to one photo
        self._lock = threading.Lock()
        self.weights_path = weights_path  # where the weights came from (None: built in memory)

    @classmethod
    def from_checkpoint(
        cls, model: ParsingNet, card: dict[str, Any], path: Path, options: PredictorOptions
    ) -> ParsingPredictor:
        """The parsing family's predictor for a loaded checkpoint, with the card's re-scorer unless
        ``options.rescore`` is off, and the card's item refiner (``refine_items``)."""
        rescorer = load_rescorer(card, path) if options.rescore and card.get("rescorer") else None
        refiner = None
        if card.get("refine_items"):
            try:
                refiner = load_item_refiner(card["refine_items"], path)
            except WeightsError as exc:  # the parsing masks are still right, only coarser
                log.warning("%s: items are not redrawn: %s", path.name, exc)
        return cls(
            model,
            card,
            options.device,
            options.score_floor,
            model_name=path.stem,
            tta=options.tta,
            weights_path=path,
            rescorer=rescorer,
            refiner=refiner,
        )

    @property
    def taxonomy(self) -> str | None:
        return str(self.card["taxonomy"]) if self.card.get("taxonomy") else None

    def weights_sha256(self) -> str | None:
        return str(self.card["weights_sha256"]) if self.card.get("weights_sha256") else None

    def rescoring(self) -> dict[str, Any] | None:
        return self.rescorer.record() if self.rescorer is not None else None

    def settings(self) -> dict[str, Any]:
        """Everything besides the weights that changes the output (the prediction cache's key)."""
        return {
            "pipeline": PIPELINE_VERSION,
            "predictor": type(self).__qualname__,
            "architecture": self.card.get("architecture"),
            "class_names": list(self.class_names),
            "input_width": self.input_width,
            "pad_multiple": self.pad_multiple,
            "score_floor": self.score_floor,
            "instances": self.instance_rule,
            "instances_labels": sorted(self.instance_labels) if self.instance_labels else None,
            "tta": self.tta.to_dict() if self.tta is not None else None,
            "rescorer": self.rescorer.key if self.rescorer is not None else None,
            "refiner": self.refiner.key if self.refiner is not None else None,
            "device": self.device.type,
        }

    def describe(self) -> str:
        """What runs, in a few words (``fashion (2 views)``)."""
        text = self.model_name + (f" ({self.tta.view_count} views)" if self.tta is not None else "")
        text += f", items redrawn by {self.refiner.name}" if self.refiner is not None else ""
        return text + (f" re-scored by {self.rescorer.name}" if self.rescorer is not None else "")

    def predict_tensors(
        self,
        images: Sequence[Tensor],
        file_names: Sequence[str] | None = None,
        image_ids: Sequence[int] | None = None,
    ) -> list[ImagePrediction]:
        """Predict 3×H×W tensors: uint8 0-255 or float 0-1 (what the datasets yield)."""
        names = list(file_names) if file_names is not None else [""] * len(images)
        ids = list(image_ids) if image_ids is not None else [0] * len(images)
        return [
            self._predict_one(image, name, image_id)
            for image, name, image_id in zip(images, names, ids, strict=False)
        ]

    def probabilities(self, image: Tensor) -> Tensor:
        """Class probabilities C×h×w over the card's ``parsing_channels`` at the network's input scale
        (the photo shrunk to ``input_width``; a photo taller than ``MAX_INPUT_ASPECT`` widths to that height)."""
        height, width = int(image.shape[-2]), int(image.shape[-1])
        x = image.to(self.device)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        small_w = self.input_width
        small_h = max(1, round(height * small_w / width))
        tallest = MAX_INPUT_ASPECT * self.input_width
        # a tall strip (3x3000 would be 224,000 rows): the longer side is capped instead
        if small_h > tallest:
            small_h, small_w = tallest, max(1, round(width * tallest / height))
        x = F.interpolate(
            x[None], size=(small_h, small_w), mode="bilinear", antialias=True, align_corners=False
        )[0]
        x = (x - self._mean) / self._std
        pad_h, pad_w = (-small_h) % self.pad_multiple, (-small_w) % self.pad_multiple
        # mirrored before padding: pads stay bottom/right
        views = [x, x.flip(-1)] if self.tta is not None else [x]
        batch = torch.stack([F.pad(view, (0, pad_w, 0, pad_h)) for view in views])
        with self._lock, torch.inference_mode():
            probs = self.model(batch)[:, :, :small_h, :small_w].softmax(1)
            if self.tta is not None:  # the mirror view's right is the photo's left
                return (probs[0] + probs[1].flip(-1)) / 2
            return probs[0]

    def _predict_one(self, image: Tensor, file_name: str, image_id: int) -> ImagePrediction:
        height, width = int(image.shape[-2]), int(image.shape[-1])
        with torch.inference_mode():
            probs = self.probabilities(image).float().cpu()
            found = parsing_to_instances(
                probs,
                len(self.class_names),
                score_floor=self.score_floor,
                rule=self.instance_rule,
                rule_labels=self.instance_labels,
                border_channel=self.border_channel,
            )
            instances = []
            # the photo's pixels, for the refiner's boxes and the re-scorer's cut-outs
            photo = as_uint8_hwc(image) if self.refiner or self.rescorer else None
            masks: dict[int, np.ndarray] = {}  # an item offered under several classes is one field
            for item in found:
                key = id(item["field"])
                if key not in masks:
                    # only the borders rule's items are one object each: a class region may hold several
                    masks[key] = self._item_mask(
                        item["field"], height, width, photo, item.get("item")
                    )
                mask = masks[key]
                rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
                if rows.size == 0:
                    continue
                box = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
                label = int(item["label"])
                instances.append(
                    Instance(
                        box=box,
                        label=label,
                        class_name=self.class_names[label - 1],
                        score=float(item["score"]),
                        rle=encode_mask(mask.view(np.uint8)),
                    )
                )
        prediction = ImagePrediction(
            file_name, width, height, instances, model=self.model_name, image_id=image_id
        )
        if self.rescorer is not None:
            self.rescorer.apply(prediction, photo)
        return prediction

    def _item_mask(
        self, field: Tensor, height: int, width: int, photo: np.ndarray | None, one_item: bool
    ) -> np.ndarray:
        """An instance's field resized to the photo, then thresholded (smooth edges at full size); redrawn
        from its box by the refiner when the card names one and the field is ``one_item``."""
        full = F.interpolate(
            field[None, None], size=(height, width), mode="bilinear", align_corners=False
        )[0, 0]
        mask = (full > 0).numpy()
        if self.refiner is not None and photo is not None and one_item and mask.any():
            mask = self.refiner.refine(photo, mask)
        return mask


PARSING_FAMILY = ModelFamily(
    name="parsing",
    title="Garment parsing network",
    card_format=parsing.PARSING_CARD_FORMAT,
    architectures=parsing.PARSING_ARCHITECTURES,
    build=parsing.build_parsing_from_card,
    complete_card=parsing.complete_parsing_card,
    make_predictor=ParsingPredictor.from_checkpoint,
    capabilities=ParsingPredictor.capabilities,
    trainer="parsing",
)
