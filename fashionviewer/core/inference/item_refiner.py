"""Redraw a predicted item's mask from its box with the interactive network, as an annotator would draw
the box round each item the model found: a parsing fine-tune on items names the network in its card
(``refine_items``), and :class:`~fashionviewer.core.inference.parsing.ParsingPredictor` applies it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.base.paths import MODELS_DIR, sha256_file
from fashionviewer.core.inference.interactive import InteractiveSession, segment
from fashionviewer.core.inference.interactive_model import BUNDLED_NAME
from fashionviewer.core.models.interactive_net import InteractiveNet, load_interactive_checkpoint

_lock = threading.Lock()


class ItemRefiner:
    """Redraws each predicted item's mask with an interactive network given only the item's box (its mask's
    extent plus ``box_margin`` px, the margin the network is benchmarked with).

    Parsing masks are blurred at the network's scale and split or merged where items touch; the box of such
    a mask is still about right, and box-alone masks are sharp. The card entry::

        "refine_items": {"model": "interactive", "weights_sha256": "...", "box_margin": 5}
    """

    def __init__(
        self, model: InteractiveNet, name: str, weights_sha256: str, box_margin: float
    ) -> None:
        self.model, self.name = model, name
        self.weights_sha256, self.box_margin = weights_sha256, float(box_margin)
        # what the prediction cache keys on
        self.key = f"{weights_sha256 or name}+margin{self.box_margin:g}"

    def refine(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The network's mask for the box round ``mask`` (bool H×W); ``mask`` itself when it is empty or the
        network finds nothing in the box."""
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if rows.size == 0:
            return mask
        height, width = mask.shape
        margin = self.box_margin
        box = (
            max(0.0, cols[0] - margin),
            max(0.0, rows[0] - margin),
            min(float(width), cols[-1] + 1 + margin),
            min(float(height), rows[-1] + 1 + margin),
        )
        redrawn = segment(
            image, box=box, method="learned", model=self.model, session=InteractiveSession()
        )
        return redrawn if redrawn.any() else mask


_refiners: dict[tuple[str, str], ItemRefiner] = {}


def load_item_refiner(entry: dict[str, Any], beside: Path | None = None) -> ItemRefiner:
    """The refiner a card's ``refine_items`` entry names: its ``model`` looked up beside the checkpoint, then
    among the bundled models, checked against ``weights_sha256`` when given (loaded once per file).
    WeightsError (one line) when it is missing, unreadable or other weights."""
    name = str(entry.get("model") or BUNDLED_NAME)
    candidates = [Path(name).with_suffix(".pt")] if Path(name).suffix == ".pt" else []
    if beside is not None:
        candidates.append(Path(beside).parent / f"{name}.pt")
    candidates.append(MODELS_DIR / f"{name}.pt")
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise WeightsError(
            f"item refiner {name}: no {name}.pt beside the model or among the bundled models"
        )
    sha = sha256_file(path)
    wanted = str(entry.get("weights_sha256") or "")
    if wanted and wanted != sha:
        raise WeightsError(
            f"{path}: item refiner weights differ from the card's (SHA-256 {sha[:12]}…)"
        )
    margin = float(entry.get("box_margin", 5))
    with _lock:
        if (str(path), sha) not in _refiners:
            model, _ = load_interactive_checkpoint(path)
            _refiners[(str(path), sha)] = ItemRefiner(model, name, sha, margin)
        cached = _refiners[(str(path), sha)]
    return ItemRefiner(cached.model, name, sha, margin)
