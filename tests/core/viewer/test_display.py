"""The viewer's display levels (core.viewer.display) and masks resampled onto them (core.data.overlay)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fashionviewer.core.data.imageio import ImageReadError, load_image
from fashionviewer.core.data.masks import encode_mask
from fashionviewer.core.data.overlay import PredictionRasters, composite, scaled_rasters
from fashionviewer.core.data.predictions import Instance
from fashionviewer.core.viewer.display import DISPLAY_MAX_SIDE, load_display_image
from tests.fixtures.bad_inputs import build_bad_input_folder


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad inputs")
    return root, build_bad_input_folder(root)


def test_small_files_are_shown_as_decoded_and_bad_ones_give_the_same_reason(bad_folder):
    root, expect = bad_folder
    for name, want in expect.items():
        if want["error"] is None:
            display = load_display_image(root / name)
            assert (display.width, display.height) == tuple(want["size"]) and display.frames == want["frames"], name
            if max(want["size"]) <= DISPLAY_MAX_SIDE:
                assert np.array_equal(display.pixels, load_image(root / name)), name  # first frame, EXIF applied
            else:  # the 3000-pixel strips: a level with every side kept
                assert display.reduced and max(display.pixels.shape[:2]) == DISPLAY_MAX_SIDE, name
                assert min(display.pixels.shape[:2]) >= 1, name
        else:
            with pytest.raises(ImageReadError, match=want["error"]):
                load_display_image(root / name)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_large_rotated_photo_gets_a_small_level_of_the_same_picture(tmp_path, fmt):
    rng = np.random.default_rng(0)
    stored = np.zeros((900, 2400, 3), np.uint8)  # stored landscape, shown portrait (EXIF orientation 6)
    stored[..., 0] = np.linspace(0, 255, 2400).astype(np.uint8)[None, :]
    stored[100:400, 200:900] = (20, 200, 60)
    stored[..., 2] = rng.integers(0, 30, (900, 2400))
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / f"big.{fmt.lower()}"
    image.save(path, format=fmt, exif=exif.tobytes(), quality=95)

    display = load_display_image(path, max_side=600)
    full = load_image(path)
    assert (display.width, display.height) == (900, 2400) and full.shape == (2400, 900, 3)
    assert display.reduced and max(display.pixels.shape[:2]) <= 600
    h, w = display.pixels.shape[:2]
    assert abs(h / w - 2400 / 900) < 0.02  # same picture, same proportions
    expected = np.asarray(Image.fromarray(full).resize((w, h), Image.Resampling.BOX), np.float32)
    assert np.abs(display.pixels.astype(np.float32) - expected).mean() < 8  # the same picture, smaller


def test_masks_resampled_onto_the_display_level_line_up():
    height, width = 2000, 3000
    mask = np.zeros((height, width), np.uint8)
    mask[400:1200, 900:2100] = 1
    instances = [Instance((900, 400, 2100, 1200), 1, "top", 0.9, encode_mask(mask))]
    full = PredictionRasters(instances, height, width)
    small = scaled_rasters(full, 200, 300)
    assert (small.height, small.width) == (200, 300) and small.instances == full.instances
    layer = composite(small, [0], 0.5)
    rows, cols = np.nonzero(layer[..., 3])
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (40, 120, 90, 210)
    assert small.instance_at(150, 80, [0]) == 0 and small.instance_at(10, 10, [0]) is None
