"""Fine-tune a trained parsing model (``fashion``) on a photo folder's annotations.

``python -m trainers.parsing --dataset annotations --data-path FOLDER --init-from fashion --out OUT``
starts from the model's weights and class list (:func:`plan_parsing_finetune`):

* the folder's classes are matched to the model's by name; classes the model lacks become new output
  channels, inserted after its garment categories (so labels 1..K stay contiguous) and before its
  training-only body channels; every kept channel's row of the classifier is copied by name, so a kept
  class predicts exactly as before the first step (:func:`extend_head`);
* the user's photos become per-pixel targets (:func:`annotation_samples`): each instance's mask paints
  its class, smaller instances on top of larger ones. An image marked done teaches that everything
  else is background (where the start model sees skin or hair, those body channels: user files do not
  label the body, and calling it background would fight the replayed photos); an annotated image not
  marked done only teaches its instances (the rest is ignored), and an image with neither is not used;
* it does not forget: each epoch replays photos of the model's own training data (``--replay-data``,
  by default the Clothing Co-Parsing photos when present), ``--replay-share`` of every batch, so the
  user's photos weigh more (:func:`epoch_order`);
* classes the model lacks extend its head (their rows added), or, with ``--new-classes branch``, get a
  decoder branch of their own (``ParsingNet.add_branch``) while the start model stays frozen, its BatchNorm
  statistics included, so its own classes predict exactly as before (:func:`uses_branch`);
* what one predicted instance is follows the folder (:func:`instance_rule`, ``--instances``): all pixels of
  a class, as in CCP's photos, or, when its images often show a class twice (scenes), each item: the model
  then also learns an item border channel from the folder's masks (:func:`item_borders`), along which
  touching items split, and a classifier of cut-out items names them (``trainers.parsing_items``).

The loss keeps the start model's balance: its card's class weights raised to ``1 - prior_correction``
(the share of the prior shift the shipped model did not have folded out), 1 for new classes.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from fashionviewer.core.base.errors import DataError, FashionViewerError
from fashionviewer.core.base.paths import ccp_dir, sha256_file
from fashionviewer.core.data.annotation_file import load_annotations
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME
from fashionviewer.core.data.datasets.base import seeded_split
from fashionviewer.core.data.imageio import load_image
from fashionviewer.core.data.taxonomy import BODY_LABELS
from fashionviewer.core.models.checkpoint import card_category_ids, read_card
from fashionviewer.core.models.parsing import ITEM_BORDER, PARSING_CARD_FORMAT, ParsingNet

from .parsing_data import IGNORE, Sample, load_split, normalize, pad_to, resize_labels, resize_photo

log = logging.getLogger("trainers.parsing")

DEFAULT_INIT = "fashion"


@dataclass
class ParsingFinetunePlan:
    """The start checkpoint, the merged channel list, and how the folder's classes map onto it."""

    checkpoint: Path
    card: dict[str, Any]
    old_channels: list[str]
    # background, the model's categories, the added ones, then its body channels
    channels: list[str]
    class_names: list[str]  # labels 1..K: channels[1..K]
    category_ids: list[int]
    added: list[str] = field(default_factory=list)
    channel_of_name: dict[str, int] = field(default_factory=dict)

    @property
    def num_categories(self) -> int:
        return len(self.class_names)

    @property
    def border_channel(self) -> int | None:
        """The ``ITEM_BORDER`` channel's index (None: the model learns no item borders)."""
        return self.channels.index(ITEM_BORDER) if ITEM_BORDER in self.channels else None

    @property
    def new_channels(self) -> list[str]:
        """Channels the start model lacks, in order: the added classes, then the item border when new."""
        return [name for name in self.channels if name not in self.old_channels]

    def old_to_new(self) -> list[int]:
        """Channel index in the start model -> channel index after the merge."""
        return [self.channels.index(name) for name in self.old_channels]

    def card_entry(self) -> dict[str, Any]:
        return {
            "checkpoint": str(self.checkpoint),
            "sha256": sha256_file(self.checkpoint),
            "classes_kept": len(self.class_names) - len(self.added),
            "classes_added": list(self.added),
        }


def resolve_init(name_or_path: str) -> Path:
    """The weights file of ``--init-from``: a bundled model name (``fashion``) or a checkpoint path."""
    from fashionviewer.core.inference.families import resolve_model_path

    path = resolve_model_path(name_or_path)
    if not path.is_file():
        raise FashionViewerError(f"--init-from {name_or_path}: {path} not found")
    return path


def plan_parsing_finetune(
    checkpoint: str | Path,
    dataset_names: Sequence[str],
    dataset_category_ids: Sequence[int],
    borders: bool = False,
) -> ParsingFinetunePlan:
    """The channel list a fine-tune of parsing ``checkpoint`` on classes ``dataset_names`` trains.

    Kept classes keep the model's category ids; an added class keeps the folder's id unless the model
    uses it, then takes the next free one. With ``borders`` (or a start model that has one) the
    ``ITEM_BORDER`` channel follows the classes."""

    checkpoint = Path(checkpoint).with_suffix(".pt")
    card = read_card(checkpoint)
    if card.get("format") != PARSING_CARD_FORMAT:
        raise FashionViewerError(
            f"{checkpoint.with_suffix('.json')}: a {card.get('architecture')} model is not a "
            "parsing model; use trainers.maskrcnn --init-from for it"
        )
    old_channels = [str(c) for c in card["parsing_channels"]]
    old_names = [str(n) for n in card["class_names"]]
    if old_channels[1 : len(old_names) + 1] != old_names:
        raise FashionViewerError(
            f"{checkpoint.with_suffix('.json')}: parsing_channels do not start with "
            "background and the class names"
        )
    body = [c for c in old_channels[len(old_names) + 1 :] if c != ITEM_BORDER]
    border = [ITEM_BORDER] if borders or ITEM_BORDER in old_channels else []
    added = [n for n in dict.fromkeys(dataset_names) if n not in old_names and n not in body]
    if added and card.get("parsing_branch"):
        raise FashionViewerError(
            f"{checkpoint.with_suffix('.json')}: this model already added classes in a new domain "
            f"({', '.join(card['parsing_branch']['channels'])}); it cannot add {added[0]!r} too: "
            "fine-tune the bundled model on a folder with all of them"
        )
    if border and ITEM_BORDER not in old_channels and card.get("parsing_branch"):
        raise FashionViewerError(
            f"{checkpoint.with_suffix('.json')}: this model already added classes in a new domain; it "
            "cannot learn item borders too: fine-tune the bundled model with --instances borders"
        )
    names = old_names + added
    ids = list(card_category_ids(card))
    taken = set(ids)
    by_name = dict(zip(dataset_names, dataset_category_ids, strict=False))
    for name in added:
        wanted = int(by_name[name])
        if wanted in taken:
            wanted = max(taken) + 1
        taken.add(wanted)
        ids.append(wanted)
    channels = ["background", *names, *border, *body]
    return ParsingFinetunePlan(
        checkpoint,
        card,
        old_channels,
        channels,
        names,
        ids,
        added,
        {name: channels.index(name) for name in channels},
    )


def extend_head(model: ParsingNet, old_channels: Sequence[str], new_channels: Sequence[str]) -> int:
    """Give ``model`` an output channel per name of ``new_channels``; rows of names in both lists are
    copied, new rows start near zero with the mean existing bias. Returns how many rows were copied."""
    old: nn.Conv2d = model.head
    new = nn.Conv2d(old.in_channels, len(new_channels), 1).to(old.weight.device)
    copied = 0
    with torch.no_grad():
        nn.init.normal_(new.weight, std=0.01)
        new.bias.fill_(float(old.bias.mean()))
        for row, name in enumerate(new_channels):
            if name in old_channels:
                source = list(old_channels).index(name)
                new.weight[row] = old.weight[source]
                new.bias[row] = old.bias[source]
                copied += 1
    model.head = new
    return copied


# --------------------------------------------------------------------------- the folder's photos


