"""The shipped real-photo model's card states what the project's own commands measure: ``fashionviewer predict``
on the 100 held-out CCP photos, then ``fashionviewer evaluate`` (segm, bbox, parsing)."""

from __future__ import annotations

import json
import os

import pytest

from fashionviewer.core.inference.families import bundled_models
from fashionviewer.core.models.checkpoint import read_card


@pytest.mark.skipif(
    "fashion" not in bundled_models(), reason="the bundled real-photo model is not installed"
)
def test_the_fashion_card_metrics_are_what_predict_and_evaluate_measure(ccp_root, tmp_path) -> None:
    from fashionviewer.core.base.paths import MODELS_DIR
    from fashionviewer.core.data.datasets.ccp import CCPDataset
    from fashionviewer.evaluate import main as evaluate
    from fashionviewer.predict import main as predict

    card = read_card(MODELS_DIR / "fashion.pt")
    photos, out = tmp_path / "val", tmp_path / "out"
    photos.mkdir()
    for entry in CCPDataset(ccp_root, "val", taxonomy="imaterialist").images:
        os.symlink(entry.path, photos / entry.file_name)
    assert (
        predict(
            [
                str(photos),
                "--model",
                "fashion",
                "--out",
                str(out),
                "--min-score",
                "0.001",
                "--no-cache",
                "--threads",
                "2",
            ]
        )
        == 0
    )
    measured = {}
    for iou, extra in (
        ("segm", []),
        ("bbox", []),
        ("parsing", ["--min-score", str(card["metrics"]["parsing_min_score"])]),
    ):
        target = tmp_path / f"{iou}.json"
        assert (
            evaluate(
                [
                    "--gt",
                    str(ccp_root),
                    "--split",
                    "val",
                    "--pred",
                    str(out / "predictions.json"),
                    "--iou",
                    iou,
                    "--json",
                    str(target),
                    *extra,
                ]
            )
            == 0
        )
        measured[iou] = json.loads(target.read_text())
    metrics = card["metrics"]
    assert measured["segm"]["AP"] == pytest.approx(metrics["segm_ap"], abs=0.002)
    assert measured["bbox"]["AP"] == pytest.approx(metrics["bbox_ap"], abs=0.002)
    assert measured["parsing"]["pixel_accuracy"] == pytest.approx(
        metrics["pixel_accuracy"], abs=0.001
    )
    assert measured["parsing"]["miou"] == pytest.approx(metrics["miou"], abs=0.002)
