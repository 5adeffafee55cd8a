"""Annotations that travel: never destroy another program's file, lossless COCO, and each export format
read back both through the project and through the format's own reader or schema, on real CCP photos."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from PIL import Image

from fashionviewer.__main__ import main as cli
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.annotation_file import load_annotations, save_annotations
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME, FORMAT, AnnotationSet
from fashionviewer.core.data.formats import (
    detect_format,
    export_annotations,
    import_annotations,
    read_format,
)
from fashionviewer.core.data.formats.common import mask_to_polygons
from fashionviewer.core.viewer.annotating import AnnotationEditor

PHOTOS = ("0001", "0002")


def ccp_labels(ccp_root: Path) -> list[str]:
    cells = scipy.io.loadmat(ccp_root / "label_list.mat")["label_list"].ravel()
    return [str(c[0]) if np.size(c) else "" for c in cells]


def ccp_masks(ccp_root: Path, stem: str) -> dict[str, np.ndarray]:
    """One mask per CCP class present in the photo (CCP labels are per class), skin and hair left out."""
    gt = scipy.io.loadmat(ccp_root / "annotations" / "pixel-level" / f"{stem}.mat")["groundtruth"]
    names = ccp_labels(ccp_root)
    return {names[v]: gt == v for v in np.unique(gt) if v and names[v] not in ("skin", "hair")}


@pytest.fixture
def project(ccp_root, tmp_path) -> Path:
    """A folder of two real CCP photos with a FashionViewer project file of their real masks."""
    folder = tmp_path / "photos"
    (folder / "street").mkdir(parents=True)
    shutil.copy(ccp_root / "photos" / f"{PHOTOS[0]}.jpg", folder / f"{PHOTOS[0]}.jpg")
    shutil.copy(ccp_root / "photos" / f"{PHOTOS[1]}.jpg", folder / "street" / f"{PHOTOS[1]}.jpg")
    editor = AnnotationEditor(folder, classes=[], autosave_delay=-1)
    for stem, name in zip(PHOTOS, (f"{PHOTOS[0]}.jpg", f"street/{PHOTOS[1]}.jpg"), strict=False):
        for cls, mask in ccp_masks(ccp_root, stem).items():
            editor.add(name, mask.shape[1], mask.shape[0], mask, cls)
    editor.save()
    return folder


def masks_by_class(aset: AnnotationSet) -> dict[tuple[str, str], np.ndarray]:
    out = {}
    for name, rec in aset.images.items():
        for ann in rec.annotations:
            key = (Path(name).name, aset.category_name(ann.category_id))
            out[key] = out.get(key, np.zeros((rec.height, rec.width), bool)) | ann.mask()
    return out


def assert_same_masks(a: AnnotationSet, b: AnnotationSet, min_iou: float) -> None:
    ma, mb = masks_by_class(a), masks_by_class(b)
    assert sorted(ma) == sorted(mb) and len(ma) >= 8
    for key in ma:
        inter, union = (ma[key] & mb[key]).sum(), (ma[key] | mb[key]).sum()
        assert inter / union >= min_iou, (key, inter / union)


# --------------------------------------------------------------------------- never destroy


LABELME = {
    "version": "5.4.1",
    "flags": {},
    "imagePath": "0001.jpg",
    "imageData": None,
    "imageHeight": 836,
    "imageWidth": 550,
    "shapes": [
        {
            "label": f"c{i}",
            "points": [[10 + i, 10], [60, 12 + i], [40, 70]],
            "group_id": None,
            "shape_type": "polygon",
            "flags": {},
        }
        for i in range(8)
    ],
}


def test_labelme_file_at_the_project_path_survives_opening_editing_and_saving(tmp_path, capsys):
    path = tmp_path / DEFAULT_FILE_NAME
    path.write_text(json.dumps(LABELME, indent=1))
    before = path.read_bytes()
    editor = AnnotationEditor(tmp_path, classes=["dress"], autosave_delay=0.01)
    assert editor.read_only and len(editor.problems) == 1 and "labelme" in editor.problems[0]
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(FashionViewerError, match="read-only"):
        editor.add("0001.jpg", 550, 836, np.ones((836, 550), bool), "dress")
    with pytest.raises(FashionViewerError, match="read-only"):
        editor.save()
    editor.close()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        DEFAULT_FILE_NAME
    ]
    # converting it needs its image in the folder: refused naming it, nothing written (no .bak either)
    with pytest.raises(FashionViewerError, match="image 0001.jpg is not in"):
        import_annotations(path, tmp_path, "labelme")
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def third_party_coco(ccp_root: Path) -> dict:
    """A COCO file as another tool writes it: licenses, info, image keys, polygons, a crowd region in
    uncompressed RLE, attributes, and no FashionViewer keys."""
    masks = ccp_masks(ccp_root, PHOTOS[0])
    (cls_a, mask_a), (cls_b, mask_b) = list(masks.items())[:2]
    h, w = mask_a.shape
    flat = mask_b.ravel(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    return {
        "info": {"description": "from CVAT", "year": 2024, "contributor": "someone"},
        "licenses": [
            {"id": 3, "name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"}
        ],
        "images": [
            {
                "id": 42,
                "file_name": f"{PHOTOS[0]}.jpg",
                "width": w,
                "height": h,
                "license": 3,
                "coco_url": "",
                "date_captured": 0,
            }
        ],
        "categories": [
            {"id": 7, "name": cls_a, "supercategory": "garment"},
            {"id": 9, "name": cls_b},
        ],
        "annotations": [
            {
                "id": 100,
                "image_id": 42,
                "category_id": 7,
                "segmentation": mask_to_polygons(mask_a),
                "area": 1.5,
                "bbox": [1, 2, 3, 4],
                "iscrowd": 0,
                "attributes": {"occluded": False, "color": "blue"},
            },
            {
                "id": 101,
                "image_id": 42,
                "category_id": 9,
                "segmentation": {"size": [h, w], "counts": counts},
                "area": float(mask_b.sum()),
                "bbox": [0, 0, w, h],
                "iscrowd": 1,
                "attributes": {"occluded": True},
            },
        ],
        "x_tool": {"kept": True},
    }


def test_third_party_coco_survives_import_edit_and_export(ccp_root, tmp_path):
    from pycocotools.coco import COCO

    original = third_party_coco(ccp_root)
    shutil.copy(ccp_root / "photos" / f"{PHOTOS[0]}.jpg", tmp_path / f"{PHOTOS[0]}.jpg")
    path = tmp_path / DEFAULT_FILE_NAME
    path.write_text(json.dumps(original))
    before = path.read_bytes()
    editor = AnnotationEditor(tmp_path, autosave_delay=-1)
    assert not editor.read_only and editor.problems == []
    h, w = original["images"][0]["height"], original["images"][0]["width"]
    editor.add(
        f"{PHOTOS[0]}.jpg",
        w,
        h,
        np.pad(np.ones((20, 20), bool), ((0, h - 20), (0, w - 20))),
        "belt",
    )
    editor.save()
    # first save over a foreign file
    assert (tmp_path / (DEFAULT_FILE_NAME + ".bak")).read_bytes() == before
    saved = json.loads(path.read_text())
    assert saved["licenses"] == original["licenses"] and saved["x_tool"] == {"kept": True}
    assert {k: saved["info"][k] for k in original["info"]} == original["info"] and saved["info"][
        "format"
    ] == FORMAT
    assert {k: saved["images"][0][k] for k in original["images"][0]} == original["images"][0]
    by_id = {a["id"]: a for a in saved["annotations"]}
    for old in original["annotations"]:
        new = by_id[old["id"]]
        # segmentation, area, bbox, iscrowd 1, attributes as they were
        assert {k: new[k] for k in old} == old
        assert new["source"] == "imported"
    assert [a["source"] for a in saved["annotations"] if a["id"] not in (100, 101)] == ["drawn"]
    assert [c for c in saved["categories"] if c["id"] == 7][0]["supercategory"] == "garment"
    # export: the same keys, without the project's own
    out = tmp_path / "out"
    export_annotations(tmp_path, out, "coco")
    exported = json.loads((out / "annotations" / "instances_default.json").read_text())
    assert (
        exported["licenses"] == original["licenses"] and exported["images"][0].get("done") is None
    )
    crowd = [a for a in exported["annotations"] if a["id"] == 101][0]
    assert (
        crowd["iscrowd"] == 1
        and crowd["attributes"] == {"occluded": True}
        and "source" not in crowd
    )
    gt = COCO(str(out / "annotations" / "instances_default.json"))
    assert len(gt.getAnnIds(iscrowd=True)) == 1 and len(gt.getAnnIds()) == 3
    # imported into a fresh folder through the command line: the same ids and keys
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(tmp_path / f"{PHOTOS[0]}.jpg", fresh / f"{PHOTOS[0]}.jpg")
    (tmp_path / "third_party.json").write_text(json.dumps(original))
    assert (
        cli(["annotations", "import", str(tmp_path / "third_party.json"), "--into", str(fresh)])
        == 0
    )
    imported = json.loads((fresh / DEFAULT_FILE_NAME).read_text())
    assert imported["images"][0]["id"] == 42 and imported["licenses"] == original["licenses"]
    assert [
        {k: a[k] for k in old}
        for a in imported["annotations"]
        for old in original["annotations"]
        if a["id"] == old["id"]
    ] == original["annotations"]
    # editing an imported instance's mask writes the new mask (and marks it edited)
    editor = AnnotationEditor(tmp_path, autosave_delay=-1)
    editor.set_mask(
        f"{PHOTOS[0]}.jpg", 100, np.pad(np.ones((30, 30), bool), ((0, h - 30), (0, w - 30)))
    )
    editor.save()
    edited = [a for a in json.loads(path.read_text())["annotations"] if a["id"] == 100][0]
    assert (
        edited["source"] == "edited"
        and edited["area"] == 900.0
        and isinstance(edited["segmentation"], dict)
    )
    assert edited["attributes"] == {"occluded": False, "color": "blue"}


# --------------------------------------------------------------------------- formats round-trip


@pytest.mark.parametrize(
    "fmt,min_iou", [("coco", 1.0), ("labelme", 0.95), ("yolo", 0.95), ("voc", 0.99), ("cvat", 0.99)]
)
def test_export_reads_back_through_the_project(project, tmp_path, fmt, min_iou):
    original, problems = load_annotations(project / DEFAULT_FILE_NAME)
    assert problems == []
    out = tmp_path / f"out-{fmt}"
    assert cli(["annotations", "export", str(project), "--to", fmt, "--out", str(out)]) == 0
    assert detect_format(out if fmt != "labelme" else out) == fmt
    back, problems, detected = read_format(out)
    assert detected == fmt and problems == []
    assert_same_masks(original, back, min_iou)
    # ... and into a fresh folder of the same photos, through the project file
    fresh = tmp_path / f"fresh-{fmt}"
    shutil.copytree(project, fresh, ignore=shutil.ignore_patterns(DEFAULT_FILE_NAME))
    assert cli(["annotations", "import", str(out), "--into", str(fresh)]) == 0
    imported, problems = load_annotations(fresh / DEFAULT_FILE_NAME)
    assert problems == [] and sorted(imported.images) == sorted(original.images)
    assert_same_masks(original, imported, min_iou)
    assert {a.source for rec in imported.images.values() for a in rec.annotations} == {"imported"}


def test_exports_follow_each_format_s_own_reader(project, tmp_path):
    from pycocotools.coco import COCO

    original, _ = load_annotations(project / DEFAULT_FILE_NAME)
    expected = masks_by_class(original)
    for fmt in ("coco", "labelme", "yolo", "voc", "cvat"):
        export_annotations(project, tmp_path / fmt, fmt)
    # COCO: pycocotools
    coco = COCO(str(tmp_path / "coco" / "annotations" / "instances_default.json"))
    for ann in coco.loadAnns(coco.getAnnIds()):
        img = coco.loadImgs(ann["image_id"])[0]
        name = coco.loadCats(ann["category_id"])[0]["name"]
        assert (
            coco.annToMask(ann).astype(bool) == expected[(Path(img["file_name"]).name, name)]
        ).all()
    # labelme: the keys and types of labelme's JSON schema; the image path resolves from the JSON
    files = sorted((tmp_path / "labelme").rglob("*.json"))
    assert len(files) == 2
    for file in files:
        doc = json.loads(file.read_text())
        assert set(doc) >= {
            "version",
            "flags",
            "shapes",
            "imagePath",
            "imageData",
            "imageHeight",
            "imageWidth",
        }
        assert (file.parent / doc["imagePath"]).is_file()
        for shape in doc["shapes"]:
            assert shape["shape_type"] == "polygon" and len(shape["points"]) >= 3
            assert all(
                len(p) == 2 and all(isinstance(v, float | int) for v in p) for p in shape["points"]
            )
    # YOLO: Ultralytics' layout and line grammar, data.yaml read by PyYAML
    data = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    names = data["names"]
    assert data["nc"] == len(names) == len(original.categories)
    for label in (tmp_path / "yolo" / "labels").rglob("*.txt"):
        image = (
            tmp_path
            / "yolo"
            / "images"
            / label.relative_to(tmp_path / "yolo" / "labels").with_suffix(".jpg")
        )
        assert image.is_file()
        for line in label.read_text().splitlines():
            values = line.split()
            assert 0 <= int(values[0]) < data["nc"] and len(values) % 2 == 1 and len(values) >= 7
            assert all(0.0 <= float(v) <= 1.0 for v in values[1:])
    # VOC: palette PNGs whose values index labelmap.txt, objects numbered 1..N
    labelmap = (tmp_path / "voc" / "labelmap.txt").read_text().splitlines()
    assert labelmap[1] == "background:0,0,0::"
    names = [line.split(":")[0] for line in labelmap[1:]]
    classes = np.asarray(Image.open(tmp_path / "voc" / "SegmentationClass" / f"{PHOTOS[0]}.png"))
    assert Image.open(tmp_path / "voc" / "SegmentationClass" / f"{PHOTOS[0]}.png").mode == "P"
    for value in np.unique(classes)[1:]:
        assert ((classes == value) == expected[(f"{PHOTOS[0]}.jpg", names[value])]).all()
    # CVAT: the XML's mask RLE decoded the way CVAT documents it (row-major in the box, zeros first)
    root = ET.parse(tmp_path / "cvat" / "annotations.xml").getroot()
    assert root.findtext("version") == "1.1"
    for image in root.iter("image"):
        h, w = int(image.get("height")), int(image.get("width"))
        for mask in image.iter("mask"):
            left, top, bw, bh = (int(mask.get(k)) for k in ("left", "top", "width", "height"))
            flat, value = [], 0
            for count in mask.get("rle").split(","):
                flat += [value] * int(count)
                value = 1 - value
            full = np.zeros((h, w), bool)
            full[top : top + bh, left : left + bw] = np.array(flat, bool).reshape(bh, bw)
            assert (full == expected[(Path(image.get("name")).name, mask.get("label"))]).all()


def test_imaterialist_csv_round_trips(ccp_root, tmp_path):
    from fashionviewer.core.data.datasets.imaterialist import read_imaterialist_csv

    shutil.copy(ccp_root / "photos" / f"{PHOTOS[0]}.jpg", tmp_path / f"{PHOTOS[0]}.jpg")
    masks = list(ccp_masks(ccp_root, PHOTOS[0]).values())
    editor = AnnotationEditor(
        tmp_path, classes=["shirt, blouse", "pants", "shoe"], autosave_delay=-1
    )
    for mask, cls in zip(masks, ["shirt, blouse", "pants", "shoe"], strict=False):
        editor.add(f"{PHOTOS[0]}.jpg", mask.shape[1], mask.shape[0], mask, cls)
    editor.save()
    original, _ = load_annotations(editor.path)
    # iMaterialist's
    original.images[f"{PHOTOS[0]}.jpg"].annotations[0].extra["attributes"] = [115, 136]
    save_annotations(editor.path, original)
    out = tmp_path / "csv"
    export_annotations(tmp_path, out, "imaterialist")
    rows = read_imaterialist_csv(out / "train.csv")[f"{PHOTOS[0]}.jpg"]
    assert sorted(r.category for r in rows) == sorted(
        a.category_id for a in original.images[f"{PHOTOS[0]}.jpg"].annotations
    )
    assert sorted(r.attributes for r in rows) == [[], [], [115, 136]]
    back, _, fmt = read_format(out)
    assert fmt == "imaterialist"
    assert_same_masks_loose(original, back)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(tmp_path / f"{PHOTOS[0]}.jpg", fresh / f"{PHOTOS[0]}.jpg")
    assert cli(["annotations", "import", str(out / "train.csv"), "--into", str(fresh)]) == 0
    imported, problems = load_annotations(fresh / DEFAULT_FILE_NAME)
    assert problems == [] and imported.taxonomy == "imaterialist"
    assert_same_masks_loose(original, imported)
    assert sorted(
        str(a.extra.get("attributes")) for a in imported.images[f"{PHOTOS[0]}.jpg"].annotations
    ) == ["None", "None", "[115, 136]"]


def assert_same_masks_loose(a: AnnotationSet, b: AnnotationSet) -> None:
    ma, mb = masks_by_class(a), masks_by_class(b)
    assert sorted(ma) == sorted(mb)
    assert all((ma[k] == mb[k]).all() for k in ma)


def test_coco_category_ids_1_based_are_recorded(project, tmp_path):
    from pycocotools.coco import COCO

    aset, _ = load_annotations(project / DEFAULT_FILE_NAME)
    # ids from 0, as iMaterialist's
    aset.categories = [{**c, "id": c["id"] - 1} for c in aset.categories]
    for rec in aset.images.values():
        for ann in rec.annotations:
            ann.category_id -= 1
    save_annotations(project / DEFAULT_FILE_NAME, aset)
    assert (
        cli(
            [
                "annotations",
                "export",
                str(project),
                "--to",
                "coco",
                "--out",
                str(tmp_path / "c"),
                "--category-ids",
                "1-based",
            ]
        )
        == 0
    )
    doc = json.loads((tmp_path / "c" / "annotations" / "instances_default.json").read_text())
    ids = [c["id"] for c in doc["categories"]]
    assert ids == list(range(1, len(ids) + 1))
    assert doc["info"]["category_ids"]["numbering"] == "1-based"
    assert doc["info"]["category_ids"]["dataset_ids"]["1"] == 0
    COCO(str(tmp_path / "c" / "annotations" / "instances_default.json"))


# --------------------------------------------------------------------------- bad input


def _bad(capsys, args) -> str:
    assert cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_bad_input_is_one_error_line_and_nothing_written(project, tmp_path, capsys):
    project_file = project / DEFAULT_FILE_NAME
    before = project_file.read_bytes()
    export_annotations(project, tmp_path / "yolo", "yolo")
    export_annotations(project, tmp_path / "cvat", "cvat")
    export_annotations(project, tmp_path / "labelme", "labelme")
    # YOLO: a class index past data.yaml's names
    label = sorted((tmp_path / "yolo" / "labels").rglob("*.txt"))[0]
    label.write_text(label.read_text() + "99 0.1 0.1 0.2 0.1 0.2 0.2\n")
    line = _bad(capsys, ["annotations", "import", str(tmp_path / "yolo"), "--into", str(project)])
    assert label.name in line and "class index 99 out of range" in line
    # CVAT: broken XML
    xml = tmp_path / "cvat" / "annotations.xml"
    xml.write_text(xml.read_text()[:-40])
    assert "broken XML" in _bad(capsys, ["annotations", "import", str(xml), "--into", str(project)])
    # labelme: a polygon with 2 points
    doc_file = sorted((tmp_path / "labelme").rglob("*.json"))[0]
    doc = json.loads(doc_file.read_text())
    doc["shapes"][0]["points"] = doc["shapes"][0]["points"][:2]
    doc_file.write_text(json.dumps(doc))
    line = _bad(
        capsys, ["annotations", "import", str(tmp_path / "labelme"), "--into", str(project)]
    )
    assert doc_file.name in line and "shape 0" in line and "2 point(s)" in line
    # a missing source, then a missing image (on import and on export)
    line = _bad(
        capsys, ["annotations", "import", str(tmp_path / "cvat" / "x"), "--into", str(project)]
    )
    assert "no such file" in line
    export_annotations(project, tmp_path / "coco", "coco")
    (project / f"{PHOTOS[0]}.jpg").rename(tmp_path / "moved.jpg")
    line = _bad(
        capsys,
        ["annotations", "export", str(project), "--to", "yolo", "--out", str(tmp_path / "y2")],
    )
    assert f"{PHOTOS[0]}.jpg" in line and "missing" in line and not (tmp_path / "y2").exists()
    line = _bad(
        capsys,
        ["annotations", "import", str(tmp_path / "coco"), "--into", str(project), "--from", "coco"],
    )
    assert f"{PHOTOS[0]}.jpg" in line and "not in" in line
    assert project_file.read_bytes() == before
    assert sorted(p.name for p in project.iterdir()) == [DEFAULT_FILE_NAME, "street"]
    # export refuses a folder without annotations, and an unknown format is a usage error
    assert "no annotations.fashionviewer.json" in _bad(
        capsys,
        [
            "annotations",
            "export",
            str(tmp_path / "yolo"),
            "--to",
            "coco",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert not (tmp_path / "x").exists()


def test_labelme_rectangles_circles_masks_and_groups_are_read(ccp_root, tmp_path):
    """X-AnyLabeling / labelme 5.x shapes: a two-part instance (group_id), a rectangle, a circle, a base64 PNG
    mask, and a point (no region: named once, skipped)."""
    import base64
    import io

    shutil.copy(ccp_root / "photos" / f"{PHOTOS[0]}.jpg", tmp_path / f"{PHOTOS[0]}.jpg")
    masks = ccp_masks(ccp_root, PHOTOS[0])
    name, mask = next(iter(masks.items()))
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
    png = io.BytesIO()
    Image.fromarray((mask[y0 : y1 + 1, x0 : x1 + 1] * 255).astype(np.uint8)).save(png, format="PNG")
    shapes = [
        {
            "label": "belt",
            "points": [[10, 10], [40, 10], [40, 30]],
            "group_id": 7,
            "shape_type": "polygon",
        },
        {
            "label": "belt",
            "points": [[100, 100], [140, 100], [140, 130]],
            "group_id": 7,
            "shape_type": "polygon",
        },
        {
            "label": "bag",
            "points": [[200, 300], [260, 350]],
            "shape_type": "rectangle",
            "description": "leather",
        },
        {"label": "hat", "points": [[300, 100], [320, 100]], "shape_type": "circle"},
        {
            "label": name,
            "points": [[float(x0), float(y0)], [float(x1), float(y1)]],
            "shape_type": "mask",
            "mask": base64.b64encode(png.getvalue()).decode(),
        },
        {"label": "belt", "points": [[5, 5]], "shape_type": "point"},
    ]
    doc = {
        "version": "2.4.0",
        "flags": {},
        "shapes": shapes,
        "imagePath": f"{PHOTOS[0]}.jpg",
        "imageData": None,
        "imageHeight": h,
        "imageWidth": w,
    }
    (tmp_path / f"{PHOTOS[0]}.json").write_text(json.dumps(doc))
    aset, problems, fmt = read_format(tmp_path)
    assert fmt == "labelme" and len(problems) == 1 and "1 point shape(s)" in problems[0]
    rec = aset.images[f"{PHOTOS[0]}.jpg"]
    by_name = {aset.category_name(a.category_id): a for a in rec.annotations}
    assert sorted(by_name) == sorted(["belt", "bag", "hat", name])
    assert (by_name[name].mask() == mask).all()  # the PNG mask, exactly
    belt = by_name["belt"].mask()
    assert belt[15, 35] and belt[105, 135] and not belt[60, 60]  # both parts, one instance
    assert abs(by_name["bag"].area - 60 * 50) <= 120  # the rectangle, rasterised by pycocotools
    assert by_name["bag"].extra == {"description": "leather"}
    assert abs(by_name["hat"].area - np.pi * 20**2) < 80


def test_more_bad_input_names_the_file_and_row(project, tmp_path, capsys):
    before = (project / DEFAULT_FILE_NAME).read_bytes()
    for fmt in ("yolo", "cvat", "voc"):
        export_annotations(project, tmp_path / fmt, fmt)
    # YOLO: a label file whose image is gone
    next((tmp_path / "yolo" / "images").glob("*.jpg")).unlink()
    line = _bad(capsys, ["annotations", "import", str(tmp_path / "yolo"), "--into", str(project)])
    assert "no image images/" in line
    # CVAT: a polygon of two points, then a mask whose run lengths do not fill its box
    xml = tmp_path / "cvat" / "annotations.xml"
    text = xml.read_text()
    polygon = '<polygon label="bag" points="1,1;5,5" occluded="0" z_order="0"/></image>'
    xml.write_text(text.replace("</image>", polygon, 1))
    line = _bad(capsys, ["annotations", "import", str(xml), "--into", str(project)])
    assert "<polygon>" in line and "2 point(s)" in line
    xml.write_text(text.replace('rle="', 'rle="7, ', 1))
    assert "rle counts sum to" in _bad(
        capsys, ["annotations", "import", str(xml), "--into", str(project)]
    )
    # VOC: a class value the label map does not have
    png = tmp_path / "voc" / "SegmentationClass" / f"{PHOTOS[0]}.png"
    values = np.asarray(Image.open(png)).copy()
    values[0, 0] = 200
    img = Image.fromarray(values, mode="P")
    img.putpalette(Image.open(png).getpalette())
    img.save(png)
    line = _bad(capsys, ["annotations", "import", str(tmp_path / "voc"), "--into", str(project)])
    assert png.name in line and "class value 200" in line
    # an image of another size than the file says
    doc = json.loads((project / DEFAULT_FILE_NAME).read_text())
    doc["images"][0]["width"] += 1
    (tmp_path / "resized.json").write_text(json.dumps(doc))
    line = _bad(
        capsys, ["annotations", "import", str(tmp_path / "resized.json"), "--into", str(project)]
    )
    assert "is 550x" in line and "in the file" in line
    assert (project / DEFAULT_FILE_NAME).read_bytes() == before


def test_export_alone_points_at_the_annotations_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no folder named "export" here
    line = _bad(capsys, ["export", "-h"])
    assert "fashionviewer annotations export" in line
    assert cli(["annotations", "-h"]) == 0 and "labelme" in capsys.readouterr().out


def test_import_merges_categories_by_name_keeping_free_ids(project, tmp_path):
    """Importing into an annotated folder: known names map to the project's ids, new ones keep theirs."""
    aset, _ = load_annotations(project / DEFAULT_FILE_NAME)
    before = {c["name"]: c["id"] for c in aset.categories}
    export_annotations(project, tmp_path / "cvat", "cvat")
    xml = tmp_path / "cvat" / "annotations.xml"
    first = sorted(before)[0]
    xml.write_text(xml.read_text().replace(f'label="{first}"', 'label="a new class"'))
    path, images, instances, _ = import_annotations(xml, project, "cvat")
    merged, problems = load_annotations(path)
    assert (
        problems == []
        and images == 2
        and instances == sum(len(r.annotations) for r in aset.images.values())
    )
    after = {c["name"]: c["id"] for c in merged.categories}
    assert {k: after[k] for k in before} == before and after["a new class"] == max(
        before.values()
    ) + 1
    # added, not replaced
    assert sum(len(r.annotations) for r in merged.images.values()) == 2 * instances