@dataclass
class FolderSamples:
    """The folder's photos as training samples, and what was found on the way."""

    train: list[Any]
    val: list[Any]
    images: int
    instances: int
    negatives: int  # images marked done with no instance
    partial: int  # annotated images not marked done (only their instances teach)


def check_annotation_file(folder: str | Path, ann_file: str | Path | None) -> tuple[Path, Any]:
    """The annotation file and its set, or one-line errors for what a fine-tune cannot use."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: photo folder not found")
    path = Path(ann_file) if ann_file else folder / DEFAULT_FILE_NAME
    if not path.is_file():
        raise DataError(f"{path}: no annotation file (annotate some photos in the viewer first)")
    aset, problems = load_annotations(path)
    if problems:  # the viewer skips a bad record; training on a file with one would hide it
        first = problems[0].removeprefix(f"{path.name}: ").removesuffix("; skipped")
        more = f" (and {len(problems) - 1} more bad records)" if len(problems) > 1 else ""
        raise DataError(f"{path}: {first}{more}")
    for category in aset.categories:
        if not str(category.get("name", "")).strip():
            raise DataError(f"{path}: category id {category.get('id')} has an empty name")
        if str(category["name"]) == ITEM_BORDER:  # it would be trained as the border bands
            raise DataError(
                f"{path}: category id {category.get('id')} is named {ITEM_BORDER!r}, the name of the "
                "fine-tune's item border channel; rename the class"
            )
    used = [rec for rec in aset.images.values() if rec.annotations or rec.done]
    if not used:
        raise DataError(f"{path}: no annotated image and none marked done: nothing to learn from")
    missing = [rec.file_name for rec in used if not (folder / rec.file_name).is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DataError(f"{path}: image {missing[0]}{more} not found in {folder}")
    return path, aset


def annotation_samples(
    folder: str | Path,
    aset: Any,
    ann_path: Path,
    plan: ParsingFinetunePlan,
    width: int,
    body_model: nn.Module | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> FolderSamples:
    """Per-pixel training samples of the folder's used images (see the module docstring), split as the
    Mask R-CNN's annotations dataset splits them."""
    folder = Path(folder)
    name_of = {int(c["id"]): str(c["name"]) for c in aset.categories}
    used = sorted(name for name, rec in aset.images.items() if rec.annotations or rec.done)
    n_val = round(val_fraction * len(used))
    if val_fraction > 0 and len(used) >= 2:
        n_val = min(max(1, n_val), len(used) - 1)
    val_positions = set(seeded_split(used, "val", n_val, seed, ann_path.name))
    train, val = [], []
    instances = negatives = partial = 0
    for position, file_name in enumerate(used):
        rec = aset.images[file_name]
        image = load_image(folder / rec.file_name)
        height, width_px = image.shape[:2]
        labels = np.full((height, width_px), 0 if rec.done else IGNORE, dtype=np.uint8)
        masks = []
        for ann in rec.annotations:
            mask = ann.mask()
            if mask.shape != (height, width_px):
                raise DataError(
                    f"{ann_path}: annotation {ann.id} of {rec.file_name} has a {mask.shape[1]}x"
                    f"{mask.shape[0]} mask but the photo is {width_px}x{height}"
                )
            masks.append(
                (int(mask.sum()), mask.astype(bool), plan.channel_of_name[name_of[ann.category_id]])
            )
        # small ones stay visible
        items = np.zeros((height, width_px), dtype=np.int32)
        for item, (_area, mask, channel) in enumerate(sorted(masks, key=lambda m: -m[0]), 1):
            labels[mask] = channel
            items[mask] = item
        instances += len(masks)
        negatives += int(rec.done and not masks)
        partial += int(not rec.done and bool(masks))
        small_image = resize_photo(image, width)
        small_labels = resize_labels(labels, width)
        if plan.border_channel is not None and len(masks) > 1:
            # as the labels are resized (nearest), in float: more than 255 items stay apart
            small_items = torch.nn.functional.interpolate(
                torch.from_numpy(items.astype(np.float32))[None, None],
                size=tuple(small_labels.shape),
                mode="nearest",
            )[0, 0].numpy()
            small_labels[torch.from_numpy(item_borders(small_items))] = plan.border_channel
        if rec.done and body_model is not None:
            small_labels = _label_body(body_model, small_image, small_labels, plan)
        sample = Sample(small_image, small_labels, rec.image_id)
        (val if position in val_positions else train).append(sample)
    return FolderSamples(train, val, len(used), instances, negatives, partial)


# the bands are thin and few: at weight 1 a short fine-tune predicts them too rarely to cut items apart
BORDER_WEIGHT = 5.0
# px at the network's input scale: the band is twice this wide where two items meet
BORDER_RADIUS = 2


def item_borders(items: np.ndarray, radius: int = BORDER_RADIUS) -> np.ndarray:
    """Bool mask of the item pixels (``items`` > 0, one id per item) within ``radius`` px of another item:
    the bands the ``ITEM_BORDER`` channel learns, so that touching items split along them."""
    import cv2

    window = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    ids = items.astype(np.float32)
    highest = cv2.dilate(ids, window)
    lowest = cv2.erode(np.where(items > 0, ids, np.float32(np.inf)).astype(np.float32), window)
    return (items > 0) & ((highest > ids) | (lowest < ids))


def _label_body(
    model: nn.Module, image: Tensor, labels: Tensor, plan: ParsingFinetunePlan
) -> Tensor:
    """Background pixels where the start model sees skin or hair take that body channel."""
    body = [plan.old_channels.index(name) for name in BODY_LABELS if name in plan.old_channels]
    if not body:
        return labels
    model.eval()
    with torch.inference_mode():
        x = pad_to(normalize(image.float() / 255.0))
        winner = model(x[None])[0, :, : image.shape[-2], : image.shape[-1]].argmax(0)
    labels = labels.clone()
    for old_index in body:
        labels[(winner == old_index) & (labels == 0)] = plan.channels.index(
            plan.old_channels[old_index]
        )
    return labels


# --------------------------------------------------------------------------- replay and the epoch's order


def load_replay(
    root: str | None, plan: ParsingFinetunePlan, width: int, seed: int, limit: int | None
) -> list[Any]:
    """The start model's own training photos (CCP's train split) with labels moved onto the merged channels;
    an empty list, said in one line, when they are not here."""
    if str(root) == "none":
        log.info("replay: off (--replay-data none): fine-tuning on the folder's photos alone")
        return []
    found = Path(root) if root else ccp_dir()
    if found is None or not (found / "photos").is_dir():
        log.warning(
            "replay: the model's training photos were not found (%s); fine-tuning on the folder's photos "
            "alone, so classes it does not show may be forgotten",
            root or "../shared/data/ccp",
        )
        return []
    samples = load_split(str(found), "train", width, 100, seed, limit)
    lut = torch.full((256,), IGNORE, dtype=torch.uint8)
    lut[: len(plan.old_channels)] = torch.tensor(plan.old_to_new(), dtype=torch.uint8)
    log.info("replay: %d photos of %s, the start model's training data", len(samples), found)
    return [Sample(s.image, lut[s.labels.long()], s.image_id) for s in samples]


def epoch_order(
    n_user: int, n_replay: int, replay_share: float, epoch: int, seed: int
) -> list[int]:
    """Sample indices of one epoch: every user photo once, plus replay photos (indices from ``n_user`` on)
    so that they make ``replay_share`` of the epoch; shuffled. Deterministic per epoch (resumable)."""
    rng = np.random.default_rng(seed * 7919 + epoch)
    order = list(range(n_user))
    if n_replay and replay_share > 0:
        wanted = n_user * replay_share / max(1e-6, 1 - replay_share) if n_user else n_replay
        count = min(n_replay, max(1, math.ceil(wanted)))
        order += (n_user + rng.choice(n_replay, size=count, replace=False)).tolist()
    return [order[i] for i in rng.permutation(len(order))]


