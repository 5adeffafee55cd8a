"""Reading photos safely: EXIF orientation applied, every failure a one-line reason."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Collection

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
        orientation = img.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode ``path`` to an RGB uint8 array (H×W×3), EXIF orientation applied; the first frame of
    an animation or multi-page file (:func:`read_frame_count` says how many there are).

    Raises ImageReadError with a one-line reason for empty, truncated, non-image,
    oversized, unreadable or dangling files.
    """
    path = Path(path)
    with _open(path) as img:
        try:
            img = ImageOps.exif_transpose(img)
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
        arr = np.asarray(img, dtype=np.float64)
        peak = max(float(arr.max()), 1.0)
        scale = 255.0 / (65535.0 if peak > 255 else 255.0)
        grey = np.clip(arr * scale, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    # PIL hands out a read-only view of a bytes object; torch.from_numpy warns about those on every run.
    return rgb if rgb.flags.writeable and rgb.flags.c_contiguous else np.array(rgb, order="C")


def _decode_error(path: Path, exc: BaseException) -> ImageReadError:
    if "truncat" in str(exc).lower():
        return ImageReadError(f"{path}: truncated image file")
    return ImageReadError(f"{path}: cannot decode image ({_short(exc)})")


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