def test_image_ids_from_a_ground_truth_by_file_name(project, tmp_path):
    from fashionviewer.core.data.formats import image_ids_from, match_image_ids

    ids = image_ids_from(project)  # the annotated folder: its project file
    assert sorted(ids) == [f"{PHOTOS[0]}.jpg", f"street/{PHOTOS[1]}.jpg"]
    matched, missing = match_image_ids(
        [f"x/{PHOTOS[0]}.jpg", f"street/{PHOTOS[1]}.jpg", "new.jpg"], ids, "gt"
    )
    assert matched == {
        f"x/{PHOTOS[0]}.jpg": ids[f"{PHOTOS[0]}.jpg"],
        f"street/{PHOTOS[1]}.jpg": ids[f"street/{PHOTOS[1]}.jpg"],
        "new.jpg": max(ids.values()) + 1,
    } and missing == ["new.jpg"]
    with pytest.raises(FashionViewerError, match="matches 2 images"):
        match_image_ids(["a.jpg"], {"x/a.jpg": 1, "y/a.jpg": 2}, "gt")
    (tmp_path / "index.json").write_text(json.dumps([{"image_id": 5, "file_name": "a.jpg"}]))
    assert image_ids_from(tmp_path / "index.json") == {"a.jpg": 5}
    (tmp_path / "bad.json").write_text(json.dumps({"images": [{"file_name": "a.jpg"}]}))
    with pytest.raises(FashionViewerError, match="image 0: needs 'file_name' and 'id'"):
        image_ids_from(tmp_path / "bad.json")


def test_import_replace_drops_the_images_old_annotations(project, tmp_path):
    aset, _ = load_annotations(project / DEFAULT_FILE_NAME)
    count = sum(len(r.annotations) for r in aset.images.values())
    export_annotations(project, tmp_path / "voc", "voc")
    assert (
        cli(["annotations", "import", str(tmp_path / "voc"), "--into", str(project), "--replace"])
        == 0
    )
    merged, _ = load_annotations(project / DEFAULT_FILE_NAME)
    assert sum(len(r.annotations) for r in merged.images.values()) == count
    assert_same_masks(aset, merged, 1.0)
