"""load_image decodes large photos without holding the GIL (OpenCV for complete 8-bit JPEGs and PNGs,
Pillow copied out in blocks for the rest) and gives exactly the pixels of the plain Pillow reading:
``ImageOps.exif_transpose`` then ``np.asarray(img.convert("RGB"))``, kept here as the reference."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

import fashionviewer.core.data.imageio as imageio
from fashionviewer.core.data.imageio import ImageReadError, load_image
from tests.fixtures.bad_inputs import build_bad_input_folder


def reference_pixels(path: Path) -> np.ndarray:
    """The earlier load_image: Pillow all the way, whole-picture copies."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        img.load()
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(img, dtype=np.float64)
            scale = 255.0 / (65535.0 if max(float(arr.max()), 1.0) > 255 else 255.0)
            grey = np.clip(arr * scale, 0, 255).astype(np.uint8)
            return np.repeat(grey[..., None], 3, axis=2)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def assert_same_pixels(path: Path) -> np.ndarray:
    got = load_image(path)
    want = reference_pixels(path)
    assert got.shape == want.shape, path.name
    assert np.array_equal(got, want), (
        f"{path.name}: {int((got != want).any(2).sum())} pixels differ"
    )
    assert got.flags.writeable and got.flags.c_contiguous, path.name  # torch.from_numpy takes it
    return got


def photo_like(width: int = 211, height: int = 157, seed: int = 0) -> np.ndarray:
    """Gradients, noise and hard edges, so that chroma subsampling and the DCT have work to do."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:height, :width]
    rgb = np.stack([cols * 255 // width, rows * 255 // height, (rows + cols) % 256], axis=2)
    rgb = rgb + rng.integers(-30, 30, rgb.shape)
    rgb[height // 3 : height // 2, width // 4 : width // 2] = (200, 20, 60)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def grey_png(path: Path, grey: np.ndarray, bits: int) -> None:
    """A greyscale PNG at 1, 2 or 4 bits per pixel (Pillow writes only 8), values 0..2**bits-1."""
    height, width = grey.shape
    per_byte = 8 // bits
    rows = []
    for row in grey:
        padded = np.zeros(-(-width // per_byte) * per_byte, np.uint8)
        padded[:width] = row
        groups = padded.reshape(-1, per_byte)
        packed = np.zeros(len(groups), np.uint8)
        for k in range(per_byte):
            packed |= groups[:, k] << (8 - bits * (k + 1))
        rows.append(b"\x00" + packed.tobytes())

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, bits, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = image.getexif()
    exif[0x0112] = orientation
    return exif.tobytes()


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> Path:
    """JPEGs and PNGs in every form the two decoders might read differently."""
    root = tmp_path_factory.mktemp("variants")
    rgb = Image.fromarray(photo_like())
    for orientation in range(1, 9):
        exif = with_orientation(rgb, orientation)
        rgb.save(root / f"exif_{orientation}.jpg", exif=exif, quality=85)
        rgb.save(root / f"exif_{orientation}.png", exif=exif)
    rgb.save(root / "exif_9_invalid.jpg", exif=with_orientation(rgb, 9))
    for subsampling in (0, 1, 2):  # 4:4:4, 4:2:2, 4:2:0
        rgb.save(root / f"subsampling_{subsampling}.jpg", subsampling=subsampling, quality=90)
    rgb.save(root / "progressive.jpg", progressive=True, quality=80)
    rgb.save(root / "optimized.jpg", optimize=True, quality=60)
    rgb.save(root / "quality_100.jpg", quality=100)
    rgb.convert("L").save(root / "grey.jpg", quality=90)
    rgb.convert("L").save(root / "grey.png")
    rgb.convert("CMYK").save(root / "cmyk.jpg")
    cv2.imwrite(str(root / "bgr16.png"), (photo_like(97, 61, 1).astype(np.uint16) * 257 + 3))
    grey = photo_like(53, 29, 2)[..., 0]
    for bits in (1, 2, 4):
        grey_png(root / f"grey_{bits}bit.png", grey >> (8 - bits), bits)
    transparent = rgb.convert("L")
    transparent.save(root / "grey_transparent.png", transparency=128)
    rgb.save(root / "rgb_transparent.png", transparency=(200, 20, 60))
    good = (root / "subsampling_2.jpg").read_bytes()
    (root / "trailing_bytes_after_end.jpg").write_bytes(good + b"\x00" * 37 + b"junk")
    # damaged but decodable (libjpeg warns, both fill in): bytes before the scan, the middle cut out
    scan = good.find(b"\xff\xda")
    (root / "junk_before_scan.jpg").write_bytes(good[:scan] + b"\x00\x00junk" + good[scan:])
    (root / "middle_cut_out.jpg").write_bytes(good[: len(good) // 2] + good[-2:])
    rgb.save(root / "photo.webp", quality=80)
    rgb.save(root / "photo.tiff")
    rgb.save(root / "photo.bmp")
    return root


def test_every_variant_gives_the_reference_pixels(variants: Path) -> None:
    names = sorted(p.name for p in variants.iterdir())
    assert len(names) > 30
    for path in sorted(variants.iterdir()):
        assert_same_pixels(path)
    # the orientations really turn the picture: 5-8 swap width and height
    assert load_image(variants / "exif_6.jpg").shape[:2] == (211, 157)
    assert load_image(variants / "exif_1.jpg").shape[:2] == (157, 211)
    assert not np.array_equal(
        load_image(variants / "exif_2.jpg"), load_image(variants / "exif_1.jpg")
    )


def test_opencv_decodes_complete_jpegs_and_pngs_and_pillow_the_rest(variants, monkeypatch):
    decoded_by_opencv: list[str] = []
    real = imageio._decode_by_opencv

    def recording(path: Path, img: Image.Image):
        result = real(path, img)
        if result is not None:
            decoded_by_opencv.append(path.name)
        return result

    monkeypatch.setattr(imageio, "_decode_by_opencv", recording)
    for name in ("exif_6.jpg", "subsampling_1.jpg", "grey.jpg", "progressive.jpg", "grey_4bit.png"):
        assert_same_pixels(variants / name)
    pillow_only = (
        "exif_3.png",  # a PNG's orientation: Pillow reads it (after decoding, when it follows the pixels)
        "cmyk.jpg",
        "grey_transparent.png",
        "rgb_transparent.png",
        "trailing_bytes_after_end.jpg",
        "photo.webp",
        "photo.tiff",
    )
    for name in pillow_only:
        assert_same_pixels(variants / name)
    assert decoded_by_opencv == [
        "exif_6.jpg",
        "subsampling_1.jpg",
        "grey.jpg",
        "progressive.jpg",
        "grey_4bit.png",
    ]


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(kind, the whole chunk) of each chunk after the signature."""
    chunks, offset = [], 8
    while offset < len(data):
        length = struct.unpack(">I", data[offset : offset + 4])[0]
        chunks.append((data[offset + 4 : offset + 8], data[offset : offset + 12 + length]))
        offset += 12 + length
    return chunks


