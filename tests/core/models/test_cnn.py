import pytest
import torch

from fashionviewer.core.models import cnn


@pytest.mark.parametrize("name,expected", sorted(cnn.PAPER_PARAMETERS.items()))
def test_paper_parameter_counts_match_the_paper(name, expected):
    assert cnn.count_parameters(cnn.build_classifier(name)) == expected


@pytest.mark.parametrize("name", sorted(cnn.ARCHITECTURES))
def test_every_architecture_maps_28x28_to_10_logits(name):
    model = cnn.build_classifier(name).eval()
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    assert model(cnn.normalise(images)).shape == (3, 10)


def test_unknown_architecture_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="cnn1"):
        cnn.build_classifier("resnet9000")


@pytest.mark.parametrize("name", sorted(cnn.ARCHITECTURES))
def test_every_architecture_builds_with_any_number_of_outputs(name):
    model = cnn.build_classifier(name, num_classes=13).eval()
    images = torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8)
    assert model(cnn.normalise(images)).shape == (2, 13)
    layer_name, layer = cnn.output_layer(model)
    assert layer.out_features == 13 and f"{layer_name}.weight" in model.state_dict()


def test_a_classifier_loads_with_the_outputs_its_weights_have(tmp_path):
    from fashionviewer.core.base.errors import WeightsError
    from fashionviewer.core.models.checkpoint import write_checkpoint
    from fashionviewer.core.models.classifier import load_classifier

    twelve = [f"class {k}" for k in range(12)]
    card = {"architecture": "cnn1", "name": "mine", "task": "classification", "classes": twelve}
    write_checkpoint(cnn.build_classifier("cnn1", num_classes=12), tmp_path / "a.pt", card)
    images = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8).numpy()
    assert load_classifier(tmp_path / "a.pt").predict(images).shape == (4, 12)
    # an item classifier of an earlier version: ten outputs, three classes named
    write_checkpoint(
        cnn.build_classifier("cnn1"), tmp_path / "b.pt", dict(card, classes=twelve[:3])
    )
    assert load_classifier(tmp_path / "b.pt").classes == tuple(twelve[:3])
    # more classes named than the weights have outputs: one line naming the card
    write_checkpoint(cnn.build_classifier("cnn1"), tmp_path / "c.pt", card)
    with pytest.raises(WeightsError, match=r"c\.json: names 12 classes but the weights have 10"):
        load_classifier(tmp_path / "c.pt")
