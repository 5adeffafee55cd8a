"""Interactive segmentation: a box and/or positive / negative clicks, to one object's mask.

``segment(image_rgb, box=None, positive=(), negative=(), predictor=None, *, method="auto")`` returns a bool
H×W mask. ``method="auto"`` uses the bundled learned network (``resources/models/interactive.pt``,
:mod:`fashionviewer.core.inference.interactive_model`) whatever detector ``predictor`` is, and GrabCut when
that file is missing; ``"learned"`` / ``"grabcut"`` force one. ``session.method`` says which one ran
(``METHOD_LEARNED`` / ``METHOD_GRABCUT``), for the status bar. A box, clicks alone (a positive click: the
object under it) or both; bad input (a zero-area box, a box or click outside the image, non-finite
coordinates, a non-RGB image) raises :class:`InteractiveInputError`, one line.

The GrabCut path (``grabcut_segment``, the previous method, kept as the fallback and for comparison):

* Work happens in a crop around the box (plus a margin) shrunk so its longer side is at most ``max_side``
  pixels; the result is upsampled and pasted back at full size.
* A prior inside the box: with a Mask R-CNN predictor, the model's own mask head run on the box as the RoI
  (box-prompted; the class is the box head's best on that RoI, or ``category``); without one, the box
  itself (GrabCut's rectangle).
* GrabCut in the crop, initialised from the prior (probably-foreground where the prior says so, probably-
  background elsewhere in the box, background outside it), with every click a hard seed disc (positive:
  foreground, negative: background). Each call gets all clicks so far, and each click's disc is foreground
  (positive) or background (negative) in the output, so earlier clicks stay honoured.
* When GrabCut keeps less than ``collapse_share`` of the box (it lost the object to the background's
  colours), it runs again with a core anchored as sure foreground: where the model's prior is at least
  ``core_threshold``, else an ellipse at the box's centre (negative clicks still win).
* Connected parts touching neither a positive click nor the largest part are dropped; small holes filled.

``InteractiveSession`` caches per image what does not change between clicks: the model's backbone features
(computed once per image), the crop and its colour models for the current box, and the previous result,
which initialises the next GrabCut (so a click refines instead of starting over). Pass the same session for
one image's calls; a new image or box resets what depended on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generator, Sequence

import cv2
import numpy as np

from fashionviewer.core.base.steps import drain
from fashionviewer.core.inference.interactive_input import (
    InteractiveInputError,
    check_box,
    check_image,
    check_points,
    honour_clicks,
)

__all__ = [
    "segment",
    "segment_steps",
    "grabcut_segment",
    "InteractiveSession",
    "InteractiveInputError",
    "DEFAULT_MAX_SIDE",
    "METHOD_LEARNED",
    "METHOD_GRABCUT",
]

DEFAULT_MAX_SIDE = 256  # px: the crop's longer side for GrabCut (speed vs edge detail)
DEFAULT_ITERATIONS = 3
# A result under this share of its box means GrabCut lost the object to the background's colours (measured on
# CCP val garments outside the benchmark's sample: 8 of 50 collapsed to almost nothing from a tight box).
COLLAPSE_SHARE = 0.25
_MIN_BOX = 2  # px: a thinner box is widened to this
METHOD_LEARNED = "learned model"
METHOD_GRABCUT = "GrabCut"
METHODS = ("auto", "learned", "grabcut")


@dataclass
class _Crop:
    x0: int
    y0: int
    x1: int
    y1: int
    scale: float  # small = full * scale
    small_bgr: np.ndarray
    box_small: tuple[int, int, int, int]

    def to_small(self, x: float, y: float) -> tuple[int, int]:
        h, w = self.small_bgr.shape[:2]
        sx = int(np.clip(round((x - self.x0) * self.scale), 0, w - 1))
        sy = int(np.clip(round((y - self.y0) * self.scale), 0, h - 1))
        return sx, sy


@dataclass
class InteractiveSession:
    """Per-image cache between clicks (see the module docstring). Not thread-safe: one per view."""

    image_key: tuple | None = None
    box: tuple[int, int, int, int] | None = None
    crop: _Crop | None = None
    prior: np.ndarray | None = None  # float32 in the small crop, foreground probability
    previous: np.ndarray | None = None  # bool in the small crop: the last result for this box
    features: Any = None  # the model's backbone features for this image
    feature_info: Any = None
    model_class: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    method: str | None = None  # METHOD_LEARNED or METHOD_GRABCUT: what the last call used
    net_window: Any = None  # the learned path's crop (CropWindow) and its encoder features
    net_features: Any = None
    # (crop probability, its window, full bool mask) of the last learned result
    net_previous: Any = None

    def reset(self) -> None:
        self.image_key = self.box = self.crop = self.prior = self.previous = None
        self.features = self.feature_info = self.model_class = None
        self.net_window = self.net_features = self.net_previous = None

    def _bind(self, image: np.ndarray, box: tuple[int, int, int, int], predictor: Any) -> None:
        key = (id(image), image.shape, image.__array_interface__["data"][0], id(predictor))
        if key != self.image_key:
            self.reset()
            self.image_key = key
        if box != self.box:
            self.box, self.crop, self.prior, self.previous, self.model_class = (
                box,
                None,
                None,
                None,
                None,
            )
            self.net_window = self.net_features = self.net_previous = None


def _clip_box(box: Sequence[float] | None, height: int, width: int) -> tuple[int, int, int, int]:
    if box is None:
        return 0, 0, width, height
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    x0, y0 = int(np.clip(np.floor(x0), 0, width - 1)), int(np.clip(np.floor(y0), 0, height - 1))
    x1, y1 = int(np.clip(np.ceil(x1), x0 + 1, width)), int(np.clip(np.ceil(y1), y0 + 1, height))
    if x1 - x0 < _MIN_BOX:
        x0, x1 = max(0, min(x0, width - _MIN_BOX)), min(width, max(x0, width - _MIN_BOX) + _MIN_BOX)
    if y1 - y0 < _MIN_BOX:
        y0, y1 = (
            max(0, min(y0, height - _MIN_BOX)),
            min(height, max(y0, height - _MIN_BOX) + _MIN_BOX),
        )
    return x0, y0, x1, y1


def _make_crop(
    image: np.ndarray, box: tuple[int, int, int, int], max_side: int, margin: float
) -> _Crop:
    height, width = image.shape[:2]
    x0, y0, x1, y1 = box
    pad = int(max(8, margin * max(x1 - x0, y1 - y0)))
    cx0, cy0, cx1, cy1 = (
        max(0, x0 - pad),
        max(0, y0 - pad),
        min(width, x1 + pad),
        min(height, y1 + pad),
    )
    scale = min(1.0, max_side / max(cx1 - cx0, cy1 - cy0))
    sw, sh = max(1, round((cx1 - cx0) * scale)), max(1, round((cy1 - cy0) * scale))
    crop = image[cy0:cy1, cx0:cx1]
    small = cv2.resize(crop, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else crop
    small_bgr = np.ascontiguousarray(small[..., ::-1])
    bx0 = int(np.clip(round((x0 - cx0) * scale), 0, sw - 1))
    by0 = int(np.clip(round((y0 - cy0) * scale), 0, sh - 1))
    bx1 = int(np.clip(round((x1 - cx0) * scale), bx0 + 1, sw))
    by1 = int(np.clip(round((y1 - cy0) * scale), by0 + 1, sh))
    return _Crop(cx0, cy0, cx1, cy1, scale, small_bgr, (bx0, by0, bx1, by1))


# --------------------------------------------------------------------------- the model's prior


def _mask_rcnn(predictor: Any) -> Any:
    """The torchvision MaskRCNN inside a Predictor (or the model itself), else None."""
    model = getattr(predictor, "model", predictor)
    heads = getattr(model, "roi_heads", None)
    if heads is None or getattr(heads, "mask_head", None) is None:
        return None
    return model


def model_box_prior(
    predictor: Any,
    image: np.ndarray,
    box: tuple[int, int, int, int],
    session: InteractiveSession,
    category: int | None = None,
) -> np.ndarray:
    """The model's mask probability for ``box`` (H_box × W_box float32), its mask head run on the box as the RoI.

    The backbone runs once per image (kept in ``session``); ``category`` (a model label 1..K) picks the
    mask channel, else the box head's best class on that RoI."""
    import torch
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    from fashionviewer.core.inference.rcnn_ops import side_keeping_transform

    model = _mask_rcnn(predictor)
    device = next(model.parameters()).device
    with torch.inference_mode():
        if session.features is None:
            tensor = (
                torch.from_numpy(np.ascontiguousarray(image))
                .permute(2, 0, 1)
                .float()
                .div_(255)
                .to(device)
            )
            # a 3000x3 strip keeps a row
            image_list, _ = side_keeping_transform(model.transform)([tensor])
            session.features = model.backbone(image_list.tensors)
            session.feature_info = (image_list.image_sizes, image.shape[:2])
        image_sizes, (height, width) = session.feature_info
        rh, rw = image_sizes[0]
        scale = torch.tensor([rw / width, rh / height, rw / width, rh / height], device=device)
        roi = torch.tensor([box], dtype=torch.float32, device=device) * scale
        heads = model.roi_heads
        if category is None:
            pooled = heads.box_roi_pool(session.features, [roi], image_sizes)
            class_logits, _ = heads.box_predictor(heads.box_head(pooled))
            category = int(class_logits[0, 1:].argmax()) + 1
        session.model_class = int(category)
        pooled = heads.mask_roi_pool(session.features, [roi], image_sizes)
        logits = heads.mask_predictor(heads.mask_head(pooled))
        probs = logits[:, category : category + 1].sigmoid()
        x0, y0, x1, y1 = box
        local = torch.tensor([[0.0, 0.0, float(x1 - x0), float(y1 - y0)]], device=device)
        pasted = paste_masks_in_image(probs, local, (y1 - y0, x1 - x0), padding=1)
    return pasted[0, 0].float().cpu().numpy()


