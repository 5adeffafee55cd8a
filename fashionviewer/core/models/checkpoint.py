"""Checkpoints and model cards, the same for every model family and every trainer.

A checkpoint is two files side by side: ``NAME.pt``, a plain ``state_dict`` (loadable with no
project code), and ``NAME.json``, its model card. :func:`write_checkpoint` writes both atomically
(temp file + rename) and stamps the card with ``weights_file`` and ``weights_sha256`` (and the
date); :func:`read_card`, :func:`read_state_dict` and :func:`load_state` read them back with
one-line :class:`WeightsError` messages naming the file. What a card must hold beyond that, and
which network it builds, is the model family's business (``core.inference.families``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from fashionviewer.core.base.atomic import atomic_torch_save, atomic_write_json
from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.base.paths import sha256_file

REQUIRED_CARD_FIELDS = ("architecture", "num_classes", "class_names")


def card_path(path: str | os.PathLike[str]) -> Path:
    """The model card beside a weights file (``NAME.pt`` -> ``NAME.json``)."""
    return Path(path).with_suffix(".json")


def card_category_ids(card: Mapping[str, Any]) -> list[int]:
    """The dataset's own category id of each label (``card["category_ids"][k-1]`` for label k): what
    results, exports and evaluation use. Cards without the key (older ones) mean 1..K."""
    names = card.get("class_names") or []
    ids = card.get("category_ids")
    if ids is None:
        return list(range(1, len(names) + 1))
    if len(ids) != len(names) or len(set(ids)) != len(ids):
        raise WeightsError(
            f"model card: 'category_ids' must be {len(names)} distinct integers, one per class"
        )
    return [int(i) for i in ids]


def plain_state_dict(weights: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of a model (unwrapped from DistributedDataParallel) or of a state_dict, detached on the CPU."""
    if isinstance(weights, nn.Module):
        weights = getattr(weights, "module", weights).state_dict()
    return {key: value.detach().cpu().contiguous() for key, value in weights.items()}


def state_dict_sha256(model: nn.Module) -> str:
    """SHA-256 over a model's tensors and their names, for weights that came without a card (torchvision's
    COCO model, a model built in memory): what identifies them in the prediction cache."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def write_checkpoint(
    weights: nn.Module | Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    card: Mapping[str, Any],
    *,
    stamp_date: bool = True,
) -> dict[str, Any]:
    """Write ``path`` (a plain state_dict) and its card beside it, both atomically; returns the card written.

    The card gets ``weights_file`` and ``weights_sha256`` of the file just written, and ``date`` (now, UTC)
    unless ``stamp_date`` is false (a card that carries its own date)."""
    path = Path(path)
    atomic_torch_save(plain_state_dict(weights), path)
    full = dict(card)
    if stamp_date:
        full["date"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    full.update(weights_file=path.name, weights_sha256=sha256_file(path))
    atomic_write_json(card_path(path), full)
    return full


def read_card(
    path: str | os.PathLike[str], required: tuple[str, ...] = REQUIRED_CARD_FIELDS
) -> dict[str, Any]:
    """The model card of checkpoint ``path`` (``NAME.pt`` or ``NAME.json``) holding the ``required`` fields."""
    card_file = card_path(path)
    try:
        card = json.loads(card_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(
            f"{card_file}: model card missing (it must sit beside {Path(path).with_suffix('.pt').name})"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{card_file}: unreadable model card ({exc})") from exc
    missing = [key for key in required if key not in card] if isinstance(card, dict) else []
    if not isinstance(card, dict) or missing:
        raise WeightsError(
            f"{card_file}: not a model card (missing {', '.join(missing) or 'fields'})"
        )
    return card


def refuse_random(card: Mapping[str, Any], weights_file: Path, allow_random: bool) -> None:
    """A card whose ``weights`` are ``"random"`` is refused unless ``allow_random``: an untrained model is
    never presented as a real one."""
    if card.get("weights") == "random" and not allow_random:
        raise WeightsError(
            f"{card_path(weights_file)}: holds random (untrained) weights; train the model first, "
            "or allow random weights explicitly to look at it anyway"
        )


def read_state_dict(weights_file: Path, card: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """``weights_file``'s tensors, checked against the card's ``weights_sha256`` when it has one."""
    if not weights_file.is_file():
        raise WeightsError(
            f"{weights_file}: weights file missing (the card {card_path(weights_file).name} names it)"
        )
    expected = card.get("weights_sha256")
    if expected and sha256_file(weights_file) != expected:
        raise WeightsError(
            f"{weights_file}: does not match its model card (sha256 differs); the file is incomplete or "
            "from another model: copy NAME.pt and NAME.json again, together"
        )
    try:
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types (UnpicklingError, RuntimeError, EOFError...)
        raise WeightsError(f"{weights_file}: corrupt weights file ({type(exc).__name__})") from exc
    if not isinstance(state, dict):
        raise WeightsError(f"{weights_file}: not a state_dict (found {type(state).__name__})")
    return state


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], weights_file: Path) -> None:
    """Load ``state`` into ``model``; every tensor must fit (WeightsError naming the file otherwise)."""
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = str(exc).split("\n\t")[1] if "\n\t" in str(exc) else str(exc)[:160]
        raise WeightsError(
            f"{weights_file}: weights do not fit the card's architecture ({detail.strip()})"
        ) from exc
    missing = [key for key in result.missing_keys if not key.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        example = (missing or result.unexpected_keys)[0]
        raise WeightsError(
            f"{weights_file}: weights do not fit the card's architecture ({len(missing)} missing, "
            f"{len(result.unexpected_keys)} unexpected tensors, e.g. {example})"
        )
