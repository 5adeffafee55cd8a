"""Image reading on the bad-input folder: valid images decode (EXIF applied), the rest give one-line reasons."""

import numpy as np
import pytest
from PIL import Image

from fashionviewer.core.data.imageio import (
    ImageReadError,
    list_images,
    list_other_files,
    load_image,
    read_frame_count,
    read_image_size,
)
from tests.fixtures.bad_inputs import ANIMATION_FRAMES, OTHER_FILES, build_bad_input_folder


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad inputs")
    return root, build_bad_input_folder(root)


def test_every_file_is_listed_including_nested_and_odd_names(bad_folder):
    root, expect = bad_folder
    listed = {str(p.relative_to(root)) for p in list_images(root)}
    assert listed == set(expect)
    assert {p.relative_to(root).as_posix() for p in list_other_files(root)} == set(OTHER_FILES)


def test_other_files_leave_out_named_files_and_output_folders(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden").write_text("x")
    (tmp_path / "annotations.fashionviewer.json").write_text("{}")
    (tmp_path / "out" / "deeper").mkdir(parents=True)
    for name in ("run.json", "predictions.json", "deeper/log.txt"):
        (tmp_path / "out" / name).write_text("{}")
    names = {p.relative_to(tmp_path).as_posix() for p in list_other_files(tmp_path)}
    assert names == {
        "notes.txt",
        "annotations.fashionviewer.json",
        "out/run.json",
        "out/predictions.json",
        "out/deeper/log.txt",
    }
    kept = list_other_files(
        tmp_path, skip_names={"annotations.fashionviewer.json"}, skip_folders_holding={"run.json"}
    )
    assert [p.name for p in kept] == ["notes.txt"]


def test_valid_images_decode_to_rgb_with_exif_applied(bad_folder):
    root, expect = bad_folder
    for name, want in expect.items():
        if want["error"] is None:
            image = load_image(root / name)
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
            assert (image.shape[1], image.shape[0]) == tuple(want["size"]), name
            assert read_image_size(root / name) == tuple(want["size"]), name
            assert read_frame_count(root / name) == want["frames"], name


def test_an_animation_gives_its_first_frame(bad_folder):
    root, _ = bad_folder
    with Image.open(root / "animated.gif") as gif:
        assert gif.n_frames == ANIMATION_FRAMES
        first = np.asarray(gif.convert("RGB"))
        gif.seek(1)
        second = np.asarray(gif.convert("RGB"))
    image = load_image(root / "animated.gif")
    assert np.array_equal(image, first) and not np.array_equal(image, second)


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
