"""Reading photos safely: EXIF orientation applied, every failure a one-line reason."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Collection

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fashionviewer.core.base.errors import FashionViewerError

# What Pillow decodes without plugins; an animation (GIF, APNG, WebP) or a multi-page TIFF gives its first frame.
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".apng",
        ".gif",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".webp",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".tga",
    }
)
MAX_PIXELS = 50_000_000  # refuse decompression bombs (40,000 x 40,000 headers) before decoding


class ImageReadError(FashionViewerError):
    """A file that is not a readable image; the message names the file and why."""


def list_images(folder: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by extension), sorted, following nested folders."""
    root = Path(folder)
    if not root.is_dir():
        raise FashionViewerError(f"{root}: not a folder")
    pattern = "**/*" if recursive else "*"
    found = [
        p
        for p in root.glob(pattern)
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(found, key=lambda p: str(p.relative_to(root)).lower())


def list_other_files(
    folder: str | os.PathLike[str],
    recursive: bool = True,
    skip_names: Collection[str] = (),
    skip_folders_holding: Collection[str] = (),
) -> list[Path]:
    """The files under ``folder`` that :func:`list_images` leaves out (other extensions), sorted.

    Hidden files and folders are not counted, nor files named in ``skip_names``, nor anything in a
    folder that holds a file named in ``skip_folders_holding`` (e.g. an earlier run's output folder)."""
    root = Path(folder)
    pattern = "**/*" if recursive else "*"
    found = [
        p
        for p in root.glob(pattern)
        if p.suffix.lower() not in IMAGE_EXTENSIONS
        and p.name not in skip_names
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and (p.is_file() or p.is_symlink())
    ]
    if skip_folders_holding:
        skipped = {p.parent for p in found if p.name in skip_folders_holding}
        found = [p for p in found if not any(parent in skipped for parent in p.parents)]
    return sorted(found, key=lambda p: str(p.relative_to(root)).lower())


def read_frame_count(path: str | os.PathLike[str]) -> int:
    """How many frames the file holds (an animated GIF, APNG or WebP, a multi-page TIFF); 1 for a still
    image. :func:`load_image` decodes the first."""
    with _open(Path(path)) as img:
        try:
            return max(1, int(getattr(img, "n_frames", 1)))
        except (OSError, ValueError, SyntaxError, EOFError):
            return 1  # a damaged later frame: the first still decodes (or load_image says why not)


def read_image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) after EXIF orientation, from the header only."""
    with _open(Path(path)) as img:
        width, height = img.size
        orientation = _orientation(img, Path(path))
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode ``path`` to an RGB uint8 array (H×W×3), EXIF orientation applied; the first frame of
    an animation or multi-page file (:func:`read_frame_count` says how many there are).

    Raises ImageReadError with a one-line reason for empty, truncated, non-image,
    oversized, unreadable or dangling files.

    Every step of a large photo's decode lets other threads run (the viewer's GUI thread waits for
    the GIL otherwise): a complete 8-bit JPEG or PNG in colour or grey without transparency is
    decoded by OpenCV, the same pixels as Pillow gives (a JPEG in about half the time, no
    whole-picture copies); other files are decoded by Pillow and copied out in blocks.
    """
    path = Path(path)
    with _open(path) as img:
        try:
            if _opencv_decodes_alike(img):
                rgb = _decode_by_opencv(path, img)
                if rgb is not None:
                    return rgb
            ImageOps.exif_transpose(img, in_place=True)  # no copy when there is nothing to turn
            return _to_rgb(img)
        except (OSError, ValueError, SyntaxError) as exc:
            raise _decode_error(path, exc) from exc


def _open(path: Path) -> Image.Image:
    if path.is_symlink() and not path.exists():
        raise ImageReadError(f"{path}: broken symbolic link")
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except ImageReadError:
        raise
    except PermissionError as exc:
        raise ImageReadError(f"{path}: permission denied") from exc
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: file not found") from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"{path}: not an image file") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"{path}: too many pixels ({_short(exc)})") from exc
    except OSError as exc:
        raise _decode_error(path, exc) from exc
    if img.width * img.height > MAX_PIXELS:
        img.close()
        raise ImageReadError(
            f"{path}: too many pixels ({img.width}x{img.height}, limit {MAX_PIXELS:,})"
        )
    return img


