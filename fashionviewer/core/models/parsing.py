"""A small semantic parsing network, trained from scratch, whose class regions become instances.

Why not a Mask R-CNN: trained from random weights on ~700 labelled street photos, the light
Mask R-CNN reaches a mask AP of 0.02 (``maskrcnn_ccp``). Each CCP ground-truth instance is
all pixels of one class in the photo, so a per-pixel classifier predicts exactly that
instance definition, learns from every pixel instead of from a few dozen RoIs, and needs no
region proposals. :class:`ParsingNet` is a residual encoder (strides 4-32, BatchNorm, plain
3x3 convolutions, which are fast on CPUs) with an FPN-style decoder to stride 4 and a pooled
global context at stride 32. It outputs logits for ``channels``: background, the 46
iMaterialist categories and, for training only, skin and hair (so that the body is learned
as its own thing rather than as "background").

:func:`parsing_to_instances` turns the class probabilities of one photo into instances: for
each category, the pixels where it wins the argmax form one instance, scored by the mean
probability of the category over them times the fraction of its probability mass they hold;
a category that wins nowhere but is likely somewhere gives a second, low-scoring instance
(its probability above one half), which only adds recall; and each region is also offered under
the other categories the network half believes in there (``alternatives``), as a Mask R-CNN
scores one RoI for every class.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.models.checkpoint import write_checkpoint

PARSING_CARD_FORMAT = "fashionviewer.parsing/1"
PARSING_ARCHITECTURES = ("parsing_resunet",)
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class _Block(nn.Module):
    """Basic residual block (two 3x3 convolutions), optionally strided."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.skip is None else self.skip(x)
        return F.relu(self.conv2(self.conv1(x)) + identity, inplace=True)


DECODER_PARTS = ("context", "lateral", "smooth", "reduce", "lateral_fine", "fuse")


def _decode(m: nn.Module, c1: Tensor, c2: Tensor, c3: Tensor, c4: Tensor, size: Any) -> Tensor:
    """The decoder and head of ``m`` (a ParsingNet or its DecoderBranch: the same parts) on the features."""
    p = m.lateral[2](c4) + m.context(c4)
    for level, feature in ((1, c3), (0, c2)):
        p = F.interpolate(p, size=feature.shape[-2:], mode="bilinear", align_corners=False)
        p = m.smooth[level](p + m.lateral[level](feature))
    p = F.interpolate(m.reduce(p), size=c1.shape[-2:], mode="bilinear", align_corners=False)
    p = m.fuse(torch.cat([p, m.lateral_fine(c1)], 1))
    return F.interpolate(m.head(p), size=size, mode="bilinear", align_corners=False)


class DecoderBranch(nn.Module):
    """A decoder and head of their own for the classes a fine-tune adds in a new domain: the start model's
    decoder copied (a good start), a head for the added channels only. Its logits are inserted into the
    model's at ``insert_at``, so the start model's own decoder and head, and what they predict, stay as
    they were."""

    def __init__(self, base: ParsingNet, num_channels: int, insert_at: int) -> None:
        super().__init__()
        import copy

        for part in DECODER_PARTS:
            setattr(self, part, copy.deepcopy(getattr(base, part)))
        self.head = nn.Conv2d(base.head.in_channels, num_channels, 1)
        with torch.no_grad():  # added classes start from nothing, at the start model's mean bias
            nn.init.normal_(self.head.weight, std=0.01)
            self.head.bias.fill_(float(base.head.bias.mean()))
        self.insert_at = int(insert_at)


class ParsingNet(nn.Module):
    """Residual encoder-decoder for per-pixel classification; input sides must be multiples of 32."""

    def __init__(
        self,
        num_channels: int,
        widths: Sequence[int] = (32, 32, 96, 160, 256),
        decoder: int = 96,
        fine: int = 48,
    ) -> None:
        super().__init__()
        w = list(widths)
        # stride 4
        self.stem = nn.Sequential(_conv_bn(3, w[0] // 2, 2), _conv_bn(w[0] // 2, w[0], 2))
        self.stage1 = _Block(w[0], w[1])  # 4: one block, the full-resolution convolutions cost most
        self.stage2 = nn.Sequential(_Block(w[1], w[2], 2), _Block(w[2], w[2]))  # 8
        self.stage3 = nn.Sequential(_Block(w[2], w[3], 2), _Block(w[3], w[3]))  # 16
        self.stage4 = nn.Sequential(_Block(w[3], w[4], 2), _Block(w[4], w[4]))  # 32
        # Global context: a garment's class depends on where it sits on the whole person.
        self.context = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(w[4], decoder, 1), nn.ReLU(inplace=True)
        )
        self.lateral = nn.ModuleList(nn.Conv2d(c, decoder, 1) for c in (w[2], w[3], w[4]))
        self.smooth = nn.ModuleList(_conv_bn(decoder, decoder) for _ in range(2))
        # Stride 4: a narrow fusion of the decoder with the stride-4 features sharpens boundaries.
        self.reduce = nn.Conv2d(decoder, fine // 2, 1)
        self.lateral_fine = nn.Conv2d(w[1], fine // 2, 1)
        self.fuse = _conv_bn(fine, fine)
        self.head = nn.Conv2d(fine, num_channels, 1)
        self.branch: DecoderBranch | None = None
        self.base_frozen = False

    def add_branch(self, num_channels: int, insert_at: int) -> DecoderBranch:
        """Give the classes a fine-tune adds a decoder and head of their own (:class:`DecoderBranch`)."""
        if self.branch is not None:
            raise ValueError("this parsing model already has a branch for added classes")
        self.branch = DecoderBranch(self, num_channels, insert_at)
        return self.branch

    def freeze_base(self) -> None:
        """Train the branch only: everything else keeps its weights and its BatchNorm statistics."""
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(name.startswith("branch."))
        self.base_frozen = True
        self.train(self.training)

    def train(self, mode: bool = True) -> ParsingNet:
        super().train(mode)
        if self.base_frozen:  # frozen BatchNorm layers must not learn the new domain's statistics
            for name, child in self.named_children():
                if name != "branch":
                    child.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Logits at the input resolution (N×C×H×W)."""
        size = x.shape[-2:]
        c1 = self.stage1(self.stem(x))
        c2 = self.stage2(c1)
        c3 = self.stage3(c2)
        c4 = self.stage4(c3)
        logits = _decode(self, c1, c2, c3, c4, size)
        if self.branch is None:
            return logits
        added = _decode(self.branch, c1, c2, c3, c4, size)
        at = self.branch.insert_at
        return torch.cat([logits[:, :at], added, logits[:, at:]], 1)


def build_parsing_model(architecture: str, num_channels: int) -> ParsingNet:
    if architecture != "parsing_resunet":
        raise ValueError(f"unknown parsing architecture {architecture!r}")
    return ParsingNet(num_channels)


ALTERNATIVE_MEAN = 0.05  # a region also offers a class whose mean probability over it reaches this


INSTANCE_RULES = ("per_class", "components", "borders")
# the output channel a fine-tune with ``borders`` adds: the band where two annotated items meet
ITEM_BORDER = "item border"


def _regions(region: Tensor, rule: str, min_pixels: int) -> list[Tensor]:
    """Where one category wins: the whole region (``per_class``, CCP's instance definition), or each
    8-connected part of at least ``min_pixels`` (``components``: scenes with several items of a class)."""
    if rule == "per_class":
        return [region]
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        region.numpy().astype(np.uint8), connectivity=8
    )
    parts = torch.from_numpy(labels.astype(np.int32))
    areas = stats[:, cv2.CC_STAT_AREA]
    return [parts == k for k in range(1, count) if areas[k] >= min_pixels]


def _likely_somewhere(
    prob: Tensor, label: int, mass: float, min_pixels: int, score_floor: float
) -> list[dict[str, Any]]:
    """The low-scoring instance of a category that wins nowhere: where its probability passes half its peak."""
    peak = float(prob.max())
    likely = prob > 0.5 * peak
    if int(likely.sum()) < min_pixels:
        return []
    score = 0.5 * float(prob[likely].mean()) * (float(prob[likely].sum()) / mass) ** 0.5
    if score < score_floor:
        return []
    return [{"label": label, "score": score, "field": prob - 0.5 * peak}]


def parsing_to_instances(
    probs: Tensor,
    num_categories: int,
    *,
    score_floor: float = 0.05,
    min_pixels: int = 4,
    extra: bool = True,
    alternatives: float | None = ALTERNATIVE_MEAN,
    rule: str = "per_class",
    rule_labels: set[int] | None = None,
    border_channel: int | None = None,
) -> list[dict[str, Any]]:
    """Instances from C×h×w class probabilities (channel 0 background, 1..num_categories the categories).

    Returns dicts ``{"label": k (1..num_categories), "score": float, "field": float h×w tensor}``,
    best first; an instance's mask is ``field > 0``. Fields rather than masks so that the caller
    can resize them (bilinear) to the photo's pixels and get smooth edges: for a region where
    the category wins, ``field`` is its probability minus the best other one; for a second,
    likely-somewhere instance, its probability minus half its largest. See the module docstring
    for the scores.

    ``rule`` says what one instance is: all pixels where a category wins (``per_class``), or each
    connected part of them (``components``), scored alike: the mean probability over it times the square
    root of the share of the category's probability mass it holds. ``rule_labels``: the categories the rule
    applies to (None: all); the others are ``per_class``. ``borders`` (a model with an ``ITEM_BORDER``
    channel, ``border_channel``): the categories of ``rule_labels`` form items (:func:`bordered_items`,
    each item offered under every one of them), the others stay ``per_class``.

    With ``alternatives``, each region where a category wins is offered under every other category
    whose mean probability over it is at least that much too (the same mask, scored the same way
    for that category), as a Mask R-CNN scores one RoI for every class: a shirt the network half
    takes for a top is found by both classes, each ranked by its own score.
    """
    if rule not in INSTANCE_RULES:
        raise ValueError(f"unknown instance rule {rule!r} (one of {', '.join(INSTANCE_RULES)})")
    every = set(range(1, num_categories + 1))
    found: list[dict[str, Any]] = []
    if rule == "borders":  # its categories are items; the others stay per_class
        found = bordered_items(
            probs,
            num_categories,
            border_channel,
            score_floor=score_floor,
            min_pixels=min_pixels,
            alternatives=alternatives,
            offered=rule_labels,
        )
        every -= rule_labels or every
        rule, rule_labels = "per_class", None
    top2 = probs.topk(2, dim=0)
    winner = top2.indices[0]
    regions: list[tuple[int, Tensor, Tensor]] = []
    for label in sorted(every):
        prob = probs[label]
        mass = float(prob.sum()) + 1e-6
        won = winner == label
        if int(won.sum()) >= min_pixels:
            # probability minus the best other class: > 0 exactly where this class wins
            margin = torch.where(won, top2.values[1], top2.values[0])
            own = rule if rule_labels is None or label in rule_labels else "per_class"
            for region in _regions(won, own, min_pixels):
                inside = prob[region]
                score = float(inside.mean()) * (float(inside.sum()) / mass) ** 0.5
                if score >= score_floor:
                    field_ = prob - margin
                    if own != "per_class":  # only this part: elsewhere clearly outside
                        field_ = torch.where(region, field_, torch.full_like(field_, -1.0))
                    found.append({"label": label, "score": score, "field": field_})
                    regions.append((label, region, field_))
            continue
        if extra:
            found.extend(_likely_somewhere(prob, label, mass, min_pixels, score_floor))
    if alternatives:
        mass = probs[1 : num_categories + 1].sum(dim=(1, 2)) + 1e-6
        for label, region, field_ in regions:
            inside = probs[1 : num_categories + 1][:, region]  # K×pixels
            means = inside.mean(1)
            scores = means * (inside.sum(1) / mass).sqrt()
            for index in (means >= alternatives).nonzero().flatten().tolist():
                if index + 1 != label and float(scores[index]) >= score_floor:
                    found.append(
                        {"label": index + 1, "score": float(scores[index]), "field": field_}
                    )
    found.sort(key=lambda item: -item["score"])
    return found


def item_regions(
    probs: Tensor,
    num_categories: int,
    border_channel: int,
    min_pixels: int = 4,
    item_labels: set[int] | None = None,
) -> Tensor:
    """h×w int32 item ids (0: none) from class probabilities with an item border channel.

    The items' pixels are where one of ``item_labels`` (None: every category) or the border wins. Where
    such a category wins, each 4-connected part of at least ``min_pixels`` is one item's core: the border
    bands cut touching items apart. Every other item pixel (the bands, and cores too small to count)
    joins the nearest core."""
    import cv2

    winner = probs.argmax(0)
    is_item = torch.zeros(probs.shape[0], dtype=torch.bool)
    is_item[sorted(item_labels) if item_labels else slice(1, num_categories + 1)] = True
    garment = is_item[winner]
    items = garment | (winner == border_channel)
    count, cores, stats, _ = cv2.connectedComponentsWithStats(
        garment.numpy().astype(np.uint8), connectivity=4
    )
    keep = np.zeros(count, dtype=np.int32)
    kept = [k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= min_pixels]
    keep[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    cores = keep[cores]
    if not kept:
        return torch.zeros(winner.shape, dtype=torch.int32)
    # each pixel's nearest core pixel: the distance transform of "not a core" labels its zeros' pixels
    _, nearest = cv2.distanceTransformWithLabels(
        (cores == 0).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    core_of_pixel = np.zeros(int(nearest.max()) + 1, dtype=np.int32)
    core_of_pixel[nearest[cores > 0]] = cores[cores > 0]
    regions = core_of_pixel[nearest]
    regions[~items.numpy()] = 0
    return torch.from_numpy(regions)


def bordered_items(
    probs: Tensor,
    num_categories: int,
    border_channel: int | None,
    *,
    score_floor: float = 0.05,
    min_pixels: int = 4,
    alternatives: float | None = ALTERNATIVE_MEAN,
    offered: set[int] | None = None,
) -> list[dict[str, Any]]:
    """Instances of the ``borders`` rule: each item of :func:`item_regions`, offered under the category
    with the highest mean probability over it, under every category of ``offered`` (a fine-tune's folder
    classes, which alone make items when given: a re-scoring classifier then ranks them) and, with
    ``alternatives``, under every other category whose mean reaches that much, as in
    :func:`parsing_to_instances`. Each is scored by its mean probability over the item times the square
    root of the share of the category's probability mass the item holds.

    The item's field is its pixels' probability of being an item minus that of background (> 0 inside, for
    smooth edges towards background when resized) inside the item, and -1 elsewhere; ``"item": True`` marks
    it as one item (a predictor may redraw it from its box)."""
    if border_channel is None:
        raise ValueError("instance rule 'borders' needs the model's item border channel")
    regions = item_regions(probs, num_categories, border_channel, min_pixels, offered)
    categories = probs[1 : num_categories + 1]
    mass = categories.sum(dim=(1, 2)) + 1e-6
    background = probs[0]
    found: list[dict[str, Any]] = []
    for item in range(1, int(regions.max()) + 1):
        region = regions == item
        if int(region.sum()) < min_pixels:
            continue
        inside = categories[:, region]  # K×pixels
        means = inside.mean(1)
        scores = means * (inside.sum(1) / mass).sqrt()
        best = int(means.argmax())
        labels = {best, *(label - 1 for label in offered or ())}
        if alternatives:
            labels.update((means >= alternatives).nonzero().flatten().tolist())
        field_ = torch.where(region, (1.0 - 2.0 * background).clamp(min=1e-3), -1.0)
        for index in labels:
            if float(scores[index]) >= score_floor:
                found.append(
                    {
                        "label": index + 1,
                        "score": float(scores[index]),
                        "field": field_,
                        "item": True,
                    }
                )
    found.sort(key=lambda item: -item["score"])
    return found


def apply_prior_correction(model: ParsingNet, class_weights: Sequence[float], alpha: float) -> None:
    """Subtract ``alpha * log(weight)`` from each channel's logits, in place (folded into the head's bias).

    Training with class weights ``w`` shifts the learned logits by about ``log w``: rare classes win
    pixels that belong to background. Subtracting a share ``alpha`` of that shift trades some of the
    rare classes' recall back for pixel accuracy; bilinear upsampling commutes with a per-channel
    constant, so the bias is the exact place for it."""
    shift = alpha * torch.as_tensor(list(class_weights), dtype=torch.float32).log()
    with torch.no_grad():
        model.head.bias -= shift.to(model.head.bias.device)


def parsing_channels() -> list[str]:
    """The network's output channels: background, the 46 iMaterialist categories, then skin and hair."""
    from fashionviewer.core.data.taxonomy import BODY_LABELS, imaterialist_names

    return ["background", *imaterialist_names(), *BODY_LABELS]


def save_parsing_checkpoint(
    model: nn.Module, path: str | os.PathLike[str], card: dict[str, Any]
) -> dict[str, Any]:
    """Write ``path`` (a plain state_dict) and its model card beside it, both atomically; returns the card.

    ``card`` holds ``architecture``, ``class_names`` (label k is ``class_names[k-1]``) and
    ``parsing_channels``; format, ``num_classes``, date and ``weights_sha256`` are set here.
    """
    return write_checkpoint(model, path, complete_parsing_card(model, card))


def complete_parsing_card(model: nn.Module, card: dict[str, Any]) -> dict[str, Any]:
    """``card`` with the family's format and ``num_classes`` (the categories plus background)."""
    full: dict[str, Any] = {
        "format": PARSING_CARD_FORMAT,
        "num_classes": len(card["class_names"]) + 1,
    }
    full.update(card)
    return full


def build_parsing_from_card(card: dict[str, Any]) -> ParsingNet:
    """An untrained :class:`ParsingNet` with the card's ``parsing_channels`` as outputs."""
    channels = card.get("parsing_channels")
    if not isinstance(channels, list) or len(channels) < 2:
        raise WeightsError(
            f"{card['architecture']} model card: 'parsing_channels' must list the output channels"
        )
    if card.get("instances", "per_class") not in INSTANCE_RULES:
        raise WeightsError(
            f"{card['architecture']} model card: 'instances' is {card['instances']!r}, not one of "
            + ", ".join(INSTANCE_RULES)
        )
    if card.get("instances") == "borders" and ITEM_BORDER not in channels:
        raise WeightsError(
            f"{card['architecture']} model card: 'instances' is 'borders' but 'parsing_channels' has no "
            f"{ITEM_BORDER!r} channel"
        )
    branch = card.get("parsing_branch")
    if not branch:
        return build_parsing_model(card["architecture"], len(channels))
    added = list(branch.get("channels") or [])
    at = int(branch.get("insert_at", -1))
    if not added or channels[at : at + len(added)] != added:
        raise WeightsError(
            f"{card['architecture']} model card: 'parsing_branch' must name added channels found in "
            "'parsing_channels' at its 'insert_at'"
        )
    model = build_parsing_model(card["architecture"], len(channels) - len(added))
    model.add_branch(len(added), at)
    return model
