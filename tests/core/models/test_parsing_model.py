"""The garment parsing model: network, class regions as instances, checkpoints and the Predictor flow."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.data.masks import decode_mask
from fashionviewer.core.inference.families import bundled_models, load_model, load_predictor
from fashionviewer.core.inference.parsing import ParsingPredictor
from fashionviewer.core.models.checkpoint import read_card
from fashionviewer.core.models.parsing import (
    PARSING_CARD_FORMAT,
    ParsingNet,
    parsing_channels,
    parsing_to_instances,
    save_parsing_checkpoint,
)


def test_network_gives_logits_at_the_input_size() -> None:
    model = ParsingNet(len(parsing_channels())).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 96, 64))
    assert out.shape == (1, 49, 96, 64)
    assert parsing_channels()[:2] == ["background", "shirt, blouse"] and parsing_channels()[
        -2:
    ] == ["skin", "hair"]


def test_class_regions_become_scored_instances() -> None:
    probs = torch.zeros(4, 4, 6)  # background, categories 1-2, skin
    probs[0] = 1.0
    probs[0, :2, :3], probs[1, :2, :3] = 0.2, 0.8  # category 1 wins the top-left 2x3
    probs[0, 3, :], probs[2, 3, :] = 0.7, 0.3  # category 2 never wins but is likely on the last row
    found = parsing_to_instances(probs, num_categories=2, score_floor=0.0, min_pixels=2)
    assert [f["label"] for f in found] == [1, 2]
    first, second = found
    assert torch.equal(first["field"] > 0, probs.argmax(0) == 1)
    assert first["score"] == pytest.approx(0.8 * (4.8 / 4.8) ** 0.5)
    assert torch.equal(second["field"] > 0, probs[2] > 0.15) and second["score"] < first["score"]
    assert [
        f["label"]
        for f in parsing_to_instances(probs, 2, score_floor=0.0, min_pixels=2, extra=False)
    ] == [1]


def test_the_components_rule_makes_each_connected_part_an_instance() -> None:
    """Two separate blobs where category 1 wins: one instance (CCP's definition) or two (scenes)."""
    probs = torch.zeros(3, 20, 20)
    probs[0] = 1.0
    probs[0, 2:6, 2:6], probs[1, 2:6, 2:6] = 0.1, 0.9
    probs[0, 10:15, 10:15], probs[1, 10:15, 10:15] = 0.2, 0.8
    (whole,) = parsing_to_instances(probs, 2, score_floor=0.0, extra=False)
    parts = parsing_to_instances(probs, 2, score_floor=0.0, extra=False, rule="components")
    assert [p["label"] for p in parts] == [1, 1]
    masks = [p["field"] > 0 for p in parts]
    assert not (masks[0] & masks[1]).any() and torch.equal(masks[0] | masks[1], whole["field"] > 0)
    assert sorted(int(m.sum()) for m in masks) == [16, 25]
    # each scored as the whole is: mean probability times the root of its share of the mass
    assert [p["score"] for p in parts] == pytest.approx(
        [0.8 * (20 / 34.4) ** 0.5, 0.9 * (14.4 / 34.4) ** 0.5]
    )
    with pytest.raises(ValueError, match="unknown instance rule"):
        parsing_to_instances(probs, 2, rule="blobs")
    # the rule for some categories only (a fine-tune's folder classes): category 1 keeps its whole region
    kept = parsing_to_instances(
        probs, 2, score_floor=0.0, extra=False, rule="components", rule_labels={2}
    )
    assert len(kept) == 1 and torch.equal(kept[0]["field"] > 0, whole["field"] > 0)


def test_the_borders_rule_cuts_touching_items_of_one_class_apart_along_the_border_channel() -> None:
    """Two shirts side by side (one region of category 1) and a bag: the border band between the
    shirts makes them two items, each band pixel joins its nearer shirt, and each item takes its class."""
    from fashionviewer.core.models.parsing import item_regions

    items = torch.zeros(20, 30, dtype=torch.long)
    items[5:15, 3:12], items[5:15, 12:20], items[5:15, 24:28] = 1, 2, 3
    band = torch.zeros(20, 30, dtype=torch.bool)
    band[5:15, 10:14] = True  # two pixels on each side of the seam
    probs = torch.zeros(4, 20, 30)  # background, category 1, category 2, item border
    probs[0] = 1.0
    probs[:, items > 0] = torch.tensor([0.05, 0.9, 0.05, 0.0])[:, None]
    probs[:, items == 3] = torch.tensor([0.05, 0.15, 0.8, 0.0])[:, None]
    probs[:, band] = torch.tensor([0.05, 0.3, 0.05, 0.6])[:, None]
    regions = item_regions(probs, 2, border_channel=3)
    assert torch.equal(regions > 0, items > 0)  # the band belongs to the items
    shirts = [regions == k for k in regions[items == 1].unique()]
    assert len(shirts) == 1 and torch.equal(shirts[0], items == 1)  # the seam is where it was
    assert torch.equal(regions == regions[7, 15], items == 2)
    found = parsing_to_instances(
        probs, 2, score_floor=0.0, extra=False, alternatives=None, rule="borders", border_channel=3
    )
    assert sorted(f["label"] for f in found) == [1, 1, 2]
    assert sorted(int((f["field"] > 0).sum()) for f in found) == [40, 80, 90]
    # without the band (the components rule) the two shirts are one
    merged = parsing_to_instances(probs[:3], 2, score_floor=0.0, extra=False, alternatives=None,
                                  rule="components")  # fmt: skip
    assert sorted(int((f["field"] > 0).sum()) for f in merged) == [40, 170]
    with pytest.raises(ValueError, match="item border channel"):
        parsing_to_instances(probs, 2, rule="borders")
    # a fine-tune's folder classes: each item is offered under every one of them
    offered = parsing_to_instances(probs, 2, score_floor=0.0, extra=False, alternatives=None,
                                   rule="borders", rule_labels={1, 2}, border_channel=3)  # fmt: skip
    assert sorted((f["label"], int((f["field"] > 0).sum())) for f in offered) == [
        (1, 40), (1, 80), (1, 90), (2, 40), (2, 80), (2, 90)
    ]  # fmt: skip
    # ... and only they make items: the bag's category stays one region per class
    mixed = parsing_to_instances(probs, 2, score_floor=0.0, extra=False, alternatives=None,
                                 rule="borders", rule_labels={1}, border_channel=3)  # fmt: skip
    assert sorted((f["label"], int((f["field"] > 0).sum())) for f in mixed) == [
        (1, 80),
        (1, 90),
        (2, 40),
    ]


def _save(tmp_path, weights: str = "trained"):
    torch.manual_seed(0)
    model = ParsingNet(len(parsing_channels()))
    card = {
        "architecture": "parsing_resunet",
        "class_names": parsing_channels()[1:47],
        "parsing_channels": parsing_channels(),
        "taxonomy": "imaterialist",
        "domain": "photos",
        "weights": weights,
        "input": {"width": 64, "pad_multiple": 32},
    }
    return save_parsing_checkpoint(model, tmp_path / "parse.pt", card), tmp_path / "parse.pt"


def test_checkpoint_round_trip_through_the_registry(tmp_path) -> None:
    card, path = _save(tmp_path)
    assert card["format"] == PARSING_CARD_FORMAT and card["num_classes"] == 47
    assert read_card(path)["weights_sha256"] == card["weights_sha256"]
    model, loaded = load_model(path)
    assert (
        isinstance(model, ParsingNet)
        and not model.training
        and loaded["taxonomy"] == "imaterialist"
    )
    _save(tmp_path, weights="random")
    with pytest.raises(WeightsError, match="random"):
        load_predictor(path)


def test_load_predictor_gives_a_parsing_predictor_with_full_size_masks(tmp_path) -> None:
    _, path = _save(tmp_path)
    predictor = load_predictor(path, score_floor=0.0)
    assert isinstance(predictor, ParsingPredictor) and predictor.class_names[6] == "pants"
    image = np.random.default_rng(0).integers(0, 255, (150, 100, 3), dtype=np.uint8)
    prediction = predictor.predict(image, "x.jpg", 3)
    assert (prediction.width, prediction.height, prediction.image_id) == (100, 150, 3)
    assert prediction.instances, "a random network still wins some pixels"
    for inst in prediction.instances:
        mask = decode_mask(inst.rle)
        assert mask.shape == (150, 100) and mask.any()
        ys, xs = np.nonzero(mask)
        assert inst.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert 1 <= inst.label <= 46 and inst.class_name == predictor.class_names[inst.label - 1]
    assert [i.score for i in prediction.instances] == sorted(
        (i.score for i in prediction.instances), reverse=True
    )


@pytest.mark.skipif(
    "fashion" not in bundled_models(), reason="the bundled real-photo model is not installed"
)
def test_the_bundled_real_photo_model() -> None:
    predictor = load_predictor("fashion")
    card = predictor.card
    assert isinstance(predictor, ParsingPredictor)
    assert (
        card["domain"] == "photos"
        and card["taxonomy"] == "imaterialist"
        and card["weights"] == "trained"
    )
    assert (predictor.model_name, len(predictor.class_names)) == ("fashion", 46)


def test_mirror_view_averages_the_photo_and_its_mirror_image(tmp_path) -> None:
    _, path = _save(tmp_path)
    card = json.loads(path.with_suffix(".json").read_text())
    card["test_time_augmentation"] = {"hflip": True}
    path.with_suffix(".json").write_text(json.dumps(card))
    both = load_predictor(path)
    single = load_predictor(path, tta=False)
    assert both.tta is not None and both.tta.view_count == 2 and single.tta is None
    image = torch.from_numpy(
        np.random.default_rng(1).integers(0, 255, (3, 100, 70), dtype=np.uint8)
    )
    expected = (single.probabilities(image) + single.probabilities(image.flip(-1)).flip(-1)) / 2
    assert torch.allclose(both.probabilities(image), expected, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 3000), (3000, 3), (1, 1)])
