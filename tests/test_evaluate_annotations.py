"""``fashionviewer evaluate`` against the ground truths other tools write: the annotated folder itself as
--gt, a COCO file listing only the classes present, and a COCO ground truth in CCP's label names scored in
iMaterialist's taxonomy; on a real CCP photo and its real masks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import scipy.io

from fashionviewer.__main__ import main as cli
from fashionviewer.core.data.formats import export_annotations
from fashionviewer.core.data.masks import encode_mask
from fashionviewer.core.viewer.annotating import AnnotationEditor


def _masks(ccp_root, stem="0001"):
    gt = scipy.io.loadmat(ccp_root / "annotations" / "pixel-level" / f"{stem}.mat")["groundtruth"]
    values = [v for v in np.unique(gt) if v]
    return gt, values


def _result(mask, name, score=0.9):
    ys, xs = np.nonzero(mask)
    return {
        "image_id": 1,
        "file_name": "0001.jpg",
        "category_id": 0,
        "class_name": name,
        "score": score,
        "bbox": [
            float(xs.min()),
            float(ys.min()),
            float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1),
        ],
        "segmentation": encode_mask(mask),
    }


def test_annotated_folder_with_only_the_classes_present_as_gt(ccp_root, tmp_path, capsys):
    gt, values = _masks(ccp_root)
    shutil.copy(ccp_root / "photos" / "0001.jpg", tmp_path / "0001.jpg")
    editor = AnnotationEditor(tmp_path, classes=["pants", "shoe"], autosave_delay=-1)
    first, second = gt == values[0], gt == values[1]
    editor.add("0001.jpg", gt.shape[1], gt.shape[0], first, "pants")
    editor.add("0001.jpg", gt.shape[1], gt.shape[0], second, "shoe")
    editor.save()
    results = [
        _result(first, "pants"),
        _result(second, "shoe"),
        _result(gt == values[2], "dress", 0.95),
    ]
    (tmp_path / "results.json").write_text(json.dumps(results))
    out = tmp_path / "metrics.json"
    assert (
        cli(
            [
                "evaluate",
                "--gt",
                str(tmp_path),
                "--pred",
                str(tmp_path / "results.json"),
                "--taxonomy",
                "imaterialist",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "(1 predictions of 1 classes the ground truth does not list ignored: dress)" in printed
    metrics = json.loads(out.read_text())
    assert metrics["AP"] == pytest.approx(1.0) and metrics["ignored_unlisted_classes"] == 1
    # the same annotations exported for other tools serve as ground truth too
    for fmt in ("cvat", "voc", "labelme", "yolo"):
        export_annotations(tmp_path, tmp_path / fmt, fmt)
        assert (
            cli(
                [
                    "evaluate",
                    "--gt",
                    str(tmp_path / fmt),
                    "--pred",
                    str(tmp_path / "results.json"),
                    "--taxonomy",
                    "imaterialist",
                    "--json",
                    str(out),
                ]
            )
            == 0
        )
        assert json.loads(out.read_text())["AP"] >= (0.99 if fmt in ("cvat", "voc") else 0.9), fmt


def test_coco_gt_in_ccp_names_is_mapped_by_name(ccp_root, tmp_path, capsys):
    gt, _ = _masks(ccp_root)
    h, w = gt.shape
    labels = scipy.io.loadmat(ccp_root / "label_list.mat")["label_list"].ravel()
    names = [str(c[0]) if np.size(c) else "" for c in labels]
    present = [v for v in np.unique(gt) if v]
    coco = {
        "images": [{"id": 1, "file_name": "0001.jpg", "width": w, "height": h}],
        "categories": [{"id": int(v), "name": names[v]} for v in present],
        "annotations": [
            {
                "id": k,
                "image_id": 1,
                "category_id": int(v),
                "segmentation": encode_mask(gt == v),
                "area": float((gt == v).sum()),
                "bbox": [0, 0, w, h],
                "iscrowd": 0,
            }
            for k, v in enumerate(present, start=1)
        ],
    }
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    from fashionviewer.core.data.taxonomy import CCP_TO_IMATERIALIST

    results = [
        _result(gt == v, CCP_TO_IMATERIALIST[names[v]])
        for v in present
        if CCP_TO_IMATERIALIST[names[v]]
    ]
    assert len(results) >= 3
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert (
        cli(
            [
                "evaluate",
                "--gt",
                str(tmp_path / "gt.json"),
                "--pred",
                str(tmp_path / "results.json"),
                "--taxonomy",
                "imaterialist",
                "--json",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "m.json").read_text())["AP"] == pytest.approx(1.0)


def test_coco_gt_in_another_taxonomy_gets_the_right_advice(ccp_root, tmp_path, capsys):
    gt, values = _masks(ccp_root)
    h, w = gt.shape
    coco = {
        "images": [{"id": 1, "file_name": "0001.jpg", "width": w, "height": h}],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "handbag"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "segmentation": encode_mask(gt == values[0]),
                "area": 1.0,
                "bbox": [0, 0, w, h],
                "iscrowd": 0,
            }
        ],
    }
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    (tmp_path / "results.json").write_text(json.dumps([_result(gt == values[0], "pants")]))
    assert (
        cli(
            [
                "evaluate",
                "--gt",
                str(tmp_path / "gt.json"),
                "--pred",
                str(tmp_path / "results.json"),
                "--taxonomy",
                "imaterialist",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matched by class name" in err[0] and "pass --taxonomy" not in err[0]