def loss_weights(plan: ParsingFinetunePlan) -> Tensor:
    """Cross-entropy weights over the merged channels (see the module docstring)."""
    card = plan.card
    old = card.get("training", {}).get("class_weights") or [1.0] * len(plan.old_channels)
    power = 1.0 - float(card.get("prior_correction") or 0.0)
    weights = torch.ones(len(plan.channels))
    for index, name in enumerate(plan.old_channels):
        weights[plan.channels.index(name)] = float(old[index]) ** power
    if plan.border_channel is not None:
        weights[plan.border_channel] = BORDER_WEIGHT
    return weights


# a folder whose images show one class twice this often is scored per connected part (scenes), not per class
REPEATED_CLASS_SHARE = 0.1


def instance_rule(aset: Any, requested: str, start_card: dict[str, Any]) -> str:
    """What one predicted instance is after the fine-tune (``core.models.parsing.INSTANCE_RULES``):
    ``requested`` unless ``auto``; ``auto`` is ``borders`` (each item as the learnt item borders cut it
    out: touching items of one class stay apart, which connected parts alone cannot do) when at least
    ``REPEATED_CLASS_SHARE`` of the annotated images have two instances of one class (CCP's photos never
    do: one instance per class), else the start model's rule."""
    if requested != "auto":
        return requested
    annotated = [rec for rec in aset.images.values() if rec.annotations]
    repeated = sum(
        len({a.category_id for a in rec.annotations}) < len(rec.annotations) for rec in annotated
    )
    if annotated and repeated >= REPEATED_CLASS_SHARE * len(annotated):
        return "borders"
    return str(start_card.get("instances") or "per_class")


def uses_branch(plan: ParsingFinetunePlan, requested: str) -> bool:
    """Whether the added classes get a decoder branch of their own (``--new-classes branch``: the start
    model frozen, so its classes predict exactly as before) rather than rows added to its head (``extend``,
    the default: the whole network learns; on benchmarks/finetune_loop.py's scenes it learnt at least as well
    and still kept the photos' AP)."""
    return bool(plan.added) and requested == "branch"


def branch_card(model: ParsingNet, channels: Sequence[str]) -> dict[str, Any] | None:
    """The card's ``parsing_branch`` for ``model``: the channels its branch predicts, and where (None: no
    branch). Read from the model, so a start model's branch is kept as well as a new one recorded."""
    if model.branch is None:
        return None
    at, count = model.branch.insert_at, model.branch.head.out_channels
    return {"channels": list(channels[at : at + count]), "insert_at": at}


# new classes' rows start from nothing: at the base rate they barely move in a short run
HEAD_LR_FACTOR = 10.0


@dataclass
class FinetuneSetup:
    """Everything trainers.parsing's loop needs for a fine-tune."""

    plan: ParsingFinetunePlan
    model: ParsingNet
    user: FolderSamples
    replay: list[Any]
    weights: Tensor
    ann_path: Path
    card_extra: dict[str, Any]
    branch: bool = False  # the added classes have a decoder branch of their own; the rest is frozen
    aset: Any = None  # the folder's annotation set
    folder_classes: list[str] = field(default_factory=list)

    @property
    def train(self) -> list[Any]:
        return self.user.train + self.replay

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """AdamW groups: when classes were added, the head learns ``HEAD_LR_FACTOR`` times faster, and only in
        the added rows: the kept classes' rows get no gradient, so the faster rate cannot make them forget."""
        if not self.plan.new_channels:
            return [{"params": list(self.model.parameters()), "lr": lr}]
        if self.branch:  # only the branch learns (its head, from nothing, faster)
            branch = self.model.branch
            assert branch is not None
            head = list(branch.head.parameters())
            rest = [p for p in branch.parameters() if all(p is not h for h in head)]
            return [{"params": rest, "lr": lr}, {"params": head, "lr": lr * HEAD_LR_FACTOR}]
        added = torch.tensor([name in self.plan.new_channels for name in self.plan.channels])
        for parameter in self.model.head.parameters():
            shape = (-1,) + (1,) * (parameter.dim() - 1)
            keep = added.to(parameter.device, parameter.dtype).view(shape)
            parameter.register_hook(lambda grad, keep=keep: grad * keep)
        head = list(self.model.head.parameters())
        rest = [p for p in self.model.parameters() if all(p is not h for h in head)]
        return [{"params": rest, "lr": lr}, {"params": head, "lr": lr * HEAD_LR_FACTOR}]


