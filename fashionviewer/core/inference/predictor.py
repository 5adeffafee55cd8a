"""Run a Mask R-CNN on photos: ``Predictor.predict(image) -> ImagePrediction``.

The fast path differs from calling the torchvision model in two ways, both for
speed and memory on large photos:

* detections below ``score_floor`` are dropped inside the RoI heads (their masks
  are never computed), and
* each kept 28x28 mask is pasted only into its own box, thresholded and
  run-length encoded, instead of torchvision's one full-resolution float image
  per detection (100 x 12 MP x 4 bytes = 4.8 GB for a phone photo).

On the CPU the RoI pooling is also shared across threads (:mod:`.roi_pool`,
same numbers). :meth:`Predictor.from_checkpoint` (how the loader, :mod:`.families`, makes one)
folds batch norms into the convolutions (:mod:`.folding`) and, on the CPU, puts the model in
channels-last memory order (faster convolutions; float rounding differs by about 1e-6 for each).
One Predictor may serve several threads at once.

A model card may ask for test-time augmentation (:mod:`.tta`): the photo is then
seen at several sizes and mirrored, and the views' detections are merged.

The pasting arithmetic is torchvision's own (``paste_masks_in_image``, in :mod:`.rcnn_ops`), so
masks agree with ``model(images)`` thresholded at 0.5. :data:`MASKRCNN_FAMILY`, at the end of this
module, is the Mask R-CNN entry in the family registry (:data:`.families.FAMILIES`).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes

from fashionviewer.core.data.predictions import ImagePrediction, Instance
from fashionviewer.core.inference import rcnn_ops
from fashionviewer.core.inference.defaults import PIPELINE_VERSION, SCORE_FLOOR
from fashionviewer.core.inference.folding import fold_batch_norms
from fashionviewer.core.inference.protocol import (
    ArrayInputs,
    Capability,
    ModelFamily,
    PredictorOptions,
)
from fashionviewer.core.inference.rcnn_ops import paste_masks_as_rle, side_keeping_transform
from fashionviewer.core.inference.rescoring import Rescorer, load_rescorer
from fashionviewer.core.inference.roi_pool import SparseRoIAlign, ThreadedRoIPool
from fashionviewer.core.inference.tta import TestTimeAugmentation, merge_views, unflip
from fashionviewer.core.models import checkpoint, registry

log = logging.getLogger(__name__)

MASKRCNN_CAPABILITIES = frozenset(
    {Capability.BOX_PROMPT, Capability.FINE_TUNE, Capability.RESCORING, Capability.TEST_TIME_VIEWS}
)


class Predictor(ArrayInputs):
    """A Mask R-CNN in eval mode plus what names its outputs: an ``InstancePredictor`` (:mod:`.protocol`).

    ``class_names[k-1]`` names label k. Detections scoring below ``score_floor``
    are not returned (filter higher later with ``ImagePrediction.filter``).
    """

    family = "maskrcnn"
    capabilities = MASKRCNN_CAPABILITIES

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
        # Both in place: the caller hands the model over (from_checkpoint does). Each changes the
        # float rounding slightly, so both are part of the cache key (settings()).
        if fold_batch_norm:
            fold_batch_norms(self.model)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.fold_batch_norm, self.channels_last = fold_batch_norm, channels_last
        # The CPU RoI pool (core.inference.roi_pool): the sparse product where the numbers differ by ~1e-6
        # anyway (channels-last), else the exact threaded kernel; benchmarks set it either way.
        self.sparse_roi_pool = channels_last if sparse_roi_pool is None else sparse_roi_pool
        self.class_names = list(class_names)
        self.score_floor = float(score_floor)
        self.model_name = model_name
        self.card = card or {}
        # the dataset's own id of each label, for results and exports (the card's, else 1..K)
        self.category_ids = checkpoint.card_category_ids(
            {"class_names": self.class_names, **self.card}
        )
        self._cpu_model: MaskRCNN | None = None  # made on the first CUDA out-of-memory
        # Opt-in reduced precision for the backbone+FPN only (e.g. torch.bfloat16 on CPUs with
        # AVX512-BF16 or on GPUs); RPN and heads stay float32 so boxes and masks stay close.
        self.backbone_dtype = backbone_dtype
        # scores x a Fashion-MNIST CNN's probability of the class (core.inference.rescoring)
        self.rescorer = rescorer
        self.tta = tta
        # where the weights came from (run records), None when built in memory
        self.weights_path = weights_path
        # The RoI heads this Predictor runs: the model's own layers with this Predictor's floor and CPU
        # pool, so the model itself is never changed and several Predictors may share it.
        self._heads = rcnn_ops.configured_heads(
            self.model.roi_heads, self.score_floor, self._roi_pool(self.device)
        )
        self._cpu_heads: RoIHeads | None = None
        self.random_weights = registry.model_info(self.model).get("weights") == "random"
        self._weights_sha256: str | None = None

    @classmethod
    def from_checkpoint(
        cls, model: MaskRCNN, card: dict[str, Any], path: Path, options: PredictorOptions
    ) -> Predictor:
        """The Mask R-CNN family's predictor for a loaded checkpoint, prepared as the app runs it: batch
        norms folded, channels-last on the CPU, the card's re-scorer and test-time views when asked for."""
        rescorer = load_rescorer(card, path) if options.rescore and card.get("rescorer") else None
        spec = card.get("test_time_augmentation")
        views = (
            TestTimeAugmentation.from_card(spec, str(checkpoint.card_path(path)))
            if options.tta and spec
            else None
        )
        return cls(
            model,
            card["class_names"],
            options.device,
            options.score_floor,
            model_name=path.stem,
            card=card,
            channels_last=options.device.type == "cpu",
            rescorer=rescorer,
            tta=views,
            fold_batch_norm=True,
            weights_path=path,
        )

    @property
    def taxonomy(self) -> str | None:
        return str(self.card["taxonomy"]) if self.card.get("taxonomy") else None

    def weights_sha256(self) -> str | None:
        """The card's SHA-256 (verified when loaded), else one over the model's tensors (computed once)."""
        if self.card.get("weights_sha256"):
            return str(self.card["weights_sha256"])
        if self._weights_sha256 is None:
            self._weights_sha256 = checkpoint.state_dict_sha256(self.model)
        return self._weights_sha256

    def rescoring(self) -> dict[str, Any] | None:
        return self.rescorer.record() if self.rescorer is not None else None

    def settings(self) -> dict[str, Any]:
        """Everything besides the weights that changes this Predictor's output: the prediction cache
        keys on it (with the weights' SHA-256) and ``fashionviewer predict`` records it in run.json."""
        info = registry.model_info(self.model)
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
                for det, image, name, image_id in zip(detections, images, names, ids, strict=False)
            ]
        else:
            predictions = self._predict_views(images, names, ids, self.tta)
        if self.rescorer is not None:
            for prediction, image in zip(predictions, images, strict=False):
                self.rescorer.apply(prediction, rcnn_ops.as_uint8_hwc(image))
        return predictions

    # -- internals

    def _predict_views(
        self,
        images: Sequence[Tensor],
        names: Sequence[str],
        ids: Sequence[int],
        tta: TestTimeAugmentation,
    ) -> list[ImagePrediction]:
        """Each view of the whole batch in one pass, then each image's views merged (:mod:`.tta`)."""
        transform = self.model.transform
        per_image: list[list[dict[str, Tensor]]] = [[] for _ in images]
        for size, mirrored in tta.views(int(transform.min_size[-1])):
            view_transform = rcnn_ops.resized_transform(transform, size)
            batch = [image.flip(-1) for image in images] if mirrored else list(images)
            for found, detections, image in zip(
                per_image, self._run(batch, names, view_transform), images, strict=False
            ):
                found.append(unflip(detections, int(image.shape[-1])) if mirrored else detections)
        predictions = []
        for views, image, name, image_id in zip(per_image, images, names, ids, strict=False):
            height, width = int(image.shape[-2]), int(image.shape[-1])
            merged = merge_views(
                views,
                height,
                width,
                tta,
                score_floor=self.score_floor,
                max_detections=self.model.roi_heads.detections_per_img,
            )
            instances = [
                Instance(
                    box=tuple(box),
                    label=label,
                    class_name=self._class_name(label),
                    score=score,  # type: ignore[arg-type]
                    rle=rle,
                )
                for box, label, score, rle in zip(
                    merged["boxes"],
                    merged["labels"],
                    merged["scores"],
                    merged["rles"] or [None] * len(merged["scores"]),
                    strict=False,
                )
            ]
            predictions.append(
                ImagePrediction(
                    name, width, height, instances, model=self.model_name, image_id=image_id
                )
            )
        return predictions

    def _run(
        self,
        images: Sequence[Tensor],
        names: Sequence[str],
        transform: GeneralizedRCNNTransform | None = None,
    ) -> list[dict[str, Tensor]]:
        try:
            return self._detect(self.model, self.device, images, transform)
        except torch.OutOfMemoryError:
            if self.device.type != "cuda":
                raise
            return self._detect_after_oom(images, names, transform)

    def _detect_after_oom(
        self,
        images: Sequence[Tensor],
        names: Sequence[str],
        transform: GeneralizedRCNNTransform | None,
    ) -> list[dict[str, Tensor]]:
        """A CUDA out-of-memory on one image: retry that image on the CPU (batches: one by one)."""
        torch.cuda.empty_cache()
        if len(images) > 1:
            return [
                self._detect_one_with_fallback(image, name, transform)
                for image, name in zip(images, names, strict=False)
            ]
        log.warning("%s: out of GPU memory, predicting this image on the CPU", names[0] or "image")
        if self._cpu_model is None:
            self._cpu_model = copy.deepcopy(self.model).to("cpu")
            self._cpu_heads = rcnn_ops.configured_heads(
                self._cpu_model.roi_heads, self.score_floor, self._roi_pool(torch.device("cpu"))
            )
        return self._detect(self._cpu_model, torch.device("cpu"), images, transform)

    def _detect_one_with_fallback(
        self, image: Tensor, name: str, transform: GeneralizedRCNNTransform | None
    ) -> dict[str, Tensor]:
        try:
            return self._detect(self.model, self.device, [image], transform)[0]
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            return self._detect_after_oom([image], [name], transform)[0]

    @torch.inference_mode()
    def _detect(
        self,
        model: MaskRCNN,
        device: torch.device,
        images: Sequence[Tensor],
        transform: GeneralizedRCNNTransform | None = None,
    ) -> list[dict[str, Tensor]]:
        """Boxes (original pixels), labels, scores and 28x28 mask probabilities at or above the floor.

        ``transform`` replaces the model's own resizing (a test-time-augmentation view)."""
        tensors = [rcnn_ops.as_float(image.to(device)) for image in images]
        original_sizes = [(int(t.shape[-2]), int(t.shape[-1])) for t in tensors]
        heads = self._heads if model is self.model else self._cpu_heads
        assert heads is not None
        image_list, _ = side_keeping_transform(transform or model.transform)(tensors)
        features = self._backbone(model, device, image_list.tensors)
        proposals, _ = model.rpn(image_list, features)
        detections, _ = heads(features, proposals, image_list.image_sizes)
        for det, resized, original in zip(
            detections, image_list.image_sizes, original_sizes, strict=False
        ):
            det["boxes"] = resize_boxes(det["boxes"], resized, original)
        return detections

    def _roi_pool(self, device: torch.device) -> type[nn.Module] | None:
        """On the CPU: the sparse product or the exact threaded torchvision kernel (core.inference.roi_pool);
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
        rles = (
            paste_masks_as_rle(probs, boxes, height, width)
            if probs is not None
            else [None] * len(order)
        )
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
        return ImagePrediction(
            file_name, width, height, instances, model=self.model_name, image_id=image_id
        )

    def _class_name(self, label: int) -> str:
        return self.class_names[label - 1] if 1 <= label <= len(self.class_names) else str(label)


# --------------------------------------------------------------------------- the family

BUNDLED_PREFIX = "maskrcnn_"  # resources/models/maskrcnn_demo.pt is bundled model "demo"

MASKRCNN_FAMILY = ModelFamily(
    name="maskrcnn",
    title="Mask R-CNN",
    card_format=registry.CARD_FORMAT,
    architectures=tuple(registry.list_models()),
    build=registry.build_from_card,
    complete_card=registry.complete_card,
    make_predictor=Predictor.from_checkpoint,
    capabilities=MASKRCNN_CAPABILITIES,
    trainer="maskrcnn",
    bundled_prefix=BUNDLED_PREFIX,
)
