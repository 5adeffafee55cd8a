"""Interactive segmentation on real Clothing Co-Parsing photos: the box, positive and negative clicks, odd shapes
(whichever method ``segment`` picks), and the GrabCut path's own options: the Mask R-CNN box-prompted mask head
prior and the collapse guard (``method="grabcut"``). The learned path: test_interactive_learned.py."""

from __future__ import annotations

import numpy as np
import pytest

from fashionviewer.core.inference.interactive import InteractiveSession, segment


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.fixture(scope="module")
def garments():
    """The largest garment of each of 4 CCP validation photos: (image, mask)."""
    from fashionviewer.core.base.paths import ccp_dir
    from fashionviewer.core.data.datasets.ccp import CCPDataset
    from fashionviewer.core.data.imageio import load_image

    root = ccp_dir()
    if root is None:
        pytest.skip(
            "Clothing Co-Parsing photos not found at ../shared/data/ccp (set FASHIONVIEWER_SHARED_DATA)"
        )
    dataset = CCPDataset(root, "val", taxonomy="imaterialist", limit=4)
    out = []
    for index, entry in enumerate(dataset.images):
        anns = dataset._annotations(index)
        masks = [np.asarray(a["segmentation"]).astype(bool) for a in anns]
        out.append((load_image(entry.path), max(masks, key=lambda m: m.sum())))
    return out


