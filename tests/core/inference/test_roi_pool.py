"""The CPU box RoI pools: the threaded one gives torchvision's exact numbers, the sparse one the same to 1e-5."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign

from fashionviewer.core.inference.roi_pool import (
    MIN_ROIS_PER_THREAD,
    SparseRoIAlign,
    ThreadedRoIPool,
)

SHAPES = [(256, 320), (256, 320)]


@pytest.fixture
def two_threads():
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


def _inputs(
    counts: list[int], channels_last: bool
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    features = {}
    for level, stride in zip(("0", "1", "2"), (8, 16, 32), strict=False):
        f = torch.randn(2, 16, 256 // stride, 320 // stride, generator=generator)
        features[level] = f.to(memory_format=torch.channels_last) if channels_last else f
    boxes = []
    for count in counts:
        xy = torch.rand(count, 2, generator=generator) * torch.tensor([280.0, 220.0])
        wh = 4 + torch.rand(count, 2, generator=generator) * 300  # spans every FPN level
        boxes.append(torch.cat([xy, xy + wh], dim=1))
    return features, boxes


@pytest.mark.parametrize("channels_last", [False, True])
def test_threaded_pool_is_bit_identical_to_torchvision(two_threads, channels_last):
    features, boxes = _inputs([150, 91], channels_last)  # uneven split, two images
    assert sum(map(len, boxes)) >= 2 * MIN_ROIS_PER_THREAD  # the threaded path runs
    reference = MultiScaleRoIAlign(["0", "1", "2"], output_size=7, sampling_ratio=2)
    threaded = ThreadedRoIPool(MultiScaleRoIAlign(["0", "1", "2"], output_size=7, sampling_ratio=2))
    with torch.inference_mode():
        want = reference(features, boxes, SHAPES)
        got = threaded(features, boxes, SHAPES)
    assert got.shape == (241, 16, 7, 7)
    assert torch.equal(got, want)


def test_threaded_pool_passes_gradients_like_torchvision(two_threads):
    features, boxes = _inputs([100, 60], channels_last=False)
    grads = []
    for pool in (
        MultiScaleRoIAlign(["0", "1", "2"], 7, 2),
        ThreadedRoIPool(MultiScaleRoIAlign(["0", "1", "2"], 7, 2)),
    ):
        leaves = {name: f.clone().requires_grad_() for name, f in features.items()}
        pool(leaves, boxes, SHAPES).square().sum().backward()
        # A level no RoI maps to gets no gradient at all (None) instead of zeros.
        grads.append(
            [
                leaves[name].grad
                if leaves[name].grad is not None
                else torch.zeros_like(leaves[name])
                for name in ("0", "1", "2")
            ]
        )
    assert grads[0][0].abs().sum() > 0 and grads[0][1].abs().sum() > 0  # two levels got RoIs
    for got, want in zip(grads[1], grads[0], strict=False):
        torch.testing.assert_close(got, want)


def test_few_rois_use_one_thread_and_no_rois_work(two_threads):
    features, boxes = _inputs([5, 0], channels_last=False)
    reference = MultiScaleRoIAlign(["0", "1", "2"], 7, 2)
    threaded = ThreadedRoIPool(MultiScaleRoIAlign(["0", "1", "2"], 7, 2))
    assert torch.equal(threaded(features, boxes, SHAPES), reference(features, boxes, SHAPES))
    empty = threaded(features, [boxes[1], boxes[1]], SHAPES)
    assert empty.shape == (0, 16, 7, 7)


@pytest.mark.parametrize("channels_last", [False, True])
def test_sparse_pool_matches_torchvision(two_threads, channels_last):
    features, boxes = _inputs([150, 91], channels_last)
    reference = MultiScaleRoIAlign(["0", "1", "2"], output_size=7, sampling_ratio=2)
    sparse = SparseRoIAlign(MultiScaleRoIAlign(["0", "1", "2"], output_size=7, sampling_ratio=2))
    with torch.inference_mode():
        want = reference(features, boxes, SHAPES)
        got = sparse(features, boxes, SHAPES)
    assert got.shape == want.shape == (241, 16, 7, 7)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.equal(got, torch.zeros_like(got))


def test_sparse_pool_follows_torchvision_at_the_borders():
    """Boxes on, across and beyond the map's edges, and boxes under a pixel (widened to 1)."""
    features, _ = _inputs([1, 1], channels_last=True)
    boxes = [
        torch.tensor(
            [
                [0.0, 0.0, 320.0, 256.0],
                [-20.0, -20.0, 10.0, 10.0],
                [300.0, 240.0, 330.0, 270.0],
                [5.0, 5.0, 5.5, 5.2],
                [100.0, 100.0, 400.0, 400.0],
            ]
        ),
        torch.tensor(
            [[0.0, 0.0, 1.0, 1.0], [319.0, 255.0, 320.0, 256.0], [10.0, 10.0, 200.0, 20.0]]
        ),
    ]
    for output_size, sampling_ratio in ((7, 2), (14, 2), ((5, 3), 1)):
        reference = MultiScaleRoIAlign(["0", "1", "2"], output_size, sampling_ratio)
        sparse = SparseRoIAlign(MultiScaleRoIAlign(["0", "1", "2"], output_size, sampling_ratio))
        torch.testing.assert_close(
            sparse(features, boxes, SHAPES),
            reference(features, boxes, SHAPES),
            rtol=1e-5,
            atol=1e-5,
        )


def test_sparse_pool_handles_no_rois_and_refuses_adaptive_sampling():
    features, boxes = _inputs([0, 0], channels_last=True)
    sparse = SparseRoIAlign(MultiScaleRoIAlign(["0", "1", "2"], 7, 2))
    assert sparse(features, boxes, SHAPES).shape == (0, 16, 7, 7)
    with pytest.raises(ValueError, match="fixed sampling ratio"):
        SparseRoIAlign(MultiScaleRoIAlign(["0", "1", "2"], 7, 0))
