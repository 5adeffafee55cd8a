"""``segment_steps``: the mask as it is computed. On real CCP validation photos, a lone click whose first crop
is too small for its garment yields that crop's coarse mask before the zoom-in pass, and returns the same
final mask as ``segment``; a generator closed after the coarse mask leaves the session ready for the next
click. ``use_model`` puts a trained network (a real file, read back) in the bundled one's place."""

from __future__ import annotations

import numpy as np
import pytest

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.inference import interactive_model
from fashionviewer.core.inference.interactive import (
    METHOD_LEARNED,
    InteractiveInputError,
    InteractiveSession,
    segment,
    segment_steps,
)
from tests.core.inference.test_interactive_learned import innermost, iou, padded_box, val_garments

__all__ = ["val_garments"]  # the module fixture, shared


def run(steps) -> tuple[list[np.ndarray], np.ndarray]:
    """Every interim mask a generator yields, and the mask it returns."""
    interim = []
    while True:
        try:
            interim.append(next(steps))
        except StopIteration as done:
            return interim, done.value


def test_a_lone_click_on_a_large_garment_shows_the_coarse_mask_first(val_garments) -> None:
    zoomed = 0
    for image, truth, _name in val_garments:
        click = innermost(truth)
        session = InteractiveSession()
        interim, final = run(segment_steps(image, positive=[click], session=session))
        assert session.method == METHOD_LEARNED
        # the same answer as the one-call API, which runs the same passes
        assert np.array_equal(final, segment(image, positive=[click]))
        for coarse in interim:
            assert coarse.shape == truth.shape and coarse[click[1], click[0]]
            assert not np.array_equal(coarse, final)  # the zoom-in pass changed it
        zoomed += bool(interim)
    # the 0.4-of-the-photo first crop is too small for the long garments on these photos
    assert zoomed >= 3, zoomed


def test_a_box_is_one_pass_and_a_closed_generator_leaves_the_session_usable(val_garments) -> None:
    for image, truth, _name in val_garments:
        interim, final = run(segment_steps(image, padded_box(truth), session=InteractiveSession()))
        assert interim == [] and final.shape == truth.shape
    # a click superseded after its coarse mask: closed there, the session's previous result is untouched
    for image, truth, _name in val_garments:
        session = InteractiveSession()
        click = innermost(truth)
        steps = segment_steps(image, positive=[click], session=session)
        coarse = next(steps, None)
        if coarse is not None:  # a garment whose lone click zooms in
            break
    steps.close()
    assert coarse[click[1], click[0]] and session.net_previous is None
    # the next request (both clicks) runs in full on the same session
    ys, xs = np.nonzero(truth)
    second = (int(xs[len(xs) // 2]), int(ys[len(ys) // 2]))
    _interim, final = run(segment_steps(image, positive=[click, second], session=session))
    assert final[click[1], click[0]] and final[second[1], second[0]]
    assert session.net_previous is not None and iou(final, truth) > 0.3


def test_bad_input_is_raised_at_the_first_step() -> None:
    image = np.zeros((40, 30, 3), np.uint8)
    with pytest.raises(InteractiveInputError, match="zero area"):
        next(segment_steps(image, (5, 5, 5, 20)))
    with pytest.raises(InteractiveInputError, match="outside the 30×40 image"):
        next(segment_steps(image, positive=[(100, 3)]))


def test_use_model_swaps_the_default_network_for_a_trained_file(tmp_path) -> None:
    from fashionviewer.core.models.interactive_net import (
        build_interactive_net,
        save_interactive_checkpoint,
    )

    bundled = interactive_model.bundled_model()
    assert bundled is not None
    trained = build_interactive_net()
    save_interactive_checkpoint(trained, tmp_path / "model.pt", {"epochs": 1})
    try:
        assert interactive_model.use_model(tmp_path / "model.pt") == tmp_path / "model.pt"
        in_use = interactive_model.bundled_model()
        assert (
            in_use is not bundled and interactive_model.model_in_use_path() == tmp_path / "model.pt"
        )
        for name, value in trained.state_dict().items():  # read back from the file
            assert np.array_equal(in_use.state_dict()[name].numpy(), value.numpy()), name
        (tmp_path / "junk.pt").write_bytes(b"not weights")
        (tmp_path / "junk.json").write_text((tmp_path / "model.json").read_text())
        with pytest.raises(WeightsError, match="junk"):
            interactive_model.use_model(tmp_path / "junk.pt")
        assert interactive_model.bundled_model() is in_use  # unchanged by the failure
    finally:
        assert interactive_model.use_model(None) == interactive_model.bundled_model_path()
    assert interactive_model.model_in_use_path() == interactive_model.bundled_model_path()
    assert interactive_model.bundled_model() is not None