def test_png_orientation_wherever_it_is_kept(variants: Path, tmp_path: Path) -> None:
    """An eXIf chunk after the pixels (Pillow finds it only by decoding) and an XMP orientation:
    both turn the picture as before."""
    data = (variants / "exif_6.png").read_bytes()
    chunks = png_chunks(data)
    exif = [whole for kind, whole in chunks if kind == b"eXIf"]
    assert len(exif) == 1
    others = [whole for kind, whole in chunks if kind not in (b"eXIf", b"IEND")]
    late = tmp_path / "late_exif.png"
    late.write_bytes(data[:8] + b"".join(others) + exif[0] + chunks[-1][1])
    with Image.open(late) as img:
        assert "exif" not in img.info  # not known before the pixels are decoded
    assert assert_same_pixels(late).shape[:2] == (211, 157)

    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf'
        '-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
        'tiff:Orientation="8"/></rdf:RDF></x:xmpmeta>'
    )
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp)
    Image.fromarray(photo_like()).save(tmp_path / "xmp.png", pnginfo=info)
    assert assert_same_pixels(tmp_path / "xmp.png").shape[:2] == (211, 157)
    assert imageio.read_image_size(tmp_path / "xmp.png") == (157, 211)


def test_a_plain_png_is_decoded_once(variants: Path, monkeypatch) -> None:
    """Pillow's getexif decodes a whole PNG to look for a late eXIf chunk: not for one without it."""
    from PIL import ImageFile

    def refuse(self):
        raise AssertionError(f"Pillow decoded {self.filename}")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    assert load_image(variants / "grey_2bit.png").shape == (29, 53, 3)
    assert imageio.read_image_size(variants / "bgr16.png") == (97, 61)


def test_no_whole_picture_bytes_copy(variants, monkeypatch):
    """``tobytes`` (behind ``np.asarray(pil_image)``) joins all pixels under the GIL: never used."""

    def refuse(*args, **kwargs):
        raise AssertionError("Image.tobytes called")

    monkeypatch.setattr(Image.Image, "tobytes", refuse)
    for name in ("exif_8.jpg", "exif_5.png", "cmyk.jpg", "photo.tiff", "photo.webp", "bgr16.png"):
        assert load_image(variants / name).ndim == 3


def test_bad_input_folder_reads_as_before(tmp_path: Path) -> None:
    expect = build_bad_input_folder(tmp_path)
    for name, want in expect.items():
        path = tmp_path / name
        if want["error"] is None:
            assert_same_pixels(path)
        else:
            with pytest.raises(ImageReadError, match=want["error"]):
                load_image(path)


def test_truncated_png_and_jpeg_say_so(variants: Path, tmp_path: Path) -> None:
    for name in ("exif_1.jpg", "progressive.jpg", "exif_1.png"):
        data = (variants / name).read_bytes()
        cut = tmp_path / f"cut_{name}"
        cut.write_bytes(data[: len(data) * 2 // 3])
        with pytest.raises(ImageReadError, match=f"cut_{name}: (truncated|cannot decode)"):
            load_image(cut)


def test_real_photos_give_the_reference_pixels(ccp_root: Path, tmp_path: Path) -> None:
    photos = sorted((ccp_root / "photos").glob("*.jpg"))[::40]
    assert len(photos) >= 20
    for index, photo in enumerate(photos):
        pixels = assert_same_pixels(photo)
        if index % 4 == 0:  # the same photo EXIF-turned, and as a PNG
            with Image.open(photo) as img:
                img.save(tmp_path / "turned.jpg", exif=with_orientation(img, 5 + index % 4))
                img.save(tmp_path / "turned.png", exif=with_orientation(img, 6))
            assert_same_pixels(tmp_path / "turned.jpg")
            assert np.array_equal(load_image(tmp_path / "turned.png"), np.rot90(pixels, -1))
