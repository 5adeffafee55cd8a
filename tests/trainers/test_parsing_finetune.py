"""Fine-tuning the parsing model (`fashion`) on a folder's annotations: classes by name, the user's photos as
targets, replay, the command line end to end, resume after a kill, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fashionviewer.core.data.annotation_file import load_annotations
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME
from fashionviewer.core.data.datasets.ccp import CCPDataset
from fashionviewer.core.data.imageio import load_image
from fashionviewer.core.data.masks import decode_mask
from fashionviewer.core.inference.families import load_model
from tests.fixtures.annotated_folder import write_annotated_folder
from trainers.parsing_data import IGNORE, normalize, pad_to, resize_labels, resize_photo
from trainers.parsing_finetune import (
    annotation_samples,
    branch_card,
    epoch_order,
    extend_head,
    instance_rule,
    plan_parsing_finetune,
    resolve_init,
    uses_branch,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ccp_photos(ccp_root):
    dataset = CCPDataset(ccp_root, "train", taxonomy="imaterialist", limit=4)
    return dataset.coco_ground_truth(), {entry.file_name: entry.path for entry in dataset.images}


def _folder(tmp_path: Path, ccp_photos, rename: dict[str, str] | None = None, done=True) -> Path:
    gt, photos = ccp_photos
    gt = json.loads(json.dumps(gt))
    for category in gt["categories"]:
        category["name"] = (rename or {}).get(category["name"], category["name"])
    write_annotated_folder(tmp_path / "photos", gt, photos, done=done)
    return tmp_path / "photos"


def test_the_plan_matches_classes_by_name_and_adds_new_ones_before_the_body_channels():
    checkpoint = resolve_init("fashion")
    plan = plan_parsing_finetune(checkpoint, ["shoe", "my scarf", "T-shirt/top"], [23, 1, 2])
    assert plan.added == ["my scarf", "T-shirt/top"]
    assert plan.class_names[-2:] == ["my scarf", "T-shirt/top"] and plan.num_categories == 48
    assert plan.channels[0] == "background" and plan.channels[-2:] == ["skin", "hair"]
    assert plan.channels[1:49] == plan.class_names
    # kept classes keep the model's ids; a new class keeps the folder's id unless the model uses it
    assert plan.category_ids[:46] == list(range(46)) and plan.category_ids[46:] == [46, 47]
    assert plan.channel_of_name["shoe"] == plan.class_names.index("shoe") + 1
    assert [plan.channels[i] for i in plan.old_to_new()] == plan.old_channels


def test_a_mask_rcnn_cannot_be_fine_tuned_as_a_parsing_model():
    from fashionviewer.core.base.errors import FashionViewerError

    with pytest.raises(FashionViewerError, match="not a parsing model"):
        plan_parsing_finetune(resolve_init("demo"), ["shoe"], [1])


def test_extending_the_head_keeps_what_the_model_predicts_for_its_classes(ccp_photos):
    _gt, photos = ccp_photos
    model, _card = load_model(resolve_init("fashion"))
    model.eval()
    plan = plan_parsing_finetune(resolve_init("fashion"), ["my scarf"], [7])
    x = pad_to(normalize(resize_photo(load_image(next(iter(photos.values()))), 224).float() / 255))[
        None
    ]
    with torch.inference_mode():
        before = model(x)
        assert extend_head(model, plan.old_channels, plan.channels) == len(plan.old_channels)
        after = model(x)
    assert after.shape[1] == before.shape[1] + 1
    assert torch.equal(after[:, plan.old_to_new()], before)
    added = plan.channel_of_name["my scarf"]
    assert (after.argmax(1) != added).all()  # a new class wins nowhere before training


def test_the_folders_photos_become_targets_done_images_teach_background(ccp_photos, tmp_path):
    gt, photos = ccp_photos
    names = sorted(photos)
    folder = _folder(tmp_path, ccp_photos, done=names[:2])
    path = folder / DEFAULT_FILE_NAME
    data = json.loads(path.read_text())
    # the third image: done with nothing on it (a negative); the fourth: annotated, not done
    third = next(i["id"] for i in data["images"] if i["file_name"] == names[2])
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != third]
    for image in data["images"]:
        image["done"] = image["file_name"] in names[:3]
    path.write_text(json.dumps(data))
    aset, problems = load_annotations(path)
    assert not problems
    plan = plan_parsing_finetune(
        resolve_init("fashion"),
        [c["name"] for c in aset.categories],
        [c["id"] for c in aset.categories],
    )
    samples = annotation_samples(folder, aset, path, plan, 224, val_fraction=0.0)
    assert (samples.images, samples.negatives, samples.partial) == (4, 1, 1) and not samples.val
    by_id = {s.image_id: s for s in samples.train}
    negative = by_id[third].labels
    assert torch.all(negative == 0)  # done and empty: all background (no body model given)
    partial = by_id[next(i["id"] for i in data["images"] if i["file_name"] == names[3])].labels
    assert (partial == IGNORE).any() and (partial != IGNORE).any() and not (partial == 0).any()
    done_id = next(i["id"] for i in data["images"] if i["file_name"] == names[0])
    done = by_id[done_id].labels
    assert not (done == IGNORE).any() and (done == 0).any() and (done > 0).any()
    # each instance's class is painted where its mask is (compared at the training width)
    ann = next(a for a in data["annotations"] if a["image_id"] == done_id)
    mask = resize_labels(decode_mask(ann["segmentation"]), 224).numpy() > 0
    channel = plan.channel_of_name[aset.category_name(ann["category_id"])]
    assert np.mean(done.numpy()[mask] == channel) > 0.5


def test_scenes_with_a_class_twice_are_scored_per_item_by_borders_photos_per_class(
    ccp_photos, tmp_path
):
    photos, _ = load_annotations(_folder(tmp_path, ccp_photos) / DEFAULT_FILE_NAME)
    assert instance_rule(photos, "auto", {}) == "per_class"  # CCP: one instance per class
    assert instance_rule(photos, "auto", {"instances": "components"}) == "components"  # kept
    folder = _scenes_folder(tmp_path, 20)
    scenes, _ = load_annotations(folder / DEFAULT_FILE_NAME)
    assert instance_rule(scenes, "auto", {}) == "borders"
    assert instance_rule(scenes, "per_class", {}) == "per_class"  # asked for


def test_item_borders_are_painted_where_annotated_items_touch(tmp_path):
    """With the borders rule the plan gains the item border channel after the classes, and a scene's
    labels take it in a band along every seam between two of its items, never at an item's outer edge."""
    from fashionviewer.core.models.parsing import ITEM_BORDER
    from trainers.parsing_finetune import check_annotation_file, item_borders

    folder = _scenes_folder(tmp_path, 6)
    path, aset = check_annotation_file(folder, None)
    names = [str(c["name"]) for c in sorted(aset.categories, key=lambda c: int(c["id"]))]
    plain = plan_parsing_finetune(resolve_init("fashion"), names, list(range(len(names))))
    assert plain.border_channel is None and plain.new_channels == plain.added
    plan = plan_parsing_finetune(
        resolve_init("fashion"), names, list(range(len(names))), borders=True
    )
    assert plan.channels[plan.num_categories + 1] == ITEM_BORDER == plan.new_channels[-1]
    assert plan.channels[-2:] == ["skin", "hair"] and plan.border_channel == plan.num_categories + 1
    samples = annotation_samples(folder, aset, path, plan, 224, val_fraction=0)
    assert len(samples.train) == 6
    banded = 0
    records = sorted(aset.images.values(), key=lambda r: r.file_name)
    for sample, rec in zip(samples.train, records, strict=True):
        band = (sample.labels == plan.border_channel).numpy()
        # rebuilt from the annotation file: the band lies on item pixels next to another item
        items = np.zeros((rec.height, rec.width), np.int32)
        masks = sorted((a.mask() for a in rec.annotations), key=lambda m: -int(m.sum()))
        for k, mask in enumerate(masks, 1):
            items[mask.astype(bool)] = k
        small = (
            torch.nn.functional.interpolate(
                torch.from_numpy(items).float()[None, None], size=band.shape, mode="nearest"
            )[0, 0]
            .int()
            .numpy()
        )
        if len(masks) > 1:
            assert np.array_equal(band, item_borders(small))
        assert not band[small == 0].any()
        banded += int(band.sum() > 0)
    assert banded >= 2  # scenes with touching items have bands


