"""Which trainer fine-tunes the loaded model, and what the model bar says about its card (no Qt)."""

from fashionviewer.core.inference.families import load_predictor
from fashionviewer.core.viewer.model_choice import card_summary
from fashionviewer.core.viewer.training import fine_tune_trainer


def test_each_bundled_family_names_the_trainer_that_fine_tunes_it():
    for name, trainer in (("fashion", "parsing"), ("demo", "maskrcnn"), ("ccp", "maskrcnn")):
        predictor = load_predictor(name, tta=False)
        assert fine_tune_trainer(predictor.family, predictor.capabilities) == trainer
    assert fine_tune_trainer("parsing", frozenset()) is None  # not declared: not offered


def test_the_card_summary_names_what_the_weights_came_from():
    predictor = load_predictor("fashion", tta=False)
    text = card_summary(predictor.card, predictor.weights_path)
    assert str(predictor.weights_path) in text and predictor.card["weights_sha256"] in text
    assert predictor.card["date"] in text and "parsing_resunet" in text
    card = {
        "architecture": "parsing_resunet",
        "class_names": ["a"],
        "epochs": 2,
        "date": "2026-12-06",
        "annotations": {
            "file": "/p/annotations.fashionviewer.json",
            "sha256": "ab" * 32,
            "images": 3,
            "instances": 9,
        },
        "fine_tuned_from": {
            "checkpoint": "/m/fashion.pt",
            "sha256": "cd" * 32,
            "classes_added": ["obi"],
        },
    }
    text = card_summary(card, "/runs/model.pt")
    assert (
        "trained on /p/annotations.fashionviewer.json (SHA-256 abababababab…, 3 images, 9 instances)"
        in text
    )
    assert "fine-tuned from /m/fashion.pt" in text and "classes added: obi" in text
    assert card_summary({}, None) == "built in memory: no model card"
