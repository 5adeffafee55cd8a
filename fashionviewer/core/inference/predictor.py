"""Run a Mask R-CNN on photos: ``Predictor.predict(image) -> ImagePrediction``.

The fast path differs from calling the torchvision model in two ways, both for
speed and memory on large photos:

* detections below ``score_floor`` are dropped inside the RoI heads (their masks
  are never computed), and
* each kept 28x28 mask is pasted only into its own box, thresholded and
  run-length encoded, instead of torchvision's one full-resolution float image
  per detection (100 x 12 MP x 4 bytes = 4.8 GB for a phone photo).

On the CPU the RoI pooling is also shared across threads (:mod:`.roi_pool`,
same numbers). :func:`load_predictor` folds batch norms into the convolutions
(:mod:`.folding`) and, on the CPU, puts the model in channels-last memory order
(faster convolutions; float rounding differs by about 1e-6 for each).
One Predictor may serve several threads at once.

A model card may ask for test-time augmentation (:mod:`.tta`): the photo is then
seen at several sizes and mirrored, and the views' detections are merged.

The pasting arithmetic is torchvision's own (``paste_masks_in_image``), so masks
agree with ``model(images)`` thresholded at 0.5.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.roi_heads import RoIHeads, expand_boxes, expand_masks
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.ops import MultiScaleRoIAlign

from fashionviewer.core.base.errors import FashionViewerError, WeightsError
from fashionviewer.core.base.paths import MODELS_DIR
from fashionviewer.core.data.masks import encode_mask
from fashionviewer.core.data.predictions import ImagePrediction, Instance
from fashionviewer.core.inference.defaults import COCO_MODEL, PIPELINE_VERSION, SCORE_FLOOR
from fashionviewer.core.inference.folding import fold_batch_norms
from fashionviewer.core.inference.parsing import ParsingPredictor
from fashionviewer.core.inference.rescoring import Rescorer, load_rescorer
from fashionviewer.core.inference.roi_pool import SparseRoIAlign, ThreadedRoIPool
from fashionviewer.core.inference.tta import TestTimeAugmentation, merge_views, unflip
from fashionviewer.core.models.parsing import PARSING_CARD_FORMAT, ParsingNet
from fashionviewer.core.models.registry import CARD_FORMAT, card_category_ids, load_checkpoint

log = logging.getLogger(__name__)

MASK_THRESHOLD = 0.5  # torchvision's documented threshold for its soft masks
BUNDLED_PREFIX = "maskrcnn_"  # resources/models/maskrcnn_demo.pt is bundled model "demo"


def best_device() -> str:
    """``"cuda"`` when a CUDA GPU is usable, else ``"mps"`` (Apple), else ``"cpu"``."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` -> :func:`best_device`; any other name is checked to be usable here."""
    if str(name) == "auto":
        return torch.device(best_device())
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise FashionViewerError(f"device {name!r}: not a device name (use cpu, cuda, cuda:N, mps or auto)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FashionViewerError(f"device {name!r}: CUDA is not available on this machine (use cpu)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise FashionViewerError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise FashionViewerError(f"device {name!r}: MPS is not available on this machine (use cpu)")
    return device


class Predictor:
    """A Mask R-CNN in eval mode plus what is needed to name its outputs.

    ``class_names[k-1]`` names label k. Detections scoring below ``score_floor``
    are not returned (filter higher later with ``ImagePrediction.filter``).
    """

    def __init__(
        self,
        model: MaskRCNN,
        class_names: Sequence[str],
        device: str | torch.device = "cpu",
        score_floor: float = SCORE_FLOOR,
        model_name: str = "",
        card: dict[str, Any] | None = None,
        backbone_dtype: torch.dtype | None = None,
        channels_last: bool = False,
        rescorer: Rescorer | None = None,
        fold_batch_norm: bool = False,
        tta: TestTimeAugmentation | None = None,
        weights_path: Path | None = None,
        sparse_roi_pool: bool | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        # Both in place: the caller hands the model over (load_predictor does). Each changes the
        # float rounding slightly, so both are part of the cache key (settings()).
        if fold_batch_norm:
            fold_batch_norms(self.model)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.fold_batch_norm, self.channels_last = fold_batch_norm, channels_last
        # The CPU RoI pool (core.roi_pool): the sparse product where the numbers differ by ~1e-6
        # anyway (channels-last), else the exact threaded kernel; benchmarks set it either way.
        self.sparse_roi_pool = channels_last if sparse_roi_pool is None else sparse_roi_pool
        self.class_names = list(class_names)
        self.score_floor = float(score_floor)
        self.model_name = model_name
        self.card = card or {}
        # the dataset's own id of each label, for results and exports (the card's, else 1..K)
        self.category_ids = card_category_ids({"class_names": self.class_names, **self.card})
        self._cpu_model: MaskRCNN | None = None  # made on the first CUDA out-of-memory
        # Opt-in reduced precision for the backbone+FPN only (e.g. torch.bfloat16 on CPUs with
        # AVX512-BF16 or on GPUs); RPN and heads stay float32 so boxes and masks stay close.
        self.backbone_dtype = backbone_dtype
        self.rescorer = rescorer  # scores x a Fashion-MNIST CNN's probability of the class (core.rescoring)
        self.tta = tta
        self.weights_path = weights_path  # where the weights came from (run records), None when built in memory
        # The RoI heads this Predictor runs: the model's own layers with this Predictor's floor and CPU
        # pool, so the model itself is never changed and several Predictors may share it.
        self._heads = _configured_heads(self.model.roi_heads, self.score_floor, self._roi_pool(self.device))
        self._cpu_heads: RoIHeads | None = None

    def settings(self) -> dict[str, Any]:
        """Everything besides the weights that changes this Predictor's output: the prediction cache
        keys on it (with the weights' SHA-256) and ``fashionviewer predict`` records it in run.json."""
        info = dict(getattr(self.model, "registry_info", {}) or {})
        transform = self.model.transform
        return {
            "pipeline": PIPELINE_VERSION,
            "predictor": type(self).__qualname__,
            "architecture": info.get("architecture"),
            "num_classes": info.get("num_classes"),
            "class_names": list(self.class_names),
            "min_size": list(transform.min_size),
            "max_size": transform.max_size,
            "nms": self._heads.nms_thresh,
            "detections_per_img": self._heads.detections_per_img,
            "score_floor": self.score_floor,
            "rescorer": self.rescorer.key if self.rescorer is not None else None,
            "tta": self.tta.to_dict() if self.tta is not None else None,
            # These change the last bits of the numbers; a mask pixel at exactly 0.5 could flip.
            "fold_batch_norm": self.fold_batch_norm,
            "channels_last": self.channels_last,
            "sparse_roi_pool": self.sparse_roi_pool,
            "backbone_dtype": str(self.backbone_dtype) if self.backbone_dtype else None,
            "device": self.device.type,
        }

    def describe(self) -> str:
        """What runs, in a few words: ``maskrcnn_demo re-scored by fvnet_scenes (10 views)``."""
        text = self.model_name or str(self.settings()["architecture"] or type(self.model).__name__)
        if self.rescorer is not None:
            text += f" re-scored by {self.rescorer.name}"
        if self.tta is not None:
            text += f" ({self.tta.view_count} views)"
        return text

    def predict(self, image: np.ndarray, file_name: str = "", image_id: int = 0) -> ImagePrediction:
        """Instances found in one RGB uint8 H×W×3 image (boxes and masks in its pixels)."""
        return self.predict_batch([image], [file_name], [image_id])[0]

    def predict_batch(
        self,
        images: Sequence[np.ndarray],
        file_names: Sequence[str] | None = None,
        image_ids: Sequence[int] | None = None,
    ) -> list[ImagePrediction]:
        """:meth:`predict` for several images in one forward pass (sizes may differ)."""
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"expected RGB uint8 H×W×3 images, got {image.dtype} {image.shape}")
        # Converted to float on the device: uint8 is 4x less to copy than float32.
        tensors = [torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1) for image in images]
        return self.predict_tensors(tensors, file_names, image_ids)

    def predict_tensors(
        self,
        images: Sequence[Tensor],
        file_names: Sequence[str] | None = None,
        image_ids: Sequence[int] | None = None,
    ) -> list[ImagePrediction]:
        """Predict 3×H×W tensors: uint8 0-255 or float 0-1 (what the datasets yield)."""
        names = list(file_names) if file_names is not None else [""] * len(images)
        ids = list(image_ids) if image_ids is not None else [0] * len(images)
        if not images:
            return []
        if self.tta is None:
            detections = self._run(images, names)
            predictions = [
                self._to_prediction(det, int(image.shape[-2]), int(image.shape[-1]), name, image_id)
                for det, image, name, image_id in zip(detections, images, names, ids)
            ]
        else:
            predictions = self._predict_views(images, names, ids, self.tta)
        if self.rescorer is not None:
            for prediction, image in zip(predictions, images):
                self.rescorer.apply(prediction, _as_uint8_hwc(image))
        return predictions

    # -- internals

    def _predict_views(self, images: Sequence[Tensor], names: Sequence[str], ids: Sequence[int],
                       tta: TestTimeAugmentation) -> list[ImagePrediction]:
        """Each view of the whole batch in one pass, then each image's views merged (:mod:`.tta`)."""
        transform = self.model.transform
        per_image: list[list[dict[str, Tensor]]] = [[] for _ in images]
        for size, mirrored in tta.views(int(transform.min_size[-1])):
            view_transform = _resized_transform(transform, size)
            batch = [image.flip(-1) for image in images] if mirrored else list(images)
            for found, detections, image in zip(per_image, self._run(batch, names, view_transform), images):
                found.append(unflip(detections, int(image.shape[-1])) if mirrored else detections)
        predictions = []
        for views, image, name, image_id in zip(per_image, images, names, ids):
            height, width = int(image.shape[-2]), int(image.shape[-1])
            merged = merge_views(views, height, width, tta, score_floor=self.score_floor,
                                 max_detections=self.model.roi_heads.detections_per_img)
            instances = [
                Instance(box=tuple(box), label=label, class_name=self._class_name(label), score=score,  # type: ignore[arg-type]
                         rle=rle)
                for box, label, score, rle in zip(merged["boxes"], merged["labels"], merged["scores"],
                                                  merged["rles"] or [None] * len(merged["scores"]))
            ]
            predictions.append(ImagePrediction(name, width, height, instances, model=self.model_name,
                                               image_id=image_id))
        return predictions

    def _run(self, images: Sequence[Tensor], names: Sequence[str],
             transform: GeneralizedRCNNTransform | None = None) -> list[dict[str, Tensor]]:
        try:
            return self._detect(self.model, self.device, images, transform)
        except torch.OutOfMemoryError:
            if self.device.type != "cuda":
                raise
            return self._detect_after_oom(images, names, transform)

    def _detect_after_oom(self, images: Sequence[Tensor], names: Sequence[str],
                          transform: GeneralizedRCNNTransform | None) -> list[dict[str, Tensor]]:
        """A CUDA out-of-memory on one image: retry that image on the CPU (batches: one by one)."""
        torch.cuda.empty_cache()
        if len(images) > 1:
            return [self._detect_one_with_fallback(image, name, transform) for image, name in zip(images, names)]
        log.warning("%s: out of GPU memory, predicting this image on the CPU", names[0] or "image")
        if self._cpu_model is None:
            self._cpu_model = copy.deepcopy(self.model).to("cpu")
            self._cpu_heads = _configured_heads(self._cpu_model.roi_heads, self.score_floor,
                                                self._roi_pool(torch.device("cpu")))
        return self._detect(self._cpu_model, torch.device("cpu"), images, transform)

    def _detect_one_with_fallback(self, image: Tensor, name: str,
                                  transform: GeneralizedRCNNTransform | None) -> dict[str, Tensor]:
        try:
            return self._detect(self.model, self.device, [image], transform)[0]
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            return self._detect_after_oom([image], [name], transform)[0]

    @torch.inference_mode()
    def _detect(self, model: MaskRCNN, device: torch.device, images: Sequence[Tensor],
                transform: GeneralizedRCNNTransform | None = None) -> list[dict[str, Tensor]]:
        """Boxes (original pixels), labels, scores and 28x28 mask probabilities at or above the floor.

        ``transform`` replaces the model's own resizing (a test-time-augmentation view)."""
        tensors = [_as_float(image.to(device)) for image in images]
        original_sizes = [(int(t.shape[-2]), int(t.shape[-1])) for t in tensors]
        heads = self._heads if model is self.model else self._cpu_heads
        assert heads is not None
        image_list, _ = side_keeping_transform(transform or model.transform)(tensors)
        features = self._backbone(model, device, image_list.tensors)
        proposals, _ = model.rpn(image_list, features)
        detections, _ = heads(features, proposals, image_list.image_sizes)
        for det, resized, original in zip(detections, image_list.image_sizes, original_sizes):
            det["boxes"] = resize_boxes(det["boxes"], resized, original)
        return detections

    def _roi_pool(self, device: torch.device) -> type[nn.Module] | None:
        """On the CPU: the sparse product or the exact threaded torchvision kernel (core.roi_pool);
        elsewhere the model's own."""
        if device.type != "cpu":
            return None
        return SparseRoIAlign if self.sparse_roi_pool else ThreadedRoIPool

    def _backbone(self, model: MaskRCNN, device: torch.device, images: Tensor) -> dict[str, Tensor]:
        if self.backbone_dtype is None:
            return model.backbone(images)
        with torch.autocast(device.type, dtype=self.backbone_dtype):
            features = model.backbone(images)
        return {name: feature.float() for name, feature in features.items()}

    def _to_prediction(
        self, det: dict[str, Tensor], height: int, width: int, file_name: str, image_id: int
    ) -> ImagePrediction:
        scores = det["scores"].float().cpu()
        order = torch.argsort(scores, descending=True, stable=True)
        boxes = det["boxes"].float().cpu()[order]
        labels = det["labels"].cpu()[order]
        probs = det["masks"].float().cpu()[order] if "masks" in det else None
        rles = paste_masks_as_rle(probs, boxes, height, width) if probs is not None else [None] * len(order)
        instances = [
            Instance(
                box=tuple(boxes[i].tolist()),  # type: ignore[arg-type]
                label=int(labels[i]),
                class_name=self._class_name(int(labels[i])),
                score=float(scores[order[i]]),
                rle=rles[i],
            )
            for i in range(len(order))
        ]
        return ImagePrediction(file_name, width, height, instances, model=self.model_name, image_id=image_id)

    def _class_name(self, label: int) -> str:
        return self.class_names[label - 1] if 1 <= label <= len(self.class_names) else str(label)