def test_strips_are_parsed_with_a_bounded_input_and_full_size_masks(tmp_path, shape) -> None:
    """A 3000x3 strip at 64 px wide would be a 64,000-row input; the input's height is capped instead."""
    from fashionviewer.core.inference.parsing import MAX_INPUT_ASPECT

    _, path = _save(tmp_path)
    predictor = load_predictor(path, score_floor=0.0)
    image = np.random.default_rng(2).integers(0, 255, (*shape, 3), dtype=np.uint8)
    probs = predictor.probabilities(torch.from_numpy(image).permute(2, 0, 1))
    assert (
        probs.shape[1] <= MAX_INPUT_ASPECT * predictor.input_width
        and probs.shape[2] <= predictor.input_width
    )
    prediction = predictor.predict(image)
    assert (prediction.height, prediction.width) == shape and prediction.instances
    assert {decode_mask(inst.rle).shape for inst in prediction.instances} == {shape}


def test_a_region_is_offered_under_the_classes_the_network_half_believes_in() -> None:
    probs = torch.zeros(4, 4, 6)  # background, categories 1-2, skin
    probs[0] = 1.0
    # 1 wins the top-left, 2 is likely there
    probs[0, :2, :3], probs[1, :2, :3], probs[2, :2, :3] = 0.1, 0.6, 0.3
    found = parsing_to_instances(
        probs, num_categories=2, score_floor=0.0, min_pixels=2, extra=False
    )
    assert [f["label"] for f in found] == [1, 2]
    first, alternative = found
    assert torch.equal(alternative["field"] > 0, first["field"] > 0)  # the same mask
    assert first["score"] == pytest.approx(0.6) and alternative["score"] == pytest.approx(0.3)
    # under the threshold, or switched off, the region is offered once
    assert (
        len(
            parsing_to_instances(
                probs, 2, score_floor=0.0, min_pixels=2, extra=False, alternatives=0.35
            )
        )
        == 1
    )
    assert (
        len(
            parsing_to_instances(
                probs, 2, score_floor=0.0, min_pixels=2, extra=False, alternatives=None
            )
        )
        == 1
    )
    # the floor holds
    assert len(parsing_to_instances(probs, 2, score_floor=0.4, min_pixels=2, extra=False)) == 1


def test_a_branch_for_added_classes_leaves_the_model_s_own_outputs_as_they_were(tmp_path) -> None:
    """A new domain's classes get a decoder branch of their own: the start model's logits are unchanged
    before training, frozen (weights and BatchNorm statistics) while the branch trains, and the branch
    goes through the checkpoint and the registry."""
    torch.manual_seed(0)
    channels = ["background", "a", "b", "skin", "hair"]
    model = ParsingNet(len(channels)).eval()
    x = torch.randn(2, 3, 64, 64)
    before = model(x)
    model.add_branch(2, insert_at=3)  # background, a, b, NEW1, NEW2, skin, hair
    after = model(x)
    assert after.shape[1] == 7
    assert torch.equal(after[:, :3], before[:, :3]) and torch.equal(after[:, 5:], before[:, 3:])
    model.freeze_base()
    model.train()
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"branch"}
    assert not model.stage2.training and not model.fuse.training and model.branch.training
    stats = model.stage2[0].conv1[1].running_mean.clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(x * 3 + 1).logsumexp(1).mean().backward()  # another domain's statistics
    optimizer.step()
    model.eval()
    trained = model(x)
    assert torch.equal(model.stage2[0].conv1[1].running_mean, stats)
    assert torch.equal(trained[:, :3], before[:, :3]) and torch.equal(trained[:, 5:], before[:, 3:])
    assert not torch.equal(trained[:, 3:5], after[:, 3:5])
    with pytest.raises(ValueError, match="already has a branch"):
        model.add_branch(1, 3)

    card = {
        "architecture": "parsing_resunet",
        "class_names": ["a", "b", "new 1", "new 2"],
        "parsing_channels": ["background", "a", "b", "new 1", "new 2", "skin", "hair"],
        "parsing_branch": {"channels": ["new 1", "new 2"], "insert_at": 3},
        "input": {"width": 64, "pad_multiple": 32},
    }
    save_parsing_checkpoint(model, tmp_path / "branch.pt", card)
    loaded, _ = load_model(tmp_path / "branch.pt")
    assert torch.equal(loaded(x), trained)
    card["parsing_branch"]["insert_at"] = 2  # does not name where the added channels are
    save_parsing_checkpoint(model, tmp_path / "bad.pt", card)
    with pytest.raises(WeightsError, match="parsing_branch"):
        load_model(tmp_path / "bad.pt")
    card["parsing_branch"]["insert_at"] = 3
    card["instances"] = "borders"  # items, but no channel says where they meet
    save_parsing_checkpoint(model, tmp_path / "no_border.pt", card)
    with pytest.raises(WeightsError, match="no 'item border' channel"):
        load_model(tmp_path / "no_border.pt")
