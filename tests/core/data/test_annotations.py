"""Annotations as data: the project file, bad records, exports read back through the project's loaders,
the annotations dataset, and the editor (undo/redo, autosave, a save killed with SIGKILL)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.annotation_file import load_annotations
from fashionviewer.core.data.annotations import AnnotationSet, categories_for
from fashionviewer.core.data.datasets import build_dataset
from fashionviewer.core.data.datasets.coco import CocoDataset, read_coco_ground_truth
from fashionviewer.core.data.datasets.imaterialist import IMaterialistDataset, read_imaterialist_csv
from fashionviewer.core.data.formats.classpng import read_class_png
from fashionviewer.core.data.formats.classpng import write_class_pngs as export_class_pngs
from fashionviewer.core.data.formats.coco import write_coco as export_coco
from fashionviewer.core.data.formats.imaterialist import write_csv as export_imaterialist_csv
from fashionviewer.core.data.masks import decode_mask, encode_mask, polygon_mask
from fashionviewer.core.data.predictions import Instance
from fashionviewer.core.data.taxonomy import imaterialist_names
from fashionviewer.core.viewer.annotating import AnnotationEditor

H, W = 48, 64


def blob(seed: int, height: int = H, width: int = W) -> np.ndarray:
    """A random but reproducible garment-like mask: a filled ellipse plus a rectangle."""
    rng = np.random.default_rng(seed)
    ys, xs = np.ogrid[:height, :width]
    cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    rx, ry = rng.uniform(0.08, 0.3) * width, rng.uniform(0.08, 0.3) * height
    mask = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
    x0, y0 = rng.integers(0, width - 8), rng.integers(0, height - 8)
    mask[y0 : y0 + 6, x0 : x0 + 7] = True
    return mask


def editor(folder: Path, classes=("shirt, blouse", "pants", "shoe"), **kwargs) -> AnnotationEditor:
    kwargs.setdefault("autosave_delay", -1)  # off unless a test wants it
    return AnnotationEditor(folder, classes=list(classes), **kwargs)


# --------------------------------------------------------------------------- file format


def test_round_trip_keeps_everything(tmp_path):
    ed = editor(tmp_path)
    inst = Instance((3.5, 4.0, 30.0, 40.0), 1, "shirt, blouse", 0.87, encode_mask(blob(1)))
    a = ed.accept_prediction("sub/a.jpg", W, H, inst, "fashion")
    b = ed.add("sub/a.jpg", W, H, blob(2), "pants")
    c = ed.add("b.png", W, H, blob(3), "a new class")  # added with the next free id
    ed.set_done("b.png")
    ed.save()
    aset, problems = load_annotations(ed.path)
    assert problems == []
    assert {c["name"]: c["id"] for c in aset.categories} == {
        "shirt, blouse": 0,
        "pants": 6,
        "shoe": 23,
        "a new class": 24,
    }
    anns = {x.id: x for x in aset.images["sub/a.jpg"].annotations}
    assert anns[a].source == "predicted" and anns[a].origin == {"model": "fashion", "score": 0.87}
    assert anns[a].box == (3.5, 4.0, 30.0, 40.0)
    assert np.array_equal(anns[a].mask(), blob(1)) and np.array_equal(anns[b].mask(), blob(2))
    assert anns[b].source == "drawn" and anns[b].box is None and anns[b].category_id == 6
    assert aset.images["b.png"].done and aset.images["b.png"].annotations[0].id == c
    assert aset.category_name(24) == "a new class" and aset.category_id("pants") == 6
    assert aset.provenance["models"] == ["fashion"] and "modified" in aset.provenance
    # the file is plain COCO: the project's COCO reader takes it as it is, with the same ids
    gt = read_coco_ground_truth(ed.path)
    assert sorted(c["id"] for c in gt["categories"]) == [0, 6, 23, 24]
    assert {a["category_id"] for a in gt["annotations"]} == {0, 6, 24}


def test_unknown_class_is_one_clear_line():
    aset = AnnotationSet(categories_for(["pants"]))
    with pytest.raises(
        FashionViewerError, match="'skirt' is not one of the annotation file's categories"
    ):
        aset.category_id("skirt")


@pytest.mark.parametrize("ids", [[0, 1, 2], [3, 10, 42]])
def test_dataset_own_category_ids_preserved(tmp_path, ids):
    """0-based and gapped ids written by another tool come back unchanged, through save too."""
    coco = {
        "images": [{"id": 7, "file_name": "x.jpg", "width": W, "height": H}],
        "categories": [{"id": i, "name": f"class{i}"} for i in ids],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": ids[-1],
                "iscrowd": 0,
                "segmentation": encode_mask(blob(5)),
            }
        ],
    }
    path = tmp_path / "annotations.fashionviewer.json"
    path.write_text(json.dumps(coco))
    ed = editor(tmp_path, classes=["ignored"])  # the file's categories win over the model's classes
    assert [c["id"] for c in ed.aset.categories] == ids
    ed.add("x.jpg", W, H, blob(6), f"class{ids[0]}")
    ed.save()
    data = json.loads(path.read_text())
    assert [c["id"] for c in data["categories"]] == ids
    assert [a["category_id"] for a in data["annotations"]] == [ids[-1], ids[0]]
    assert data["images"][0]["id"] == 7


def test_bad_records_are_named_rest_loads_and_file_kept_until_an_edit(tmp_path):
    good = {
        "id": 1,
        "image_id": 1,
        "category_id": 1,
        "segmentation": encode_mask(blob(1)),
        "source": "drawn",
    }
    coco = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": W, "height": H},
            {"id": 2, "file_name": "b.jpg", "width": -5, "height": H},
        ],
        "categories": [{"id": 1, "name": "shirt"}],
        "annotations": [
            good,
            {**good, "id": 2, "category_id": 9},
            {**good, "id": 3, "segmentation": {"size": [H, W], "counts": "#corrupt"}},
            {**good, "id": 4},
        ],
    }
    path = tmp_path / "annotations.fashionviewer.json"
    original = json.dumps(coco)
    path.write_text(original)
    aset, problems = load_annotations(path)
    assert [a.id for a in aset.images["a.jpg"].annotations] == [1, 4]
    assert len(problems) == 3
    assert problems[0].startswith(
        "annotations.fashionviewer.json: image 1 (id 2): size -5x48 must be positive; skipped with its annotations"
    )
    assert "annotation 1 (id 2): unknown category_id 9; skipped" in problems[1]
    assert "annotation 2 (id 3): segmentation" in problems[2]
    assert all("\n" not in p for p in problems)

    ed = editor(tmp_path, autosave_delay=0.05)
    assert ed.problems == problems
    time.sleep(0.3)
    assert path.read_text() == original  # opening never writes
    ed.flush()
    assert path.read_text() == original  # nothing to flush: no edit yet
    ed.delete("a.jpg", 4)
    ed.flush()
    assert json.loads(path.read_text())["annotations"][0]["id"] == 1
    # skipped records kept aside
    assert (tmp_path / "annotations.fashionviewer.json.bak").read_text() == original


def test_unreadable_file_is_reported_and_opens_read_only(tmp_path, capsys):
    path = tmp_path / "annotations.fashionviewer.json"
    path.write_text("{ not json")
    ed = editor(tmp_path)
    assert len(ed.problems) == 1 and "not valid JSON" in ed.problems[0] and ed.read_only
    assert capsys.readouterr().err.count("\n") == 1  # one line on stderr
    with pytest.raises(FashionViewerError, match="read-only"):
        ed.add("a.jpg", W, H, blob(1), "pants")
    with pytest.raises(FashionViewerError, match="read-only"):
        ed.save()
    ed.close()
    assert (
        path.read_text() == "{ not json"
        and not (tmp_path / "annotations.fashionviewer.json.bak").exists()
    )


# --------------------------------------------------------------------------- exports read back


def _set_with(classes, seeds_by_image) -> AnnotationSet:
    aset = AnnotationSet(categories_for(classes))
    next_id = 1
    from fashionviewer.core.data.annotations import Annotation

    for name, items in seeds_by_image.items():
        rec = aset.image(name, W, H)
        for seed, cls in items:
            rec.annotations.append(
                Annotation(next_id, aset.category_id(cls), encode_mask(blob(seed)), "drawn")
            )
            next_id += 1
    return aset


def test_coco_export_reads_back_through_the_coco_loader(tmp_path):
    aset = _set_with(["a", "b", "c"], {"one.jpg": [(1, "a"), (2, "c")], "two.jpg": [(3, "b")]})
    # gapped, 0-based
    aset.categories = [{"id": 0, "name": "a"}, {"id": 4, "name": "b"}, {"id": 9, "name": "c"}]
    for rec in aset.images.values():
        for ann in rec.annotations:
            ann.category_id = {1: 0, 2: 4, 3: 9}[ann.category_id]
    for name in aset.images:
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / name)
    export_coco(aset, tmp_path / "export.json")
    dataset = CocoDataset(tmp_path, "all", ann_file=tmp_path / "export.json", image_dir=tmp_path)
    assert dataset.category_ids == [0, 4, 9] and dataset.class_names == ["a", "b", "c"]
    gt = dataset.coco_ground_truth()
    got = {
        (img["file_name"], a["category_id"]): decode_mask(a["segmentation"])
        for img in gt["images"]
        for a in gt["annotations"]
        if a["image_id"] == img["id"]
    }
    want = {
        (name, ann.category_id): ann.mask()
        for name, rec in aset.images.items()
        for ann in rec.annotations
    }
    assert got.keys() == want.keys()
    assert all(np.array_equal(got[k], want[k]) for k in want)
    image, target = dataset[[e.file_name for e in dataset.images].index("one.jpg")]
    assert sorted(target["labels"].tolist()) == [1, 3]  # ids 0 and 9 are labels 1 and 3


def test_imaterialist_export_reads_back_through_the_imaterialist_loader(tmp_path):
    names = imaterialist_names()
    aset = _set_with(names, {"p1.jpg": [(1, names[0]), (2, names[33])], "p2.jpg": [(3, names[45])]})
    csv_path = tmp_path / "train.csv"
    export_imaterialist_csv(aset, csv_path)
    rows = read_imaterialist_csv(csv_path)
    assert sorted((img, r.category) for img, rs in rows.items() for r in rs) == [
        ("p1.jpg", 0),
        ("p1.jpg", 33),
        ("p2.jpg", 45),
    ]
    dataset = IMaterialistDataset(csv_path, "all", require_images=False)
    gt = dataset.coco_ground_truth()
    got = {
        (img["file_name"], a["category_id"]): decode_mask(a["segmentation"])
        for img in gt["images"]
        for a in gt["annotations"]
        if a["image_id"] == img["id"]
    }
    want = {
        (name, ann.category_id): ann.mask()
        for name, rec in aset.images.items()
        for ann in rec.annotations
    }
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)


def test_imaterialist_export_needs_the_taxonomy(tmp_path):
    aset = _set_with(["a"], {"x.jpg": [(1, "a")]})
    with pytest.raises(FashionViewerError, match="not the iMaterialist taxonomy"):
        export_imaterialist_csv(aset, tmp_path / "train.csv")
    assert not (tmp_path / "train.csv").exists()


def test_class_pngs_read_back_to_the_masks(tmp_path):
    aset = _set_with(["a", "b"], {"dir/one.jpg": [(1, "a"), (2, "b")]})
    anns = aset.images["dir/one.jpg"].annotations
    m0, m1 = anns[0].mask(), anns[1].mask()
    written = export_class_pngs(aset, tmp_path / "pngs")
    png = tmp_path / "pngs" / "dir" / "one.png"
    assert png in written
    with Image.open(png) as img:
        assert img.mode == "P"
    values, lookup = read_class_png(png)
    assert lookup == {1: 1, 2: 2}
    # larger first, smaller on top: the visible pixels of each class are its mask minus what covers it
    big, small = (anns[0], anns[1]) if m0.sum() >= m1.sum() else (anns[1], anns[0])
    for ann in (big, small):
        visible = ann.mask() & ~(small.mask() if ann is big else np.zeros_like(m0))
        assert np.array_equal(
            np.vectorize(lambda v: lookup.get(v, -1))(values) == ann.category_id, visible
        )


# --------------------------------------------------------------------------- dataset for retraining


def test_annotations_dataset_yields_the_corrections(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        Image.fromarray(np.full((H, W, 3), 120, np.uint8)).save(tmp_path / name)
    coco = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 3, "name": "pants"}, {"id": 0, "name": "shirt"}],
    }
    path = tmp_path / "annotations.fashionviewer.json"
    path.write_text(json.dumps(coco))
    ed = editor(tmp_path)
    ed.add("a.jpg", W, H, blob(1), "pants")
    ed.add("a.jpg", W, H, blob(2), "shirt")
    ed.set_done("b.jpg", width=W, height=H)  # finished with nothing on it: a negative
    ed.add("c.jpg", W, H, blob(3), "pants")
    ed.delete("c.jpg", 3)  # annotated then emptied, not done: unused
    ed.save()
    dataset = build_dataset("annotations", tmp_path, "all")
    assert dataset.class_names == ["shirt", "pants"] and dataset.category_ids == [0, 3]
    assert [e.file_name for e in dataset.images] == ["a.jpg", "b.jpg"]
    image, target = dataset[0]
    assert image.shape == (3, H, W)
    assert target["labels"].tolist() == [2, 1]  # pants (id 3) is label 2, shirt (id 0) label 1
    assert np.array_equal(target["masks"][0].numpy(), blob(1)) and np.array_equal(
        target["masks"][1].numpy(), blob(2)
    )
    assert target["boxes"].shape == (2, 4)
    assert dataset[1][1]["labels"].numel() == 0
    train, val = (
        build_dataset("annotations", tmp_path, "train"),
        build_dataset("annotations", tmp_path, "val"),
    )
    assert (
        sorted(e.file_name for e in train.images + val.images) == ["a.jpg", "b.jpg"]
        and len(val) == 1
    )
    gt = dataset.coco_ground_truth()
    assert {a["category_id"] for a in gt["annotations"]} == {0, 3}


def test_annotations_dataset_without_a_file_is_one_line(tmp_path):
    with pytest.raises(FashionViewerError, match="no annotation file"):
        build_dataset("annotations", tmp_path, "all")


# --------------------------------------------------------------------------- editing


def test_edits_undo_redo(tmp_path):
    ed = editor(tmp_path)
    changed = []
    ed.events.changed.connect(changed.append)
    a = ed.add("a.jpg", W, H, blob(1), "pants")
    ed.paint("a.jpg", a, (5, 5), 3)
    painted = ed.annotation("a.jpg", a).mask()
    assert painted[5, 5] and painted[5, 7] and painted[8, 5]
    ed.paint("a.jpg", a, (5, 5), 3, erase=True)
    assert not ed.annotation("a.jpg", a).mask()[5, 5]
    ed.relabel("a.jpg", a, "shoe")
    square = polygon_mask([(10, 10), (20, 10), (20, 20), (10, 20)], H, W)
    ed.set_mask("a.jpg", a, square)
    ed.delete("a.jpg", a)
    assert ed.annotations("a.jpg") == [] and changed == ["a.jpg"] * 6

    assert ed.undo()  # delete
    assert np.array_equal(ed.annotation("a.jpg", a).mask(), square)
    assert ed.undo()  # set_mask
    assert ed.annotation("a.jpg", a).category_id == ed.aset.category_id("shoe")
    assert ed.undo() and ed.annotation("a.jpg", a).category_id == ed.aset.category_id("pants")
    assert ed.undo() and ed.annotation("a.jpg", a).mask()[5, 5]  # the erase
    assert ed.undo() and ed.undo()  # the paint, the add
    assert ed.annotations("a.jpg") == [] and not ed.can_undo and not ed.undo()
    for _ in range(6):
        assert ed.redo()
    assert not ed.can_redo and ed.annotations("a.jpg") == []
    ed.undo()
    ed.add("a.jpg", W, H, blob(2), "pants")  # a new edit drops the redo branch
    assert not ed.can_redo


def test_undo_history_is_bounded_and_strokes_are_one_step(tmp_path):
    ed = editor(tmp_path, history=3)
    a = ed.add("a.jpg", W, H, blob(1), "pants")
    with ed.group("brush"):
        for x in range(10, 30, 2):
            ed.paint("a.jpg", a, (x, 20), 2)
    for seed in (2, 3, 4):
        ed.add("a.jpg", W, H, blob(seed), "pants")
    undone = 0
    while ed.undo():
        undone += 1
    assert undone == 3  # only the last three of five steps are kept
    assert len(ed.annotations("a.jpg")) == 1 and ed.annotation("a.jpg", a).mask()[20, 10]
    ed2 = editor(tmp_path / "other")
    b = ed2.add("a.jpg", W, H, blob(1), "pants")
    with ed2.group("brush"):
        for x in range(10, 30, 2):
            ed2.paint("a.jpg", b, (x, 20), 2)
    # the whole stroke at once
    assert ed2.undo() and np.array_equal(ed2.annotation("a.jpg", b).mask(), blob(1))


def test_failed_edit_changes_nothing(tmp_path):
    ed = editor(tmp_path)
    a = ed.add("a.jpg", W, H, blob(1), "pants")
    with pytest.raises(FashionViewerError, match="mask is 10x10, the image is 64x48"):
        ed.set_mask("a.jpg", a, np.ones((10, 10), bool))
    with pytest.raises(FashionViewerError, match="image is 32x32 but its annotations say 64x48"):
        ed.add("a.jpg", 32, 32, np.ones((32, 32), bool), "pants")
    assert np.array_equal(ed.annotation("a.jpg", a).mask(), blob(1))
    assert ed.undo() and not ed.can_undo


def test_autosave_is_debounced_and_reopen_restores(tmp_path):
    ed = editor(tmp_path, autosave_delay=0.5)
    saves = []
    ed.events.saved.connect(saves.append)
    ids = [ed.add("a.jpg", W, H, blob(seed), "pants") for seed in range(5)]
    assert not ed.path.exists() and ed.dirty  # nothing written at the edit itself
    deadline = time.monotonic() + 20
    while not saves and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    assert 1 <= len(saves) < 5 and not ed.dirty  # five quick edits, fewer saves
    reopened = editor(tmp_path)
    assert [a.id for a in reopened.annotations("a.jpg")] == ids
    assert all(
        np.array_equal(reopened.annotation("a.jpg", i).mask(), blob(s)) for s, i in enumerate(ids)
    )
    ed.undo()
    ed.flush()  # on close: written now, whatever the timer
    assert len(editor(tmp_path).annotations("a.jpg")) == 4


def test_autosave_failure_is_reported_not_raised(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ed = AnnotationEditor(
        tmp_path, classes=["pants"], path=blocker / "annotations.json", autosave_delay=0.01
    )
    errors = []
    ed.events.error.connect(errors.append)
    ed.add("a.jpg", W, H, blob(1), "pants")
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(errors) == 1 and "autosave failed" in errors[0] and ed.dirty


# --------------------------------------------------------------------------- SIGKILL


WRITER = textwrap.dedent("""
    import sys
    import time

    import numpy as np

    import fashionviewer.core.data.annotation_file as annotation_file_module
    from fashionviewer.core.base.atomic import atomic_path
    from fashionviewer.core.viewer.annotating import AnnotationEditor

    folder, autosave = sys.argv[1], float(sys.argv[2])
    H, W = 600, 800

    def slow_write_text(path, text):  # a slow disk: the temp file fills in chunks, so kills land inside writes
        data = text.encode("utf-8")
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                for start in range(0, len(data), 8192):
                    fh.write(data[start:start + 8192])
                    fh.flush()
                    time.sleep(0.004)

    annotation_file_module.atomic_write_text = slow_write_text

    def blocky(k):  # a ragged mask, so each record is long
        rng = np.random.default_rng(k)
        return np.kron(rng.random((H // 8, W // 8)) < 0.3, np.ones((8, 8), bool))

    ed = AnnotationEditor(folder, classes=["pants"], autosave_delay=autosave)
    n = len(ed.annotations("big.jpg"))
    print("start", n, flush=True)
    while True:
        n += 1
        ed.add("big.jpg", W, H, blocky(n), "pants")
        if autosave < 0:
            ed.save()
            print("saved", n, flush=True)
""")


@pytest.mark.parametrize("autosave", [-1.0, 0.0])
def test_sigkill_mid_save_leaves_the_previous_or_the_new_file(tmp_path, autosave):
    """A real process adds and saves in a loop and is killed at random moments; the file always parses
    as a complete version, and reopening restores every edit that was saved."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = random.Random(1234)
    last_count, torn = 0, 0
    for _round in range(8):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(folder), str(autosave)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        start = proc.stdout.readline().split()
        # reopening found every saved edit
        assert start[0] == "start" and int(start[1]) == last_count
        saved = int(start[1])
        if autosave < 0:
            for _ in range(rng.randint(1, 3)):
                saved = int(proc.stdout.readline().split()[1])
        # somewhere inside a later save (a save takes ~0.1-0.3 s here); autosave: after its first one
        time.sleep(rng.uniform(0.0, 0.4) if autosave < 0 else rng.uniform(1.5, 2.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for line in proc.stdout.read().splitlines():  # what it reported before it died
            if line.startswith("saved"):
                saved = int(line.split()[1])
        proc.stdout.close()
        torn += any(folder.glob(".annotations.fashionviewer.json.*.tmp"))  # killed inside a write
        aset, problems = load_annotations(folder / "annotations.fashionviewer.json")
        assert problems == []
        count = len(aset.images["big.jpg"].annotations)
        if autosave < 0:
            assert count in (saved, saved + 1)  # the last save reported, or the one under way
        assert count >= last_count
        expected = np.kron(
            np.random.default_rng(count).random((75, 100)) < 0.3, np.ones((8, 8), bool)
        )
        assert np.array_equal(aset.images["big.jpg"].annotations[-1].mask(), expected)
        last_count = count
    assert last_count >= 8
    if autosave < 0:
        assert torn >= 1  # at least one kill really landed inside a write
