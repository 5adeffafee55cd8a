"""Multi-process training helpers for ``torchrun`` (or a single plain process).

``torchrun --nproc_per_node=N -m trainers.maskrcnn ...`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; :func:`init_distributed`
reads them and starts a process group (NCCL on CUDA, gloo on CPU). Without
them everything here degrades to the single-process answers, so the trainers
call these helpers unconditionally.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedInfo:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: torch.device) -> tuple[DistributedInfo, torch.device]:
    """Start the process group when launched by torchrun; returns this rank's info and device.

    On CUDA each process takes GPU ``LOCAL_RANK``.
    """
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1:
        return DistributedInfo(), device
    info = DistributedInfo(
        int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    )
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
    log.debug("rank %d/%d on %s (%s)", info.rank, info.world_size, device, backend)
    return info, device


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` when not distributed."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def reduce_mean(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Scalar tensors averaged over ranks (for logging and for a NaN check all ranks agree on)."""
    if not is_distributed():
        return values
    names = sorted(values)
    stacked = torch.stack([values[name].detach().float() for name in names])
    dist.all_reduce(stacked)
    stacked /= get_world_size()
    return dict(zip(names, stacked, strict=False))


def average_buffers(tensors: list[torch.Tensor]) -> None:
    """Replace each tensor by its mean over ranks, in place (e.g. BatchNorm statistics)."""
    if not is_distributed():
        return
    for tensor in tensors:
        dist.all_reduce(tensor)
        tensor /= get_world_size()


def wrap_model(model: nn.Module, info: DistributedInfo, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when this is one of several processes; as it is otherwise."""
    if not info.enabled:
        return model
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )
