"""The model-family registry: every registered family saves, loads and predicts through the same
interface (InstancePredictor), and a new family is one module plus one registry entry: a tiny family
registered here runs through load_predictor, the cache key and the per-image step with no other change."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.data.masks import decode_mask, encode_mask
from fashionviewer.core.data.predictions import ImagePrediction, Instance
from fashionviewer.core.inference import families
from fashionviewer.core.inference.protocol import (
    Capability,
    InstancePredictor,
    ModelFamily,
    PredictorOptions,
)
from fashionviewer.core.models.checkpoint import read_card, write_checkpoint
from fashionviewer.core.models.parsing import parsing_channels
from fashionviewer.core.runs.cache import PredictionCache, bind_cache, predictor_key
from fashionviewer.core.runs.step import PerImageStep

# One small card per registered family: a family added to the registry must add its card here.
SAMPLE_CARDS: dict[str, dict[str, Any]] = {
    "maskrcnn": {
        "architecture": "maskrcnn_mobilenet_v3_light",
        "num_classes": 3,
        "class_names": ["a", "b"],
        "min_size": 96,
        "weights": "trained",
    },
    "parsing": {
        "architecture": "parsing_resunet",
        "class_names": parsing_channels()[1:47],
        "parsing_channels": parsing_channels(),
        "taxonomy": "imaterialist",
        "weights": "trained",
        "input": {"width": 64, "pad_multiple": 32},
    },
}


@pytest.mark.parametrize("name", sorted(families.FAMILIES))
def test_every_family_round_trips_a_checkpoint_and_predicts(name: str, tmp_path: Path) -> None:
    family = families.FAMILIES[name]
    assert name in SAMPLE_CARDS, f"family {name}: add a sample card to this test"
    torch.manual_seed(0)
    model = family.build(SAMPLE_CARDS[name])
    written = write_checkpoint(
        model, tmp_path / "m.pt", family.complete_card(model, SAMPLE_CARDS[name])
    )
    assert written["format"] == family.card_format and read_card(tmp_path / "m.pt") == written
    assert families.family_for_card(written) is family

    loaded, card = families.load_model(tmp_path / "m.pt")
    assert type(loaded) is type(model) and not loaded.training
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=False)
    )
    predictor = families.load_predictor(tmp_path / "m.pt", score_floor=0.0)
    assert isinstance(predictor, InstancePredictor)
    assert (predictor.family, predictor.capabilities) == (family.name, family.capabilities)
    assert (
        predictor.weights_path == tmp_path / "m.pt"
        and predictor.weights_sha256() == card["weights_sha256"]
    )
    assert (
        predictor.category_ids == list(range(1, len(card["class_names"]) + 1))
        and not predictor.random_weights
    )
    image = np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    prediction = predictor.predict(image, "x.png", 4)
    assert (prediction.width, prediction.height, prediction.image_id) == (90, 70, 4)
    assert predictor_key(predictor) == predictor_key(
        families.load_predictor(tmp_path / "m.pt", score_floor=0.0)
    )


def test_unknown_architecture_names_the_card_and_the_known_ones(tmp_path: Path) -> None:
    card = {**SAMPLE_CARDS["parsing"], "architecture": "resnet9000"}
    write_checkpoint({"w": torch.zeros(1)}, tmp_path / "odd.pt", {**card, "num_classes": 47})
    with pytest.raises(
        WeightsError, match=r"odd.json: unknown model 'resnet9000'; choose one of .*parsing_resunet"
    ):
        families.load_predictor(tmp_path / "odd.pt")


# --------------------------------------------------------------------------- a family added in a test


class BrightNet(nn.Module):
    """A one-parameter "network": the pixels brighter than its threshold are one garment."""

    def __init__(self) -> None:
        super().__init__()
        self.threshold = nn.Parameter(torch.tensor(0.5))


class BrightPredictor:
    """The fake family's InstancePredictor: one instance, the bright pixels, scored by their share."""

    family = "bright"
    capabilities = frozenset({Capability.TEST_TIME_VIEWS})
    tta = None

    def __init__(
        self, model: BrightNet, card: dict[str, Any], path: Path, options: PredictorOptions
    ) -> None:
        self.model, self.card, self.weights_path = model, card, path
        self.class_names, self.category_ids = list(card["class_names"]), [7]
        self.device, self.score_floor, self.model_name = (
            options.device,
            options.score_floor,
            path.stem,
        )
        self.random_weights = card.get("weights") == "random"
        self.calls = 0

    @property
    def taxonomy(self) -> str | None:
        return None

    def settings(self) -> dict[str, Any]:
        return {
            "predictor": "BrightPredictor",
            "threshold": float(self.model.threshold.detach()),
            "floor": self.score_floor,
        }

    def describe(self) -> str:
        return f"{self.model_name} (bright pixels)"

    def weights_sha256(self) -> str | None:
        return self.card["weights_sha256"]

    def rescoring(self) -> dict[str, Any] | None:
        return None

    def predict(self, image: np.ndarray, file_name: str = "", image_id: int = 0) -> ImagePrediction:
        return self.predict_batch([image], [file_name], [image_id])[0]

    def predict_batch(
        self,
        images: Sequence[np.ndarray],
        file_names: Sequence[str] | None = None,
        image_ids: Sequence[int] | None = None,
    ) -> list[ImagePrediction]:
        tensors = [torch.from_numpy(image).permute(2, 0, 1) for image in images]
        return self.predict_tensors(tensors, file_names, image_ids)

    def predict_tensors(
        self,
        images: Sequence[Tensor],
        file_names: Sequence[str] | None = None,
        image_ids: Sequence[int] | None = None,
    ) -> list[ImagePrediction]:
        self.calls += len(images)
        out = []
        for k, image in enumerate(images):
            mask = (
                (image.float().mean(0) / 255 > float(self.model.threshold.detach()))
                .numpy()
                .astype(np.uint8)
            )
            ys, xs = np.nonzero(mask)
            instances = (
                [
                    Instance(
                        (
                            float(xs.min()),
                            float(ys.min()),
                            float(xs.max() + 1),
                            float(ys.max() + 1),
                        ),
                        1,
                        self.class_names[0],
                        float(mask.mean()),
                        encode_mask(mask),
                    )
                ]
                if mask.any()
                else []
            )
            out.append(
                ImagePrediction(
                    file_names[k] if file_names else "",
                    mask.shape[1],
                    mask.shape[0],
                    instances,
                    model=self.model_name,
                    image_id=image_ids[k] if image_ids else 0,
                )
            )
        return out


BRIGHT = ModelFamily(
    name="bright",
    title="Bright pixels",
    card_format="test.bright/1",
    architectures=("bright_net",),
    build=lambda card: BrightNet(),
    complete_card=lambda model, card: {"format": "test.bright/1", "num_classes": 2, **card},
    make_predictor=BrightPredictor,
    capabilities=frozenset({Capability.TEST_TIME_VIEWS}),
)


@pytest.fixture
def bright_family():
    families.register_family(BRIGHT)
    yield BRIGHT
    families.unregister_family(BRIGHT.name)


def test_a_family_registered_in_a_test_loads_caches_and_predicts(
    bright_family, tmp_path: Path
) -> None:
    model = BrightNet()
    write_checkpoint(
        model,
        tmp_path / "bright.pt",
        BRIGHT.complete_card(
            model, {"architecture": "bright_net", "class_names": ["garment"], "weights": "trained"}
        ),
    )
    predictor = families.load_predictor(tmp_path / "bright.pt", score_floor=0.1)
    assert isinstance(predictor, BrightPredictor) and isinstance(predictor, InstancePredictor)
    assert predictor.describe() == "bright (bright pixels)" and predictor.device == torch.device(
        "cpu"
    )

    image = np.zeros((40, 60, 3), np.uint8)
    image[10:30, 20:50] = 240
    Image.fromarray(image).save(tmp_path / "photo.png")
    with PredictionCache(tmp_path / "cache.sqlite3") as cache:
        bound = bind_cache(cache, predictor)
        assert bound is not None and bound.key == predictor_key(predictor)
        first = PerImageStep(predictor, bound)(tmp_path / "photo.png")
        again = PerImageStep(predictor, bound)(tmp_path / "photo.png")
    assert predictor.calls == 1, "the second step is a cache hit"
    for result in (first, again):
        (inst,) = result.prediction.instances
        assert inst.box == (20.0, 10.0, 50.0, 30.0) and decode_mask(inst.rle).sum() == 20 * 30

    with torch.no_grad():
        predictor.model.threshold.fill_(0.9)  # another setting: another cache key
    assert predictor_key(predictor) != bound.key


def test_registering_a_taken_name_or_architecture_is_refused(bright_family) -> None:
    with pytest.raises(ValueError, match="already registered"):
        families.register_family(BRIGHT)
    clash = ModelFamily(
        name="other",
        title="x",
        card_format="x/1",
        architectures=("parsing_resunet",),
        build=BRIGHT.build,
        complete_card=BRIGHT.complete_card,
        make_predictor=BrightPredictor,
    )
    with pytest.raises(ValueError, match="already registered"):
        families.register_family(clash)
