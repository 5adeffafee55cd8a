"""``fashionviewer predict`` picks the real-photo model for photos and the demo model for the demo, and says
(one stderr line, recorded in run.json) when a synthetic-scenes model is used on other images."""

from __future__ import annotations

import json

import pytest

from fashionviewer.core.base.paths import DEMO_DIR
from fashionviewer.core.inference.families import bundled_models
from fashionviewer.predict import main

BUNDLED = bundled_models()


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """One real CCP photo when present, else one demo scene copied elsewhere (then it is not 'the demo')."""
    import shutil

    from fashionviewer.core.base.paths import ccp_dir

    folder = tmp_path_factory.mktemp("photos")
    ccp = ccp_dir()
    source = ccp / "photos" / "0003.jpg" if ccp is not None else sorted(DEMO_DIR.glob("*.png"))[0]
    shutil.copy(source, folder / source.name)
    return folder


def _run(args: list[str], out, capsys) -> tuple[dict, str]:
    assert main([*args, "--out", str(out), "--no-cache", "--threads", "1", "--no-tta"]) == 0
    return json.loads((out / "run.json").read_text()), capsys.readouterr().err


@pytest.mark.skipif(
    "fashion" not in BUNDLED, reason="the bundled real-photo model is not installed"
)
def test_a_photo_folder_gets_the_real_photo_model(photo_folder, tmp_path, capsys) -> None:
    run, err = _run([str(photo_folder)], tmp_path / "out", capsys)
    assert (
        run["model"] == "fashion"
        and run["domain"] == "photos"
        and run["taxonomy"] == "imaterialist"
    )
    assert run["domain_notice"] is None and "note:" not in err


@pytest.mark.skipif("demo" not in BUNDLED, reason="the bundled demo model is not installed")
def test_the_demo_folder_gets_the_demo_model_without_a_notice(tmp_path, capsys) -> None:
    run, err = _run([str(DEMO_DIR), "--limit", "1"], tmp_path / "out", capsys)
    assert run["model"] == "maskrcnn_demo" and run["domain"] == "synthetic-scenes"
    assert run["domain_notice"] is None and "note:" not in err


@pytest.mark.skipif("demo" not in BUNDLED, reason="the bundled demo model is not installed")
def test_the_demo_model_on_photos_says_so_once(photo_folder, tmp_path, capsys) -> None:
    run, err = _run([str(photo_folder), "--model", "demo"], tmp_path / "out", capsys)
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "synthetic Fashion-MNIST scenes, not photos" in notes[0]
    assert run["domain_notice"] == notes[0].removeprefix("note: ")