# --------------------------------------------------------------------------- segmentation


def _disc_radius(crop: _Crop, click_radius: float | None) -> int:
    if click_radius is not None:
        return max(1, int(round(click_radius * crop.scale)))
    bx0, by0, bx1, by1 = crop.box_small
    return int(np.clip(round(0.025 * max(bx1 - bx0, by1 - by0)), 2, 6))


def _clean(mask: np.ndarray, positives: list[tuple[int, int]]) -> np.ndarray:
    """Keep the largest part and the parts under positive clicks; fill holes smaller than 1% of the mask."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    if count > 2:
        keep = np.zeros(count, dtype=bool)
        keep[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))] = True
        for x, y in positives:
            keep[labels[y, x]] = True
        keep[0] = False
        mask = keep[labels]
    inverse = (~mask).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inverse, connectivity=4)
    if count > 2:
        h, w = mask.shape
        limit = 0.01 * max(1, int(mask.sum()))
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        small = stats[:, cv2.CC_STAT_AREA] < limit
        small[border] = False
        small[0] = False
        mask = mask | small[labels]
    return mask


def _grabcut(small_bgr: np.ndarray, seeds: np.ndarray, iterations: int) -> None:
    """GrabCut in place on ``seeds`` (when it has any foreground to fit)."""
    if (seeds == cv2.GC_PR_FGD).any() or (seeds == cv2.GC_FGD).any():
        if not ((seeds == cv2.GC_BGD) | (seeds == cv2.GC_PR_BGD)).any():
            seeds[0, 0] = cv2.GC_PR_BGD  # GrabCut needs some background to fit its colour model
        background, foreground = np.zeros((1, 65)), np.zeros((1, 65))
        # GrabCut's k-means draws from OpenCV's global generator: same input, same mask
        cv2.setRNGSeed(0)
        cv2.grabCut(
            small_bgr, seeds, None, background, foreground, int(iterations), cv2.GC_INIT_WITH_MASK
        )


def grabcut_segment(
    image_rgb: np.ndarray,
    box: Sequence[float] | None = None,
    positive: Sequence[tuple[float, float]] = (),
    negative: Sequence[tuple[float, float]] = (),
    predictor: Any = None,
    *,
    session: InteractiveSession | None = None,
    category: int | None = None,
    max_side: int = DEFAULT_MAX_SIDE,
    iterations: int = DEFAULT_ITERATIONS,
    margin: float = 0.1,
    click_radius: float | None = None,
    prior_threshold: float = 0.5,
    collapse_share: float = COLLAPSE_SHARE,
    core_threshold: float = 0.8,
) -> np.ndarray:
    """The GrabCut path: one object's bool H×W mask from a box ``(x0, y0, x1, y1)`` (None: the whole image)
    and clicks (full-image pixel coordinates). See the module docstring for the method and the options."""
    image = check_image(image_rgb)
    height, width = image.shape[:2]
    session = session if session is not None else InteractiveSession()
    session.method = METHOD_GRABCUT
    if predictor is not None and _mask_rcnn(predictor) is None:
        # a parsing model or another family: no box-prompted mask head, colour model only
        predictor = None
    clipped = _clip_box(box, height, width)
    session._bind(image, clipped, predictor)
    if session.crop is None:
        session.crop = _make_crop(image, clipped, int(max_side), margin)
    crop = session.crop
    sh, sw = crop.small_bgr.shape[:2]
    bx0, by0, bx1, by1 = crop.box_small
    if session.prior is None:
        prior = np.zeros((sh, sw), dtype=np.float32)
        if predictor is not None:
            box_prob = model_box_prior(predictor, image, clipped, session, category)
            prior[by0:by1, bx0:bx1] = cv2.resize(
                box_prob, (bx1 - bx0, by1 - by0), interpolation=cv2.INTER_LINEAR
            )
        else:
            prior[by0:by1, bx0:bx1] = 1.0
        session.prior = prior

    # Initial labels: the previous result for this box when there is one (a click refines), else the prior.
    seeds = np.full((sh, sw), cv2.GC_BGD, dtype=np.uint8)
    inside = np.zeros((sh, sw), dtype=bool)
    inside[by0:by1, bx0:bx1] = True
    likely = session.previous if session.previous is not None else session.prior >= prior_threshold
    seeds[inside] = np.where(likely[inside], cv2.GC_PR_FGD, cv2.GC_PR_BGD)
    radius = _disc_radius(crop, click_radius)
    pos_small = [crop.to_small(x, y) for x, y in positive]
    neg_small = [crop.to_small(x, y) for x, y in negative]
    for point in pos_small:
        cv2.circle(seeds, point, radius, int(cv2.GC_FGD), -1)
    for point in neg_small:
        cv2.circle(seeds, point, radius, int(cv2.GC_BGD), -1)

    initial = seeds.copy()
    _grabcut(crop.small_bgr, seeds, iterations)
    small_mask = (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)
    box_area = (bx1 - bx0) * (by1 - by0)
    if collapse_share and small_mask.sum() < collapse_share * box_area:
        # GrabCut lost the object to the background's colours: anchor a core as sure foreground and re-run
        seeds = initial
        if predictor is not None and (session.prior[inside] >= core_threshold).any():
            seeds[inside & (session.prior >= core_threshold)] = cv2.GC_FGD
        else:
            cy, cx = (by0 + by1) // 2, (bx0 + bx1) // 2
            cv2.ellipse(
                seeds,
                (cx, cy),
                (max(1, (bx1 - bx0) // 6), max(1, (by1 - by0) // 6)),
                0,
                0,
                360,
                int(cv2.GC_FGD),
                -1,
            )
        for point in neg_small:  # a negative click still wins over the anchor
            cv2.circle(seeds, point, radius, int(cv2.GC_BGD), -1)
        _grabcut(crop.small_bgr, seeds, iterations)
        small_mask = (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)
    small_mask = _clean(small_mask, pos_small)
    session.previous = small_mask

    # Back to full size: upsample inside the crop, then make every click's disc what it says.
    full = np.zeros((height, width), dtype=bool)
    cw, ch = crop.x1 - crop.x0, crop.y1 - crop.y0
    if (sw, sh) != (cw, ch):
        up = (
            cv2.resize(small_mask.astype(np.float32), (cw, ch), interpolation=cv2.INTER_LINEAR)
            >= 0.5
        )
    else:
        up = small_mask
    full[crop.y0 : crop.y1, crop.x0 : crop.x1] = up
    # each click's disc is what it says, so earlier clicks stay honoured
    return honour_clicks(full, positive, negative, max(1, int(round(radius / crop.scale))))


# --------------------------------------------------------------------------- the entry point


def segment(
    image_rgb: np.ndarray,
    box: Sequence[float] | None = None,
    positive: Sequence[tuple[float, float]] = (),
    negative: Sequence[tuple[float, float]] = (),
    predictor: Any = None,
    *,
    session: InteractiveSession | None = None,
    method: str = "auto",
    model: Any = None,
    **grabcut_options: Any,
) -> np.ndarray:
    """One object's bool H×W mask from a box ``(x0, y0, x1, y1)`` and/or clicks (full-image pixel
    coordinates; with neither, the box is the whole image). ``model``: an ``InteractiveNet`` to use instead
    of the bundled one; ``predictor``: a detector whose Mask R-CNN mask head is the GrabCut path's prior;
    ``grabcut_options``: that path's options (see :func:`grabcut_segment`)."""
    steps = segment_steps(
        image_rgb,
        box,
        positive,
        negative,
        predictor,
        session=session,
        method=method,
        model=model,
        **grabcut_options,
    )
    return drain(steps)


