"""Model predictions for one image: instances with boxes, labels, scores and RLE masks.

Masks stay run-length encoded (COCO compressed RLE) until someone asks for the
pixels, so holding and filtering thousands of instances is cheap. Predictions as
files (COCO results JSON, the iMaterialist submission CSV) are
:mod:`fashionviewer.core.data.prediction_files`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.masks import decode_mask, encode_masks, mask_area

__all__ = ["Instance", "ImagePrediction", "category_id_of", "label_of_category"]


def _missing(source: str, key: str) -> DataError:
    return DataError(f"{source}: missing '{key}'")


@dataclass
class Instance:
    """One detected object. ``box`` is (x1, y1, x2, y2) in original-image pixels;
    ``label`` is the category id (1..K, 0 = background); ``rle`` is COCO compressed
    RLE or None for box-only models; ``classifier`` is the Fashion-MNIST CNN output
    for the crop: ``{"model": str, "classes": [...], "probs": [...]}``;
    ``detector_score`` is the Mask R-CNN's own score when ``score`` was re-scored
    (:mod:`fashionviewer.core.inference.rescoring`), else None."""

    box: tuple[float, float, float, float]
    label: int
    class_name: str
    score: float
    rle: dict | None
    classifier: dict | None = None
    detector_score: float | None = None

    def __post_init__(self) -> None:
        self.box = tuple(float(v) for v in self.box)  # type: ignore[assignment]
        if len(self.box) != 4:
            raise ValueError(f"box must have 4 numbers (x1, y1, x2, y2), got {len(self.box)}")
        self.label = int(self.label)
        self.score = float(self.score)

    @property
    def has_mask(self) -> bool:
        return self.rle is not None

    def mask(self) -> np.ndarray:
        """H×W uint8 (0/1) mask, decoded now (not cached: callers keep it if they need it)."""
        if self.rle is None:
            raise ValueError(f"instance '{self.class_name}' has no mask (box-only prediction)")
        return decode_mask(self.rle)

    @property
    def area(self) -> float:
        """Mask pixel count, or the box area for box-only instances."""
        if self.rle is not None:
            return float(mask_area(self.rle))
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {
            "box": [round(v, 2) for v in self.box],
            "label": self.label,
            "class_name": self.class_name,
            "score": round(self.score, 5),
            "rle": self.rle,
        }
        if self.classifier is not None:
            out["classifier"] = self.classifier
        if self.detector_score is not None:
            out["detector_score"] = round(self.detector_score, 5)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "instance") -> "Instance":
        for key in ("box", "label", "score"):
            if key not in data:
                raise _missing(source, key)
        try:
            return cls(
                box=tuple(data["box"]),  # type: ignore[arg-type]
                label=int(data["label"]),
                class_name=str(data.get("class_name", data["label"])),
                score=float(data["score"]),
                rle=data.get("rle"),
                classifier=data.get("classifier"),
                detector_score=None
                if data.get("detector_score") is None
                else float(data["detector_score"]),
            )
        except (TypeError, ValueError) as exc:
            raise DataError(f"{source}: bad instance ({exc})") from exc


@dataclass
class ImagePrediction:
    """Everything a model predicted for one image (sizes are the original image's)."""

    file_name: str
    width: int
    height: int
    instances: list[Instance] = field(default_factory=list)
    model: str = ""
    image_id: int = 0

    def filter(
        self, min_score: float = 0.0, classes: Iterable[int | str] | None = None
    ) -> list[Instance]:
        """Instances with ``score >= min_score`` and, when ``classes`` is given, whose label
        or class name is in it. Never decodes masks."""
        wanted = None if classes is None else set(classes)
        return [
            inst
            for inst in self.instances
            if inst.score >= min_score
            and (wanted is None or inst.label in wanted or inst.class_name in wanted)
        ]

    def to_coco_results(
        self, image_id: int | None = None, category_ids: Sequence[int] | None = None
    ) -> list[dict]:
        """COCO results records for this image. ``category_id`` is the dataset's own id of each
        instance's label: ``category_ids[label - 1]`` (a model card's ``category_ids``), or the label
        itself when ``category_ids`` is None."""
        img_id = self.image_id if image_id is None else int(image_id)
        results = []
        for inst in self.instances:
            x1, y1, x2, y2 = inst.box
            record: dict[str, Any] = {
                "image_id": img_id,
                "category_id": category_id_of(inst.label, category_ids),
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "score": round(inst.score, 5),
                "file_name": self.file_name,
                "class_name": inst.class_name,
            }
            if inst.rle is not None:
                record["segmentation"] = {
                    "size": list(inst.rle["size"]),
                    "counts": inst.rle["counts"],
                }
            results.append(record)
        return results

    def to_dict(self) -> dict:
        return {
            "file_name": self.file_name,
            "width": self.width,
            "height": self.height,
            "model": self.model,
            "image_id": self.image_id,
            "instances": [inst.to_dict() for inst in self.instances],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "prediction") -> "ImagePrediction":
        if not isinstance(data, Mapping):
            raise DataError(f"{source}: expected an object, got {type(data).__name__}")
        for key in ("file_name", "width", "height"):
            if key not in data:
                raise _missing(source, key)
        instances = [
            Instance.from_dict(d, source=f"{source}: instance {i}")
            for i, d in enumerate(data.get("instances", []))
        ]
        return cls(
            file_name=str(data["file_name"]),
            width=int(data["width"]),
            height=int(data["height"]),
            instances=instances,
            model=str(data.get("model", "")),
            image_id=int(data.get("image_id", 0)),
        )

    @classmethod
    def from_torchvision(
        cls,
        output: Mapping[str, Any],
        class_names: Sequence[str],
        file_name: str,
        score_floor: float = 0.0,
        mask_threshold: float = 0.5,
        *,
        width: int | None = None,
        height: int | None = None,
        model: str = "",
        image_id: int = 0,
    ) -> "ImagePrediction":
        """Convert a torchvision Mask R-CNN output dict (``boxes`` N×4, ``labels``, ``scores``,
        optional ``masks`` N×1×H×W probabilities) to RLE instances, sorted by score.

        ``class_names[k-1]`` names label k. ``width``/``height`` are needed only when the
        output has no masks to read the size from.
        """
        scores = _to_numpy(output["scores"]).astype(np.float64).reshape(-1)
        keep = np.flatnonzero(scores >= score_floor)
        keep = keep[np.argsort(-scores[keep], kind="stable")]
        boxes = _to_numpy(output["boxes"]).reshape(-1, 4)[keep]
        labels = _to_numpy(output["labels"]).reshape(-1)[keep]
        rles: list[dict | None] = [None] * len(keep)
        masks = output.get("masks")
        if masks is not None:
            if masks.ndim == 4:
                masks = masks[:, 0]
            height, width = int(masks.shape[-2]), int(masks.shape[-1])
            # Threshold before leaving torch: a bool copy is 4x smaller than float.
            binary = _to_numpy(masks[_index(masks, keep)] > mask_threshold)
            rles = list(encode_masks(binary))
        if width is None or height is None:
            raise ValueError("from_torchvision needs width and height when the output has no masks")
        instances = [
            Instance(
                box=tuple(float(v) for v in box),  # type: ignore[arg-type]
                label=int(label),
                class_name=class_names[label - 1]
                if 1 <= label <= len(class_names)
                else str(int(label)),
                score=float(scores[i]),
                rle=rle,
            )
            for i, box, label, rle in zip(keep, boxes, labels, rles, strict=False)
        ]
        return cls(
            file_name=file_name,
            width=int(width),
            height=int(height),
            instances=instances,
            model=model,
            image_id=image_id,
        )


def category_id_of(label: int, category_ids: Sequence[int] | None) -> int:
    """The dataset's own category id of model label ``label`` (1..K); the label itself without a mapping."""
    if category_ids is None:
        return int(label)
    if not 1 <= label <= len(category_ids):
        raise DataError(
            f"label {label} has no category id (the model has {len(category_ids)} classes)"
        )
    return int(category_ids[label - 1])


def label_of_category(
    category_id: int, category_ids: Sequence[int] | None, source: str = "results"
) -> int:
    """Inverse of :func:`category_id_of`: the model label (1..K) of a dataset category id."""
    if category_ids is None:
        return int(category_id)
    try:
        return list(category_ids).index(int(category_id)) + 1
    except ValueError:
        raise DataError(
            f"{source}: category_id {category_id} is not one of the model's category ids "
            f"({min(category_ids)}-{max(category_ids)})"
        ) from None


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _index(tensor: Any, keep: np.ndarray) -> Any:
    if hasattr(tensor, "detach"):
        import torch

        return torch.as_tensor(keep, dtype=torch.long, device=tensor.device)
    return keep