def test_box_alone_finds_the_garment_and_a_wrong_box_does_not(garments):
    tight, wrong = [], []
    for image, truth in garments:
        box = tight_box(truth)
        pred = segment(image, box)
        assert pred.shape == truth.shape and pred.dtype == bool
        tight.append(iou(pred, truth))
        height, width = truth.shape
        bw, bh = box[2] - box[0], box[3] - box[1]
        # the same size of box, moved to where the garment covers least of it
        candidates = [
            (x, y)
            for x in range(0, width - bw + 1, max(1, bw // 4) or 1)
            for y in range(0, height - bh + 1, max(1, bh // 4) or 1)
        ]
        x, y = min(candidates, key=lambda p: truth[p[1] : p[1] + bh, p[0] : p[0] + bw].sum())
        wrong.append(iou(segment(image, (x, y, x + bw, y + bh)), truth))
    assert np.mean(tight) >= 0.6, tight
    assert np.mean(wrong) <= 0.35, wrong
    assert np.mean(tight) > np.mean(wrong) + 0.3


def _largest_error(
    truth: np.ndarray, pred: np.ndarray, missed: bool
) -> tuple[tuple[int, int], np.ndarray] | None:
    import cv2

    error = (truth & ~pred) if missed else (pred & ~truth)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(error.astype(np.uint8))
    if count < 2:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    distance = cv2.distanceTransform(np.pad(labels == k, 1).astype(np.uint8), cv2.DIST_L2, 5)[
        1:-1, 1:-1
    ]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return (int(x), int(y)), labels == k


def test_positive_click_adds_and_negative_click_removes(garments):
    checked_positive = 0
    kept_spurious = []  # per garment: the share of the largest spurious region left after the click
    for image, truth in garments:
        box = tight_box(truth)
        session = InteractiveSession()
        pred = segment(image, box, session=session)
        found = _largest_error(truth, pred, missed=True)
        positives = [found[0]] if found else []
        if found:
            (x, y), region = found
            after = segment(image, box, positives, session=session)
            assert after[y, x]  # honoured
            # the missed region is (largely) added
            assert (region & after).sum() >= 0.2 * region.sum()
            pred = after
            checked_positive += 1
        found = _largest_error(truth, pred, missed=False)
        if found:
            (x, y), region = found
            after = segment(image, box, positives, [(x, y)], session=session)
            assert not after[y, x]
            kept_spurious.append((region & after).sum() / region.sum())
            for x, y in positives:
                assert after[y, x]  # the earlier click still holds
    assert checked_positive and kept_spurious
    # each click takes some of the spurious region away, and on average a good share of it
    assert max(kept_spurious) < 0.9 and np.mean(kept_spurious) <= 0.65, kept_spurious


def test_clicks_are_honoured_without_a_session(garments):
    image, truth = garments[0]
    box = tight_box(truth)
    ys, xs = np.nonzero(~truth[box[1] : box[3], box[0] : box[2]])
    neg = (int(xs[len(xs) // 2]) + box[0], int(ys[len(ys) // 2]) + box[1])
    ys, xs = np.nonzero(truth)
    pos = (int(xs[0]), int(ys[0]))
    pred = segment(image, box, [pos], [neg])
    assert pred[pos[1], pos[0]] and not pred[neg[1], neg[0]]


@pytest.mark.parametrize(
    "shape,box",
    [
        ((1, 50), (0, 0, 50, 1)),
        ((50, 1), None),
        ((3, 3), (1, 1, 2, 2)),
        ((40, 60), (-20, -5, 500, 300)),
        ((40, 60), (59, 39, 70, 45)),
        ((200, 7), (0, 10, 7, 190)),
        ((7, 300), (5, 0, 290, 7)),
    ],
)
def test_strips_and_odd_boxes_do_not_crash(shape, box):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    image[shape[0] // 4 : 3 * shape[0] // 4 + 1, shape[1] // 4 : 3 * shape[1] // 4 + 1] = (
        200,
        30,
        30,
    )
    mask = segment(image, box, positive=[(shape[1] // 2, shape[0] // 2)], negative=[(0, 0)])
    assert mask.shape == shape and mask.dtype == bool
    assert mask[shape[0] // 2, shape[1] // 2] and not mask[0, 0]


@pytest.mark.parametrize(
    "shape,box", [((3, 3000), (100, 0, 2000, 3)), ((3000, 3), (0, 100, 3, 2000))]
)
def test_strips_with_the_model_prior(shape, box):
    """The mask head's prior on a strip: the backbone's resize keeps every side at least one pixel."""
    from fashionviewer.core.inference.predictor import Predictor
    from tests.core.inference.test_inference import CLASS_NAMES, _calibrated_light_model

    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    click = (box[0] + 400, 1) if shape[0] == 3 else (1, box[1] + 400)
    mask = segment(
        image,
        box,
        positive=[click],
        predictor=Predictor(_calibrated_light_model(), CLASS_NAMES),
        method="grabcut",
    )
    assert mask.shape == shape and mask[click[1], click[0]]


def test_rejects_a_non_rgb_image():
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        segment(np.zeros((10, 10), np.uint8), (0, 0, 5, 5))


def test_model_mask_head_prior_runs_once_per_image(garments):
    from fashionviewer.core.inference.families import load_predictor
    from fashionviewer.core.inference.interactive import model_box_prior

    predictor = load_predictor("maskrcnn_ccp", rescore=False, tta=False)
    image, truth = garments[0]
    box = tight_box(truth)
    session = InteractiveSession()
    pred = segment(image, box, predictor=predictor, session=session, method="grabcut")
    features = session.features
    assert features is not None and session.model_class is not None
    assert pred.shape == truth.shape and pred[box[1] : box[3], box[0] : box[2]].any()
    ys, xs = np.nonzero(truth)
    segment(
        image,
        box,
        [(int(xs[0]), int(ys[0]))],
        predictor=predictor,
        session=session,
        method="grabcut",
    )
    assert session.features is features  # the backbone did not run again for the click
    prob = model_box_prior(predictor, image, box, session, category=1)
    assert prob.shape == (box[3] - box[1], box[2] - box[0]) and 0 <= prob.min() <= prob.max() <= 1


def test_a_collapsed_grabcut_is_anchored_and_runs_again():
    """CCP val photo 0430, the pants: from the tight box alone, GrabCut loses them to the background's colours
    (almost nothing left); the collapse guard anchors the box's core and finds them."""
    from fashionviewer.core.base.paths import ccp_dir
    from fashionviewer.core.data.datasets.ccp import CCPDataset
    from fashionviewer.core.data.imageio import load_image

    root = ccp_dir()
    if root is None:
        pytest.skip(
            "Clothing Co-Parsing photos not found at ../shared/data/ccp (set FASHIONVIEWER_SHARED_DATA)"
        )
    dataset = CCPDataset(root, "val", taxonomy="imaterialist")
    index = next(i for i, entry in enumerate(dataset.images) if entry.file_name == "0430.jpg")
    pants = dataset.category_ids.index(6) + 1  # iMaterialist id 6: pants
    truth = next(
        np.asarray(a["segmentation"]).astype(bool)
        for a in dataset._annotations(index)
        if a["label"] == pants
    )
    image = load_image(dataset.images[index].path)
    box = tight_box(truth)
    box_area = (box[2] - box[0]) * (box[3] - box[1])
    unguarded = segment(image, box, method="grabcut", collapse_share=0.0)
    assert unguarded.sum() < 0.25 * box_area and iou(unguarded, truth) < 0.1
    guarded = segment(image, box, method="grabcut")
    assert iou(guarded, truth) > 0.45
    # GrabCut's generator is seeded: same input, same mask
    assert np.array_equal(guarded, segment(image, box, method="grabcut"))
