"""Where bundled resources and optional shared data live."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[2]  # fashionviewer/
REPO_DIR = PACKAGE_DIR.parent
RESOURCES_DIR = Path(os.environ.get("FASHIONVIEWER_RESOURCES", REPO_DIR / "resources"))
MODELS_DIR = RESOURCES_DIR / "models"
LABELS_DIR = RESOURCES_DIR / "labels"
DEMO_DIR = RESOURCES_DIR / "demo"
ICONS_DIR = RESOURCES_DIR / "icons"

DEFAULT_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the repository (CI and dev machines), if present."""
    env = os.environ.get("FASHIONVIEWER_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_DIR.parent / "shared" / "data")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def ccp_dir() -> Path | None:
    shared = shared_data_dir()
    if shared is not None and (shared / "ccp" / "photos").is_dir():
        return shared / "ccp"
    return None


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
