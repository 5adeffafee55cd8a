"""The learned path of interactive segmentation: the bundled :class:`InteractiveNet` on a crop around the box or
the clicks, pasted back into the photo at full resolution.

* With a box: the crop is the square around the box plus 20% (the training views' middle margin); it stays
  fixed while clicks refine, so the encoder's features are computed once per box and each click runs only
  the light decoder (the features live in the ``InteractiveSession``).
* Clicks only: the first crop is a square of 0.4 of the photo's longer side around the first positive click;
  when the mask reaches the crop's border (the object is larger) or fills little of it, the crop is moved to
  the mask's extent plus 25% and the network runs again (at most twice per call): the usual zoom-in.
* The previous result is an input (iterative refinement); each click's own pixel is forced to what it says;
  the mask stays inside the box unless a positive click lies outside it.
* The crop and its mirror image both run and their logits are averaged (``MIRROR``; on 40 validation
  garments: box-only IoU +0.01, box NoC@85 -0.26, at about 1.4x the time).
* A box's first answer (no click yet) is averaged over crops of three margins and fed back to the network as
  its previous mask twice (``BOX_VIEW_MARGINS``, ``BOX_PASSES``): the network was trained to refine a
  previous mask, and each pass runs only the decoder.

``bundled_model()`` loads ``resources/models/interactive.pt`` once (thread-safe); None when it is missing or
unreadable, and ``bundled_model_problem()`` then says why (the caller falls back to GrabCut). ``use_model(path)``
puts a newly trained network (``python -m trainers.interactive``) in its place for the rest of the session.

``learned_segment_steps`` yields the coarse mask before each zoom-in pass, so a viewer can show it at once.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Generator, Sequence

import numpy as np

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.base.paths import MODELS_DIR
from fashionviewer.core.base.steps import drain
from fashionviewer.core.inference.interactive_input import honour_clicks
from fashionviewer.core.models.interactive_net import (
    CropWindow,
    InteractiveNet,
    box_map,
    click_disks,
    load_interactive_checkpoint,
    normalize_crop,
)

log = logging.getLogger(__name__)

BUNDLED_NAME = "interactive"
BOX_MARGIN = 0.2
CLICK_WINDOW = 0.4  # share of the photo's longer side: the first crop around a lone click
ZOOM_MARGIN = 0.25
MAX_REWINDOWS = 2
CLICK_HONOUR_RADIUS = 2  # photo px
MIRROR = True  # also run the mirrored crop and average the two
# The box's first answer: crops at these margins besides BOX_MARGIN (the training views' range, 0.1-0.3)
# averaged, and fed back as the previous mask BOX_PASSES - 1 times (on all 482 validation garments, box-alone
# IoU 0.794 -> 0.799 by the passes, 0.801 with the margins too)
BOX_VIEW_MARGINS = (0.1, 0.3)
BOX_PASSES = 3

_lock = threading.Lock()
_bundled: dict[str, Any] = {}


def bundled_model_path() -> Path:
    return MODELS_DIR / f"{BUNDLED_NAME}.pt"


def bundled_model() -> InteractiveNet | None:
    """The network ``segment`` uses by default: the shipped one (loaded once) unless :func:`use_model` chose
    another; None when the shipped file is missing or unreadable."""
    with _lock:
        if "model" not in _bundled:
            path = bundled_model_path()
            try:
                _bundled["model"], _ = load_interactive_checkpoint(path)
                _bundled["problem"] = None
            except WeightsError as exc:
                log.warning("interactive segmentation falls back to GrabCut: %s", exc)
                _bundled["model"], _bundled["problem"] = None, str(exc)
        return _bundled["model"]


def bundled_model_problem() -> str | None:
    """Why the bundled model could not be loaded (None: loaded, or not tried yet)."""
    return _bundled.get("problem")


def use_model(path: str | Path | None) -> Path:
    """From now on ``segment`` uses the network in ``path`` (a trained ``model.pt`` with its card) instead of
    the bundled one; None: the bundled one again. Returns the file in use; a file that cannot be used raises
    ``WeightsError`` (one line) and changes nothing."""
    if path is None:
        with _lock:
            _bundled.clear()  # loaded again from the bundled file on the next call
        return bundled_model_path()
    model, _ = load_interactive_checkpoint(path)
    with _lock:
        _bundled.update(model=model, problem=None, path=Path(path))
    return Path(path)


def model_in_use_path() -> Path:
    """The file of the network ``segment`` uses by default (the bundled one unless :func:`use_model` chose)."""
    return _bundled.get("path") or bundled_model_path()


def _run(
    model: InteractiveNet,
    session: Any,
    image: np.ndarray,
    window: CropWindow,
    box: tuple[float, float, float, float] | None,
    positive: Sequence[tuple[float, float]],
    negative: Sequence[tuple[float, float]],
    previous: np.ndarray | None,
) -> np.ndarray:
    """Logits (S×S float32) in ``window``; the encoder runs only when the window changed."""
    import torch

    height, width = image.shape[:2]
    with torch.inference_mode():
        if session.net_window != window or session.net_features is None:
            crop = normalize_crop(window.crop_image(image))[None]
            if MIRROR:
                crop = torch.cat([crop, crop.flip(-1)])
            session.net_features = model.encode(crop)
            session.net_window = window
            session.stats["encoder_runs"] = session.stats.get("encoder_runs", 0) + 1
        maps = torch.from_numpy(
            np.stack(
                [
                    box_map(window, box),
                    window.inside_map(height, width),
                    click_disks([window.to_crop(x, y) for x, y in positive]),
                    click_disks([window.to_crop(x, y) for x, y in negative]),
                    previous
                    if previous is not None
                    else np.zeros((window.size, window.size), np.float32),
                ]
            )
        )[None]
        if MIRROR:
            maps = torch.cat([maps, maps.flip(-1)])
        logits = model.decide(session.net_features, maps)
        session.stats["decoder_runs"] = session.stats.get("decoder_runs", 0) + 1
    if MIRROR:  # the crop and its mirror image, averaged
        return ((logits[0, 0] + logits[1, 0].flip(-1)) / 2).numpy()
    return logits[0, 0].numpy()


class _Views:
    """The encoder features of one extra crop of a box's first answer (what ``_run`` caches)."""

    def __init__(self, stats: dict[str, Any]) -> None:
        self.net_window: CropWindow | None = None
        self.net_features: Any = None
        self.stats = stats