def prepare_finetune(args: argparse.Namespace) -> FinetuneSetup:
    """Check the folder and its annotation file, plan the classes, load the start model and the samples.
    Raises one-line errors before anything is written."""
    from fashionviewer.core.inference.families import load_model

    if not args.data_path:
        raise FashionViewerError(
            "--dataset annotations needs --data-path FOLDER (the annotated photo folder)"
        )
    ann_path, aset = check_annotation_file(args.data_path, args.annotations)
    checkpoint = resolve_init(args.init_from or DEFAULT_INIT)
    categories = sorted(aset.categories, key=lambda c: int(c["id"]))
    rule = instance_rule(aset, args.instances, read_card(checkpoint))
    plan = plan_parsing_finetune(
        checkpoint,
        [str(c["name"]) for c in categories],
        [int(c["id"]) for c in categories],
        borders=rule == "borders",
    )
    model, _card = load_model(checkpoint)
    args.image_width = int(plan.card.get("input", {}).get("width", args.image_width))
    user = annotation_samples(
        args.data_path,
        aset,
        ann_path,
        plan,
        args.image_width,
        body_model=model,
        val_fraction=args.annotations_val,
        seed=args.seed,
    )
    branch = uses_branch(plan, args.new_classes)
    if branch:  # the added classes and a new item border: contiguous, so one branch predicts them
        model.add_branch(len(plan.new_channels), plan.channels.index(plan.new_channels[0]))
        model.freeze_base()
    elif plan.new_channels:
        extend_head(model, plan.old_channels, plan.channels)
    replay = load_replay(args.replay_data, plan, args.image_width, args.seed, args.limit)
    log.info(
        "fine-tuning %s on %s: %d images (%d train, %d val), %d instances, %d marked done with none, "
        "%d partly annotated; classes added: %s%s; one instance: %s",
        checkpoint.name,
        ann_path,
        user.images,
        len(user.train),
        len(user.val),
        user.instances,
        user.negatives,
        user.partial,
        ", ".join(plan.added) or "none",
        " (a decoder branch of their own; the start model's classes frozen)" if branch else "",
        rule,
    )
    summary = {
        "file": str(ann_path.resolve()),
        "sha256": sha256_file(ann_path),
        "images": user.images,
        "instances": user.instances,
        "negatives": user.negatives,
        "partly_annotated": user.partial,
    }
    extra = {
        "class_names": plan.class_names,
        "category_ids": plan.category_ids,
        "parsing_channels": plan.channels,
        # the kept classes are still the start model's taxonomy; the added ones are named beside it
        "taxonomy": plan.card.get("taxonomy"),
        "classes_beyond_taxonomy": list(plan.added) if plan.card.get("taxonomy") else [],
        "domain": plan.card.get("domain", "photos"),
        "input": plan.card.get("input"),
        "test_time_augmentation": plan.card.get("test_time_augmentation"),
        "prior_correction": plan.card.get("prior_correction", 0.0),
        "instances": rule,
        # the folder's classes follow its convention; the model's others keep the start model's
        "instances_classes": (
            [str(c["name"]) for c in categories]
            if rule != (plan.card.get("instances") or "per_class")
            else plan.card.get("instances_classes")
        ),
        "parsing_branch": branch_card(model, plan.channels),
        "dataset": {
            "name": "annotations",
            "train_images": len(user.train),
            "val_images": len(user.val),
            "replay_images": len(replay),
            "replay_share": args.replay_share if replay else 0.0,
            "split": f"seeded split of the folder's used images: seed {args.seed}, "
            f"val fraction {args.annotations_val}",
        },
        "fine_tuned_from": plan.card_entry(),
        "annotations": summary,
    }
    return FinetuneSetup(
        plan,
        model,
        user,
        replay,
        loss_weights(plan),
        ann_path,
        extra,
        branch,
        aset,
        [str(c["name"]) for c in categories],
    )
