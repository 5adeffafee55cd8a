"""Batch norms folded into convolutions: same features and predictions, nothing else touched."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from fashionviewer.core.base.paths import DEMO_DIR, MODELS_DIR
from fashionviewer.core.data.imageio import load_image
from fashionviewer.core.inference.families import load_predictor
from fashionviewer.core.inference.folding import fold_batch_norms
from fashionviewer.core.inference.predictor import Predictor
from fashionviewer.core.models.registry import get_model, list_models, load_checkpoint
from fashionviewer.core.runs.cache import predictor_settings


def _norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]


def _with_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random init leaves every batch norm the identity; give them real statistics to fold."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for norm in _norms(model):
            n = norm.running_mean.numel()
            norm.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            norm.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            norm.weight.copy_(torch.rand(n, generator=generator) + 0.5)
            norm.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval()


@pytest.mark.parametrize("name", list_models())
def test_every_batch_norm_is_folded_and_the_features_stay(name, ccp_root):
    model = _with_statistics(get_model(name, 4, weights=None, min_size=160))
    folded = copy.deepcopy(model)
    assert fold_batch_norms(folded) == len(_norms(model)) > 0
    assert _norms(folded) == []
    photo = (
        torch.from_numpy(load_image(ccp_root / "photos" / "0001.jpg")).permute(2, 0, 1).float()
        / 255
    )
    with torch.inference_mode():
        images, _ = model.transform([photo])
        want, got = model.backbone(images.tensors), folded.backbone(images.tensors)
    for level in want:
        scale = want[level].abs().max()
        assert torch.allclose(got[level], want[level], rtol=1e-4, atol=1e-5 * float(scale)), level
    # The RPN and RoI heads (where v2 has batch norms too), fed the same features and boxes.
    for fast, plain in zip(
        _head_outputs(folded, want, images.image_sizes),
        _head_outputs(model, want, images.image_sizes),
        strict=False,
    ):
        torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5 * float(plain.abs().max()))


def _head_outputs(
    model: nn.Module, features: dict[str, torch.Tensor], sizes: list
) -> list[torch.Tensor]:
    boxes = [torch.tensor([[10.0, 20.0, 120.0, 200.0], [50.0, 60.0, 90.0, 150.0]])]
    heads = model.roi_heads
    with torch.inference_mode():
        return [
            *model.rpn.head(list(features.values()))[0],
            heads.box_head(heads.box_roi_pool(features, boxes, sizes)),
            heads.mask_head(heads.mask_roi_pool(features, boxes, sizes)),
        ]


def test_only_eval_mode_norms_after_a_convolution_are_folded():
    torch.manual_seed(0)
    frozen = FrozenBatchNorm2d(8)
    frozen.running_var.fill_(4.0)
    frozen.bias.fill_(0.5)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        _with_statistics(nn.Sequential(nn.BatchNorm2d(8)))[0],
        nn.ReLU(),
        nn.Conv2d(8, 8, 1, bias=False),
        frozen,  # torchvision's frozen norm, conv without bias
        nn.BatchNorm2d(8),  # follows a norm, not a convolution
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),  # training mode: statistics still move
    )
    model[5].eval()
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        want = model(x)
        assert fold_batch_norms(model) == 2
        assert isinstance(model[1], nn.Identity) and isinstance(model[4], nn.Identity)
        assert isinstance(model[5], nn.BatchNorm2d) and isinstance(model[7], nn.BatchNorm2d)
        model[7].eval()  # compare like with like: the unfolded training-mode norm is left as it was
        reference = copy.deepcopy(model)
        assert torch.allclose(model(x), reference(x))
        model[7].train()
        got = model(x)
    assert torch.allclose(got, want, atol=1e-5)
    assert model[3].bias is not None  # the frozen norm's shift became the convolution's bias


def test_channels_last_weights_stay_channels_last():
    conv, norm = nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6).eval()
    model = nn.Sequential(conv, norm).to(memory_format=torch.channels_last)
    fold_batch_norms(model)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_load_predictor_folds_and_predicts_what_the_plain_model_does():
    fast = load_predictor("demo", tta=False, rescore=False)
    assert _norms(fast.model) == [] and fast.fold_batch_norm
    plain_model, card = load_checkpoint(MODELS_DIR / "maskrcnn_demo.pt")
    plain = Predictor(plain_model, card["class_names"], "cpu", fast.score_floor, channels_last=True)
    assert _norms(plain.model)
    for path in sorted(DEMO_DIR.glob("*.png"))[:3]:
        image = load_image(path)
        got, want = fast.predict(image), plain.predict(image)
        assert got.instances and [i.label for i in got.instances] == [
            i.label for i in want.instances
        ]
        assert np.allclose(
            [i.score for i in got.instances], [i.score for i in want.instances], atol=1e-4
        )
    # the cache keeps their results apart
    assert predictor_settings(fast) != predictor_settings(plain)
