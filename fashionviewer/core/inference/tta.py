"""Test-time augmentation: one photo seen at several sizes and mirrored, detections merged.

A model card may ask for it (what was measured with it is in the card)::

    "test_time_augmentation": {"sizes": [224, 256, 320], "hflip": true,
                               "mask_quality_power": 2, "merge_iou": 0.55}

:class:`~fashionviewer.core.inference.predictor.Predictor` runs the model once per view (each
size, and each size mirrored when ``hflip``), maps the mirrored detections back, and
:func:`merge_views` joins them:

* every detection's score is first multiplied by ``maskness ** mask_quality_power``,
  the mean probability of its mask's foreground pixels (SOLOv2's "maskness"): a
  detection whose mask the model is unsure of ranks lower;
* detections of one class whose boxes overlap by ``merge_iou`` or more form one
  object, taking the best detection of each view;
* the object's score is the sum of its views' scores divided by the number of views
  (an object one view missed counts that view as 0), its box the score-weighted
  mean box, and its mask the score-weighted mean of the views' soft masks, pasted
  with torchvision's arithmetic and thresholded at 0.5.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.ops import box_iou

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.data.masks import encode_mask

# boxes (N, 4) in image pixels, labels (N,), scores (N,), masks (N, 1, M, M)
Detections = dict[str, Tensor]


@dataclass(frozen=True)
class TestTimeAugmentation:
    """Which views to run and how to merge them (see the module docstring)."""

    __test__ = False  # not a pytest test class, despite the name

    sizes: tuple[int, ...] = ()  # shorter image side of each view; () = the model's own size only
    hflip: bool = False
    mask_quality_power: float = 0.0
    merge_iou: float = 0.55

    @classmethod
    def from_card(
        cls, spec: Mapping[str, Any], source: str = "model card"
    ) -> "TestTimeAugmentation":
        """Read a card's ``test_time_augmentation`` block; one-line WeightsError when malformed."""
        try:
            sizes = tuple(int(s) for s in spec.get("sizes", ()))
            tta = cls(
                sizes,
                bool(spec.get("hflip", False)),
                float(spec.get("mask_quality_power", 0.0)),
                float(spec.get("merge_iou", 0.55)),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise WeightsError(f"{source}: 'test_time_augmentation' is malformed ({exc})") from None
        if (
            any(s < 32 for s in tta.sizes)
            or not 0.0 < tta.merge_iou <= 1.0
            or tta.mask_quality_power < 0
        ):
            raise WeightsError(
                f"{source}: 'test_time_augmentation' needs sizes >= 32, 0 < merge_iou <= 1 "
                "and mask_quality_power >= 0"
            )
        return tta

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sizes": list(self.sizes)}

    @property
    def view_count(self) -> int:
        return max(len(self.sizes), 1) * (2 if self.hflip else 1)

    def views(self, default_size: int) -> list[tuple[int, bool]]:
        """(shorter side, mirrored) of every view, in the order they are run."""
        flips = (False, True) if self.hflip else (False,)
        return [(size, flip) for size in (self.sizes or (default_size,)) for flip in flips]


def maskness(mask_probs: Tensor, threshold: float = 0.5) -> Tensor:
    """Mean probability over each mask's pixels above ``threshold`` (0 for an empty mask); (N,)."""
    probs = mask_probs.flatten(1).float()
    foreground = probs > threshold
    return (probs * foreground).sum(1) / foreground.sum(1).clamp(min=1)


def unflip(detections: Detections, width: int) -> Detections:
    """Detections of a left-right mirrored image mapped back onto the original (``width`` pixels)."""
    out = dict(detections)
    boxes = detections["boxes"].clone()
    boxes[:, [0, 2]] = width - detections["boxes"][:, [2, 0]]
    out["boxes"] = boxes
    if "masks" in detections:
        out["masks"] = detections["masks"].flip(-1)
    return out


def merge_views(
    views: Sequence[Detections],
    height: int,
    width: int,
    tta: TestTimeAugmentation,
    *,
    score_floor: float = 0.0,
    max_detections: int = 100,
    mask_threshold: float = 0.5,
) -> dict[str, Any]:
    """One image's detections from several views -> ``{"boxes", "labels", "scores", "rles"}``, best first."""
    # On the CPU: merging is a few hundred small tensors, and the masks end up in NumPy RLEs anyway.
    boxes = torch.cat([v["boxes"].float().cpu() for v in views])
    labels = torch.cat([v["labels"].cpu() for v in views])
    masks = (
        torch.cat([v["masks"].float().cpu() for v in views])
        if all("masks" in v for v in views)
        else None
    )
    scores = torch.cat([v["scores"].float().cpu() for v in views])
    if masks is not None and tta.mask_quality_power and len(scores):
        scores = scores * maskness(masks) ** tta.mask_quality_power
    view_of = torch.cat([torch.full((len(v["scores"]),), k) for k, v in enumerate(views)])
    overlap = box_iou(boxes, boxes) >= tta.merge_iou
    same_class = labels[:, None] == labels[None, :]
    free = torch.ones(len(scores), dtype=torch.bool)
    merged: dict[str, list[Any]] = {"boxes": [], "labels": [], "scores": [], "rles": []}
    canvas = np.zeros((height, width), dtype=np.uint8, order="F")
    for seed in torch.argsort(scores, descending=True, stable=True).tolist():
        if not free[seed]:
            continue
        cluster = (overlap[seed] & same_class[seed] & free).nonzero()[:, 0]
        free[cluster] = False
        best = [
            int(members[scores[members].argmax()])
            for k in range(len(views))
            if len(members := cluster[view_of[cluster] == k])
        ]
        chosen = torch.tensor(best)
        weights = scores[chosen]
        score = float(weights.sum()) / len(views)
        if score < score_floor:
            continue
        total = weights.sum().clamp(min=1e-12)
        box = (boxes[chosen] * weights[:, None]).sum(0) / total
        merged["boxes"].append(box.tolist())
        merged["labels"].append(int(labels[seed]))
        merged["scores"].append(score)
        if masks is not None:
            merged["rles"].append(
                _mean_mask_rle(
                    masks[chosen], boxes[chosen], weights / total, canvas, mask_threshold
                )
            )
        if len(merged["scores"]) == max_detections:
            break
    return merged


def _mean_mask_rle(
    masks: Tensor, boxes: Tensor, weights: Tensor, canvas: np.ndarray, threshold: float
) -> dict[str, Any]:
    """The weighted mean of soft masks pasted into their boxes, thresholded, as COCO RLE.

    Pasted only into the window their boxes cover (plus a margin for torchvision's
    1-pixel mask padding), not into the whole image.
    """
    height, width = canvas.shape
    margin = 2 + int(float((boxes[:, 2:] - boxes[:, :2]).max()) * 0.1)
    x0 = max(int(boxes[:, 0].min()) - margin, 0)
    y0 = max(int(boxes[:, 1].min()) - margin, 0)
    x1 = min(int(boxes[:, 2].max()) + margin + 1, width)
    y1 = min(int(boxes[:, 3].max()) + margin + 1, height)
    if x1 <= x0 or y1 <= y0:
        return encode_mask(canvas)
    shifted = boxes - torch.tensor([x0, y0, x0, y0], dtype=boxes.dtype)
    pasted = paste_masks_in_image(masks, shifted, (y1 - y0, x1 - x0), padding=1)[:, 0]
    mean = (pasted * weights[:, None, None]).sum(0)
    canvas[y0:y1, x0:x1] = (mean > threshold).numpy()
    rle = encode_mask(canvas)
    canvas[y0:y1, x0:x1] = 0
    return rle
