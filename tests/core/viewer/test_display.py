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
            assert (display.width, display.height) == tuple(
                want["size"]
            ) and display.frames == want["frames"], name
            if max(want["size"]) <= DISPLAY_MAX_SIDE:
                # first frame, EXIF applied
                assert np.array_equal(display.pixels, load_image(root / name)), name
            else:  # the 3000-pixel strips: a level with every side kept
                assert display.reduced and max(display.pixels.shape[:2]) == DISPLAY_MAX_SIDE, name
                assert min(display.pixels.shape[:2]) >= 1, name
        else:
            with pytest.raises(ImageReadError, match=want["error"]):
                load_display_image(root / name)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_large_rotated_photo_gets_a_small_level_of_the_same_picture(tmp_path, fmt):
    rng = np.random.default_rng(0)
    # stored landscape, shown portrait (EXIF orientation 6)
    stored = np.zeros((900, 2400, 3), np.uint8)
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
    # the same picture, smaller
    assert np.abs(display.pixels.astype(np.float32) - expected).mean() < 8


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


def test_mask_rasters_built_from_runs_equal_the_decoded_masks():
    """The viewer builds each mask's raster from its RLE runs over the mask's box only (a full decode of a
    48-megapixel mask holds the GIL); pixels, box and outline equal those of the fully decoded mask."""
    from fashionviewer.core.data.masks import decode_mask
    from fashionviewer.core.data.overlay import raster_from_rle, rasterize_mask, rle_counts

    rng = np.random.default_rng(27)
    shapes = []
    for trial in range(240):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        mask = np.zeros((h, w), bool)
        kind = trial % 5
        if kind == 0:  # noise: many short runs
            mask = rng.random((h, w)) < rng.random()
        elif kind == 1:  # a box
            y0, y1 = sorted(rng.integers(0, h, 2))
            x0, x1 = sorted(rng.integers(0, w, 2))
            mask[y0 : y1 + 1, x0 : x1 + 1] = True
        elif kind == 2:  # runs that cross columns: full-height stripes and a left edge
            mask[:, int(rng.integers(0, w)) :] = True
            mask[int(rng.integers(0, h)) :, 0] = True
        elif kind == 3:
            mask[:] = trial % 2 == 0  # everything or nothing
        else:  # a single pixel
            mask[int(rng.integers(0, h)), int(rng.integers(0, w))] = True
        shapes.append(mask)
    yy, xx = np.ogrid[:3000, :2000]
    # large: long counts in the string
    shapes.append(((yy - 1500) / 1200) ** 2 + ((xx - 1000) / 700) ** 2 < 1)
    for mask in shapes:
        rle = encode_mask(mask.view(np.uint8))
        want, got = rasterize_mask(decode_mask(rle)), raster_from_rle(rle)
        assert (got.x0, got.y0) == (want.x0, want.y0), mask.shape
        assert np.array_equal(got.mask, want.mask) and np.array_equal(got.outline, want.outline), (
            mask.shape
        )
        # the outline's pixels in image coordinates, as np.nonzero orders them
        rows, cols = np.nonzero(want.outline)
        assert all(
            np.array_equal(a, b)
            for a, b in zip(got.edge_pixels, (rows + want.y0, cols + want.x0), strict=False)
        )
        assert int(rle_counts(rle).sum()) == mask.size
    # an uncompressed RLE: pixels 1 and 2 (column-major)
    plain = {"size": [3, 2], "counts": [1, 2, 3]}
    raster = raster_from_rle(plain)
    assert (raster.x0, raster.y0, raster.mask.tolist()) == (0, 1, [[True], [True]])
