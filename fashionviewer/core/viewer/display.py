"""The viewer's picture of a photo: decoded, EXIF-rotated and shrunk to a display-sized level in a
worker thread, so that a 48-megapixel photo is never decoded on the GUI thread nor uploaded as a
48-megapixel texture. The canvas shows the level stretched over the photo's full size, so boxes and
masks in full-resolution pixels still line up; the full-resolution pixels are decoded separately
(:func:`~fashionviewer.core.data.imageio.load_image`) where masks and exports need them."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from fashionviewer.core.data.imageio import _decode_error, _open, _to_rgb

# Sharp when fitted to a window on a 2K screen, and a texture the canvas uploads without stalling
# the GUI thread, which a 48-megapixel one does (benchmarks/viewer_responsiveness.py compares the
# two); the full pixels are only zoomed into at 1:1.
DISPLAY_MAX_SIDE = 2048


@dataclass(frozen=True)
class DisplayImage:
    """A display level of a photo (RGB uint8, longer side at most the level's limit) and the photo's
    full size after EXIF orientation."""

    pixels: np.ndarray
    width: int
    height: int
    frames: int = 1  # an animation or multi-page file: the first frame is shown

    @property
    def reduced(self) -> bool:
        """Whether ``pixels`` is smaller than the photo (then the full pixels are decoded apart)."""
        return tuple(self.pixels.shape[:2]) != (self.height, self.width)


def load_display_image(
    path: str | os.PathLike[str], max_side: int = DISPLAY_MAX_SIDE
) -> DisplayImage:
    """Decode ``path`` for display: EXIF orientation applied, longer side at most ``max_side``.

    JPEGs are decoded at 1/2..1/8 scale (draft mode) and every format is shrunk by a box
    reduction before the final resampling, so a huge photo costs a fraction of a full decode.
    Raises ImageReadError with a one-line reason, like ``load_image``.
    """
    path = Path(path)
    with _open(path) as img:
        try:
            frames = max(1, int(getattr(img, "n_frames", 1)))
            img.seek(0)
            stored_w, stored_h = img.size
            turned = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
            width, height = (stored_h, stored_w) if turned else (stored_w, stored_h)
            factor = max_side / max(width, height)
            if factor < 1:
                img.draft("RGB", (math.ceil(stored_w * factor), math.ceil(stored_h * factor)))
            shown = ImageOps.exif_transpose(img)
            if max(shown.size) > max_side:
                shown.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
            pixels = _to_rgb(shown)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise _decode_error(path, exc) from exc
    return DisplayImage(pixels, width, height, frames)
