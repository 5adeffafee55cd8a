"""Fine-tuning a trained Mask R-CNN on new data (``trainers.maskrcnn --init-from CHECKPOINT``).

The new model keeps the checkpoint's weights and its class list; classes the new data adds extend
the box and mask heads. Each kept class's rows of the class-specific layers (classification scores,
box regression, mask logits) are copied by name, so a kept class predicts exactly as before; the
added classes' rows start from torchvision's initialisation. The dataset's labels are remapped onto
the merged class list (:class:`RemapLabels`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.base.paths import sha256_file
from fashionviewer.core.models.checkpoint import card_category_ids, read_card
from fashionviewer.core.models.registry import list_models, load_checkpoint


@dataclass
class FinetunePlan:
    """The merged class list and how the dataset's labels (1..K) map onto it."""

    checkpoint: str
    architecture: str
    old_names: list[str]
    class_names: list[str]  # the checkpoint's, then the dataset's new ones
    category_ids: list[int]
    label_map: list[int]  # dataset label k -> merged label label_map[k] (index 0: background)
    added: list[str] = field(default_factory=list)

    def card_entry(self) -> dict[str, Any]:
        weights = Path(self.checkpoint).with_suffix(".pt")
        return {
            "checkpoint": str(weights),
            "sha256": sha256_file(weights),
            "classes_kept": len(self.old_names),
            "classes_added": list(self.added),
        }


def plan_finetune(
    checkpoint: str | Path,
    dataset_names: Sequence[str],
    dataset_category_ids: Sequence[int] | None = None,
) -> FinetunePlan:
    """The class list a fine-tune of ``checkpoint`` on a dataset naming ``dataset_names`` trains."""
    card = read_card(Path(checkpoint).with_suffix(".pt"))
    # another family's model (the registry's Mask R-CNNs only)
    if card["architecture"] not in list_models():
        raise FashionViewerError(
            f"{checkpoint}: a {card['architecture']} model cannot be fine-tuned as a Mask R-CNN; "
            "load a Mask R-CNN first or start from other weights"
        )
    old_names = [str(n) for n in card["class_names"]]
    old_ids = card_category_ids(card)
    ds_ids = (
        list(dataset_category_ids)
        if dataset_category_ids is not None
        else list(range(1, len(dataset_names) + 1))
    )
    by_name = dict(zip(dataset_names, ds_ids, strict=False))
    added = [n for n in dataset_names if n not in old_names]
    names = old_names + added
    # The dataset's own id wherever it names the class; the checkpoint's otherwise, or a fresh one if taken.
    ids: list[int] = []
    used = set(by_name.values())
    for name, old in zip(old_names, old_ids, strict=False):
        if name in by_name:
            ids.append(int(by_name[name]))
            continue
        cid = int(old) if old not in used else max(used | set(old_ids)) + 1
        used.add(cid)
        ids.append(cid)
    ids += [int(by_name[n]) for n in added]
    label_map = [0] + [names.index(n) + 1 for n in dataset_names]
    return FinetunePlan(
        str(checkpoint), str(card["architecture"]), old_names, names, ids, label_map, added
    )


def extend_heads(model: nn.Module, old_names: Sequence[str], new_names: Sequence[str]) -> int:
    """Give ``model`` (trained on ``old_names``) box and mask predictors for ``new_names``; rows of classes
    in both lists are copied by name (and the background row). Returns how many class rows were copied."""
    heads = model.roi_heads
    old_box: FastRCNNPredictor = heads.box_predictor
    old_logits: nn.Conv2d = heads.mask_predictor.mask_fcn_logits
    k = len(new_names) + 1
    new_box = FastRCNNPredictor(old_box.cls_score.in_features, k)
    new_logits = nn.Conv2d(old_logits.in_channels, k, 1)
    # as MaskRCNNPredictor does
    nn.init.kaiming_normal_(new_logits.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(new_logits.bias)
    pairs = [(0, 0)] + [
        (j + 1, old_names.index(n) + 1) for j, n in enumerate(new_names) if n in old_names
    ]
    with torch.no_grad():
        for new, old in pairs:
            new_box.cls_score.weight[new] = old_box.cls_score.weight[old]
            new_box.cls_score.bias[new] = old_box.cls_score.bias[old]
            new_box.bbox_pred.weight[4 * new : 4 * new + 4] = old_box.bbox_pred.weight[
                4 * old : 4 * old + 4
            ]
            new_box.bbox_pred.bias[4 * new : 4 * new + 4] = old_box.bbox_pred.bias[
                4 * old : 4 * old + 4
            ]
            new_logits.weight[new] = old_logits.weight[old]
            new_logits.bias[new] = old_logits.bias[old]
    heads.box_predictor = new_box
    heads.mask_predictor.mask_fcn_logits = new_logits
    return len(pairs) - 1


def finetune_model(plan: FinetunePlan, min_size: int, max_size: int) -> nn.Module:
    """The checkpoint's model, heads extended to ``plan.class_names``, in training mode at the given size."""
    model, _card = load_checkpoint(plan.checkpoint, allow_random=True)
    if plan.class_names != plan.old_names:
        extend_heads(model, plan.old_names, plan.class_names)
    model.transform.min_size = (min_size,)
    model.transform.max_size = max_size
    model.registry_info = {
        "architecture": plan.architecture,
        "num_classes": len(plan.class_names) + 1,
        "weights": "trained",
        "init": str(plan.checkpoint),
    }
    return model.train()


def annotation_summary(folder: str | Path | None, file: str | Path | None = None) -> dict[str, Any]:
    """What a model card records about the annotation file trained on: path, SHA-256, images and instances."""
    from fashionviewer.core.data.annotation_file import load_annotations
    from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME

    path = Path(file) if file else Path(folder or ".") / DEFAULT_FILE_NAME
    aset, _problems = load_annotations(path)
    annotated = [image for image in aset.images.values() if image.annotations]
    return {
        "file": str(path.resolve()),
        "sha256": sha256_file(path),
        "images": len(annotated),
        "instances": sum(len(image.annotations) for image in annotated),
    }


class RemapLabels(Dataset):
    """A detection dataset whose labels are moved onto a fine-tune's merged class list."""

    def __init__(self, dataset: Any, plan: FinetunePlan) -> None:
        self.dataset, self.plan = dataset, plan
        self.class_names, self.category_ids = plan.class_names, plan.category_ids
        self._map = torch.tensor(plan.label_map, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        image, target = self.dataset[index]
        target = dict(target)
        target["labels"] = self._map[target["labels"]]
        return image, target

    # coco_ground_truth, images, ... of the wrapped dataset
    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "plan", "_map"):
            raise AttributeError(name)
        return getattr(self.dataset, name)
