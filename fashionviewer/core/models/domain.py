"""Which model suits which images, and the notice when a model is used outside its domain.

Every model card states its ``domain``: ``"photos"`` (trained on real photos: the garment
parsing model ``fashion``, ``maskrcnn_ccp``) or ``"synthetic-scenes"`` (the demo, trained on
Fashion-MNIST items pasted on plain backgrounds). A folder of photos gets the real-photo model
by default; only the embedded demo folder gets the demo model. A synthetic-scenes model used on
any other folder still runs, with one notice (stderr in ``predict``, recorded in ``run.json``;
a banner in the viewer).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fashionviewer.core.base.paths import DEMO_DIR, MODELS_DIR

PHOTOS = "photos"
SYNTHETIC = "synthetic-scenes"
FASHION_MNIST = "fashion-mnist"  # the classifiers: 28x28 product images
DOMAINS = (PHOTOS, SYNTHETIC, FASHION_MNIST)
DEMO_MODEL = "demo"
PHOTO_MODEL = "fashion"  # the bundled real-photo model (resources/models/fashion.*)


def is_demo_folder(folder: str | os.PathLike[str] | None) -> bool:
    """Whether ``folder`` is the embedded demo (``resources/demo``), or no folder at all."""
    if folder is None:
        return True
    try:
        return Path(folder).expanduser().resolve() == DEMO_DIR.resolve()
    except OSError:
        return False


def default_model_for(
    folder: str | os.PathLike[str] | None, bundled: list[str] | None = None
) -> str:
    """The bundled model to use on ``folder``: the demo model for the demo folder (or None), the
    real-photo model for any other folder; whichever exists when only one is installed."""
    # what resources/models holds (bundled_models() without importing inference)
    if bundled is None:
        bundled = [
            name
            for name, card in (
                (DEMO_MODEL, f"maskrcnn_{DEMO_MODEL}.json"),
                (PHOTO_MODEL, f"{PHOTO_MODEL}.json"),
            )
            if (MODELS_DIR / card).is_file()
        ]
    wanted, fallback = (
        (DEMO_MODEL, PHOTO_MODEL) if is_demo_folder(folder) else (PHOTO_MODEL, DEMO_MODEL)
    )
    if wanted in bundled or fallback not in bundled:
        return wanted
    return fallback


def card_domain(card: dict[str, Any] | None) -> str | None:
    """The card's ``domain`` (None when the card does not say)."""
    domain = (card or {}).get("domain")
    return str(domain) if domain else None


def domain_notice(
    card: dict[str, Any] | None, folder: str | os.PathLike[str] | None, model: str = ""
) -> str | None:
    """One line when a synthetic-scenes model is used on images other than the embedded demo, else None."""
    if card_domain(card) != SYNTHETIC or is_demo_folder(folder):
        return None
    name = model or "this model"
    return (
        f"{name} was trained on synthetic Fashion-MNIST scenes, not photos: its labels on these images "
        f"mean little; for photos use the real-photo model '{PHOTO_MODEL}'"
    )
