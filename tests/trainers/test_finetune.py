"""Fine-tuning from a checkpoint: the merged class list, category ids, and heads extended by class name
(kept classes give exactly the old logits, box deltas and mask logits; added ones are new rows)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.models.registry import get_model, save_checkpoint
from trainers.finetune import RemapLabels, finetune_model, plan_finetune


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    model = get_model("maskrcnn_mobilenet_v3_light", num_classes=4, weights=None, min_size=96)
    save_checkpoint(
        model, path, {"class_names": ["dress", "skirt", "top"], "category_ids": [5, 7, 9]}
    )
    return path


def test_plan_keeps_the_checkpoint_classes_then_adds_the_new_ones(checkpoint: Path) -> None:
    plan = plan_finetune(checkpoint, ["skirt", "belt", "dress"], [7, 9, 5])
    assert plan.class_names == ["dress", "skirt", "top", "belt"] and plan.added == ["belt"]
    # dataset label k -> merged label: skirt 2, belt 4, dress 1
    assert plan.label_map == [0, 2, 4, 1]
    # the dataset's ids where it names the class; the dataset gave 9 to 'belt', so 'top' gets a fresh id
    assert plan.category_ids[:2] == [5, 7] and plan.category_ids[3] == 9
    assert plan.category_ids[2] not in (5, 7, 9) and len(set(plan.category_ids)) == 4


def test_extended_heads_copy_kept_rows_by_name(checkpoint: Path) -> None:
    from fashionviewer.core.models.registry import load_checkpoint

    old, _ = load_checkpoint(checkpoint, allow_random=True)
    plan = plan_finetune(checkpoint, ["top", "belt"])
    model = finetune_model(plan, 96, 160).eval()
    assert model.roi_heads.box_predictor.cls_score.out_features == 5
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 5
    torch.manual_seed(1)
    features = torch.randn(3, old.roi_heads.box_predictor.cls_score.in_features)
    with torch.no_grad():
        old_scores, old_deltas = old.roi_heads.box_predictor(features)
        new_scores, new_deltas = model.roi_heads.box_predictor(features)
        mask_features = torch.randn(2, old.roi_heads.mask_predictor.conv5_mask.in_channels, 14, 14)
        old_masks = old.roi_heads.mask_predictor(mask_features)
        new_masks = model.roi_heads.mask_predictor(mask_features)
    for label in range(4):  # background and the three old classes sit at the same labels
        assert torch.equal(new_scores[:, label], old_scores[:, label])
        assert torch.equal(
            new_deltas[:, 4 * label : 4 * label + 4], old_deltas[:, 4 * label : 4 * label + 4]
        )
        assert torch.equal(new_masks[:, label], old_masks[:, label])
    assert not torch.allclose(new_scores[:, 4], old_scores[:, 3])  # 'belt' is a new row
    assert model.transform.min_size == (96,) and model.training is False


def test_remap_labels_moves_targets_onto_the_merged_list(checkpoint: Path) -> None:
    plan = plan_finetune(checkpoint, ["belt", "dress"])

    class Tiny:
        class_names, category_ids = ["belt", "dress"], [1, 2]

        def __len__(self) -> int:
            return 1

        def __getitem__(self, index: int):
            return torch.zeros(3, 4, 4), {"labels": torch.tensor([1, 2, 2])}

        def coco_ground_truth(self) -> dict:
            return {"images": []}

    wrapped = RemapLabels(Tiny(), plan)
    assert wrapped[0][1]["labels"].tolist() == [4, 1, 1]
    assert wrapped.class_names == [
        "dress",
        "skirt",
        "top",
        "belt",
    ] and wrapped.coco_ground_truth() == {"images": []}


def test_a_parsing_checkpoint_is_refused_in_one_line(tmp_path: Path) -> None:
    card = tmp_path / "parse.json"
    card.write_text(
        '{"architecture": "parsing_resunet", "num_classes": 3, "class_names": ["a", "b"]}'
    )
    with pytest.raises(FashionViewerError, match="cannot be fine-tuned as a Mask R-CNN"):
        plan_finetune(tmp_path / "parse.pt", ["a"])


def test_trainer_fine_tunes_on_a_folders_annotations(checkpoint: Path, tmp_path: Path) -> None:
    """trainers.maskrcnn --dataset annotations --init-from: 2 steps, heads extended by the file's new class,
    the card records the annotation file (SHA-256, images, instances) and the start checkpoint."""
    import numpy as np
    from PIL import Image

    from fashionviewer.core.base.paths import sha256_file
    from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME
    from fashionviewer.core.models.registry import load_checkpoint
    from fashionviewer.core.viewer.annotating import AnnotationEditor
    from trainers import maskrcnn

    folder = tmp_path / "photos"
    folder.mkdir()
    editor = AnnotationEditor(folder, classes=["dress", "skirt", "top"], autosave_delay=-1)
    rng = np.random.default_rng(0)
    for i in range(3):
        image = np.full((96, 128, 3), 230, np.uint8)
        mask = np.zeros((96, 128), bool)
        mask[20 + 5 * i : 70, 30 : 90 - 5 * i] = True
        image[mask] = rng.integers(20, 120, 3)
        Image.fromarray(image).save(folder / f"p{i}.png")
        editor.add(f"p{i}.png", 128, 96, mask, "skirt" if i else "belt")
    editor.save()
    annotation_file = folder / DEFAULT_FILE_NAME
    args = maskrcnn.get_args_parser().parse_args(
        [
            "--dataset",
            "annotations",
            "--data-path",
            str(folder),
            "--init-from",
            str(checkpoint),
            "--image-size",
            "96",
            "--batch-size",
            "1",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "2",
            "--val-steps",
            "-1",
            "--warmup-steps",
            "1",
            "--workers",
            "0",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    card = maskrcnn.main(args)
    assert (
        card["class_names"] == ["dress", "skirt", "top", "belt"]
        and card["architecture"] == "maskrcnn_mobilenet_v3_light"
    )
    assert card["training"]["annotations"] == {
        "file": str(annotation_file.resolve()),
        "sha256": sha256_file(annotation_file),
        "images": 3,
        "instances": 3,
    }
    assert card["training"]["fine_tuned_from"]["classes_added"] == ["belt"]
    assert card["history"][-1]["epoch"] == 1
    model, loaded = load_checkpoint(tmp_path / "run" / "model.pt")
    assert loaded["num_classes"] == 5 and model.roi_heads.box_predictor.cls_score.out_features == 5