def test_each_epoch_holds_every_user_photo_once_and_a_share_of_replay():
    order = epoch_order(60, 700, 0.4, epoch=3, seed=0)
    assert sorted(i for i in order if i < 60) == list(range(60))
    assert len([i for i in order if i >= 60]) == 40 and len(set(order)) == len(order)
    assert (
        order
        == epoch_order(60, 700, 0.4, epoch=3, seed=0)
        != epoch_order(60, 700, 0.4, epoch=4, seed=0)
    )
    assert epoch_order(10, 0, 0.4, epoch=1, seed=0) == epoch_order(10, 5, 0.0, epoch=1, seed=0)


def _trainer(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "trainers.parsing", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        **kwargs,
    )


@pytest.mark.slow
def test_fine_tune_adds_a_class_and_the_result_predicts(ccp_photos, tmp_path):
    folder = _folder(tmp_path, ccp_photos, rename={"shoe": "my shoe"})
    out = tmp_path / "out"
    result = _trainer(
        "--dataset",
        "annotations",
        "--data-path",
        str(folder),
        "--init-from",
        "fashion",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--limit",
        "8",
        "--threads",
        "1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((out / "model.json").read_text())
    assert card["fine_tuned_from"]["classes_added"] == ["my shoe"]
    assert card["class_names"][-1] == "my shoe" and card["parsing_channels"][-3:] == [
        "my shoe",
        "skin",
        "hair",
    ]
    assert card["annotations"]["images"] == 4 and card["annotations"]["sha256"]
    assert card["instances"] == "per_class"  # CCP photos: one instance per class
    assert card["dataset"]["replay_images"] == 8 and card["epochs"] == 1
    from fashionviewer.core.inference.families import load_predictor

    predictor = load_predictor(out / "model.pt")
    assert predictor.class_names[-1] == "my shoe"
    photo = load_image(folder / sorted(ccp_photos[1])[0])
    prediction = predictor.predict(photo)
    assert prediction.instances and all(0 <= i.label <= 47 for i in prediction.instances)


def _scenes_folder(tmp_path: Path, count: int) -> Path:
    from fashionviewer.core.data.datasets.fmnist_scenes import generate_scenes

    generate_scenes(tmp_path / "scenes", count, 0, seed=0)
    gt = json.loads((tmp_path / "scenes" / "annotations" / "instances_train.json").read_text())
    folder = tmp_path / "scenes" / "train"
    write_annotated_folder(
        folder, gt, {i["file_name"]: folder / i["file_name"] for i in gt["images"]}
    )
    return folder


def test_added_classes_get_a_branch_only_when_asked():
    checkpoint = resolve_init("fashion")
    plan = plan_parsing_finetune(checkpoint, ["T-shirt/top", "Trouser", "Bag"], [1, 2, 9])
    assert uses_branch(plan, "branch") and not uses_branch(plan, "extend")
    plan = plan_parsing_finetune(checkpoint, ["shoe"], [23])
    assert not uses_branch(plan, "branch")  # nothing added: nothing to branch


def test_the_card_records_the_branch_the_model_has_a_start_model_s_one_included():
    from fashionviewer.core.models.parsing import ParsingNet

    channels = ["background", "a", "new", "skin", "hair"]
    model = ParsingNet(4)
    assert branch_card(model, channels) is None
    model.add_branch(1, insert_at=2)  # made now, or loaded with the start model: the same record
    assert branch_card(model, channels) == {"channels": ["new"], "insert_at": 2}


@pytest.mark.slow
def test_fine_tune_on_scenes_trains_a_branch_and_keeps_the_start_model_s_weights(tmp_path):
    folder = _scenes_folder(tmp_path, 12)
    out = tmp_path / "out"
    result = _trainer(
        "--dataset", "annotations", "--data-path", str(folder), "--init-from", "fashion",
        "--out", str(out), "--epochs", "1", "--limit", "4", "--threads", "1", "--new-classes", "branch",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "a decoder branch of their own" in result.stderr
    card = json.loads((out / "model.json").read_text())
    added = card["fine_tuned_from"]["classes_added"]
    assert len(added) >= 5
    assert card["instances"] == "borders"  # scenes show a class twice
    assert card["parsing_branch"]["channels"] == [*added, "item border"]
    # ... the scenes' classes do; the model's own keep one instance per class, in their taxonomy
    assert card["instances_classes"] == added and card["taxonomy"] == "imaterialist"
    assert card["classes_beyond_taxonomy"] == added
    start, _ = load_model(resolve_init("fashion"))
    tuned, _ = load_model(out / "model.pt")
    base = start.state_dict()
    for name, tensor in tuned.state_dict().items():
        if not name.startswith("branch."):
            assert torch.equal(tensor, base[name]), name  # weights and BatchNorm statistics
    assert any(not torch.equal(v, start.state_dict()[k.removeprefix("branch.")])
               for k, v in tuned.state_dict().items()
               if k.startswith("branch.") and not k.startswith("branch.head"))  # fmt: skip
    from fashionviewer.core.inference.families import load_predictor

    predictor = load_predictor(out / "model.pt")
    prediction = predictor.predict(load_image(next(folder.glob("*.png"))))
    assert prediction.instances and predictor.instance_rule == "borders"
    # items are named by a classifier of cut-out items trained beside the network on the folder's items
    assert "item classifier" in result.stderr and card["rescorer"]["partial"] is True
    items_card = json.loads((out / "model_items.json").read_text())
    assert items_card["classes"] == added and items_card["training"]["items"] >= 20
    assert card["rescorer"]["weights_sha256"] == items_card["weights_sha256"]
    assert predictor.rescoring()["classifier"] == "model_items"
    assert "re-scored by model_items" in predictor.describe()
    # one short epoch teaches the added classes little: raised here so that they win, every offer kept
    everything = load_predictor(out / "model.pt", score_floor=0.0)
    with torch.no_grad():
        everything.model.branch.head.bias[: len(added)] += 20.0
    prediction = everything.predict(load_image(next(folder.glob("*.png"))))
    rescored = [i for i in prediction.instances if i.class_name in added]
    assert rescored and all(i.classifier["classes"] == added for i in rescored)
    # each item is offered under every folder class, and the classifier's probability ranks them
    one = [i for i in rescored if i.rle["counts"] == rescored[0].rle["counts"]]
    assert {i.class_name for i in one} == set(added)
    for inst in one:
        p = inst.classifier["probs"][added.index(inst.class_name)]
        assert inst.score == pytest.approx(inst.detector_score * p, abs=inst.detector_score * 1e-5)
    assert (
        predictor.settings()["rescorer"]
        and load_predictor(out / "model.pt", rescore=False).rescorer is None
    )
    # each item is redrawn from its box by the bundled interactive network; class regions are not
    assert (
        card["refine_items"]["model"] == "interactive" and card["refine_items"]["box_margin"] == 5
    )
    assert (
        predictor.settings()["refiner"] and "items redrawn by interactive" in predictor.describe()
    )
    photo = load_image(sorted(folder.glob("*.png"))[1])
    redrawn, plain = (
        load_predictor(out / "model.pt", score_floor=0.0, rescore=False) for _ in "ab"
    )
    plain.refiner = None
    for each in (redrawn, plain):
        with torch.no_grad():
            each.model.branch.head.bias[: len(added)] += 20.0
    with_boxes, without = redrawn.predict(photo), plain.predict(photo)
    assert [i.class_name for i in with_boxes.instances] == [i.class_name for i in without.instances]
    changed = 0
    for a, b in zip(with_boxes.instances, without.instances, strict=True):
        refined = redrawn.refiner.refine(photo, b.mask())
        if b.class_name in added:  # items (an item's best class may be one of the model's own too)
            assert np.array_equal(a.mask(), refined), a.class_name
        else:
            assert np.array_equal(a.mask(), b.mask()) or np.array_equal(a.mask(), refined)
        changed += not np.array_equal(a.mask(), b.mask())
    assert changed > 0
    # without the interactive network's file the masks are the network's own, said in the log
    missing = json.loads((out / "model.json").read_text())
    missing["refine_items"]["model"] = "no-such-network"
    (out / "model.json").write_text(json.dumps(missing))
    assert load_predictor(out / "model.pt").refiner is None
    # exported for shipping, the item classifier goes with it
    shipped = tmp_path / "shipped"
    exported = _trainer("--export", str(out / "model.pt"), "--out", str(shipped), "--name", "mine")
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert load_predictor(shipped / "mine.pt").rescoring()["classifier"] == "mine_items"


@pytest.mark.slow
def test_fine_tune_under_torchrun_two_processes(ccp_photos, tmp_path):
    """Two gloo processes share the folder's photos; resuming continues with both."""
    folder = _folder(tmp_path, ccp_photos)
    out = tmp_path / "out"

    def torchrun(epochs: str, *extra: str) -> None:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "trainers.parsing", "--dataset", "annotations", "--data-path", str(folder),
            "--init-from", "fashion", "--out", str(out), "--epochs", epochs,
            "--steps-per-epoch", "2", "--batch-size", "1", "--replay-data", "none", *extra,
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        result = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stderr[-3000:]

    torchrun("1")
    card = json.loads((out / "model.json").read_text())
    assert card["training"]["world_size"] == 2 and card["epochs"] == 1
    torchrun("2", "--resume", "auto")
    card = json.loads((out / "model.json").read_text())
    assert card["epochs"] == 2 and [row["epoch"] for row in card["history"]] == [1, 2]
    load_model(out / "model.pt")  # the weights read back against the card


@pytest.mark.slow
def test_a_killed_fine_tune_resumes_where_it_stopped(ccp_photos, tmp_path):
    folder = _folder(tmp_path, ccp_photos)
    out = tmp_path / "out"
    args = [
        "-m",
        "trainers.parsing",
        "--dataset",
        "annotations",
        "--data-path",
        str(folder),
        "--init-from",
        "fashion",
        "--out",
        str(out),
        "--epochs",
        "3",
        "--limit",
        "4",
        "--threads",
        "1",
        "--events",
        "-",
    ]
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for line in process.stdout:
            if json.loads(line).get("event") == "epoch":
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    first = torch.load(out / "training_state.pt", weights_only=False)["history"]
    assert [r["epoch"] for r in first] == [1]
    time.sleep(0.1)
    result = _trainer(*args[2:-2], "--resume", "auto")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stderr
    history = json.loads((out / "model.json").read_text())["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3] and history[0] == first[0]


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "missing-image",
        "wrong-size-mask",
        "empty-class-name",
        "reserved-name",
        "unknown-items-init",
        "unwritable",
    ],
)
def test_bad_input_is_one_error_line_and_nothing_is_written(case, ccp_photos, tmp_path):
    folder = _folder(tmp_path, ccp_photos)
    path = folder / DEFAULT_FILE_NAME
    data = json.loads(path.read_text())
    out = tmp_path / "out"
    expected = {
        "empty": DEFAULT_FILE_NAME,
        "missing-image": "not found",
        "wrong-size-mask": "does not match the image size",
        "empty-class-name": "empty name",
        "reserved-name": "is named 'item border'",
        "unknown-items-init": "no-such-classifier",
        "unwritable": "writ",
    }[case]
    extra = ["--items-init", "no-such-classifier"] if case == "unknown-items-init" else []
    if case == "empty":
        path.write_text("")
    elif case == "missing-image":
        (folder / data["images"][1]["file_name"]).unlink()
    elif case == "wrong-size-mask":
        from fashionviewer.core.data.masks import encode_mask

        data["annotations"][0]["segmentation"] = encode_mask(np.ones((10, 10), np.uint8))
        path.write_text(json.dumps(data))
    elif case == "empty-class-name":
        data["categories"][0]["name"] = " "
        path.write_text(json.dumps(data))
    elif case == "reserved-name":
        data["categories"][0]["name"] = "item border"
        path.write_text(json.dumps(data))
    elif case == "unwritable":
        out.write_text("a file where the output folder should be")
    result = _trainer(
        "--dataset", "annotations", "--data-path", str(folder), "--out", str(out), "--epochs", "1",
        *extra,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not out.is_dir()


def test_the_item_classifier_learns_the_folder_s_cut_out_items_and_a_resume_keeps_it(tmp_path):
    from types import SimpleNamespace

    from fashionviewer.core.data.overlay import rasterize_mask
    from fashionviewer.core.models.classifier import cnn_input, load_classifier, preprocess_crop
    from trainers import parsing_items
    from trainers.parsing_finetune import check_annotation_file

    folder = _scenes_folder(tmp_path, 10)
    path, aset = check_annotation_file(folder, None)
    classes = sorted(str(c["name"]) for c in aset.categories)
    files = sorted(aset.images)
    items, labels = parsing_items.folder_items(folder, aset, files, classes)
    count = sum(len(aset.images[f].annotations) for f in files)
    assert items.shape == (count, 28, 28) and items.dtype == np.uint8 and len(labels) == count
    # the first item is its annotation's mask cut out as the re-scorer cuts a predicted one
    rec = aset.images[files[0]]
    first = rec.annotations[0]
    expected = cnn_input(load_image(folder / files[0]), rasterize_mask(first.mask().astype(bool)),
                         preprocess_crop)  # fmt: skip
    assert np.array_equal(items[0], expected)
    assert classes[labels[0]] == aset.category_name(first.category_id)

    out = tmp_path / "out"
    out.mkdir()
    sha = "0" * 64
    spec = parsing_items.train_item_classifier(items, labels, classes, out, seed=0,
                                               annotations_sha256=sha, epochs=2)  # fmt: skip
    classifier = load_classifier(out / "model_items.pt")
    assert list(classifier.classes) == classes and spec["partial"] and spec["hflip"]
    assert classifier.predict(items[:3]).shape == (3, len(classes))
    # a resumed fine-tune on the same file keeps it; another file trains a new one
    plan = SimpleNamespace(class_names=["top", *classes])
    setup = SimpleNamespace(plan=plan, folder_classes=classes, aset=aset,
                            card_extra={"annotations": {"sha256": sha}},
                            user=SimpleNamespace(train=[SimpleNamespace(image_id=aset.images[f].image_id)
                                                        for f in files]))  # fmt: skip
    before = (out / "model_items.pt").stat().st_mtime_ns
    assert parsing_items.item_rescorer(setup, str(folder), out, 0) == spec
    assert (out / "model_items.pt").stat().st_mtime_ns == before
    setup.card_extra["annotations"]["sha256"] = "1" * 64
    parsing_items.START_EPOCHS, saved = 1, parsing_items.START_EPOCHS
    try:
        again = parsing_items.item_rescorer(setup, str(folder), out, 0)
    finally:
        parsing_items.START_EPOCHS = saved
    assert again is not None and (out / "model_items.pt").stat().st_mtime_ns != before
    # the scenes' classes are Fashion-MNIST's: auto starts from the first bundled classifier knowing them
    trained = json.loads((out / "model_items.json").read_text())
    assert trained["training"]["init"].startswith("fvnet") and trained["training"]["epochs"] == 1
    assert trained["training"]["classes_from_init"] == classes
    # the same file from another start is trained again too
    before = (out / "model_items.pt").stat().st_mtime_ns
    parsing_items.ITEM_EPOCHS, saved = 1, parsing_items.ITEM_EPOCHS
    try:
        scratch = parsing_items.item_rescorer(setup, str(folder), out, 0, "scratch")
    finally:
        parsing_items.ITEM_EPOCHS = saved
    assert scratch is not None and (out / "model_items.pt").stat().st_mtime_ns != before
    assert json.loads((out / "model_items.json").read_text())["training"]["init"] == "random"


def test_the_item_classifier_starts_from_the_bundled_classifier_that_knows_the_folder_s_classes():
    from fashionviewer.core.models.classifier import load_classifier
    from trainers import parsing_items

    fvnet = load_classifier("fvnet")
    classes = ["Trouser", "wide-brim hat", "Sneaker"]
    start = parsing_items.start_classifier("auto", classes)
    assert start is not None and start.name == "fvnet"  # the first bundled one sharing a class
    model = parsing_items._started_model(start, classes).eval()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        new, old = model(x), fvnet.model(x)
    assert new.shape == (5, 3)
    # the rows of the classes it knows are its own; the new class's row is new
    assert torch.allclose(new[:, 0], old[:, fvnet.classes.index("Trouser")], atol=1e-5)
    assert torch.allclose(new[:, 2], old[:, fvnet.classes.index("Sneaker")], atol=1e-5)
    assert not any(torch.allclose(new[:, 1], old[:, k], atol=1e-3) for k in range(10))
    assert parsing_items.start_classifier("auto", ["shirt, blouse", "belt"]) is None  # none shared
    assert parsing_items.start_classifier("scratch", classes) is None
    assert parsing_items.start_classifier("cnn1", classes).name == "cnn1"


@pytest.mark.slow
def test_an_item_classifier_of_more_than_ten_classes_keeps_what_its_start_knew(fmnist, tmp_path):
    from fashionviewer.core.data.fmnist import CLASSES
    from fashionviewer.core.models.classifier import load_classifier
    from trainers import parsing_items

    # a folder of the ten Fashion-MNIST classes and two more (their items: upside-down bags and sandals)
    classes = [*CLASSES, "upside-down bag", "upside-down sandal"]
    images, labels = fmnist.test_images[:300], fmnist.test_labels[:300].astype(np.int64)
    bags = fmnist.test_images[fmnist.test_labels == 8][:20, ::-1]
    sandals = fmnist.test_images[fmnist.test_labels == 5][:20, ::-1]
    items = np.ascontiguousarray(np.concatenate([images, bags, sandals]))
    item_labels = np.concatenate([labels, np.full(20, 10), np.full(20, 11)])
    start = parsing_items.start_classifier("auto", classes)
    parsing_items.train_item_classifier(items, item_labels, classes, tmp_path, seed=0, start=start)
    classifier = load_classifier(tmp_path / "model_items.pt")
    assert classifier.classes == tuple(classes)
    held_out = fmnist.test_images[5000:6000]
    probs = classifier.predict(held_out)
    assert probs.shape == (1000, 12)
    # 340 items alone teach a classifier far less than the 60,000 images its start was trained on
    accuracy = float((probs.argmax(1) == fmnist.test_labels[5000:6000]).mean())
    assert accuracy >= 0.85, accuracy
    card = json.loads((tmp_path / "model_items.json").read_text())
    assert card["training"]["classes_added"] == classes[10:]
    # the new rows learnt from 20 items each: held-out upside-down bags are named so (0.5 measured; a
    # row that learnt nothing names none), upright bags are bags
    bags = fmnist.test_images[fmnist.test_labels == 8][100:140]
    named = classifier.predict(np.ascontiguousarray(bags[:, ::-1])).argmax(1)
    assert (named == 10).mean() >= 0.3, named
    assert (classifier.predict(bags).argmax(1) == 8).mean() >= 0.8
