"""A class-agnostic interactive segmentation network: a box and/or clicks to one object's mask.

The network sees a square crop of the photo resized to ``size`` (160 px) and guidance maps of the same
size: the user's box (1 inside; all 0 when there is none), where the crop lies inside the photo, disks at
the positive and negative clicks, and the previous mask (its probability, for iterative refinement).

Why split in two: :meth:`InteractiveNet.encode` runs the RGB encoder (strides 2-32, plain 3x3 convolutions
with BatchNorm, fast on CPUs) once per crop; :meth:`InteractiveNet.decide` turns those cached features and
the guidance maps into mask logits with a light branch (strided convolutions on the maps added to the
stride-4/8/16 features, a residual block at strides 8 and 16, a pooled global context, and a narrow U-Net
decoder to stride 2). A click therefore re-runs only ``decide``.

:class:`CropWindow` is the geometry both the trainer and :mod:`fashionviewer.core.inference.interactive`
use: a square window in photo pixels (may reach outside the photo, padded with the mean colour), its
resized pixels, and the mapping of points and masks between photo and crop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fashionviewer.core.base.errors import WeightsError

INTERACTIVE_CARD_FORMAT = "fashionviewer.interactive/1"
INTERACTIVE_ARCHITECTURES = ("interactive_unet",)
CROP_SIZE = 160
CLICK_RADIUS = 5  # px in the crop: the disk of a click in its guidance map
GUIDANCE_CHANNELS = 5  # box, inside-photo, positive disks, negative disks, previous mask
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class CropWindow:
    """A square window ``(x0, y0)`` + ``side`` in photo pixels, resized to ``size`` × ``size``."""

    x0: float
    y0: float
    side: float
    size: int = CROP_SIZE

    @property
    def scale(self) -> float:  # crop px per photo px
        return self.size / self.side

    @classmethod
    def around(
        cls,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        margin: float,
        min_side: float = 16.0,
        size: int = CROP_SIZE,
    ) -> "CropWindow":
        """The square centred on a box, its side the box's longer side times ``1 + 2 * margin``."""
        side = max(min_side, max(x1 - x0, y1 - y0) * (1 + 2 * margin))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return cls(cx - side / 2, cy - side / 2, side, size)

    def to_crop(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.x0) * self.scale, (y - self.y0) * self.scale

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x < self.x0 + self.side and self.y0 <= y < self.y0 + self.side

    def _affine(self) -> np.ndarray:
        s = self.scale
        return np.array([[s, 0, -self.x0 * s], [0, s, -self.y0 * s]], dtype=np.float64)

    def crop_image(self, image: np.ndarray) -> np.ndarray:
        """The window's pixels (uint8 size × size × 3), outside the photo the mean colour."""
        border = tuple(int(round(255 * m)) for m in IMAGE_MEAN)
        shrink = self.scale < 1
        if shrink and self.scale < 0.5:  # area-like antialiasing: blur before sampling
            sigma = 0.4 / self.scale
            x0, y0 = max(0, int(self.x0) - 1), max(0, int(self.y0) - 1)
            x1 = min(image.shape[1], int(np.ceil(self.x0 + self.side)) + 1)
            y1 = min(image.shape[0], int(np.ceil(self.y0 + self.side)) + 1)
            if x1 > x0 and y1 > y0:
                part = cv2.GaussianBlur(np.ascontiguousarray(image[y0:y1, x0:x1]), (0, 0), sigma)
                window = CropWindow(self.x0 - x0, self.y0 - y0, self.side, self.size)
                return cv2.warpAffine(
                    part,
                    window._affine(),
                    (self.size, self.size),
                    flags=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT,
                    borderValue=border,
                )
        return cv2.warpAffine(
            np.ascontiguousarray(image),
            self._affine(),
            (self.size, self.size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=border,
        )

    def crop_mask(self, mask: np.ndarray) -> np.ndarray:
        """A photo-sized float/bool mask sampled into the window (float32 size × size, 0 outside)."""
        return cv2.warpAffine(
            mask.astype(np.float32),
            self._affine(),
            (self.size, self.size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )

    def inside_map(self, height: int, width: int) -> np.ndarray:
        """1 where the window lies inside the photo (float32 size × size)."""
        out = np.zeros((self.size, self.size), dtype=np.float32)
        ax0, ay0 = self.to_crop(0, 0)
        ax1, ay1 = self.to_crop(width, height)
        ix0, iy0 = (
            int(np.clip(np.floor(ax0), 0, self.size)),
            int(np.clip(np.floor(ay0), 0, self.size)),
        )
        ix1, iy1 = (
            int(np.clip(np.ceil(ax1), 0, self.size)),
            int(np.clip(np.ceil(ay1), 0, self.size)),
        )
        out[iy0:iy1, ix0:ix1] = 1
        return out

    def paste(
        self, logits: np.ndarray, height: int, width: int
    ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """Crop logits (size × size) back to photo pixels: (bool mask of the covered part, its x0, y0, x1, y1)."""
        x0, y0 = max(0, int(np.floor(self.x0))), max(0, int(np.floor(self.y0)))
        x1, y1 = (
            min(width, int(np.ceil(self.x0 + self.side))),
            min(height, int(np.ceil(self.y0 + self.side))),
        )
        if x1 <= x0 or y1 <= y0:
            return np.zeros((0, 0), dtype=bool), (0, 0, 0, 0)
        s = self.scale
        # output pixel (u, v) is photo pixel (x0 + u, y0 + v), at crop index s * (x0 + u - self.x0) as in crop_image
        inverse = np.array(
            [[s, 0, s * (x0 - self.x0)], [0, s, s * (y0 - self.y0)]], dtype=np.float64
        )
        up = cv2.warpAffine(
            logits.astype(np.float32),
            inverse,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return up > 0, (x0, y0, x1, y1)


def click_disks(
    points: Sequence[tuple[float, float]], size: int = CROP_SIZE, radius: float = CLICK_RADIUS
) -> np.ndarray:
    """Disks (float32 size × size) at crop coordinates; points outside the crop draw nothing."""
    out = np.zeros((size, size), dtype=np.float32)
    if not len(points):
        return out
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    for x, y in points:
        out[(xs + 0.5 - x) ** 2 + (ys + 0.5 - y) ** 2 <= radius * radius] = 1
    return out


def box_map(window: CropWindow, box: Sequence[float] | None) -> np.ndarray:
    out = np.zeros((window.size, window.size), dtype=np.float32)
    if box is None:
        return out
    ax0, ay0 = window.to_crop(box[0], box[1])
    ax1, ay1 = window.to_crop(box[2], box[3])
    ix0, iy0 = int(np.clip(round(ax0), 0, window.size)), int(np.clip(round(ay0), 0, window.size))
    ix1 = int(np.clip(max(round(ax1), ix0 + 1), 0, window.size))
    iy1 = int(np.clip(max(round(ay1), iy0 + 1), 0, window.size))
    out[iy0:iy1, ix0:ix1] = 1
    return out


def normalize_crop(crop: np.ndarray) -> Tensor:
    """uint8 S×S×3 -> the network's float 3×S×S input (a convention only: no pretrained weights)."""
    tensor = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().div_(255)
    return (tensor - torch.tensor(IMAGE_MEAN).view(3, 1, 1)) / torch.tensor(IMAGE_STD).view(3, 1, 1)


# --------------------------------------------------------------------------- network


def _conv_bn(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Block(nn.Module):
    """Basic residual block (two 3x3 convolutions)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(channels, channels)
        self.conv2 = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(self.conv1(x)) + x, inplace=True)


class InteractiveNet(nn.Module):
    """RGB encoder (:meth:`encode`, once per crop) + guidance branch and decoder (:meth:`decide`, per click)."""

    def __init__(
        self, widths: Sequence[int] = (16, 32, 64, 96, 128), guidance: int = GUIDANCE_CHANNELS
    ) -> None:
        super().__init__()
        w2, w4, w8, w16, w32 = widths
        self.widths = tuple(widths)
        self.stem = nn.Sequential(_conv_bn(3, w2, 2), _conv_bn(w2, w2))
        self.enc4 = nn.Sequential(_conv_bn(w2, w4, 2), _Block(w4))
        self.enc8 = nn.Sequential(_conv_bn(w4, w8, 2), _Block(w8))
        self.enc16 = nn.Sequential(_conv_bn(w8, w16, 2), _Block(w16))
        self.enc32 = nn.Sequential(_conv_bn(w16, w32, 2), _Block(w32))
        # the guidance branch: strided convolutions on the maps, added to the cached features
        self.guide2 = _conv_bn(guidance, w2, 2)
        self.guide4 = _conv_bn(w2, w4, 2)
        self.guide8 = _conv_bn(w4, w8, 2)
        self.guide16 = _conv_bn(w8, w16, 2)
        self.fuse8 = _Block(w8)
        self.down16 = _conv_bn(w8, w16, 2)
        self.fuse16 = _Block(w16)
        self.context = nn.Sequential(nn.Conv2d(w32, w16, 1), nn.ReLU(inplace=True))
        self.dec8 = nn.Sequential(_conv_bn(w16 + w8, 48, kernel=1), _conv_bn(48, 48))
        self.dec4 = nn.Sequential(_conv_bn(48 + w4, 24, kernel=1), _conv_bn(24, 24))
        self.dec2 = nn.Sequential(_conv_bn(24 + w2, 16, kernel=1), _conv_bn(16, 16))
        self.head = nn.Conv2d(16, 1, 1)

    def encode(self, image: Tensor) -> tuple[Tensor, ...]:
        """Normalized N×3×S×S crops (S a multiple of 32) -> the cached features (strides 2, 4, 8, 16, 32)."""
        f2 = self.stem(image)
        f4 = self.enc4(f2)
        f8 = self.enc8(f4)
        f16 = self.enc16(f8)
        f32 = self.enc32(f16)
        return f2, f4, f8, f16, f32

    def decide(self, features: Sequence[Tensor], guidance: Tensor) -> Tensor:
        """Cached features + N×5×S×S guidance maps -> N×1×S×S mask logits."""
        f2, f4, f8, f16, f32 = features
        g2 = self.guide2(guidance)
        g4 = self.guide4(g2)
        g8 = self.guide8(g4)
        g16 = self.guide16(g8)
        x8 = self.fuse8(f8 + g8)
        x16 = self.fuse16(f16 + g16 + self.down16(x8))
        x16 = (
            x16
            + F.interpolate(self.context(f32), size=x16.shape[-2:], mode="nearest")
            + self.context(F.adaptive_avg_pool2d(f32, 1))
        )
        up = F.interpolate(x16, size=x8.shape[-2:], mode="bilinear", align_corners=False)
        y8 = self.dec8(torch.cat([up, x8], 1))
        up = F.interpolate(y8, size=f4.shape[-2:], mode="bilinear", align_corners=False)
        y4 = self.dec4(torch.cat([up, f4 + g4], 1))
        up = F.interpolate(y4, size=f2.shape[-2:], mode="bilinear", align_corners=False)
        y2 = self.dec2(torch.cat([up, f2 + g2], 1))
        return F.interpolate(
            self.head(y2), size=guidance.shape[-2:], mode="bilinear", align_corners=False
        )

    def forward(self, image: Tensor, guidance: Tensor) -> Tensor:
        return self.decide(self.encode(image), guidance)


def build_interactive_net(architecture: str = "interactive_unet") -> InteractiveNet:
    if architecture not in INTERACTIVE_ARCHITECTURES:
        raise WeightsError(
            f"architecture {architecture!r}: choose one of {', '.join(INTERACTIVE_ARCHITECTURES)}"
        )
    return InteractiveNet()


def save_interactive_checkpoint(
    model: nn.Module, path: str | os.PathLike[str], card: dict[str, Any]
) -> dict[str, Any]:
    """Write ``path`` (a plain state_dict) and its model card beside it, both atomically; returns the card."""
    from fashionviewer.core.models.checkpoint import write_checkpoint

    full: dict[str, Any] = {
        "format": INTERACTIVE_CARD_FORMAT,
        "architecture": "interactive_unet",
        "crop_size": CROP_SIZE,
        "click_radius": CLICK_RADIUS,
    }
    full.update(card)
    return write_checkpoint(getattr(model, "module", model), path, full)


def load_interactive_checkpoint(
    path: str | os.PathLike[str],
) -> tuple[InteractiveNet, dict[str, Any]]:
    """The network (eval mode, CPU) and its card from ``NAME.pt`` + ``NAME.json`` (weights checked against the
    card's SHA-256); WeightsError says what is wrong, naming the file."""
    from fashionviewer.core.models.checkpoint import (
        card_path,
        load_state,
        read_card,
        read_state_dict,
    )

    path = Path(path).with_suffix(".pt")
    card = read_card(path, required=("format", "architecture"))
    if card.get("format") != INTERACTIVE_CARD_FORMAT:
        raise WeightsError(f"{card_path(path)}: not an interactive segmentation model card")
    if card.get("crop_size", CROP_SIZE) != CROP_SIZE:
        raise WeightsError(
            f"{card_path(path)}: crop size {card.get('crop_size')} is not this version's {CROP_SIZE}"
        )
    model = build_interactive_net(str(card["architecture"]))
    load_state(model, read_state_dict(path, card), path)
    return model.eval(), card
