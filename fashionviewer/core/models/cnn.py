"""Fashion-MNIST classifiers: the paper's three CNNs and the project's best model.

The paper's networks are Keras-style: 3×3 *valid* convolutions with ReLU, one
2×2 max-pool after the first convolution, dropout, a hidden dense layer and a
10-way output (softmax is applied by the loss / at prediction time). Their
trainable-parameter counts equal the paper's exactly:

=====  ===========================================  ==========
name   layers                                       parameters
=====  ===========================================  ==========
cnn1   conv32 → pool → dense32 → 10                    173,738
cnn2   conv32 → pool → conv64 → dense64 → 10           515,146
cnn3   conv32 → pool → conv64 → conv128 → dense128 → 10  1,421,194
=====  ===========================================  ==========

``fvnet`` is the project's own model: a small residual network with batch
norm and global average pooling, trained with augmentation (see trainers.fmnist).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

NUM_CLASSES = 10
# Fashion-MNIST training-set pixel statistics (images scaled to [0, 1]).
MEAN = 0.2860
STD = 0.3530


class PaperCNN(nn.Sequential):
    """Keras-style CNN of the paper: ``convs`` channel widths, pool after the first conv."""

    def __init__(
        self,
        convs: tuple[int, ...],
        dense: int,
        dropout: float = 0.25,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        layers: list[nn.Module] = []
        in_ch, size = 1, 28
        for i, out_ch in enumerate(convs):
            layers += [nn.Conv2d(in_ch, out_ch, kernel_size=3), nn.ReLU(inplace=True)]
            size -= 2
            if i == 0:
                layers += [nn.MaxPool2d(2), nn.Dropout(dropout)]
                size //= 2
            in_ch = out_ch
        if len(convs) > 1:
            layers.append(nn.Dropout(dropout))
        layers += [
            nn.Flatten(),
            nn.Linear(in_ch * size * size, dense),
            nn.ReLU(inplace=True),
            nn.Dropout(2 * dropout),
            nn.Linear(dense, num_classes),
        ]
        super().__init__(*layers)


class _ResidualBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class FVNet(nn.Module):
    """Small ResNet for 28×28 inputs: stem, three residual stages (28→14→7), GAP, linear."""

    def __init__(
        self,
        widths: tuple[int, int, int] = (32, 64, 128),
        dropout: float = 0.2,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            nn.Conv2d(1, w1, 3, 1, 1, bias=False),
            nn.BatchNorm2d(w1),
            nn.ReLU(inplace=True),
            _ResidualBlock(w1, w1, 1),
            _ResidualBlock(w1, w2, 2),
            _ResidualBlock(w2, w3, 2),
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(w3, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "cnn1": lambda **kw: PaperCNN((32,), 32, **kw),
    "cnn2": lambda **kw: PaperCNN((32, 64), 64, **kw),
    "cnn3": lambda **kw: PaperCNN((32, 64, 128), 128, **kw),
    "fvnet": lambda **kw: FVNet(**kw),
}
PAPER_PARAMETERS = {"cnn1": 173_738, "cnn2": 515_146, "cnn3": 1_421_194}
PAPER_ACCURACY = {"cnn1": 0.916, "cnn2": 0.928, "cnn3": 0.934}


def build_classifier(
    name: str, dropout: float | None = None, num_classes: int = NUM_CLASSES
) -> nn.Module:
    """A freshly initialised classifier by architecture name (see ``ARCHITECTURES``).

    ``dropout`` overrides the architecture's rate (training only: it changes no weights); ``num_classes``:
    the outputs (Fashion-MNIST's 10 unless a folder's item classifier has other classes).
    """
    options: dict[str, Any] = {"num_classes": num_classes}
    if dropout is not None:
        options["dropout"] = dropout
    try:
        return ARCHITECTURES[name](**options)
    except KeyError:
        raise ValueError(
            f"unknown classifier {name!r}; choose one of {', '.join(ARCHITECTURES)}"
        ) from None


def output_layer(model: nn.Module) -> tuple[str, nn.Linear]:
    """The classifier's last linear layer (one row per class) and its name in the state dict."""
    layers = [
        (name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)
    ]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no linear output layer")
    return layers[-1]


def predict_probabilities(
    model: nn.Module, x: torch.Tensor, tta_flip: bool = False
) -> torch.Tensor:
    """Softmax probabilities of normalised N×1×28×28 input; ``tta_flip`` averages them with the mirrored images'."""
    probs = torch.softmax(model(x).float(), dim=1)
    if tta_flip:
        probs = (probs + torch.softmax(model(x.flip(-1)).float(), dim=1)) / 2
    return probs


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 N×28×28 (or N×1×28×28) → float N×1×28×28, standardised."""
    x = images.float().div_(255.0)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return (x - MEAN) / STD