def paste_masks_as_rle(
    mask_probs: Tensor, boxes: Tensor, height: int, width: int, threshold: float = MASK_THRESHOLD
) -> list[dict[str, Any]]:
    """COCO RLEs of N×1×M×M mask probabilities pasted into their boxes of an H×W image.

    Same geometry as torchvision's ``paste_masks_in_image`` (1-pixel padding,
    expanded integer boxes, bilinear resize), but each mask is resized to its box
    only and written into one reused Fortran-ordered buffer for pycocotools.
    """
    if len(boxes) == 0:
        return []
    padded, scale = expand_masks(mask_probs, padding=1)
    int_boxes = expand_boxes(boxes, scale).to(torch.int64).tolist()
    canvas = np.zeros((height, width), dtype=np.uint8, order="F")
    rles = []
    for prob, (x0, y0, x1, y1) in zip(padded, int_boxes):
        box_w, box_h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        resized = F.interpolate(prob[None], size=(box_h, box_w), mode="bilinear", align_corners=False)[0, 0]
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1 + 1, width), min(y1 + 1, height)
        if cx1 > cx0 and cy1 > cy0:
            crop = resized[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] > threshold
            canvas[cy0:cy1, cx0:cx1] = crop.numpy()
        rles.append(encode_mask(canvas))
        canvas[cy0:cy1, cx0:cx1] = 0  # back to all-zero for the next instance
    return rles


