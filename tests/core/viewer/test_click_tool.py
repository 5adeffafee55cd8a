"""The click tool's state on a real CCP photo: a left click on an object starts an instance from the click alone
(segmented by ``segment`` with no box), clicks near it refine it, a left click far away starts the next object,
and a right click with nothing to refine applies to nothing."""

from __future__ import annotations

import numpy as np

from fashionviewer.core.inference.interactive import METHOD_LEARNED, segment
from fashionviewer.core.viewer.annotation_tools import Tool
from tests.core.viewer.test_annotation_state import _open, photo  # noqa: F401 - photo is a fixture


def test_click_tool_starts_refines_and_moves_on(photo) -> None:  # noqa: F811
    folder, prediction, image = photo
    _session, state = _open(folder, prediction, image)
    state.set_active(True)
    state.set_tool(Tool.CLICK)
    assert state.click_object(50, 50, False) is None  # a right click with nothing to refine
    garment = min(
        (i for i in prediction.instances if i.mask().sum() >= 2000), key=lambda i: i.mask().sum()
    )
    truth = garment.mask()
    ys, xs = np.nonzero(truth)
    k = len(xs) // 2
    x, y = float(xs[k]), float(ys[k])
    refine = state.click_object(x, y, True)
    assert refine is not None and refine.box is None and refine.points(True) == [(x, y)]
    mask = segment(
        image, refine.box, refine.points(True), refine.points(False), session=state.interactive
    )
    assert state.interactive.method == METHOD_LEARNED and mask[int(y), int(x)]
    new = state.apply_segment("0001.jpg", refine.box, None, mask, garment.class_name)
    ann = state.editor.annotation("0001.jpg", new)
    assert ann.source == "drawn" and ann.origin == {"clicks": [[round(x, 1), round(y, 1), True]]}
    assert (mask & truth).sum() / (mask | truth).sum() > 0.3

    # a right click inside it refines the same instance
    again = state.click_object(x + 3, y + 3, False)
    assert again is state.refine and again.target == new and again.points(False) == [(x + 3, y + 3)]
    # a left click far beyond its extent starts the next object
    x0, y0, x1, y1 = ann.bbox_xyxy()
    grow = 0.5 * max(x1 - x0, y1 - y0)
    height, width = image.shape[:2]
    corners = [(1.0, 1.0), (width - 2.0, 1.0), (1.0, height - 2.0), (width - 2.0, height - 2.0)]
    outside = [
        c
        for c in corners
        if not (x0 - grow <= c[0] <= x1 + grow and y0 - grow <= c[1] <= y1 + grow)
    ]
    assert outside
    far = state.click_object(*outside[0], True)
    assert far is state.refine and far.target is None and far.points(True) == [outside[0]]
    # leaving the tool drops the refinement; an empty mask is refused with a line for the status bar
    state.set_tool(Tool.BOX)
    assert state.refine is None
    assert state.apply_segment("0001.jpg", None, None, np.zeros_like(mask), "dress") is None
