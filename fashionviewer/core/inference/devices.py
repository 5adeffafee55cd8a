"""Which torch device a model runs on: ``best_device()`` and ``resolve_device(name)``, shared by the
model loader (:mod:`.families`), the viewer's model choice and the trainers' ``--device``."""

from __future__ import annotations

import torch

from fashionviewer.core.base.errors import FashionViewerError


def best_device() -> str:
    """``"cuda"`` when a CUDA GPU is usable, else ``"mps"`` (Apple), else ``"cpu"``."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` -> :func:`best_device`; any other name is checked to be usable here."""
    if str(name) == "auto":
        return torch.device(best_device())
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise FashionViewerError(
            f"device {name!r}: not a device name (use cpu, cuda, cuda:N, mps or auto)"
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FashionViewerError(
            f"device {name!r}: CUDA is not available on this machine (use cpu)"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise FashionViewerError(
            f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here"
        )
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise FashionViewerError(f"device {name!r}: MPS is not available on this machine (use cpu)")
    return device