def _resample(
    values: np.ndarray, source: CropWindow, target: CropWindow, fill: float
) -> np.ndarray:
    """Crop-sized ``values`` of ``source`` as seen in ``target`` (bilinear; ``fill`` beyond ``source``)."""
    import cv2

    scale = target.side / target.size * source.size / source.side
    # target crop pixel u is photo x = target.x0 + u * target.side / size, source crop pixel (x - x0) * ...
    matrix = np.array(
        [
            [scale, 0, (target.x0 - source.x0) * source.size / source.side],
            [0, scale, (target.y0 - source.y0) * source.size / source.side],
        ],
        np.float32,
    )
    return cv2.warpAffine(
        values.astype(np.float32),
        matrix,
        (target.size, target.size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=fill,
    )


def _box_first_answer(
    model: InteractiveNet,
    session: Any,
    image: np.ndarray,
    window: CropWindow,
    box: tuple[float, float, float, float],
) -> np.ndarray:
    """Logits in ``window`` for a box alone: the crops of ``BOX_VIEW_MARGINS`` and ``window`` averaged, then
    each pass with the averaged probability as every crop's previous mask. ``window`` runs last, so the
    session keeps its features for the clicks that follow."""
    views = [CropWindow.around(*box, margin=m) for m in BOX_VIEW_MARGINS]
    caches = [_Views(session.stats) for _ in views]
    views.append(window)
    caches.append(session)
    previous: np.ndarray | None = None
    for _ in range(BOX_PASSES):
        total = np.zeros((window.size, window.size), np.float32)
        for view, cache in zip(views, caches, strict=True):
            prior = None if previous is None else _resample(previous, window, view, 0.0)
            out = _run(model, cache, image, view, box, [], [], prior)
            # beyond a smaller crop nothing is known: background there, as that crop's own paste says
            total += out if view == window else _resample(out, view, window, -30.0)
        logits = total / len(views)
        previous = (1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))).astype(np.float32)
    return logits


def _previous_in(session: Any, window: CropWindow) -> np.ndarray | None:
    """The previous result as the network's previous-mask input in ``window``."""
    if session.net_previous is None:
        return None
    prob, old_window, full = session.net_previous
    if old_window == window:
        return prob
    return window.crop_mask(full)


def _touches_border(logits: np.ndarray, window: CropWindow, height: int, width: int) -> bool:
    """Whether the mask reaches a side of the crop that lies inside the photo (the object goes on)."""
    mask = logits > 0
    ax0, ay0 = window.to_crop(0, 0)
    ax1, ay1 = window.to_crop(width, height)
    last = window.size - 1
    return bool(
        (ax0 < 0 and mask[:, 0].any())
        or (ay0 < 0 and mask[0].any())
        or (ax1 > window.size and mask[:, last].any())
        or (ay1 > window.size and mask[last].any())
    )


def _extent(
    mask: np.ndarray, points: Sequence[tuple[float, float]]
) -> tuple[float, float, float, float] | None:
    xs, ys = [float(x) for x, _ in points], [float(y) for _, y in points]
    if mask.any():
        rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        xs += [float(cols[0]), float(cols[-1] + 1)]
        ys += [float(rows[0]), float(rows[-1] + 1)]
    if not xs:
        return None
    return min(xs), min(ys), max(xs), max(ys)


