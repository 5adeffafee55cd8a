"""torchvision's multi-scale RoIAlign with the RoIs shared across CPU threads, same numbers.

torchvision's CPU ``roi_align`` kernels run on one core: with 1,000 proposals
per image the forward is a fifth of an R50-FPN's prediction time on a 2-core
machine. Every RoI is pooled independently, so :func:`threaded_roi_align` runs
torchvision's own kernels on slices of the RoIs in parallel threads: the
features are bit-identical. The gradient (the sum of the slices' gradients,
equal up to float rounding) is there so that the wrapper is correct anywhere,
but training gains little from it: a light model's training step measured 1.03x
(the backward kernel is not what a step waits on).

:class:`ThreadedRoIPool` wraps a ``MultiScaleRoIAlign`` with it; the Predictor
installs it while it runs on the CPU. It has no parameters, so state dicts and
checkpoints do not change.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.poolers import _convert_to_roi_format, _setup_scales

MIN_ROIS_PER_THREAD = 16  # below this, handing work to a thread costs more than it saves


@functools.lru_cache(maxsize=None)
def _executor(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="roi-pool")


def _parallel(fn: Any, args: list[tuple[Any, ...]]) -> list[Tensor]:
    def run(arguments: tuple[Any, ...]) -> Tensor:
        with torch.inference_mode(), torch.no_grad():  # the Function records the graph, not the slices
            return fn(*arguments)

    if len(args) == 1:
        return [run(args[0])]
    return list(_executor(len(args)).map(run, args))


class _ThreadedRoIAlign(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, features: Tensor, rois: Tensor, pooled: tuple[int, int], spatial_scale: float,
                sampling_ratio: int, aligned: bool, parts: int) -> Tensor:
        ctx.save_for_backward(rois)
        ctx.settings = (pooled, spatial_scale, sampling_ratio, aligned, parts, tuple(features.shape))
        kernel = torch.ops.torchvision.roi_align
        slices = [(features, r, spatial_scale, pooled[0], pooled[1], sampling_ratio, aligned)
                  for r in rois.tensor_split(parts)]
        return torch.cat(_parallel(kernel, slices))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (rois,) = ctx.saved_tensors
        pooled, spatial_scale, sampling_ratio, aligned, parts, (batch, channels, height, width) = ctx.settings
        kernel = torch.ops.torchvision._roi_align_backward
        slices = [(g.contiguous(), r, spatial_scale, pooled[0], pooled[1], batch, channels, height, width,
                   sampling_ratio, aligned)
                  for g, r in zip(grad.tensor_split(parts), rois.tensor_split(parts))]
        grads = _parallel(kernel, slices)
        total = grads[0].clone() if torch.is_inference(grads[0]) else grads[0]
        for more in grads[1:]:
            total += more
        return total, None, None, None, None, None, None


def threaded_roi_align(features: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
                       sampling_ratio: int, aligned: bool = False, workers: int | None = None) -> Tensor:
    """``torchvision.ops.roi_align(features, rois K×5, ...)`` on ``workers`` threads (default: torch's)."""
    workers = workers or torch.get_num_threads()
    parts = max(1, min(workers, len(rois) // MIN_ROIS_PER_THREAD))
    return _ThreadedRoIAlign.apply(features.contiguous(), rois, tuple(output_size), float(spatial_scale),
                                   int(sampling_ratio), bool(aligned), parts)


class ThreadedRoIPool(nn.Module):
    """Wraps a ``MultiScaleRoIAlign``: same inputs, same output, as many threads as torch uses."""

    def __init__(self, pool: MultiScaleRoIAlign) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        pool = self.pool
        features = [x[name] for name in pool.featmap_names]
        if pool.scales is None or pool.map_levels is None:
            pool.scales, pool.map_levels = _setup_scales(features, image_shapes, pool.canonical_scale,
                                                         pool.canonical_level)
        rois = _convert_to_roi_format(boxes)
        if len(features) == 1:
            levels = torch.zeros(len(rois), dtype=torch.int64, device=rois.device)
        else:
            levels = pool.map_levels(boxes)
        first = features[0]
        result = first.new_zeros((len(rois), first.shape[1], *pool.output_size))
        for level, (feature, scale) in enumerate(zip(features, pool.scales)):
            index = torch.nonzero(levels == level).flatten()
            if len(index):
                pooled = threaded_roi_align(feature, rois[index], pool.output_size, scale, pool.sampling_ratio)
                result = result.index_copy(0, index, pooled.to(result.dtype))
        return result