def _to_rgb(img: Image.Image) -> np.ndarray:
    img.load()
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = _pixels(img).astype(np.float64)
        peak = max(float(arr.max()), 1.0)
        scale = 255.0 / (65535.0 if peak > 255 else 255.0)
        grey = np.clip(arr * scale, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return _pixels(img if img.mode == "RGB" else img.convert("RGB"))


def _pixels(img: Image.Image) -> np.ndarray:
    """``np.asarray(img)`` as a writeable C-ordered array, copied out in blocks of about a megabyte.

    ``np.asarray`` joins the whole picture into one bytes object first, holding the GIL all the
    while (20 ms for 48 megapixels); this is Pillow's ``tobytes`` loop without the join."""
    shape, typestr = Image._conv_type_shape(img)
    out = np.empty(shape, dtype=np.dtype(typestr))
    flat = out.reshape(-1).view(np.uint8)
    if flat.size == 0:
        return out
    encoder = Image._getencoder(img.mode, "raw", img.mode)
    try:
        encoder.setimage(img.im, (0, 0, *img.size))
        block = max(1 << 20, img.size[0] * 4)
        filled = 0
        while True:
            _, status, data = encoder.encode(block)
            flat[filled : filled + len(data)] = np.frombuffer(data, np.uint8)
            filled += len(data)
            if status:
                break
    finally:
        encoder.cleanup()
    if status < 0 or filled != flat.size:
        raise ValueError(f"pixel copy stopped at byte {filled:,} of {flat.size:,} (code {status})")
    return out


# OpenCV 4.10+ decodes straight to RGB; before that BGR is turned afterwards (also without the GIL).
_CV_RGB_FLAG = getattr(cv2, "IMREAD_COLOR_RGB", None)


# The last bytes of a complete file: JPEG's end-of-image marker, PNG's IEND chunk and its CRC.
_COMPLETE_ENDINGS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}


def _opencv_decodes_alike(img: Image.Image) -> bool:
    """Whether OpenCV gives this file the pixels Pillow would: 8-bit colour or grey with no
    transparency (CMYK, palettes, alpha and 16 bits are converted differently)."""
    return (
        img.format in _COMPLETE_ENDINGS
        and img.mode in ("RGB", "L")
        and "transparency" not in img.info
    )


def _decode_by_opencv(path: Path, img: Image.Image) -> np.ndarray | None:
    """The RGB pixels of a complete JPEG or PNG by OpenCV (which lets go of the GIL throughout),
    EXIF orientation applied; None when Pillow should decode it instead: a file that does not end
    as a complete one does (OpenCV would fill a truncated JPEG's missing rows instead of saying so),
    a PNG that may hold an orientation, or one OpenCV refuses."""
    raw = path.read_bytes()
    if not raw.endswith(_COMPLETE_ENDINGS[str(img.format)]) or (
        img.format == "PNG" and _png_may_hold_orientation(path)
    ):
        return None
    orientation = _orientation(img, path)
    flags = cv2.IMREAD_IGNORE_ORIENTATION  # orientation is applied as Pillow reads it
    try:
        decoded = cv2.imdecode(
            np.frombuffer(raw, np.uint8), flags | (_CV_RGB_FLAG or cv2.IMREAD_COLOR)
        )
    except cv2.error:
        return None
    if decoded is None or decoded.ndim != 3 or decoded.shape[2] != 3 or decoded.dtype != np.uint8:
        return None
    if _CV_RGB_FLAG is None:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return _orient(decoded, orientation)


def _orientation(img: Image.Image, path: Path) -> int:
    """The EXIF orientation Pillow's exif_transpose reads (1: upright). Pillow finds a PNG's eXIf
    chunk after the pixels only by decoding the whole picture: a PNG without any chunk that can
    hold one is upright without that."""
    if img.format == "PNG" and not _png_may_hold_orientation(path):
        return 1
    value = img.getexif().get(0x0112, 1)
    return value if isinstance(value, int) else 1  # exif_transpose turns for 2..8 only


def _png_may_hold_orientation(path: Path) -> bool:
    """Whether a PNG has an eXIf chunk or a text chunk with EXIF or XMP (where Pillow looks for an
    orientation); walks the chunk headers only. True when the chunks do not parse: Pillow judges."""
    with open(path, "rb") as file:
        file.seek(8)  # the signature
        while header := file.read(8):
            if len(header) < 8:
                return True
            length, kind = int.from_bytes(header[:4], "big"), header[4:]
            if kind == b"eXIf":
                return True
            if kind in (b"tEXt", b"zTXt", b"iTXt"):
                key = file.read(min(length, 80)).split(b"\0", 1)[0].lower()
                if b"exif" in key or b"xmp" in key:
                    return True
                file.seek(length - min(length, 80), os.SEEK_CUR)
            elif kind == b"IEND":
                return False
            else:
                file.seek(length, os.SEEK_CUR)
            file.seek(4, os.SEEK_CUR)  # the CRC
    return True


def _orient(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """``rgb`` turned as EXIF ``orientation`` says (Pillow's exif_transpose), by OpenCV (no GIL)."""
    if orientation in (5, 6, 7, 8):
        rgb = cv2.transpose(rgb)  # the main diagonal: 5 as it is, the others flipped after
    flip = {2: 1, 3: -1, 4: 0, 6: 1, 7: -1, 8: 0}.get(orientation)  # 1: left-right, 0: top-bottom
    return rgb if flip is None else cv2.flip(rgb, flip)


def _decode_error(path: Path, exc: BaseException) -> ImageReadError:
    if "truncat" in str(exc).lower():
        return ImageReadError(f"{path}: truncated image file")
    return ImageReadError(f"{path}: cannot decode image ({_short(exc)})")


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