# --------------------------------------------------------------------------- loading


def bundled_models() -> list[str]:
    """Names of the instance models shipped in ``resources/models`` (e.g. ``["ccp", "demo", "fashion"]``):
    ``maskrcnn_NAME`` Mask R-CNN cards and parsing-model cards (``NAME.json``)."""
    names = []
    for card_file in sorted(MODELS_DIR.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            text = card_file.read_text(encoding="utf-8")
            if card_file.stem.startswith(BUNDLED_PREFIX) and CARD_FORMAT in text:
                names.append(card_file.stem[len(BUNDLED_PREFIX):])
            elif PARSING_CARD_FORMAT in text:
                names.append(card_file.stem)
    return sorted(names)


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """The ``.pt`` file of a bundled model name or of a checkpoint path (``.pt`` or ``.json``)."""
    text = str(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.suffix in (".pt", ".json") or path.is_file():
        return path.with_suffix(".pt")
    for stem in (BUNDLED_PREFIX + text, text):
        if (MODELS_DIR / f"{stem}.json").is_file():
            return MODELS_DIR / f"{stem}.pt"
    available = ", ".join(bundled_models()) or "none installed"
    raise WeightsError(f"{text}: no such checkpoint file or bundled model (bundled: {available})")


def load_predictor(
    name_or_path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    allow_random: bool = False,
    score_floor: float = SCORE_FLOOR,
    rescore: bool = True,
    tta: bool = True,
) -> Predictor:
    """A Predictor for a bundled model (``"demo"``), torchvision's COCO model (``"coco"``, from the
    torch cache: WeightsError naming the file when it is not there) or a checkpoint ``NAME.pt``/``NAME.json``.

    ``device="auto"`` picks :func:`best_device`. Random-weight checkpoints are
    refused unless ``allow_random``. When the model card names a re-scoring
    classifier (:mod:`.rescoring`) it is used unless ``rescore=False``; when it
    asks for test-time augmentation (:mod:`.tta`) that is used unless ``tta=False``.
    """
    resolved = resolve_device(device)
    if str(name_or_path) == COCO_MODEL:
        return _coco_predictor(resolved, score_floor)
    path = resolve_model_path(name_or_path)
    model, card = load_checkpoint(path, allow_random=allow_random)
    if isinstance(model, ParsingNet):  # a garment parsing model: its class regions are the instances
        parsing = ParsingPredictor(model, card, resolved, score_floor, model_name=path.stem, tta=tta)
        parsing.weights_path = path
        return parsing
    rescorer = load_rescorer(card, path) if rescore and card.get("rescorer") else None
    spec = card.get("test_time_augmentation")
    augmentation = TestTimeAugmentation.from_card(spec, str(path.with_suffix(".json"))) if tta and spec else None
    return Predictor(model, card["class_names"], resolved, score_floor, model_name=path.stem, card=card,
                     channels_last=resolved.type == "cpu", rescorer=rescorer, tta=augmentation,
                     fold_batch_norm=True, weights_path=path)


def _coco_predictor(device: torch.device, score_floor: float) -> Predictor:
    """torchvision's COCO Mask R-CNN (ResNet-50 FPN) from the torch cache, named with COCO's classes
    (label k is COCO category id k), prepared for the CPU as load_predictor prepares every model."""
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

    from fashionviewer.core.models.registry import cached_weights_file, get_model

    weights = MaskRCNN_ResNet50_FPN_Weights.COCO_V1
    path = cached_weights_file(weights)  # WeightsError naming the file and folder when absent
    model = get_model("maskrcnn_resnet50_fpn", 91, weights=COCO_MODEL)
    names = list(weights.meta["categories"])[1:]  # drop __background__
    return Predictor(model, names, device, score_floor, model_name=COCO_MODEL, channels_last=device.type == "cpu",
                     fold_batch_norm=True, weights_path=path)


# --------------------------------------------------------------------------- helpers


def _resized_transform(transform: GeneralizedRCNNTransform, size: int) -> GeneralizedRCNNTransform:
    """The model's resize-and-normalise step at another shorter side (same longer-side ratio).

    A new object, so that views never change the model that other threads may be using."""
    if int(transform.min_size[-1]) == size:
        return transform
    max_size = round(size * transform.max_size / transform.min_size[-1])
    return SideKeepingTransform(size, max_size, transform.image_mean, transform.image_std,
                                size_divisible=transform.size_divisible, fixed_size=transform.fixed_size).eval()


class SideKeepingTransform(GeneralizedRCNNTransform):
    """torchvision's resize-and-normalise step, except that no side shrinks below one pixel.

    torchvision scales by min(min_size / shorter, max_size / longer) and floors each side: a
    3000x3 strip at 800/1333 would get 0 rows and fail. Here each side is floored the same way
    (so every ordinary photo is resized exactly as before) and then kept at 1 pixel or more.
    """

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None
               ) -> tuple[Tensor, dict[str, Tensor] | None]:
        if self.training or self.fixed_size is not None or target is not None:
            return super().resize(image, target)
        height, width = int(image.shape[-2]), int(image.shape[-1])
        scale = min(float(self.min_size[-1]) / min(height, width), float(self.max_size) / max(height, width))
        size = (max(1, math.floor(height * scale)), max(1, math.floor(width * scale)))
        return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0], None


