"""Which model a folder gets by default, and the notice for a synthetic-scenes model on photos."""

from __future__ import annotations

import json

from fashionviewer.core.base.paths import DEMO_DIR, MODELS_DIR
from fashionviewer.core.models.domain import (
    DOMAINS,
    default_model_for,
    domain_notice,
    is_demo_folder,
)


def test_default_model_photos_get_the_real_photo_model_the_demo_its_own(tmp_path) -> None:
    both = ["ccp", "demo", "fashion"]
    assert default_model_for(tmp_path, both) == "fashion"
    assert default_model_for(DEMO_DIR, both) == "demo"
    assert default_model_for(None, both) == "demo"
    # the same folder, spelled differently
    assert default_model_for(DEMO_DIR / ".." / "demo", both) == "demo"
    # only one installed: that one, whatever the folder
    assert default_model_for(tmp_path, ["demo"]) == "demo"
    assert default_model_for(DEMO_DIR, ["fashion"]) == "fashion"
    assert is_demo_folder(DEMO_DIR) and not is_demo_folder(tmp_path)


def test_domain_notice_only_for_a_synthetic_model_outside_the_demo(tmp_path) -> None:
    synthetic, photos = {"domain": "synthetic-scenes"}, {"domain": "photos"}
    notice = domain_notice(synthetic, tmp_path, "maskrcnn_demo")
    assert notice is not None and "\n" not in notice
    assert notice.startswith(
        "maskrcnn_demo was trained on synthetic Fashion-MNIST scenes, not photos"
    )
    assert domain_notice(synthetic, DEMO_DIR) is None
    assert domain_notice(photos, tmp_path) is None
    assert domain_notice(None, tmp_path) is None


def test_every_bundled_model_card_states_its_domain() -> None:
    cards = sorted(MODELS_DIR.glob("*.json"))
    assert cards
    for card in cards:
        assert json.loads(card.read_text(encoding="utf-8")).get("domain") in DOMAINS, card.name
