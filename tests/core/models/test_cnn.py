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
