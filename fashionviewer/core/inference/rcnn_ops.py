"""The pieces of a Mask R-CNN forward pass that :class:`~fashionviewer.core.inference.predictor.Predictor`
runs its own way: masks pasted as RLEs into their boxes only, a resize that never loses a side, and RoI
heads with their own score floor and CPU RoI pool (the model itself is never changed)."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import RoIHeads, expand_boxes, expand_masks
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign

from fashionviewer.core.data.masks import encode_mask

MASK_THRESHOLD = 0.5  # torchvision's documented threshold for its soft masks


def paste_masks_as_rle(
    mask_probs: Tensor, boxes: Tensor, height: int, width: int, threshold: float = MASK_THRESHOLD
) -> list[dict[str, Any]]:
    """COCO RLEs of N×1×M×M mask probabilities pasted into their boxes of an H×W image.

    Same geometry as torchvision's ``paste_masks_in_image`` (1-pixel padding,
    expanded integer boxes, bilinear resize), but each mask is resized to its box
    only and written into one reused Fortran-ordered buffer for pycocotools.
    """
    if len(boxes) == 0:
        return []
    padded, scale = expand_masks(mask_probs, padding=1)
    int_boxes = expand_boxes(boxes, scale).to(torch.int64).tolist()
    canvas = np.zeros((height, width), dtype=np.uint8, order="F")
    rles = []
    for prob, (x0, y0, x1, y1) in zip(padded, int_boxes, strict=False):
        box_w, box_h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        resized = F.interpolate(
            prob[None], size=(box_h, box_w), mode="bilinear", align_corners=False
        )[0, 0]
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1 + 1, width), min(y1 + 1, height)
        if cx1 > cx0 and cy1 > cy0:
            crop = resized[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] > threshold
            canvas[cy0:cy1, cx0:cx1] = crop.numpy()
        rles.append(encode_mask(canvas))
        canvas[cy0:cy1, cx0:cx1] = 0  # back to all-zero for the next instance
    return rles


def resized_transform(transform: GeneralizedRCNNTransform, size: int) -> GeneralizedRCNNTransform:
    """The model's resize-and-normalise step at another shorter side (same longer-side ratio).

    A new object, so that views never change the model that other threads may be using."""
    if int(transform.min_size[-1]) == size:
        return transform
    max_size = round(size * transform.max_size / transform.min_size[-1])
    return SideKeepingTransform(
        size,
        max_size,
        transform.image_mean,
        transform.image_std,
        size_divisible=transform.size_divisible,
        fixed_size=transform.fixed_size,
    ).eval()


class SideKeepingTransform(GeneralizedRCNNTransform):
    """torchvision's resize-and-normalise step, except that no side shrinks below one pixel.

    torchvision scales by min(min_size / shorter, max_size / longer) and floors each side: a
    3000x3 strip at 800/1333 would get 0 rows and fail. Here each side is floored the same way
    (so every ordinary photo is resized exactly as before) and then kept at 1 pixel or more.
    """

    def resize(
        self, image: Tensor, target: dict[str, Tensor] | None = None
    ) -> tuple[Tensor, dict[str, Tensor] | None]:
        if self.training or self.fixed_size is not None or target is not None:
            return super().resize(image, target)
        height, width = int(image.shape[-2]), int(image.shape[-1])
        scale = min(
            float(self.min_size[-1]) / min(height, width), float(self.max_size) / max(height, width)
        )
        size = (max(1, math.floor(height * scale)), max(1, math.floor(width * scale)))
        return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0], None


def side_keeping_transform(transform: GeneralizedRCNNTransform) -> GeneralizedRCNNTransform:
    """``transform`` as a :class:`SideKeepingTransform` (a new object: the model is left as it is)."""
    if isinstance(transform, SideKeepingTransform):
        return transform
    return SideKeepingTransform(
        transform.min_size,
        transform.max_size,
        transform.image_mean,
        transform.image_std,
        size_divisible=transform.size_divisible,
        fixed_size=transform.fixed_size,
    ).eval()


def as_float(image: Tensor) -> Tensor:
    return image.float().div_(255.0) if image.dtype == torch.uint8 else image.float()


def as_uint8_hwc(image: Tensor) -> np.ndarray:
    if image.dtype != torch.uint8:
        image = (image.float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    return image.permute(1, 2, 0).cpu().numpy()


def configured_heads(heads: RoIHeads, floor: float, pool: type[nn.Module] | None) -> RoIHeads:
    """RoI heads sharing ``heads``' layers and weights that drop detections below ``floor`` before
    computing their masks and pool RoIs (boxes and masks) with ``pool`` wrapped around the model's
    own poolers (on the CPU: one that uses every core). ``heads`` itself is left as it is."""
    own = copy.copy(heads)
    # its own slots: the poolers set below stay out of the model
    own._modules = dict(heads._modules)
    own.score_thresh = floor
    own.box_roi_pool = _wrapped(heads.box_roi_pool, pool)
    own.mask_roi_pool = _wrapped(heads.mask_roi_pool, pool)
    return own


def _wrapped(pooler: nn.Module | None, pool: type[nn.Module] | None) -> nn.Module | None:
    if pool is not None and isinstance(pooler, MultiScaleRoIAlign) and pooler.sampling_ratio > 0:
        return pool(pooler)
    return pooler