def side_keeping_transform(transform: GeneralizedRCNNTransform) -> GeneralizedRCNNTransform:
    """``transform`` as a :class:`SideKeepingTransform` (a new object: the model is left as it is)."""
    if isinstance(transform, SideKeepingTransform):
        return transform
    return SideKeepingTransform(transform.min_size, transform.max_size, transform.image_mean, transform.image_std,
                                size_divisible=transform.size_divisible, fixed_size=transform.fixed_size).eval()


def _as_float(image: Tensor) -> Tensor:
    return image.float().div_(255.0) if image.dtype == torch.uint8 else image.float()


def _as_uint8_hwc(image: Tensor) -> np.ndarray:
    if image.dtype != torch.uint8:
        image = (image.float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    return image.permute(1, 2, 0).cpu().numpy()


def _configured_heads(heads: RoIHeads, floor: float, pool: type[nn.Module] | None) -> RoIHeads:
    """RoI heads sharing ``heads``' layers and weights that drop detections below ``floor`` before
    computing their masks and pool RoIs (boxes and masks) with ``pool`` wrapped around the model's
    own poolers (on the CPU: one that uses every core). ``heads`` itself is left as it is."""
    own = copy.copy(heads)
    own._modules = dict(heads._modules)  # its own slots: the poolers set below stay out of the model
    own.score_thresh = floor
    own.box_roi_pool = _wrapped(heads.box_roi_pool, pool)
    own.mask_roi_pool = _wrapped(heads.mask_roi_pool, pool)
    return own


def _wrapped(pooler: nn.Module | None, pool: type[nn.Module] | None) -> nn.Module | None:
    if pool is not None and isinstance(pooler, MultiScaleRoIAlign) and pooler.sampling_ratio > 0:
        return pool(pooler)
    return pooler