def learned_segment(
    model: InteractiveNet,
    image: np.ndarray,
    box: tuple[float, float, float, float] | None,
    positive: Sequence[tuple[float, float]],
    negative: Sequence[tuple[float, float]],
    session: Any,
) -> np.ndarray:
    """A bool H×W mask (see the module docstring). ``box``: clipped photo coordinates, or None (clicks only);
    ``session`` is an ``InteractiveSession`` already bound to this image and box."""
    steps = learned_segment_steps(model, image, box, positive, negative, session)
    return drain(steps)


def learned_segment_steps(
    model: InteractiveNet,
    image: np.ndarray,
    box: tuple[float, float, float, float] | None,
    positive: Sequence[tuple[float, float]],
    negative: Sequence[tuple[float, float]],
    session: Any,
) -> Generator[np.ndarray, None, np.ndarray]:
    """:func:`learned_segment` that yields the coarse mask (the first crop's) before each zoom-in pass and
    returns the final mask; the session's previous result is set only by the final one."""
    height, width = image.shape[:2]
    longer = max(height, width)
    if box is not None:
        window = CropWindow.around(*box, margin=BOX_MARGIN)
        if any(not window.contains(x, y) for x, y in positive):  # a click beyond the crop widens it
            x0, y0, x1, y1 = _extent(
                np.zeros((0, 0), bool), [*positive, (box[0], box[1]), (box[2], box[3])]
            )
            window = CropWindow.around(x0, y0, x1, y1, margin=BOX_MARGIN)
        rewindows = 0
    else:
        window = session.net_window
        inside = window is not None and all(
            window.contains(x, y) for x, y in (*positive, *negative)
        )
        if window is None or not inside or session.net_previous is None:
            anchor = positive[0] if positive else negative[0]
            side = max(16.0, CLICK_WINDOW * longer)
            window = CropWindow(anchor[0] - side / 2, anchor[1] - side / 2, side)
            if session.net_previous is not None:
                extent = _extent(session.net_previous[2], positive)
                if extent is not None:
                    window = CropWindow.around(*extent, margin=ZOOM_MARGIN)
        rewindows = MAX_REWINDOWS
    previous = _previous_in(session, window)
    if box is not None and not positive and not negative and previous is None:
        logits = _box_first_answer(model, session, image, window, box)
    else:
        logits = _run(model, session, image, window, box, positive, negative, previous)
    for _ in range(rewindows):
        mask_crop = logits > 0
        share = mask_crop.mean()
        if not _touches_border(logits, window, height, width) and share >= 0.06:
            break
        up, (x0, y0, x1, y1) = window.paste(logits, height, width)
        full = np.zeros((height, width), dtype=bool)
        full[y0:y1, x0:x1] = up
        extent = _extent(full, positive)
        if extent is None:
            break
        grown = CropWindow.around(*extent, margin=ZOOM_MARGIN, min_side=16.0)
        if _touches_border(logits, window, height, width):
            grown = CropWindow.around(
                *extent, margin=ZOOM_MARGIN, min_side=min(window.side * 1.6, 2.0 * longer)
            )
        if grown == window:
            break
        yield _finish(logits, window, box, positive, negative, height, width)
        window = grown
        logits = _run(
            model, session, image, window, box, positive, negative, _previous_in(session, window)
        )

    full = _finish(logits, window, box, positive, negative, height, width)
    prob = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
    session.net_previous = (prob.astype(np.float32), window, full)
    return full


def _finish(
    logits: np.ndarray,
    window: CropWindow,
    box: tuple[float, float, float, float] | None,
    positive: Sequence[tuple[float, float]],
    negative: Sequence[tuple[float, float]],
    height: int,
    width: int,
) -> np.ndarray:
    """The crop's logits as the photo's bool mask: inside the box (unless a positive click lies outside it),
    the pixels within ``CLICK_HONOUR_RADIUS`` of each click what the click says."""
    up, (x0, y0, x1, y1) = window.paste(logits, height, width)
    full = np.zeros((height, width), dtype=bool)
    full[y0:y1, x0:x1] = up
    if box is not None and all(
        bx0 <= x <= bx1 and by0 <= y <= by1 for x, y in positive for bx0, by0, bx1, by1 in [box]
    ):
        # the box bounds the object (unless a positive click says otherwise)
        keep = np.zeros_like(full)
        keep[int(box[1]) : int(np.ceil(box[3])), int(box[0]) : int(np.ceil(box[2]))] = True
        full &= keep
    # the few pixels round each click say what it was (a right click is never left inside); wider discs
    # would spill over edges, and the network already had the click's disc as guidance
    return honour_clicks(full, positive, negative, CLICK_HONOUR_RADIUS)