def segment_steps(
    image_rgb: np.ndarray,
    box: Sequence[float] | None = None,
    positive: Sequence[tuple[float, float]] = (),
    negative: Sequence[tuple[float, float]] = (),
    predictor: Any = None,
    *,
    session: InteractiveSession | None = None,
    method: str = "auto",
    model: Any = None,
    **grabcut_options: Any,
) -> Generator[np.ndarray, None, np.ndarray]:
    """:func:`segment` as it goes, for a viewer that shows the mask as it is computed: yields the coarse mask
    when a zoom-in pass follows (clicks only, learned model), then returns the final mask. Input is checked
    before the first step; closing the generator between steps skips the rest (a superseded request)."""
    if method not in METHODS:
        raise InteractiveInputError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    image = check_image(image_rgb)
    height, width = image.shape[:2]
    checked_box = check_box(box, height, width) if box is not None else None
    positive = check_points(positive, "positive", height, width)
    negative = check_points(negative, "negative", height, width)
    session = session if session is not None else InteractiveSession()
    if method != "grabcut" and model is None:
        from fashionviewer.core.inference.interactive_model import (
            bundled_model,
            bundled_model_problem,
        )

        model = bundled_model()
        if model is None and method == "learned":
            raise InteractiveInputError(f"no learned model: {bundled_model_problem()}")
    if method == "grabcut" or model is None:
        return grabcut_segment(
            image, checked_box, positive, negative, predictor, session=session, **grabcut_options
        )
    from fashionviewer.core.inference.interactive_model import learned_segment_steps

    if checked_box is None and not positive and not negative:
        # nothing given: the whole image, as GrabCut
        checked_box = (0.0, 0.0, float(width), float(height))
    if checked_box is None and not positive:
        return np.zeros((height, width), dtype=bool)  # only negative clicks: no object chosen yet
    session._bind(image, checked_box, model)
    session.method = METHOD_LEARNED
    return (
        yield from learned_segment_steps(model, image, checked_box, positive, negative, session)
    )
