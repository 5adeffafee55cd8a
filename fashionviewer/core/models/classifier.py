"""Public API of the Fashion-MNIST classifier.

from fashionviewer.core.models.classifier import load_classifier, preprocess_crop
clf = load_classifier("cnn3")            # a bundled name, or a path to NAME.pt / NAME.json
probs = clf.predict(images)              # uint8 N×28×28 (light item on black) -> float N×10
x = preprocess_crop(rgb_crop, mask)      # any photo crop -> uint8 28×28 in that convention
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.base.paths import MODELS_DIR
from fashionviewer.core.data.fmnist import CLASSES
from fashionviewer.core.data.overlay import InstanceRaster
from fashionviewer.core.models import cnn

# best measured test accuracy first (the viewer's default)
BUNDLED_CLASSIFIERS = ("fvnet", "cnn3", "cnn2", "cnn1")


class Classifier:
    """A trained Fashion-MNIST CNN with its model card."""

    def __init__(
        self, model: torch.nn.Module, card: dict[str, Any], device: str | torch.device = "cpu"
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.card = card
        self.classes: tuple[str, ...] = tuple(card.get("classes", CLASSES))
        self.name: str = card.get("name", card.get("architecture", "classifier"))
        # The card says whether the model was measured averaging each image with its mirror: predict the same way.
        self.tta_flip: bool = bool((card.get("test_time_augmentation") or {}).get("hflip", False))

    @torch.inference_mode()
    def predict(self, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities (float32 N×10) for uint8 images N×28×28 (or one 28×28 image)."""
        images = np.asarray(images)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"expected uint8 images of shape N×28×28, got {images.shape}")
        if images.dtype != np.uint8:
            raise ValueError(
                f"expected uint8 images (0-255, light item on black), got {images.dtype}"
            )
        out = []
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(
                np.require(images[start : start + batch_size], requirements=["C", "W"])
            )
            probs = cnn.predict_probabilities(
                self.model, cnn.normalise(batch).to(self.device), self.tta_flip
            )
            out.append(probs.cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def top_k(self, image: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most likely classes of one 28×28 image, best first."""
        probs = self.predict(image)[0]
        order = np.argsort(probs)[::-1][:k]
        return [(self.classes[i], float(probs[i])) for i in order]


def resolve_classifier_path(name_or_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(weights .pt, model card .json) for a bundled name or a path to either file."""
    text = str(name_or_path)
    if text in BUNDLED_CLASSIFIERS or (
        os.sep not in text and (MODELS_DIR / f"{text}.pt").is_file()
    ):
        base = MODELS_DIR / text
    else:
        base = Path(text).with_suffix("")
    weights, card = base.with_suffix(".pt"), base.with_suffix(".json")
    for path in (weights, card):
        if not path.is_file():
            hint = (
                f"bundled classifiers: {', '.join(BUNDLED_CLASSIFIERS)}; "
                "train one with: python -m trainers.fmnist --model cnn3 --out DIR"
            )
            raise WeightsError(f"{path}: not found ({hint})")
    return weights, card


def load_classifier(
    name_or_path: str | os.PathLike[str] = "cnn3", device: str | torch.device = "cpu"
) -> Classifier:
    """Load a bundled classifier by name (see ``BUNDLED_CLASSIFIERS``) or from a checkpoint path."""
    weights, card_path = resolve_classifier_path(name_or_path)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        architecture = card["architecture"]
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"{card_path}: not a readable model card ({exc})") from exc
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        # outputs: the last matrix's rows (a folder's item classifier has its own classes; earlier ones 10)
        rows = [value for value in state.values() if getattr(value, "ndim", 0) == 2][-1].shape[0]
        model = cnn.build_classifier(architecture, num_classes=int(rows))
        model.load_state_dict(state)
    except ValueError as exc:
        raise WeightsError(f"{card_path}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - unpickling/shape errors all mean unusable weights
        raise WeightsError(
            f"{weights}: cannot load {architecture} weights ({str(exc).splitlines()[0]})"
        ) from exc
    if len(card.get("classes") or CLASSES) > rows:
        raise WeightsError(
            f"{card_path}: names {len(card['classes'])} classes but the weights have {rows} outputs"
        )
    return Classifier(model, card, device)


def preprocess_crop(
    rgb: np.ndarray, mask: np.ndarray | None = None, margin: float = 0.0
) -> np.ndarray:
    """Turn a photo crop into a Fashion-MNIST-style input: uint8 28×28, light item on black.

    Steps: grayscale; estimate the background level from the pixels outside
    ``mask`` (or the crop's border when there is no mask); invert when the
    background is light. With a mask, the item's own pixels are stretched to a
    bright range and everything outside is black (the silhouette is what the
    CNN relies on most); without one, the background is subtracted and the
    item is whatever stands out. Then crop to the item, resize preserving the
    aspect ratio so the longer side fills the frame (less ``margin``), and pad
    to 28×28 with black, centred — Fashion-MNIST's own convention.
    """
    img = np.asarray(rgb)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img.astype(np.uint8)
    if gray.size == 0:
        raise ValueError("empty crop")
    keep = None if mask is None else np.asarray(mask).astype(bool)
    if keep is not None and keep.shape != gray.shape:
        raise ValueError(f"mask shape {keep.shape} does not match crop shape {gray.shape}")
    if keep is not None and not keep.any():
        return np.zeros((28, 28), np.uint8)

    outside = gray[~keep] if keep is not None and (~keep).any() else _border(gray)
    background = float(np.median(outside))
    work = gray.astype(np.float32)
    if background > 127:
        work, background = 255.0 - work, 255.0 - background
    if keep is not None:
        # The mask is the item: keep its silhouette bright whatever its colour, texture within it.
        inside = work[keep]
        lo, hi = np.percentile(inside, [2, 98])
        work = 60.0 + 195.0 * np.clip((work - lo) / max(hi - lo, 1.0), 0, 1)
        work[~keep] = 0
    else:  # the item is whatever stands out from the background
        work = np.clip(work - background, 0, None)
        work = np.clip(work * (255.0 / max(float(np.percentile(work, 99.5)), 1.0)), 0, 255)
        keep = work > 0.1 * 255
        if not keep.any():
            return np.zeros((28, 28), np.uint8)
    ys, xs = np.nonzero(keep)
    work = work[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]

    h, w = work.shape
    side = 28 * (1 - 2 * margin)
    scale = side / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(work, (new_w, new_h), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((28, 28), np.float32)
    top, left = (28 - new_h) // 2, (28 - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = small
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def _border(gray: np.ndarray) -> np.ndarray:
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def crop_for_classifier(
    image: np.ndarray, raster: InstanceRaster | None, margin: float = 0.1
) -> tuple[np.ndarray, np.ndarray | None]:
    """The instance's box (plus a small margin) cut from the image, with its mask cut the same way."""
    if raster is None or raster.mask.size == 0:
        return image, None
    h, w = raster.mask.shape
    pad_y, pad_x = int(h * margin), int(w * margin)
    y0, x0 = max(raster.y0 - pad_y, 0), max(raster.x0 - pad_x, 0)
    y1, x1 = min(raster.y0 + h + pad_y, image.shape[0]), min(raster.x0 + w + pad_x, image.shape[1])
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    mask[raster.y0 - y0 : raster.y0 - y0 + h, raster.x0 - x0 : raster.x0 - x0 + w] = raster.mask
    return image[y0:y1, x0:x1], mask


def cnn_input(
    image: np.ndarray, raster: InstanceRaster | None, preprocess: Callable[..., np.ndarray]
) -> np.ndarray:
    """The exact 28×28 uint8 picture the CNN sees for an instance (``raster=None``: whole picture)."""
    crop, mask = crop_for_classifier(image, raster)
    return np.asarray(preprocess(crop, mask), np.uint8)
