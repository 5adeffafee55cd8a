"""Image reading on the bad-input folder: valid images decode (EXIF applied), the rest give one-line reasons."""

import numpy as np
import pytest

from fashionviewer.core.data.imageio import ImageReadError, list_images, load_image, read_image_size
from tests.fixtures.bad_inputs import build_bad_input_folder


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad inputs")
    return root, build_bad_input_folder(root)


def test_every_file_is_listed_including_nested_and_odd_names(bad_folder):
    root, expect = bad_folder
    listed = {str(p.relative_to(root)) for p in list_images(root)}
    assert listed == set(expect)


def test_valid_images_decode_to_rgb_with_exif_applied(bad_folder):
    root, expect = bad_folder
    for name, want in expect.items():
        if want["error"] is None:
            image = load_image(root / name)
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
            assert (image.shape[1], image.shape[0]) == tuple(want["size"]), name
            assert read_image_size(root / name) == tuple(want["size"]), name


def test_invalid_files_give_a_one_line_reason_naming_the_file(bad_folder):
    root, expect = bad_folder
    for name, want in expect.items():
        if want["error"] is not None:
            with pytest.raises(ImageReadError) as info:
                load_image(root / name)
            message = str(info.value)
            assert "\n" not in message and name in message and want["error"] in message, message


def test_sixteen_bit_png_keeps_its_range(bad_folder):
    root, _ = bad_folder
    image = load_image(root / "gray16.png")
    assert image.min() == 0 and image.max() == 255
